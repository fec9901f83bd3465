"""Merge policies and profile look-ups over HTTP, fed by records and events on Kafka."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.kafka import topics
from itinera.common.testing import StackInfo, client_for, eventually
from itinera.profile.config import ProfileSettings

POLICIES = "/data/core/ups/config/mergePolicies"


@pytest.fixture
def sandbox() -> str:
    return f"p{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def http(
    profile_app: FastAPI, profile_settings: ProfileSettings, sandbox: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(
        profile_app, mint_token(profile_settings, scopes=ALL_SCOPES, sandbox=sandbox)
    ) as client:
        yield client


async def send(
    infrastructure: StackInfo, sandbox: str, topic: str, key: str, dataset: str, body: dict[str, Any]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=infrastructure.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            value=orjson.dumps(body),
            key=key.encode(),
            headers=[
                ("itinera_sandbox", sandbox.encode()),
                ("itinera_dataset", dataset.encode()),
                ("ce_id", str(uuid.uuid4()).encode()),
                ("ce_time", body.get("timestamp", "2026-11-28T12:00:00Z").encode()),
            ],
        )
    finally:
        await producer.stop()


def policy(
    name: str, merge: str = "timestampOrdered", order: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    attribute_merge: dict[str, Any] = {"type": merge}
    if order is not None:
        attribute_merge["order"] = order
    return {
        "name": name,
        "schema": {"name": "_xdm.context.profile"},
        "identityGraph": {"type": "pdg"},
        "attributeMerge": attribute_merge,
        **extra,
    }


class TestMergePolicies:
    async def test_a_sandbox_starts_with_one_default_policy(self, http: httpx.AsyncClient) -> None:
        listed = (await http.get(POLICIES)).json()
        (default,) = listed["children"]
        assert default["default"] is True
        assert default["attributeMerge"] == {"type": "timestampOrdered"}
        assert default["identityGraph"] == {"type": "pdg"}

    async def test_at_most_five_per_sandbox(self, http: httpx.AsyncClient) -> None:
        for n in range(4):
            assert (await http.post(POLICIES, json=policy(f"p{n}"))).status_code == 200
        refused = await http.post(POLICIES, json=policy("sixth"))
        assert refused.status_code == 409

    async def test_making_one_default_unsets_the_other(self, http: httpx.AsyncClient) -> None:
        created = (
            await http.post(POLICIES, json=policy("crm first", "dataSetPrecedence", ["crm"], default=True))
        ).json()
        defaults = [p for p in (await http.get(POLICIES)).json()["children"] if p["default"]]
        assert [p["id"] for p in defaults] == [created["id"]]
        assert (await http.delete(f"{POLICIES}/{created['id']}")).status_code == 409

    async def test_an_invalid_policy_is_refused_with_paths(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            POLICIES, json={"name": "x", "attributeMerge": {"type": "dataSetPrecedence"}}
        )
        assert response.status_code == 400
        assert {e["path"] for e in response.json()["errors"]} == {
            "/schema/name",
            "/identityGraph/type",
            "/attributeMerge/order",
        }


class TestProfiles:
    async def test_fragments_of_linked_identities_merge_into_one_view(
        self, http: httpx.AsyncClient, infrastructure: StackInfo, sandbox: str
    ) -> None:
        crm = {
            "identityMap": {"CRMID": [{"id": "c-9"}], "Email": [{"id": "ann@example.com"}]},
            "person": {"name": {"firstName": "Ann", "lastName": "Lee"}},
            "timestamp": "2026-11-28T09:00:00Z",
        }
        web = {
            "identityMap": {"Email": [{"id": "ann@example.com"}]},
            "person": {"name": {"firstName": "Annie"}},
            "timestamp": "2026-11-28T11:00:00Z",
        }
        await send(infrastructure, sandbox, topics.RECORDS.name, "CRMID:c-9", "crm", crm)
        await send(infrastructure, sandbox, topics.RECORDS.name, "Email:ann@example.com", "web", web)
        for _ in range(2):  # the same event twice: stored once
            event = {
                "_id": "evt-ann",
                "timestamp": "2026-11-28T12:00:00Z",
                "identityMap": {"Email": [{"id": "ann@example.com"}]},
            }
            await send(infrastructure, sandbox, topics.EVENTS.name, "Email:ann@example.com", "events", event)

        async def merged() -> bool:
            response = await http.get("/v1/profiles", params={"identity": "Email:ANN@example.com"})
            return (
                response.status_code == 200
                and response.json()["sources"] == ["crm", "web"]
                and response.json()["eventCount"] == 1
            )

        await eventually(merged, timeout_s=30)
        view = (await http.get("/v1/profiles", params={"identity": "CRMID:c-9"})).json()
        assert view["entity"]["person"]["name"] == {"firstName": "Annie", "lastName": "Lee"}
        by_crm = (
            await http.post(POLICIES, json=policy("crm wins", "dataSetPrecedence", ["crm", "web"]))
        ).json()
        ordered = await http.get(f"/v1/profiles/{view['profileId']}", params={"mergePolicyId": by_crm["id"]})
        assert ordered.json()["entity"]["person"]["name"]["firstName"] == "Ann"

    async def test_an_unknown_identity_or_profile_is_a_404(self, http: httpx.AsyncClient) -> None:
        assert (
            await http.get("/v1/profiles", params={"identity": "Email:nobody@example.com"})
        ).status_code == 404
        assert (await http.get(f"/v1/profiles/{uuid.uuid4()}")).status_code == 404
        assert (await http.get("/v1/profiles", params={"identity": "nocolon"})).status_code == 400
