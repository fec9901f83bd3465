"""``/v1/actions``: custom actions, where they may call, their secrets, and the journeys that call them."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from itinera.journeys.actions.schemas import ActionIn, HeaderAuth
from itinera.journeys.actions.secrets import Sealer, Unreadable, seal_stored
from itinera.journeys.config import JourneysSettings
from itinera.journeys.runtime.actions import action_of

ACTIONS = "/v1/actions"
JOURNEYS = "/v1/journeys"


def unique(name: str) -> str:
    return f"{name} {uuid.uuid4().hex[:8]}"


def crm(name: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "name": name or unique("CRM lookup"),
        "method": "POST",
        "url": "https://crm.example.com/v1/customers/{{customerId}}/lookup",
        "headers": {"X-Source": "itinera", "X-Region": "{{region}}"},
        "body": '{"email": {{email}}}',
        "auth": {"type": "bearer", "token": "s3cret-token"},
        "timeoutSeconds": 5,
        "retries": 2,
        "responseFields": [{"name": "tier", "path": "customer.tier"}, {"name": "points", "type": "integer"}],
        "rateCap": {"calls": 50, "periodSeconds": 1},
        **extra,
    }


async def create(http: httpx.AsyncClient, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await http.post(ACTIONS, json=body or crm())
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def calling(
    action_id: str, inputs: dict[str, str], condition: str = '_journey.actions.lookup.tier = "gold"'
) -> dict[str, Any]:
    return {
        "name": "calls the CRM",
        "nodes": [
            {"id": "start", "type": "audience", "audienceId": "vip", "next": "lookup"},
            {"id": "lookup", "type": "action", "actionId": action_id, "inputs": inputs, "next": "gold"},
            {
                "id": "gold",
                "type": "condition",
                "branches": [{"name": "gold", "condition": condition, "next": "done"}],
            },
            {"id": "done", "type": "end"},
        ],
    }


INPUTS = {"customerId": "_id", "region": "homeAddress.countryCode", "email": "personalEmail.address"}


def paths(response: httpx.Response) -> set[tuple[str, str]]:
    return {(e["path"], e["code"]) for e in response.json()["errors"]}


class TestConfiguration:
    async def test_an_action_round_trips_without_its_secret(self, http: httpx.AsyncClient) -> None:
        body = crm()
        response = await http.post(ACTIONS, json=body)
        assert response.status_code == 201
        action = response.json()
        assert response.headers["location"] == f"{ACTIONS}/{action['id']}"
        assert action["auth"] == {"type": "bearer", "secretSet": True, "username": None, "name": None}
        assert "s3cret-token" not in response.text
        assert action["parameters"] == ["customerId", "region", "email"]
        assert action["endpoint"] == "https://crm.example.com:443"
        assert action["responseFields"] == [
            {"name": "tier", "path": "customer.tier", "type": "string"},
            {"name": "points", "path": None, "type": "integer"},
        ]
        assert (action["method"], action["timeoutSeconds"], action["retries"]) == ("POST", 5, 2)
        assert action["rateCap"] == {"calls": 50, "periodSeconds": 1}
        assert (await http.get(f"{ACTIONS}/{action['id']}")).json() == action
        listed = (await http.get(ACTIONS, params={"limit": 1000})).json()
        assert action in listed["items"]

    async def test_put_replaces_it_and_keeps_the_secret_when_omitted(self, http: httpx.AsyncClient) -> None:
        action = await create(http)
        changed = crm(action["name"], auth={"type": "bearer"}, retries=0)
        response = await http.put(f"{ACTIONS}/{action['id']}", json=changed)
        assert response.status_code == 200, response.text
        assert (response.json()["retries"], response.json()["auth"]["secretSet"]) == (0, True)
        other_kind = crm(action["name"], auth={"type": "basic", "username": "svc"})
        refused = await http.put(f"{ACTIONS}/{action['id']}", json=other_kind)
        assert refused.status_code == 400
        assert paths(refused) == {("/auth/password", "required")}

    async def test_a_new_action_needs_its_secret(self, http: httpx.AsyncClient) -> None:
        response = await http.post(ACTIONS, json=crm(auth={"type": "header", "name": "X-Api-Key"}))
        assert response.status_code == 400
        assert paths(response) == {("/auth/value", "required")}

    async def test_private_and_loopback_hosts_are_refused_unless_allowed(
        self, http: httpx.AsyncClient
    ) -> None:
        for url in (
            "http://127.0.0.1:8080/hook",
            "https://192.168.0.10/",
            "http://[::1]/",
            "https://localhost/x",
        ):
            response = await http.post(ACTIONS, json=crm(url=url))
            assert response.status_code == 400, url
            assert paths(response) == {("/url", "private-host")}
        for url in ("https://crm.internal/v1/{{customerId}}", "http://10.1.2.3:9000/{{customerId}}"):
            created = await create(http, crm(url=url))
            assert created["url"] == url

    async def test_every_problem_of_an_action_is_reported(self, http: httpx.AsyncClient) -> None:
        body = crm(
            url="ftp://user:pw@example.com/{{id",
            method="GET",
            headers={"Host": "evil.example.com", "Authorization": "Basic x", "X-Ok": "}}"},
            responseFields=[{"name": "a"}, {"name": "a"}],
        )
        response = await http.post(ACTIONS, json=body)
        assert response.status_code == 400
        assert paths(response) == {
            ("/url", "url"),
            ("/url", "template"),
            ("/headers/Host", "header"),
            ("/headers/Authorization", "header"),
            ("/headers/X-Ok", "template"),
            ("/body", "body"),
            ("/responseFields/1/name", "unique"),
        }
        assert response.json()["problems"]

    async def test_header_values_cannot_carry_line_breaks(self, http: httpx.AsyncClient) -> None:
        response = await http.post(ACTIONS, json=crm(headers={"X-A": "a\r\nX-Injected: 1"}))
        assert response.status_code == 422

    async def test_names_are_unique_per_sandbox(
        self, http: httpx.AsyncClient, fresh: httpx.AsyncClient
    ) -> None:
        action = await create(http)
        taken = await http.post(ACTIONS, json=crm(action["name"].upper()))
        assert taken.status_code == 409
        assert paths(taken) == {("/name", "unique")}
        assert (await fresh.post(ACTIONS, json=crm(action["name"]))).status_code == 201

    async def test_another_sandbox_sees_nothing(
        self, http: httpx.AsyncClient, fresh: httpx.AsyncClient
    ) -> None:
        action = await create(http)
        assert (await fresh.get(f"{ACTIONS}/{action['id']}")).status_code == 404
        assert (await fresh.put(f"{ACTIONS}/{action['id']}", json=crm())).status_code == 404
        assert (await fresh.delete(f"{ACTIONS}/{action['id']}")).status_code == 404
        assert (await fresh.get(ACTIONS)).json()["items"] == []

    async def test_delete(self, http: httpx.AsyncClient) -> None:
        action = await create(http)
        assert (await http.delete(f"{ACTIONS}/{action['id']}")).status_code == 204
        assert (await http.get(f"{ACTIONS}/{action['id']}")).status_code == 404
        assert (await http.delete(f"{ACTIONS}/{action['id']}")).status_code == 404
        assert (await http.delete(f"{ACTIONS}/not-an-id")).status_code == 404

    async def test_writes_with_a_stale_tag_are_refused(self, http: httpx.AsyncClient) -> None:
        made = await http.post(ACTIONS, json=crm())
        one, first = f"{ACTIONS}/{made.json()['id']}", made.headers["etag"]
        assert (await http.get(one)).headers["etag"] == first == made.json()["etag"]
        body = crm(made.json()["name"], retries=0)
        saved = await http.put(one, json=body, headers={"If-Match": first})
        assert saved.status_code == 200, saved.text
        assert saved.headers["etag"] != first
        assert (
            await http.put(one, json=crm(made.json()["name"]), headers={"If-Match": first})
        ).status_code == 412
        assert (await http.get(one)).json()["retries"] == 0
        assert (await http.delete(one, headers={"If-Match": first})).status_code == 412
        assert (await http.delete(one, headers={"If-Match": saved.headers["etag"]})).status_code == 204


class TestSecretsAtRest:
    """A secret is stored sealed, opened only for a call; one stored before sealing
    existed is sealed when the service starts; one sealed with another key fails the
    call with why rather than sending a wrong credential."""

    async def test_the_stored_secret_is_sealed(self, http: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
        action = await create(http, crm(auth={"type": "basic", "username": "svc", "password": "pa55-w0rd"}))
        stored = await pool.fetchval(
            "SELECT config::text FROM actions WHERE id = $1", uuid.UUID(action["id"])
        )
        assert "pa55-w0rd" not in stored
        assert '"password": "sealed:v1:' in stored

    async def test_secrets_stored_in_the_clear_are_sealed_at_start_and_still_used(
        self, http: httpx.AsyncClient, pool: asyncpg.Pool, journeys_settings: JourneysSettings
    ) -> None:
        action = await create(http, crm(auth={"type": "header", "name": "X-Api-Key", "value": "k-123"}))
        action_id = uuid.UUID(action["id"])
        await pool.execute(  # as stored before secrets were sealed
            "UPDATE actions SET config = jsonb_set(config, '{auth,value}', '\"k-123\"') WHERE id = $1",
            action_id,
        )
        sealer = Sealer.of(journeys_settings)
        assert await seal_stored(pool, sealer) >= 1
        row = await pool.fetchrow("SELECT config, name AS action_name FROM actions WHERE id = $1", action_id)
        assert row["config"]["auth"]["value"].startswith("sealed:v1:")
        opened = action_of(row, sealer)
        assert isinstance(opened, ActionIn)
        assert isinstance(opened.auth, HeaderAuth)
        assert opened.auth.value == "k-123"
        assert action_of(row, Sealer("another key")) == (
            "the action's secret cannot be opened: "
            "it was sealed with another key (ITINERA_SERVICE_SECRET changed?)"
        )
        deleted = {"config": None, "action_name": None}
        assert action_of(deleted, sealer) == "the custom action no longer exists"

    def test_a_sealed_secret_opens_with_its_key_only(self) -> None:
        sealed = Sealer("k1").seal("token")
        assert sealed.startswith("sealed:v1:")
        assert sealed != Sealer("k1").seal("token")  # each sealing is its own
        assert Sealer("k1").open(sealed) == "token"
        assert Sealer("k1").open("in the clear") == "in the clear"
        with pytest.raises(Unreadable):
            Sealer("k2").open(sealed)
        with pytest.raises(Unreadable):
            Sealer(None).open(sealed)


class TestJourneysCallingActions:
    async def test_a_journey_calling_an_action_publishes_and_records_it(
        self, http: httpx.AsyncClient
    ) -> None:
        action = await create(http)
        journey = (await http.post(JOURNEYS, json=calling(action["id"], INPUTS))).json()
        published = await http.post(f"{JOURNEYS}/{journey['id']}/versions/1/publish")
        assert published.status_code == 200, published.text
        assert published.json()["references"]["actions"] == [action["id"]]

    async def test_an_unknown_action_its_inputs_and_its_response_fields_are_publish_problems(
        self, http: httpx.AsyncClient
    ) -> None:
        action = await create(http)
        for body, expected in (
            (calling(str(uuid.uuid4()), INPUTS), {("/nodes/1/actionId", "unknown-action")}),
            (
                calling(action["id"], {"customerId": "_id", "email": "x", "extra": "1"}),
                {("/nodes/1/inputs", "missing-input"), ("/nodes/1/inputs/extra", "unknown-input")},
            ),
            (
                calling(action["id"], INPUTS, "_journey.actions.lookup.colour = 1"),
                {("/nodes/2/branches/0/condition", "action-response")},
            ),
        ):
            journey = (await http.post(JOURNEYS, json=body)).json()
            response = await http.post(f"{JOURNEYS}/{journey['id']}/versions/1/publish")
            assert response.status_code == 400
            assert {(p["path"], p["code"]) for p in response.json()["problems"]} == expected

    async def test_an_action_a_running_version_calls_cannot_be_deleted(self, http: httpx.AsyncClient) -> None:
        action = await create(http)
        journey = (await http.post(JOURNEYS, json=calling(action["id"], INPUTS))).json()
        await http.post(f"{JOURNEYS}/{journey['id']}/versions/1/publish")
        refused = await http.delete(f"{ACTIONS}/{action['id']}")
        assert refused.status_code == 409
        assert refused.json()["usedBy"] == [{"journeyId": journey["id"], "version": 1, "status": "live"}]
        await http.post(f"{JOURNEYS}/{journey['id']}/versions/1/close")
        assert (await http.delete(f"{ACTIONS}/{action['id']}")).status_code == 409
        await http.post(f"{JOURNEYS}/{journey['id']}/versions/1/stop")
        assert (await http.delete(f"{ACTIONS}/{action['id']}")).status_code == 204
