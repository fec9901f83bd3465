"""Merge policies and profile look-ups over HTTP, fed by records and events on Kafka."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
from fastapi import FastAPI

from itinera.common.kafka import topics
from itinera.common.testing import StackInfo, eventually
from itinera.common.testing import publish_entity as send

POLICIES = "/data/core/ups/config/mergePolicies"


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

    async def test_the_aep_access_api_answers_profiles_and_pages_their_events(
        self, http: httpx.AsyncClient, infrastructure: StackInfo, sandbox: str
    ) -> None:
        record = {
            "identityMap": {"Email": [{"id": "bo@example.com"}]},
            "person": {"name": {"firstName": "Bo"}},
            "homeAddress": {"city": "Oslo"},
            "timestamp": "2026-11-28T08:00:00Z",
        }
        await send(infrastructure, sandbox, topics.RECORDS.name, "Email:bo@example.com", "crm", record)
        for minute in range(3):
            event = {
                "_id": f"bo-{minute}",
                "timestamp": f"2026-11-28T10:0{minute}:00Z",
                "identityMap": {"Email": [{"id": "bo@example.com"}]},
            }
            await send(infrastructure, sandbox, topics.EVENTS.name, "Email:bo@example.com", "events", event)

        async def stored() -> bool:
            found = await http.get("/v1/profiles", params={"identity": "Email:bo@example.com"})
            return (
                found.status_code == 200
                and found.json()["eventCount"] == 3
                and found.json()["sources"] == ["crm"]
            )

        await eventually(stored, timeout_s=30)
        profile = await http.get(
            "/data/core/ups/access/entities",
            params={
                "schema.name": "_xdm.context.profile",
                "entityId": "bo@example.com",
                "entityIdNS": "Email",
                "fields": "person.name",
            },
        )
        ((profile_id, body),) = profile.json().items()
        assert body["entityId"] == profile_id
        assert body["entity"] == {"person": {"name": {"firstName": "Bo"}}}
        assert body["sources"] == ["crm"]
        query = {
            "schema.name": "_xdm.context.experienceevent",
            "relatedSchema.name": "_xdm.context.profile",
            "relatedEntityId": profile_id,
            "limit": "2",
            "orderby": "-timestamp",
        }
        first = (await http.get("/data/core/ups/access/entities", params=query)).json()
        assert [c["entityId"] for c in first["children"]] == ["bo-2", "bo-1"]
        second = (
            await http.get("/data/core/ups/access/entities", params=query | {"start": first["_page"]["next"]})
        ).json()
        assert [c["entityId"] for c in second["children"]] == ["bo-0"]
        assert second["_page"]["next"] is None
        windowed = {**query, "startTime": "1795860000000", "endTime": "1795860120000", "limit": "10"}
        assert [
            c["entityId"]
            for c in (await http.get("/data/core/ups/access/entities", params=windowed)).json()["children"]
        ] == ["bo-1", "bo-0"]

    async def test_the_default_policys_stored_view_answers_as_merging_on_read_would(
        self, http: httpx.AsyncClient, infrastructure: StackInfo, sandbox: str
    ) -> None:
        crm = {
            "identityMap": {"CRMID": [{"id": "c-21"}], "Email": [{"id": "cy@example.com"}]},
            "person": {"name": {"firstName": "Cy", "lastName": "Moss"}},
            "timestamp": "2026-11-28T09:00:00Z",
        }
        web = {
            "identityMap": {"Email": [{"id": "cy@example.com"}]},
            "person": {"name": {"firstName": "Cyrus"}},
            "timestamp": "2026-11-28T11:00:00Z",
        }
        await send(infrastructure, sandbox, topics.RECORDS.name, "CRMID:c-21", "crm", crm)
        await send(infrastructure, sandbox, topics.RECORDS.name, "Email:cy@example.com", "web", web)
        lookup = {"schema.name": "_xdm.context.profile", "entityId": "CY@example.com", "entityIdNS": "email"}
        default_id = next(p["id"] for p in (await http.get(POLICIES)).json()["children"] if p["default"])

        async def read(**extra: str) -> dict[str, Any]:
            response = await http.get("/data/core/ups/access/entities", params=lookup | extra)
            ((_, body),) = response.json().items() if response.status_code == 200 else [(None, {})]
            return dict(body)

        async def merged() -> bool:
            return (await read()).get("sources") == ["crm", "web"]

        await eventually(merged, timeout_s=30)
        stored, on_read = await read(), await read(mergePolicyId=default_id)
        assert stored == on_read
        assert stored["entity"]["person"]["name"] == {"firstName": "Cyrus", "lastName": "Moss"}
        assert [i["namespace"]["code"] for i in stored["entity"]["identities"]] == ["CRMID", "Email"]
        # A new default policy makes the stored view stale: the answer follows the new policy.
        await http.post(POLICIES, json=policy("crm wins", "dataSetPrecedence", ["crm", "web"], default=True))
        assert (await read())["entity"]["person"]["name"]["firstName"] == "Cy"

    async def test_the_access_api_refuses_an_unknown_schema(self, http: httpx.AsyncClient) -> None:
        response = await http.get(
            "/data/core/ups/access/entities", params={"schema.name": "_xdm.context.other", "entityId": "x"}
        )
        assert response.status_code == 400

    async def test_the_access_api_names_each_bad_query_parameter(self, http: httpx.AsyncClient) -> None:
        response = await http.get(
            "/data/core/ups/access/entities",
            params={"entityId": "x", "limit": "0", "orderby": "name", "startTime": "-1"},
        )
        assert response.status_code == 422
        assert {e["path"] for e in response.json()["errors"]} == {
            "/query/schema.name",
            "/query/limit",
            "/query/orderby",
            "/query/startTime",
        }

    async def test_the_access_api_documents_its_query_parameters(self, profile_app: FastAPI) -> None:
        operation = profile_app.openapi()["paths"]["/data/core/ups/access/entities"]["get"]
        named = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
        assert {"schema.name", "entityId", "entityIdNS", "mergePolicyId", "limit", "orderby"} <= set(named)
        assert named["schema.name"]["required"] is True
        assert named["limit"]["schema"]["maximum"] == 1000

    async def test_an_unknown_identity_or_profile_is_a_404(self, http: httpx.AsyncClient) -> None:
        assert (
            await http.get("/v1/profiles", params={"identity": "Email:nobody@example.com"})
        ).status_code == 404
        assert (await http.get(f"/v1/profiles/{uuid.uuid4()}")).status_code == 404
        assert (await http.get("/v1/profiles", params={"identity": "nocolon"})).status_code == 400


class TestGuardrails:
    async def test_an_event_over_10_kb_is_dead_lettered_with_the_reason(
        self, profile_app: FastAPI, infrastructure: StackInfo, sandbox: str
    ) -> None:
        from itinera.common.testing import topic_reader

        big = {
            "_id": "too-big",
            "timestamp": "2026-11-28T10:00:00Z",
            "identityMap": {"Email": [{"id": "big@example.com"}]},
            "note": "x" * 11_000,
        }
        async with topic_reader(infrastructure, topics.DLQ.name) as reader:
            await send(infrastructure, sandbox, topics.EVENTS.name, "Email:big@example.com", "events", big)
            letters = await reader.wait_for(
                lambda rs: any(
                    orjson.loads(r.value or b"{}").get("origin", {}).get("key") == "Email:big@example.com"
                    for r in rs
                ),
                timeout_s=30,
            )
        letter = next(
            orjson.loads(r.value or b"{}")
            for r in letters
            if orjson.loads(r.value or b"{}").get("origin", {}).get("key") == "Email:big@example.com"
        )
        assert letter["reasons"][0]["code"] == "size"
        assert letter["origin"]["service"] == "profile"


class TestOutputs:
    async def test_changes_and_events_are_published_once_keyed_by_profile(
        self, http: httpx.AsyncClient, infrastructure: StackInfo, sandbox: str
    ) -> None:
        from itinera.common.testing import topic_reader

        key = "Email:cy@example.com"
        first = {
            "identityMap": {"Email": [{"id": "cy@example.com"}]},
            "person": {"name": {"firstName": "Cy"}},
            "timestamp": "2026-11-28T08:00:00Z",
        }
        renamed = {**first, "person": {"name": {"firstName": "Cyrus"}}, "timestamp": "2026-11-28T09:00:00Z"}
        purchase = {
            "_id": "cy-buy",
            "timestamp": "2026-11-28T10:00:00Z",
            "eventType": "commerce.purchases",
            "identityMap": {"Email": [{"id": "cy@example.com"}]},
        }
        sentinel = {**purchase, "_id": "cy-after"}

        def of_sandbox(records: list[Any]) -> list[dict[str, Any]]:
            return [
                v for v in (orjson.loads(r.value or b"{}") for r in records) if v.get("sandbox") == sandbox
            ]

        async with (
            topic_reader(infrastructure, topics.PROFILE_CHANGES.name) as changes,
            topic_reader(infrastructure, topics.PROFILE_EVENTS.name) as events,
        ):
            await send(infrastructure, sandbox, topics.RECORDS.name, key, "crm", first)
            await changes.wait_for(lambda rs: len(of_sandbox(rs)) >= 1, timeout_s=30)
            await send(infrastructure, sandbox, topics.RECORDS.name, key, "crm", renamed)
            await changes.wait_for(lambda rs: len(of_sandbox(rs)) >= 2, timeout_s=30)
            for body in (purchase, purchase, sentinel):  # the purchase twice: published once
                await send(infrastructure, sandbox, topics.EVENTS.name, key, "events", body)
            await events.wait_for(
                lambda rs: any(v["event"]["_id"] == "cy-after" for v in of_sandbox(rs)), timeout_s=30
            )
        created, rename = of_sandbox(changes.records)[:2]
        assert {"path": "person.name.firstName", "old": None, "new": "Cy"} in created["changes"]
        assert rename["changes"] == [
            {"path": "person.name.firstName", "old": "Cy", "new": "Cyrus"},
            {"path": "timestamp", "old": "2026-11-28T08:00:00Z", "new": "2026-11-28T09:00:00Z"},
        ]
        published = of_sandbox(events.records)
        assert [v["event"]["_id"] for v in published] == ["cy-buy", "cy-after"]
        assert published[0]["profile"]["person"]["name"]["firstName"] == "Cyrus"
        assert published[0]["profileId"] == created["profileId"]
        keys = {r.key for r in events.records if orjson.loads(r.value or b"{}").get("sandbox") == sandbox}
        assert keys == {created["profileId"]}


class TestWrites:
    async def test_updating_attributes_changes_the_view_and_announces_it(
        self, http: httpx.AsyncClient, infrastructure: StackInfo, sandbox: str
    ) -> None:
        record = {
            "identityMap": {"Email": [{"id": "di@example.com"}]},
            "person": {"name": {"firstName": "Di"}},
            "timestamp": "2026-11-28T08:00:00Z",
        }
        await send(infrastructure, sandbox, topics.RECORDS.name, "Email:di@example.com", "crm", record)

        async def stored() -> bool:
            return (
                await http.get("/v1/profiles", params={"identity": "Email:di@example.com"})
            ).status_code == 200

        await eventually(stored, timeout_s=30)
        profile_id = (await http.get("/v1/profiles", params={"identity": "Email:di@example.com"})).json()[
            "profileId"
        ]
        from itinera.common.testing import topic_reader

        async with topic_reader(infrastructure, topics.PROFILE_CHANGES.name) as reader:
            patched = await http.patch(
                f"/v1/profiles/{profile_id}/attributes", json={"loyalty": {"tier": "gold"}}
            )
            assert patched.status_code == 200, patched.text
            changes = await reader.wait_for(
                lambda rs: any(orjson.loads(r.value or b"{}").get("sandbox") == sandbox for r in rs),
                timeout_s=30,
            )
        change = next(
            orjson.loads(r.value or b"{}")
            for r in changes
            if orjson.loads(r.value or b"{}").get("sandbox") == sandbox
        )
        assert change["changes"] == [{"path": "loyalty.tier", "old": None, "new": "gold"}]
        view = (await http.get(f"/v1/profiles/{profile_id}")).json()
        assert view["entity"]["loyalty"] == {"tier": "gold"}
        assert view["entity"]["person"]["name"]["firstName"] == "Di"
        refused = await http.patch(f"/v1/profiles/{profile_id}/attributes", json={"identityMap": {}})
        assert refused.status_code == 400
        huge = await http.patch(
            f"/v1/profiles/{profile_id}/attributes",
            content=b'{"loyalty": {"points": [1, 123456789012345678901234567890]}}',
            headers={"Content-Type": "application/json"},
        )
        assert huge.status_code == 400
        assert [e["path"] for e in huge.json()["errors"]] == ["/loyalty/points/1"]

    async def test_deleting_a_profile_removes_its_fragments_events_and_identities(
        self, http: httpx.AsyncClient, infrastructure: StackInfo, sandbox: str
    ) -> None:
        record = {
            "identityMap": {"Email": [{"id": "ed@example.com"}], "CRMID": [{"id": "crm-ed"}]},
            "person": {"name": {"firstName": "Ed"}},
            "timestamp": "2026-11-28T08:00:00Z",
        }
        await send(infrastructure, sandbox, topics.RECORDS.name, "CRMID:crm-ed", "crm", record)
        event = {
            "_id": "ed-1",
            "timestamp": "2026-11-28T09:00:00Z",
            "identityMap": {"Email": [{"id": "ed@example.com"}]},
        }
        await send(infrastructure, sandbox, topics.EVENTS.name, "Email:ed@example.com", "events", event)

        async def stored() -> bool:
            found = await http.get("/v1/profiles", params={"identity": "CRMID:crm-ed"})
            return found.status_code == 200 and found.json()["eventCount"] == 1

        await eventually(stored, timeout_s=30)
        deleted = await http.delete("/v1/profiles", params={"identity": "Email:ed@example.com"})
        assert deleted.status_code == 200
        counts = deleted.json()["deleted"]
        assert (counts["fragments"], counts["events"], counts["identities"]) == (1, 1, 2)
        assert (await http.get("/v1/profiles", params={"identity": "CRMID:crm-ed"})).status_code == 404
        assert (
            await http.get("/v1/identities/graph", params={"namespace": "Email", "id": "ed@example.com"})
        ).status_code == 404


class TestUpdatesFromOtherServices:
    async def test_an_update_on_the_topic_is_applied_as_a_patch_and_a_bad_one_is_dead_lettered(
        self, http: httpx.AsyncClient, profile_app: FastAPI, infrastructure: StackInfo, sandbox: str
    ) -> None:
        from itinera.common.testing import topic_reader

        record = {
            "identityMap": {"Email": [{"id": "up@example.com"}]},
            "person": {"name": {"firstName": "Up"}},
        }
        await send(infrastructure, sandbox, topics.RECORDS.name, "Email:up@example.com", "crm", record)

        async def stored() -> bool:
            found = await http.get("/v1/profiles", params={"identity": "Email:up@example.com"})
            return found.status_code == 200

        await eventually(stored, timeout_s=30)
        profile_id = (await http.get("/v1/profiles", params={"identity": "Email:up@example.com"})).json()[
            "profileId"
        ]
        unknown = str(uuid.uuid4())

        def update(profile: str, attributes: dict[str, Any]) -> dict[str, Any]:
            return {
                "sandbox": sandbox,
                "profileId": profile,
                "updateId": str(uuid.uuid4()),
                "attributes": attributes,
            }

        async with topic_reader(infrastructure, topics.DLQ.name) as letters:
            await send(
                infrastructure,
                sandbox,
                topics.PROFILE_UPDATES.name,
                profile_id,
                "-",
                update(profile_id, {"loyalty": {"tier": "gold"}}),
            )
            await send(
                infrastructure, sandbox, topics.PROFILE_UPDATES.name, unknown, "-", update(unknown, {"x": 1})
            )
            await send(
                infrastructure,
                sandbox,
                topics.PROFILE_UPDATES.name,
                profile_id,
                "-",
                update(profile_id, {"identityMap": {}}),
            )

            def refused(records: list[Any]) -> list[dict[str, Any]]:
                found = [orjson.loads(r.value or b"{}") for r in records]
                return [
                    f
                    for f in found
                    if f.get("origin", {}).get("topic") == topics.PROFILE_UPDATES.name
                    and f.get("origin", {}).get("key") in (profile_id, unknown)
                ]

            dead = refused(await letters.wait_for(lambda rs: len(refused(rs)) == 2, timeout_s=30))

        async def applied() -> bool:
            view = (await http.get(f"/v1/profiles/{profile_id}")).json()
            return bool(view["entity"].get("loyalty") == {"tier": "gold"})

        await eventually(applied, timeout_s=30)
        view = (await http.get(f"/v1/profiles/{profile_id}")).json()
        assert view["entity"]["person"]["name"]["firstName"] == "Up"
        assert "itinera-profile-updates" in view["sources"]
        assert sorted(d["reasons"][0]["path"] for d in dead) == ["/identityMap", "/profileId"]
