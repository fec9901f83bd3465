"""``/v1/journeys``: journeys saved as drafts, versioned, published, stopped and closed, per sandbox."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from itinera.common.auth import mint_token
from itinera.common.testing import client_for
from itinera.journeys.config import JourneysSettings

JOURNEYS = "/v1/journeys"


def welcome(name: str = "welcome", **properties: Any) -> dict[str, Any]:
    """A journey that can be published: an event entry, a message, a wait, a condition."""
    return {
        "name": name,
        "description": "new customers",
        "nodes": [
            {
                "id": "signup",
                "type": "event",
                "eventType": "account.created",
                "condition": 'homeAddress.countryCode = "FR"',
                "next": "hello",
            },
            {
                "id": "hello",
                "type": "message",
                "channel": "email",
                "templateId": "welcome-email",
                "next": "nap",
            },
            {"id": "nap", "type": "wait", "duration": "P1D", "next": "check"},
            {
                "id": "check",
                "type": "condition",
                "branches": [{"name": "bought", "condition": "loyalty.points > 0", "next": "done"}],
                "otherwise": "nudge",
            },
            {"id": "nudge", "type": "message", "channel": "sms", "templateId": "nudge", "next": "done"},
            {"id": "done", "type": "end"},
        ],
        **properties,
    }


async def create(http: httpx.AsyncClient, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await http.post(JOURNEYS, json=body or welcome())
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def move(http: httpx.AsyncClient, journey_id: str, version: int, action: str) -> httpx.Response:
    return await http.post(f"{JOURNEYS}/{journey_id}/versions/{version}/{action}")


def statuses(journey: dict[str, Any]) -> list[tuple[int, str]]:
    return [(v["version"], v["status"]) for v in journey["versions"]]


class TestDrafts:
    async def test_a_journey_is_created_with_a_first_draft_and_read_back(
        self, http: httpx.AsyncClient
    ) -> None:
        response = await http.post(JOURNEYS, json=welcome())
        assert response.status_code == 201
        journey = response.json()
        assert response.headers["location"] == f"{JOURNEYS}/{journey['id']}"
        assert (journey["name"], journey["description"], journey["status"]) == (
            "welcome",
            "new customers",
            "draft",
        )
        assert (journey["latestVersion"], journey["draftVersion"], journey["liveVersion"]) == (1, 1, None)
        assert statuses(journey) == [(1, "draft")]
        assert (await http.get(f"{JOURNEYS}/{journey['id']}")).json() == journey

    async def test_a_version_holds_the_document_with_its_defaults_and_what_it_names(
        self, http: httpx.AsyncClient
    ) -> None:
        journey = await create(http)
        version = (await http.get(f"{JOURNEYS}/{journey['id']}/versions/1")).json()
        assert (version["journeyId"], version["version"], version["status"]) == (journey["id"], 1, "draft")
        definition = version["definition"]
        assert [node["id"] for node in definition["nodes"]] == [
            "signup",
            "hello",
            "nap",
            "check",
            "nudge",
            "done",
        ]
        assert definition["reentrance"] == {"allowed": False, "waitSeconds": 300}
        assert definition["timeout"] == "P91D"
        assert definition["testMode"] == {"enabled": False, "testProfiles": [], "waitFactor": 0.01}
        assert definition["dryRun"] is False
        assert version["entry"] == {"nodeId": "signup", "type": "event", "key": "account.created"}
        assert version["references"]["templates"] == ["nudge", "welcome-email"]
        assert version["problems"] == []
        assert version["publishedAt"] is None

    async def test_put_replaces_the_draft(self, http: httpx.AsyncClient) -> None:
        journey = await create(http)
        changed = welcome("welcome (FR)")
        changed["nodes"][2]["duration"] = "PT6H"
        response = await http.put(f"{JOURNEYS}/{journey['id']}", json=changed)
        assert response.status_code == 200
        after = response.json()
        assert after["name"] == "welcome (FR)"
        assert statuses(after) == [(1, "draft")]
        version = (await http.get(f"{JOURNEYS}/{journey['id']}/versions/1")).json()
        assert version["definition"]["nodes"][2]["duration"] == "PT6H"

    async def test_a_draft_may_be_incomplete_and_says_what_publishing_would_refuse(
        self, http: httpx.AsyncClient
    ) -> None:
        journey = await create(
            http, {"name": "sketch", "nodes": [{"id": "hello", "type": "message", "channel": "email"}]}
        )
        version = (await http.get(f"{JOURNEYS}/{journey['id']}/versions/1")).json()
        assert {(p["path"], p["code"]) for p in version["problems"]} == {
            ("/nodes", "no-entry"),
            ("/nodes/0/templateId", "required"),
        }
        assert version["entry"] is None

    async def test_the_shape_is_checked_when_saved(self, http: httpx.AsyncClient) -> None:
        bad = welcome()
        bad["nodes"][1]["type"] = "carrierPigeon"
        bad["nodes"][2]["duration"] = "P1M"
        bad["nodes"][3]["id"] = "has-dash"
        bad["colour"] = "blue"
        response = await http.post(JOURNEYS, json=bad)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        paths = {e["path"] for e in response.json()["errors"]}
        assert "/body/colour" in paths
        assert any(p.startswith("/body/nodes/1") for p in paths)
        assert any(p.startswith("/body/nodes/2/wait/duration") for p in paths)
        assert any(p.startswith("/body/nodes/3/condition/id") for p in paths)

    async def test_more_nodes_than_allowed_are_refused(self, http: httpx.AsyncClient) -> None:
        body = welcome()
        body["nodes"] += [{"id": f"extra{i}", "type": "end"} for i in range(60)]
        response = await http.post(JOURNEYS, json=body)
        assert response.status_code == 400
        assert response.json()["errors"][0]["path"] == "/nodes"

    async def test_unknown_journeys_and_versions_are_404s(self, http: httpx.AsyncClient) -> None:
        journey = await create(http)
        for path in (
            f"{JOURNEYS}/{uuid.uuid4()}",
            f"{JOURNEYS}/not-an-id",
            f"{JOURNEYS}/{journey['id']}/versions/2",
        ):
            assert (await http.get(path)).status_code == 404, path
        assert (await http.put(f"{JOURNEYS}/{uuid.uuid4()}", json=welcome())).status_code == 404
        assert (await move(http, str(uuid.uuid4()), 1, "publish")).status_code == 404
        assert (await move(http, journey["id"], 7, "publish")).status_code == 404


class TestLifecycle:
    async def test_publish_stop_and_close_move_versions_through_their_statuses(
        self, http: httpx.AsyncClient
    ) -> None:
        journey = await create(http)
        journey_id = journey["id"]
        published = await move(http, journey_id, 1, "publish")
        assert published.status_code == 200, published.text
        body = published.json()
        assert body["status"] == "live"
        assert body["publishedAt"] is not None
        assert "problems" not in body
        after = (await http.get(f"{JOURNEYS}/{journey_id}")).json()
        assert (after["status"], after["liveVersion"], after["draftVersion"]) == ("live", 1, None)

        closed = (await move(http, journey_id, 1, "close")).json()
        assert (closed["status"], closed["closedAt"] is not None) == ("closed", True)
        stopped = (await move(http, journey_id, 1, "stop")).json()
        assert (stopped["status"], stopped["stoppedAt"] is not None) == ("stopped", True)
        assert (await http.get(f"{JOURNEYS}/{journey_id}")).json()["status"] == "stopped"

    async def test_a_put_after_publishing_makes_a_new_draft_version(self, http: httpx.AsyncClient) -> None:
        journey = await create(http)
        await move(http, journey["id"], 1, "publish")
        changed = await http.put(f"{JOURNEYS}/{journey['id']}", json=welcome("welcome v2"))
        assert statuses(changed.json()) == [(1, "live"), (2, "draft")]
        again = await http.put(f"{JOURNEYS}/{journey['id']}", json=welcome("welcome v2b"))
        assert statuses(again.json()) == [(1, "live"), (2, "draft")]
        v1 = (await http.get(f"{JOURNEYS}/{journey['id']}/versions/1")).json()
        assert v1["definition"]["name"] == "welcome"
        assert (again.json()["latestVersion"], again.json()["draftVersion"], again.json()["liveVersion"]) == (
            2,
            2,
            1,
        )

    async def test_publishing_a_new_version_closes_the_live_one(self, http: httpx.AsyncClient) -> None:
        journey = await create(http)
        await move(http, journey["id"], 1, "publish")
        await http.put(f"{JOURNEYS}/{journey['id']}", json=welcome("welcome v2"))
        assert (await move(http, journey["id"], 2, "publish")).status_code == 200
        after = (await http.get(f"{JOURNEYS}/{journey['id']}")).json()
        assert statuses(after) == [(1, "closed"), (2, "live")]
        assert after["versions"][0]["closedAt"] is not None
        assert after["name"] == "welcome v2"

    async def test_a_stopped_journey_gets_a_new_draft_on_put(self, http: httpx.AsyncClient) -> None:
        journey = await create(http)
        await move(http, journey["id"], 1, "publish")
        await move(http, journey["id"], 1, "stop")
        after = (await http.put(f"{JOURNEYS}/{journey['id']}", json=welcome())).json()
        assert statuses(after) == [(1, "stopped"), (2, "draft")]

    @pytest.mark.parametrize(
        ("moves", "refused"),
        [
            ((), "stop"),
            ((), "close"),
            (("publish",), "publish"),
            (("publish", "close"), "close"),
            (("publish", "stop"), "stop"),
            (("publish", "stop"), "publish"),
        ],
    )
    async def test_moves_the_status_does_not_allow_are_409s(
        self, http: httpx.AsyncClient, moves: tuple[str, ...], refused: str
    ) -> None:
        journey = await create(http)
        for done in moves:
            assert (await move(http, journey["id"], 1, done)).status_code == 200
        response = await move(http, journey["id"], 1, refused)
        assert response.status_code == 409
        assert response.json()["status"] in ("draft", "live", "closed", "stopped")

    async def test_publishing_an_invalid_draft_is_a_400_listing_every_problem(
        self, http: httpx.AsyncClient
    ) -> None:
        body = welcome()
        body["nodes"][0]["condition"] = 'homeAddress.countryCode = = "FR"'
        body["nodes"][3]["branches"][0]["next"] = None
        body["nodes"][4]["next"] = "nowhere"
        body["nodes"].append({"id": "lost", "type": "end"})
        journey = await create(http, body)
        response = await move(http, journey["id"], 1, "publish")
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"].endswith("/validation-failed")
        found = {(p["path"], p["code"]) for p in problem["problems"]}
        assert found == {
            ("/nodes/0/condition", "pql"),
            ("/nodes/3/branches/0/next", "missing-branch"),
            ("/nodes/4/next", "unknown-node"),
            ("/nodes/5", "unreachable"),  # the end: both links to it are gone
            ("/nodes/6", "unreachable"),
        }
        pql = next(p for p in problem["problems"] if p["code"] == "pql")
        assert {"line", "column", "offset", "endOffset"} <= set(pql["position"])
        assert {(e["path"], e["code"]) for e in problem["errors"]} == found
        assert (await http.get(f"{JOURNEYS}/{journey['id']}")).json()["status"] == "draft"

    async def test_a_jump_names_another_journey_of_the_sandbox(self, http: httpx.AsyncClient) -> None:
        target = await create(http)
        body = welcome("jumper")
        body["nodes"][4] = {"id": "nudge", "type": "jump", "journeyId": target["id"]}
        journey = await create(http, body)
        published = await move(http, journey["id"], 1, "publish")
        assert published.status_code == 200, published.text
        assert published.json()["references"]["journeys"] == [target["id"]]

    async def test_concurrent_puts_leave_one_draft(self, http: httpx.AsyncClient) -> None:
        journey = await create(http)
        await move(http, journey["id"], 1, "publish")
        answers = await asyncio.gather(
            *(http.put(f"{JOURNEYS}/{journey['id']}", json=welcome(f"edit {i}")) for i in range(8))
        )
        assert all(a.status_code == 200 for a in answers)
        after = (await http.get(f"{JOURNEYS}/{journey['id']}")).json()
        assert statuses(after) == [(1, "live"), (2, "draft")]


class TestConcurrentEditors:
    async def test_writes_sent_with_a_stale_tag_are_refused_and_change_nothing(
        self, http: httpx.AsyncClient
    ) -> None:
        """Each answer carries the journey's ETag; every write (save, publish, stop,
        close) changes it, and a write sent with If-Match naming an older one is a 412."""
        made = await http.post(JOURNEYS, json=welcome())
        journey_id, first = made.json()["id"], made.headers["etag"]
        assert made.json()["etag"] == first
        assert (await http.get(f"{JOURNEYS}/{journey_id}")).headers["etag"] == first

        saved = await http.put(f"{JOURNEYS}/{journey_id}", json=welcome("mine"), headers={"If-Match": first})
        assert saved.status_code == 200, saved.text
        second = saved.headers["etag"]
        assert second != first
        theirs = await http.put(
            f"{JOURNEYS}/{journey_id}", json=welcome("theirs"), headers={"If-Match": first}
        )
        assert theirs.status_code == 412
        assert theirs.json()["etag"] == second
        assert (await http.get(f"{JOURNEYS}/{journey_id}")).json()["name"] == "mine"

        one = f"{JOURNEYS}/{journey_id}/versions/1"
        assert (await http.post(f"{one}/publish", headers={"If-Match": first})).status_code == 412
        assert (await http.post(f"{one}/publish", headers={"If-Match": second})).status_code == 200
        live = (await http.get(f"{JOURNEYS}/{journey_id}")).headers["etag"]
        assert live not in (first, second)
        assert (await http.post(f"{one}/close", headers={"If-Match": second})).status_code == 412
        assert (await http.post(f"{one}/stop", headers={"If-Match": second})).status_code == 412
        assert (await http.get(f"{JOURNEYS}/{journey_id}")).json()["status"] == "live"
        assert (await http.post(f"{one}/stop", headers={"If-Match": live})).status_code == 200


class TestDeletion:
    async def test_a_journey_is_deleted_once_nothing_of_it_runs(self, http: httpx.AsyncClient) -> None:
        draft = await create(http)
        assert (await http.delete(f"{JOURNEYS}/{draft['id']}")).status_code == 204
        assert (await http.get(f"{JOURNEYS}/{draft['id']}")).status_code == 404
        assert (await http.delete(f"{JOURNEYS}/{draft['id']}")).status_code == 404

        target = await create(http)
        jumper_body = welcome("jumper")
        jumper_body["nodes"][4] = {"id": "nudge", "type": "jump", "journeyId": target["id"]}
        jumper = await create(http, jumper_body)
        assert (await move(http, target["id"], 1, "publish")).status_code == 200
        assert (await move(http, jumper["id"], 1, "publish")).status_code == 200

        refused = await http.delete(f"{JOURNEYS}/{target['id']}")
        assert refused.status_code == 409
        assert [(r["what"], r["status"]) for r in refused.json()["runningBy"]] == [
            ("jump", "live"),
            ("version", "live"),
        ]
        assert (await move(http, target["id"], 1, "close")).status_code == 200
        assert (await move(http, jumper["id"], 1, "stop")).status_code == 200
        closed = await http.delete(f"{JOURNEYS}/{target['id']}")
        assert [(r["what"], r["status"]) for r in closed.json()["runningBy"]] == [("version", "closed")]
        assert (await move(http, target["id"], 1, "stop")).status_code == 200
        assert (await http.delete(f"{JOURNEYS}/{target['id']}")).status_code == 204
        assert (await http.delete(f"{JOURNEYS}/{jumper['id']}")).status_code == 204


class TestListing:
    async def test_pages_hold_every_journey_once_most_recent_first(self, fresh: httpx.AsyncClient) -> None:
        created = [await create(fresh, welcome(f"journey {i}")) for i in range(5)]
        seen: list[str] = []
        for start in (0, 2, 4):
            body = (await fresh.get(JOURNEYS, params={"start": start, "limit": 2})).json()
            assert body["page"]["totalCount"] == 5
            assert body["page"]["pageSize"] == len(body["items"])
            assert ("next" in body["link"]) == (start < 4)
            assert all("versions" not in item for item in body["items"])
            seen += [item["id"] for item in body["items"]]
        assert seen == [j["id"] for j in reversed(created)]

    async def test_the_list_filters_by_status(self, fresh: httpx.AsyncClient) -> None:
        live = await create(fresh)
        await move(fresh, live["id"], 1, "publish")
        draft = await create(fresh)
        listed = (await fresh.get(JOURNEYS, params={"status": "live"})).json()
        assert [item["id"] for item in listed["items"]] == [live["id"]]
        drafts = (await fresh.get(JOURNEYS, params={"status": "draft"})).json()
        assert [item["id"] for item in drafts["items"]] == [draft["id"]]
        assert (await fresh.get(JOURNEYS, params={"status": "paused"})).status_code == 422


class TestSandboxesAndScopes:
    async def test_another_sandbox_sees_nothing(
        self, http: httpx.AsyncClient, fresh: httpx.AsyncClient
    ) -> None:
        journey = await create(http)
        assert (await fresh.get(f"{JOURNEYS}/{journey['id']}")).status_code == 404
        assert (await fresh.put(f"{JOURNEYS}/{journey['id']}", json=welcome())).status_code == 404
        assert (await move(fresh, journey["id"], 1, "publish")).status_code == 404
        assert (await http.get(f"{JOURNEYS}/{journey['id']}")).json()["status"] == "draft"

    async def test_reads_and_writes_need_their_scopes(
        self, journeys_app: FastAPI, journeys_settings: JourneysSettings
    ) -> None:
        reader = mint_token(journeys_settings, scopes=["journeys:read"])
        async with client_for(journeys_app, reader) as client:
            assert (await client.get(JOURNEYS)).status_code == 200
            assert (await client.post(JOURNEYS, json=welcome())).status_code == 403
        async with client_for(journeys_app) as anonymous:
            assert (await anonymous.get(JOURNEYS)).status_code == 401
