"""Identity namespaces and graph look-ups over HTTP, fed by events on Kafka."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from itinera.common.kafka import topics
from itinera.common.testing import StackInfo, eventually, topic_reader

ECID = "12345678901234567890123456789012345678"


async def publish(infrastructure: StackInfo, sandbox: str, *events: dict[str, Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=infrastructure.kafka_bootstrap)
    await producer.start()
    try:
        for event in events:
            (namespace, items), *_ = event["identityMap"].items()
            await producer.send_and_wait(
                topics.EVENTS.name,
                value=orjson.dumps(event),
                key=f"{namespace}:{items[0]['id']}".encode(),
                headers=[("itinera_sandbox", sandbox.encode()), ("ce_id", str(uuid.uuid4()).encode())],
            )
    finally:
        await producer.stop()


def event(minute: int, **identities: str) -> dict[str, Any]:
    return {
        "_id": str(uuid.uuid4()),
        "timestamp": f"2026-11-28T10:{minute:02d}:00Z",
        "identityMap": {ns: [{"id": value}] for ns, value in identities.items()},
    }


async def graph_of(http: httpx.AsyncClient, namespace: str, value: str) -> dict[str, Any]:
    response = await http.get("/v1/identities/graph", params={"namespace": namespace, "id": value})
    return response.json() if response.status_code == 200 else {}


class TestNamespaces:
    async def test_lists_the_standard_namespaces(self, http: httpx.AsyncClient) -> None:
        listed = {n["code"]: n for n in (await http.get("/data/core/idnamespace/identities")).json()}
        assert {"ECID", "Email", "Phone", "Email_LC_SHA256", "CRMID", "IDFA", "GAID"} <= set(listed)
        assert listed["CRMID"]["uniquePerGraph"] is True
        assert listed["Email"]["idType"] == "EMAIL"

    async def test_a_custom_namespace_is_created_once_and_found_by_code_or_id(
        self, http: httpx.AsyncClient
    ) -> None:
        body = {"code": "Loyalty", "name": "Loyalty member", "idType": "CROSS_DEVICE", "uniquePerGraph": True}
        created = await http.post("/data/core/idnamespace/identities", json=body)
        assert created.status_code == 200, created.text
        assert created.json()["custom"] is True
        assert (await http.post("/data/core/idnamespace/identities", json=body)).status_code == 409
        by_id = await http.get(f"/data/core/idnamespace/identities/{created.json()['id']}")
        assert by_id.json()["code"] == "Loyalty"

    async def test_an_invalid_namespace_is_refused_with_paths(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            "/data/core/idnamespace/identities", json={"code": "bad code!", "idType": "x"}
        )
        assert response.status_code == 400
        assert {e["path"] for e in response.json()["errors"]} == {"/code", "/name", "/idType"}

    async def test_a_standard_namespaces_graph_settings_can_change(self, http: httpx.AsyncClient) -> None:
        updated = await http.put("/data/core/idnamespace/identities/Phone", json={"uniquePerGraph": True})
        assert updated.json()["uniquePerGraph"] is True
        assert updated.json()["custom"] is False


class TestGraphFromEvents:
    async def test_identities_seen_together_are_one_profile_and_emails_match_case_insensitively(
        self, http: httpx.AsyncClient, infrastructure: StackInfo, sandbox: str
    ) -> None:
        await publish(
            infrastructure,
            sandbox,
            event(1, ECID=ECID, Email="Jane@Example.com"),
            event(2, Email="jane@example.com", CRMID="crm-1"),
        )

        async def linked() -> bool:
            return len((await graph_of(http, "CRMID", "crm-1")).get("members", [])) == 3

        await eventually(linked, timeout_s=30)
        members = await http.get(
            "/data/core/identity/cluster/members", params={"nsc": "Email", "id": "JANE@example.com"}
        )
        cluster = members.json()["clusters"][0]
        assert cluster["compositeXid"] == {"namespace": "Email", "id": "jane@example.com"}
        assert {(m["namespace"], m["id"]) for m in cluster["members"]} == {
            ("ECID", ECID),
            ("Email", "jane@example.com"),
            ("CRMID", "crm-1"),
        }

    async def test_joining_two_profiles_keeps_the_older_id_and_announces_the_merge(
        self, http: httpx.AsyncClient, infrastructure: StackInfo, sandbox: str
    ) -> None:
        await publish(infrastructure, sandbox, event(1, ECID=ECID), event(5, Phone="+15550100"))

        async def both() -> bool:
            return bool((await graph_of(http, "ECID", ECID)).get("profileId")) and bool(
                (await graph_of(http, "Phone", "+15550100")).get("profileId")
            )

        await eventually(both, timeout_s=30)
        older = (await graph_of(http, "ECID", ECID))["profileId"]
        newer = (await graph_of(http, "Phone", "+15550100"))["profileId"]
        assert older != newer
        async with topic_reader(infrastructure, topics.IDENTITY_MERGES.name) as reader:
            await publish(infrastructure, sandbox, event(9, ECID=ECID, Phone="+15550100"))
            records = await reader.wait_for(lambda rs: any(r.key == older for r in rs), timeout_s=30)
        merge = orjson.loads(next(r for r in records if r.key == older).value or b"{}")
        assert merge == {
            "sandbox": sandbox,
            "profileId": older,
            "mergedProfileIds": [newer],
            "mergedAt": merge["mergedAt"],
        }
        assert (await graph_of(http, "Phone", "+15550100"))["profileId"] == older

    async def test_a_link_joining_two_crm_ids_is_refused_and_visible(
        self, http: httpx.AsyncClient, infrastructure: StackInfo, sandbox: str
    ) -> None:
        await publish(
            infrastructure,
            sandbox,
            event(1, CRMID="crm-a", Email="a@example.com"),
            event(2, CRMID="crm-b", ECID=ECID),
            event(3, Email="a@example.com", ECID=ECID),
        )

        async def decided() -> bool:
            return any(
                link["decision"] == "refused"
                for link in (await graph_of(http, "CRMID", "crm-a")).get("links", [])
            )

        await eventually(decided, timeout_s=30)
        a, b = await graph_of(http, "CRMID", "crm-a"), await graph_of(http, "CRMID", "crm-b")
        assert a["profileId"] != b["profileId"]
        (refused,) = [link for link in a["links"] if link["decision"] == "refused"]
        assert {refused["from"]["namespace"], refused["to"]["namespace"]} == {"Email", "ECID"}

    async def test_identities_found_through_schema_descriptors_are_linked_too(
        self, http: httpx.AsyncClient, infrastructure: StackInfo, sandbox: str
    ) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=infrastructure.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(
                topics.RECORDS.name,
                value=orjson.dumps(
                    {"_itinera": {"loyaltyId": "L-1"}, "personalEmail": {"address": "x@example.com"}}
                ),
                key=b"LoyaltyId:L-1",
                headers=[
                    ("itinera_sandbox", sandbox.encode()),
                    ("itinera_identities", b'[["LoyaltyId", "L-1"], ["Email", "X@example.com"]]'),
                ],
            )
        finally:
            await producer.stop()

        async def linked() -> bool:
            return len((await graph_of(http, "Email", "x@example.com")).get("members", [])) == 2

        await eventually(linked, timeout_s=30)

    async def test_an_unknown_identity_is_a_404(self, http: httpx.AsyncClient) -> None:
        response = await http.get(
            "/v1/identities/graph", params={"namespace": "Email", "id": "nobody@example.com"}
        )
        assert response.status_code == 404


class TestNamespaceSettingsApplyToStoredGraphs:
    """Changing a namespace's graph settings resolves the graphs already stored again:
    no new record has to touch them."""

    async def rebuilt(self, http: httpx.AsyncClient, times: int) -> dict[str, Any]:
        done: list[dict[str, Any]] = []

        async def finished() -> bool:
            listed = (await http.get("/v1/identities/rebuilds")).json()["rebuilds"]
            done[:] = [r for r in listed if r["status"] == "finished"]
            return len(done) >= times

        await eventually(finished, timeout_s=30)
        return done[0]  # the newest

    async def test_a_namespace_made_unique_splits_graphs_and_made_shared_again_joins_them(
        self, http: httpx.AsyncClient, infrastructure: StackInfo, sandbox: str
    ) -> None:
        namespace = {"code": "Loyalty", "name": "Loyalty member", "idType": "CROSS_DEVICE"}
        assert (await http.post("/data/core/idnamespace/identities", json=namespace)).status_code == 200
        await publish(
            infrastructure,
            sandbox,
            event(1, Loyalty="L-1", Email="ada@example.com"),
            event(2, Loyalty="L-2", ECID=ECID),
            event(3, Email="ada@example.com", ECID=ECID),
        )

        async def one_profile() -> bool:
            return len((await graph_of(http, "Loyalty", "L-1")).get("members", [])) == 4

        await eventually(one_profile, timeout_s=30)
        joined = (await graph_of(http, "Loyalty", "L-1"))["profileId"]

        made_unique = await http.put(
            "/data/core/idnamespace/identities/Loyalty", json={"uniquePerGraph": True}
        )
        assert made_unique.status_code == 200, made_unique.text
        first = await self.rebuilt(http, times=1)
        assert first["settings"] == {"uniquePerGraph": True, "priority": 0}
        assert first["identities"] == 2
        a, b = await graph_of(http, "Loyalty", "L-1"), await graph_of(http, "Loyalty", "L-2")
        assert a["profileId"] != b["profileId"]
        assert joined in (a["profileId"], b["profileId"])  # the older anchor keeps its id
        assert [link["decision"] for link in a["links"] if link["decision"] == "refused"] == ["refused"]

        async with topic_reader(infrastructure, topics.IDENTITY_MERGES.name) as reader:
            shared = await http.put(
                "/data/core/idnamespace/identities/Loyalty", json={"uniquePerGraph": False}
            )
            assert shared.status_code == 200, shared.text
            await self.rebuilt(http, times=2)
            records = await reader.wait_for(lambda rs: any(r.key == joined for r in rs), timeout_s=30)
        merge = orjson.loads(next(r for r in records if r.key == joined).value or b"{}")
        assert merge["sandbox"] == sandbox
        assert (await graph_of(http, "Loyalty", "L-2"))["profileId"] == joined
        assert len((await graph_of(http, "Loyalty", "L-2"))["members"]) == 4

    async def test_a_change_that_leaves_the_graph_settings_alone_asks_for_no_rebuild(
        self, http: httpx.AsyncClient
    ) -> None:
        phone = (await http.get("/data/core/idnamespace/identities/Phone")).json()
        same = await http.put(
            "/data/core/idnamespace/identities/Phone",
            json={"priority": phone["priority"], "description": "Mobile numbers"},
        )
        assert same.status_code == 200
        assert (await http.get("/v1/identities/rebuilds")).json() == {"rebuilds": []}
