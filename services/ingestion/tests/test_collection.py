"""The AEP streaming API: what is accepted goes to Kafka, what is refused is explained
and kept."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import orjson
import pytest

from itinera.common.auth import mint_token
from itinera.common.kafka import topics
from itinera.common.testing import StackInfo, topic_reader
from itinera.ingestion.config import IngestionSettings

EVENT_SCHEMA = "https://ns.adobe.com/xdm/context/experienceevent"
ECID = "12345678901234567890123456789012345678"


def event(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "_id": str(uuid.uuid4()),
        "timestamp": "2026-11-28T10:15:00Z",
        "eventType": "commerce.productViews",
        "identityMap": {
            "Email": [{"id": "jane@example.com", "primary": True, "authenticatedState": "authenticated"}],
            "ECID": [{"id": ECID}],
        },
        "commerce": {"productViews": {"value": 1}},
        "productListItems": [{"SKU": "SKI-1", "name": "Fernie Snow", "quantity": 1, "priceTotal": 7.8}],
    }
    body.update(overrides)
    return body


def message(dataset: str, entity: dict[str, Any]) -> dict[str, Any]:
    ref = {"id": EVENT_SCHEMA, "contentType": "application/vnd.adobe.xed-full+json;version=1"}
    return {
        "header": {"schemaRef": ref, "imsOrgId": "ACME@AdobeOrg", "datasetId": dataset, "flowId": "f-1"},
        "body": {"xdmMeta": {"schemaRef": ref}, "xdmEntity": entity},
    }


def paths(problem: dict[str, Any]) -> set[str]:
    return {e["path"] for e in problem["errors"]}


class TestAcceptedMessagesReachKafka:
    async def test_an_event_is_published_keyed_by_primary_identity_with_cloudevents_headers(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str], infrastructure: StackInfo
    ) -> None:
        sent = event()
        async with topic_reader(infrastructure, topics.EVENTS.name) as reader:
            response = await client.post(
                f"/collection/{events_inlet['connection']}", json=message(events_inlet["dataset"], sent)
            )
            assert response.status_code == 200, response.text
            xaction = response.json()["xactionId"]
            records = await reader.wait_for(lambda rs: any(r.ce_id == xaction for r in rs))
        (record,) = [r for r in records if r.ce_id == xaction]
        assert record.key == "Email:jane@example.com"
        assert orjson.loads(record.value or b"") == sent
        assert record.headers["ce_specversion"] == "1.0"
        assert record.headers["ce_type"] == "com.itinera.ingestion.event.v1"
        assert record.headers["ce_source"] == f"/itinera/ingestion/connections/{events_inlet['connection']}"
        assert record.headers["content-type"] == "application/json"
        assert record.headers["itinera_sandbox"] == "prod"
        assert record.headers["itinera_dataset"] == events_inlet["dataset"]
        assert record.headers["itinera_schema"] == EVENT_SCHEMA
        assert response.json()["inletId"] == events_inlet["connection"]

    async def test_a_bare_entity_goes_to_the_connections_default_dataset(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str], infrastructure: StackInfo
    ) -> None:
        async with topic_reader(infrastructure, topics.EVENTS.name) as reader:
            response = await client.post(f"/collection/{events_inlet['connection']}", json=event())
            assert response.status_code == 200, response.text
            xaction = response.json()["xactionId"]
            records = await reader.wait_for(lambda rs: any(r.ce_id == xaction for r in rs))
        assert [r.headers["itinera_dataset"] for r in records if r.ce_id == xaction] == [
            events_inlet["dataset"]
        ]

    async def test_a_profile_record_goes_to_the_records_topic(
        self, client: httpx.AsyncClient, profiles_inlet: dict[str, str], infrastructure: StackInfo
    ) -> None:
        record = {
            "identityMap": {"CRMID": [{"id": "crm-42", "primary": True}]},
            "person": {"name": {"firstName": "Jane", "lastName": "Doe"}},
            "personalEmail": {"address": "jane@example.com"},
        }
        async with topic_reader(infrastructure, topics.RECORDS.name) as reader:
            response = await client.post(f"/collection/{profiles_inlet['connection']}", json=record)
            assert response.status_code == 200, response.text
            xaction = response.json()["xactionId"]
            found = await reader.wait_for(lambda rs: any(r.ce_id == xaction for r in rs))
        (published,) = [r for r in found if r.ce_id == xaction]
        assert published.key == "CRMID:crm-42"
        assert published.ce_type == "com.itinera.ingestion.record.v1"

    async def test_sync_validation_is_accepted(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str]
    ) -> None:
        response = await client.post(
            f"/collection/{events_inlet['connection']}?syncValidation=true", json=event()
        )
        assert response.status_code == 200


class TestRefusedMessagesAreExplainedAndKept:
    async def test_every_schema_and_identity_problem_is_reported_with_its_path(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str]
    ) -> None:
        bad = event(timestamp="yesterday", surprise=True)
        bad["identityMap"]["ECID"] = [{"id": "123"}]
        bad["commerce"] = {"order": {"priceTotal": "a lot"}}
        response = await client.post(
            f"/collection/{events_inlet['connection']}?syncValidation=true",
            json=message(events_inlet["dataset"], bad),
        )
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert {
            "/body/xdmEntity/timestamp",
            "/body/xdmEntity/surprise",
            "/body/xdmEntity/identityMap/ECID/0/id",
            "/body/xdmEntity/commerce/order/priceTotal",
        } <= paths(problem)
        assert problem["type"].endswith("/validation-failed")

    async def test_a_refused_message_is_listed_in_the_dead_letter_store_with_its_payload(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str], infrastructure: StackInfo
    ) -> None:
        bad = event(_id=None)
        async with topic_reader(infrastructure, topics.DLQ.name) as reader:
            response = await client.post(f"/collection/{events_inlet['connection']}", json=bad)
            assert response.status_code == 400
            xaction = response.json()["xactionId"]
            letters = await reader.wait_for(lambda rs: any(r.ce_id == xaction for r in rs))
        listed = await client.get("/v1/dlq", params={"dataset": events_inlet["dataset"]})
        item = next(i for i in listed.json()["items"] if i["id"] == xaction)
        assert item["payload"] == bad
        assert item["kind"] == "validation"
        assert "/_id" in {r["path"] for r in item["reasons"]}
        (letter,) = [r for r in letters if r.ce_id == xaction]
        assert orjson.loads(letter.value or b"")["reasons"] == item["reasons"]

    @pytest.mark.parametrize(
        ("identities", "path", "code"),
        [
            ({"ECID": [{"id": "42"}]}, "/identityMap/ECID/0/id", "identity.ecid"),
            ({"Email": [{"id": "null"}]}, "/identityMap/Email/0/id", "identity.placeholder"),
            ({"Email": [{"id": "  "}]}, "/identityMap/Email/0/id", "identity.empty"),
            ({"CRMID": [{"id": "x" * 1025}]}, "/identityMap/CRMID/0/id", "identity.length"),
            ({"CRMID": [{"id": f"c{i}"} for i in range(21)]}, "/identityMap", "identity.count"),
            ({}, "/identityMap", "identity.missing"),
        ],
    )
    async def test_identity_rules(
        self,
        client: httpx.AsyncClient,
        events_inlet: dict[str, str],
        identities: dict[str, Any],
        path: str,
        code: str,
    ) -> None:
        response = await client.post(
            f"/collection/{events_inlet['connection']}", json=event(identityMap=identities)
        )
        assert response.status_code == 400
        assert {"path": path, "code": code} in [
            {"path": e["path"], "code": e["code"]} for e in response.json()["errors"]
        ]

    async def test_a_schema_ref_that_does_not_match_the_dataset_is_refused(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str]
    ) -> None:
        sent = message(events_inlet["dataset"], event())
        sent["header"]["schemaRef"]["id"] = "https://ns.adobe.com/xdm/context/profile"
        response = await client.post(f"/collection/{events_inlet['connection']}", json=sent)
        assert response.status_code == 400
        assert "/header/schemaRef/id" in paths(response.json())

    async def test_an_unknown_dataset_in_the_header_is_refused(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str]
    ) -> None:
        response = await client.post(
            f"/collection/{events_inlet['connection']}", json=message("nope", event())
        )
        assert response.status_code == 400
        assert paths(response.json()) == {"/header/datasetId"}

    async def test_deep_nesting_is_refused_without_recursing(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str]
    ) -> None:
        nested: Any = "bottom"
        for _ in range(200):
            nested = {"a": nested}
        response = await client.post(f"/collection/{events_inlet['connection']}", json=event(deep=nested))
        assert response.status_code == 400
        assert response.json()["errors"][0]["code"] == "depth"


class TestBatches:
    async def test_a_mixed_batch_answers_207_with_one_response_per_message_in_order(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str], infrastructure: StackInfo
    ) -> None:
        good = [message(events_inlet["dataset"], event()) for _ in range(3)]
        bad = message(events_inlet["dataset"], event(timestamp=12))
        async with topic_reader(infrastructure, topics.EVENTS.name) as reader:
            response = await client.post(
                f"/collection/batch/{events_inlet['connection']}",
                json={"messages": [good[0], bad, *good[1:]]},
            )
            assert response.status_code == 207
            body = response.json()
            accepted = {r["xactionId"] for r in body["responses"] if "status" not in r}
            await reader.wait_for(lambda rs: accepted <= {r.ce_id for r in rs})
        assert len(body["responses"]) == 4
        refused = body["responses"][1]
        assert refused["status"] == 400
        assert "/body/xdmEntity/timestamp" in refused["message"]
        assert refused["errors"][0]["path"] == "/body/xdmEntity/timestamp"
        assert len(accepted) == 3
        assert body["inletId"] == events_inlet["connection"]

    @pytest.mark.parametrize(
        ("body", "path"),
        [({"messages": []}, "/messages"), ({"messages": {}}, "/messages"), ([], "/messages")],
    )
    async def test_a_batch_without_messages_is_refused(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str], body: Any, path: str
    ) -> None:
        response = await client.post(f"/collection/batch/{events_inlet['connection']}", json=body)
        assert response.status_code == 400
        assert paths(response.json()) == {path}


class TestBadRequests:
    async def test_malformed_json_is_a_400_that_names_the_position(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str]
    ) -> None:
        response = await client.post(
            f"/collection/batch/{events_inlet['connection']}",
            content=b'{"messages": [',
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 400
        assert "line 1" in response.json()["errors"][0]["message"]

    async def test_malformed_json_on_one_message_is_kept_as_base64(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str]
    ) -> None:
        response = await client.post(
            f"/collection/{events_inlet['connection']}",
            content=b"\xff{not json",
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 400
        letter = await client.get(f"/v1/dlq/{response.json()['xactionId']}")
        assert letter.json()["payloadBase64"]

    async def test_a_body_over_one_megabyte_is_a_413(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str]
    ) -> None:
        big = orjson.dumps(event(padding="x" * (1024 * 1024)))
        response = await client.post(
            f"/collection/{events_inlet['connection']}",
            content=big,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"

    async def test_a_wrong_content_type_is_a_415(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str]
    ) -> None:
        response = await client.post(
            f"/collection/{events_inlet['connection']}",
            content=b"<xml/>",
            headers={"content-type": "text/xml"},
        )
        assert response.status_code == 415

    async def test_an_unknown_connection_is_a_404(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/collection/does-not-exist", json=event())
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"

    async def test_a_missing_token_is_a_401(self, app: Any, events_inlet: dict[str, str]) -> None:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as anonymous:
            response = await anonymous.post(f"/collection/{events_inlet['connection']}", json=event())
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_a_token_without_the_ingest_scope_is_a_403(
        self, client: httpx.AsyncClient, settings: IngestionSettings, events_inlet: dict[str, str]
    ) -> None:
        reader = mint_token(settings, scopes=["catalog:read"])
        response = await client.post(
            f"/collection/{events_inlet['connection']}",
            json=event(),
            headers={"authorization": f"Bearer {reader}"},
        )
        assert response.status_code == 403

    async def test_a_sandbox_header_that_differs_from_the_token_is_a_403(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str]
    ) -> None:
        response = await client.post(
            f"/collection/{events_inlet['connection']}", json=event(), headers={"x-sandbox-name": "dev"}
        )
        assert response.status_code == 403

    async def test_a_connection_of_another_sandbox_is_not_found(
        self, client: httpx.AsyncClient, settings: IngestionSettings, events_inlet: dict[str, str]
    ) -> None:
        other = mint_token(settings, sandbox="dev")
        response = await client.post(
            f"/collection/{events_inlet['connection']}",
            json=event(),
            headers={"authorization": f"Bearer {other}", "x-sandbox-name": "dev"},
        )
        assert response.status_code == 404


class TestValuesPostgresqlCannotStore:
    async def test_a_nul_character_in_a_catalogue_value_is_a_400(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/v1/connections", json={"name": "nul\u0000", "datasetId": "d\u0000"})
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"

    async def test_a_refused_message_holding_a_nul_character_is_kept_as_base64(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str]
    ) -> None:
        sent = event(_id=None, note="a\u0000b")
        response = await client.post(f"/collection/{events_inlet['connection']}", json=sent)
        assert response.status_code == 400
        letter = (await client.get(f"/v1/dlq/{response.json()['xactionId']}")).json()
        assert letter["payload"] is None
        assert orjson.loads(base64.b64decode(letter["payloadBase64"])) == sent
