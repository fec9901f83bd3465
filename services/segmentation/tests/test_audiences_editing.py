"""Audiences written through AEP's ``/data/core/ups/audiences``: created, replaced,
patched and deleted as the segment definitions they are, with AEP's shapes and answers.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from itinera.common.auth import mint_token
from itinera.common.projection import Plan
from itinera.common.testing import client_for, eventually
from itinera.segmentation.config import SegmentationSettings
from itinera.segmentation.projection import repository as projection

AUDIENCES = "/data/core/ups/audiences"
DEFINITIONS = "/data/core/ups/segment/definitions"
FRENCH = 'homeAddress.countryCode = "FR"'
GERMAN = 'homeAddress.countryCode = "DE"'


def body(name: str | None = None, rule: str = FRENCH, **extra: Any) -> dict[str, Any]:
    """AEP's example body for a platform audience (``CreatePlatformAudienceRequestBody``)."""
    return {
        "name": name or f"audience {uuid.uuid4().hex[:8]}",
        "profileInstanceId": "ups",
        "description": "People in France",
        "type": "SegmentDefinition",
        "expression": {"type": "PQL", "format": "pql/text", "value": rule},
        "schema": {"name": "_xdm.context.profile"},
        "labels": ["core/C1"],
        **extra,
    }


async def create(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await api.post(AUDIENCES, json=body(**fields))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def problems(response: httpx.Response) -> dict[str, str]:
    """Each problem's path and message."""
    assert response.headers["content-type"].startswith("application/problem+json")
    return {e["path"]: e["message"] for e in response.json()["errors"]}


class TestCreating:
    async def test_an_audience_is_created_from_aeps_example_body_and_is_a_segment_definition(
        self, api: httpx.AsyncClient
    ) -> None:
        response = await api.post(AUDIENCES, json=body("People in France"))

        assert response.status_code == 201, response.text
        created = response.json()
        assert created["id"] == created["audienceId"]
        assert response.headers["x-location"] == f"{AUDIENCES}/{created['id']}"
        assert created["name"] == "People in France"
        assert created["expression"]["value"] == FRENCH
        assert created["labels"] == ["core/C1"]
        assert (created["namespace"], created["type"], created["lifecycleState"]) == (
            "AEPSegments",
            "SegmentDefinition",
            "published",
        )
        assert created["evaluationInfo"]["batch"] == {"enabled": True}  # no evaluationInfo: batch
        assert (await api.get(f"{AUDIENCES}/{created['id']}")).json() == created
        definition = (await api.get(f"{DEFINITIONS}/{created['id']}")).json()
        assert definition["name"] == "People in France"

    async def test_a_streaming_audience_keeps_the_evaluation_asked_for(self, api: httpx.AsyncClient) -> None:
        created = await create(api, evaluationInfo={"continuous": {"enabled": True}})

        assert created["evaluationInfo"]["continuous"] == {"enabled": True}
        assert created["evaluationInfo"]["batch"] == {"enabled": False}

    async def test_what_is_not_an_audience_here_is_refused_with_every_reason(
        self, api: httpx.AsyncClient
    ) -> None:
        response = await api.post(
            AUDIENCES, json=body(type="ExternalAudience", namespace="AAM", lifecycleState="deleted")
        )

        assert response.status_code == 400
        found = problems(response)
        assert "uploaded" in found["/type"]
        assert "AEPSegments" in found["/namespace"]
        assert "DELETE" in found["/lifecycleState"]
        assert (await api.get(AUDIENCES)).json()["children"] == []

    async def test_a_draft_is_refused_because_audiences_here_are_evaluated_once_saved(
        self, api: httpx.AsyncClient
    ) -> None:
        response = await api.post(AUDIENCES, json=body(lifecycleState="draft"))

        assert response.status_code == 400
        assert "published" in problems(response)["/lifecycleState"]

    async def test_a_rule_that_does_not_parse_is_refused_at_its_position(
        self, api: httpx.AsyncClient
    ) -> None:
        response = await api.post(AUDIENCES, json=body(rule='homeAddress.countryCode = = "FR"'))

        assert response.status_code == 400
        assert "/expression/value" in problems(response)

    async def test_a_name_taken_is_refused_as_for_definitions(self, api: httpx.AsyncClient) -> None:
        await create(api, name="Taken")

        response = await api.post(AUDIENCES, json=body("taken"))

        assert response.status_code == 422
        assert response.json()["type"].endswith("already-exists")

    async def test_a_body_of_the_wrong_shape_names_the_field(self, api: httpx.AsyncClient) -> None:
        response = await api.post(AUDIENCES, json={**body(), "labels": "C1", "name": None})

        assert response.status_code == 422
        assert {"/body/labels", "/body/name"} <= set(problems(response))

    async def test_writing_needs_the_write_scope(
        self, segmentation_app: FastAPI, segmentation_settings: SegmentationSettings, sandbox: str
    ) -> None:
        token = mint_token(segmentation_settings, scopes=["audiences:read"], sandbox=sandbox)
        async with client_for(segmentation_app, token) as reader:
            assert (await reader.post(AUDIENCES, json=body())).status_code == 403


class TestReplacing:
    async def test_a_put_replaces_what_aeps_update_body_carries_and_keeps_the_evaluation(
        self, api: httpx.AsyncClient
    ) -> None:
        created = await create(api, evaluationInfo={"continuous": {"enabled": True}})
        update = {
            "audienceId": created["id"],
            "name": "People in Germany",
            "description": "Moved",
            "type": "SegmentDefinition",
            "expression": {"type": "PQL", "format": "pql/text", "value": GERMAN},
            "schema": {"name": "_xdm.context.profile"},
            "labels": ["C2", "C2"],
        }

        response = await api.put(f"{AUDIENCES}/{created['id']}", json=update)

        assert response.status_code == 201, response.text
        replaced = response.json()
        assert (replaced["name"], replaced["description"]) == ("People in Germany", "Moved")
        assert replaced["expression"]["value"] == GERMAN
        assert replaced["labels"] == ["C2"]
        assert replaced["evaluationInfo"] == created["evaluationInfo"]
        assert replaced["creationTime"] == created["creationTime"]

    async def test_a_returned_audience_can_be_sent_back_as_it_is(self, api: httpx.AsyncClient) -> None:
        created = await create(api)

        response = await api.put(f"{AUDIENCES}/{created['id']}", json={**created, "description": "as read"})

        assert response.status_code == 201, response.text
        assert response.json()["description"] == "as read"

    async def test_the_id_and_the_namespace_cannot_change(self, api: httpx.AsyncClient) -> None:
        created = await create(api)

        response = await api.put(
            f"{AUDIENCES}/{created['id']}", json=body(audienceId=str(uuid.uuid4()), namespace="AAM")
        )

        assert response.status_code == 400
        assert set(problems(response)) == {"/audienceId", "/namespace"}
        assert (await api.get(f"{AUDIENCES}/{created['id']}")).json() == created

    async def test_an_unknown_audience_is_404(self, api: httpx.AsyncClient) -> None:
        response = await api.put(f"{AUDIENCES}/{uuid.uuid4()}", json=body())

        assert response.status_code == 404
        assert "audience" in response.json()["detail"]


class TestPatching:
    async def test_aeps_example_patch_changes_the_rule(self, api: httpx.AsyncClient) -> None:
        created = await create(api)
        operations = [
            {
                "op": "add",
                "path": "/expression",
                "value": {"type": "PQL", "format": "pql/text", "value": GERMAN},
            }
        ]

        response = await api.patch(f"{AUDIENCES}/{created['id']}", json=operations)

        assert response.status_code == 201, response.text
        patched = response.json()
        assert patched["expression"]["value"] == GERMAN
        assert (patched["name"], patched["labels"]) == (created["name"], created["labels"])

    async def test_operations_apply_in_order_to_names_labels_and_evaluation(
        self, api: httpx.AsyncClient
    ) -> None:
        created = await create(api, mergePolicyId="policy-1")
        operations = [
            {"op": "replace", "path": "/name", "value": "Renamed"},
            {"op": "add", "path": "/labels/-", "value": "C5"},
            {"op": "remove", "path": "/labels/0"},
            {"op": "replace", "path": "/evaluationInfo/continuous/enabled", "value": True},
            {"op": "remove", "path": "/mergePolicyId"},
        ]

        response = await api.patch(f"{AUDIENCES}/{created['id']}", json=operations)

        assert response.status_code == 201, response.text
        patched = response.json()
        assert patched["name"] == "Renamed"
        assert patched["labels"] == ["C5"]
        assert patched["evaluationInfo"]["continuous"] == {"enabled": True}
        assert "mergePolicyId" not in patched
        assert patched["expression"] == created["expression"]

    async def test_a_field_that_cannot_change_is_named_with_its_operation(
        self, api: httpx.AsyncClient
    ) -> None:
        created = await create(api)
        operations = [
            {"op": "replace", "path": "/name", "value": "fine"},
            {"op": "replace", "path": "/id", "value": str(uuid.uuid4())},
        ]

        response = await api.patch(f"{AUDIENCES}/{created['id']}", json=operations)

        assert response.status_code == 400
        assert set(problems(response)) == {"/1/path"}
        assert (await api.get(f"{AUDIENCES}/{created['id']}")).json()["name"] == created["name"]

    async def test_the_lifecycle_cannot_be_patched_to_deleted(self, api: httpx.AsyncClient) -> None:
        created = await create(api)

        response = await api.patch(
            f"{AUDIENCES}/{created['id']}",
            json=[{"op": "replace", "path": "/lifecycleState", "value": "deleted"}],
        )

        assert response.status_code == 400
        assert "DELETE" in problems(response)["/lifecycleState"]

    async def test_a_patched_audience_of_the_wrong_shape_names_the_field(
        self, api: httpx.AsyncClient
    ) -> None:
        created = await create(api)

        wrong_type = await api.patch(
            f"{AUDIENCES}/{created['id']}", json=[{"op": "replace", "path": "/name", "value": 7}]
        )
        missing = await api.patch(
            f"{AUDIENCES}/{created['id']}", json=[{"op": "remove", "path": "/description/x"}]
        )

        assert wrong_type.status_code == 400
        assert set(problems(wrong_type)) == {"/name"}
        assert missing.status_code == 400
        assert set(problems(missing)) == {"/0/path"}


class TestDeleting:
    async def test_a_deleted_audience_is_gone(self, api: httpx.AsyncClient) -> None:
        created = await create(api)

        response = await api.delete(f"{AUDIENCES}/{created['id']}")

        assert response.status_code == 204
        assert response.content == b""
        assert (await api.get(f"{AUDIENCES}/{created['id']}")).status_code == 404
        assert (await api.delete(f"{AUDIENCES}/{created['id']}")).status_code == 404

    async def test_an_audience_other_audiences_name_is_kept(self, api: httpx.AsyncClient) -> None:
        named = await create(api)
        naming = await create(api, rule=f'inSegment("{named["id"]}")')

        response = await api.delete(f"{AUDIENCES}/{named['id']}")

        assert response.status_code == 409
        assert response.json()["referencedBy"] == [{"id": naming["id"], "name": naming["name"]}]


async def test_members_follow_the_rule_when_it_is_created_and_when_a_patch_changes_it(
    saving_api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
) -> None:
    api = saving_api
    french, german = str(uuid.uuid4()), str(uuid.uuid4())
    async with pool.acquire() as conn, conn.transaction():
        await projection.apply(
            conn,
            sandbox,
            Plan(
                profiles={
                    french: {"homeAddress": {"countryCode": "FR"}},
                    german: {"homeAddress": {"countryCode": "DE"}},
                }
            ),
        )

    async def members(audience_id: str) -> list[str]:
        page = (await api.get(f"/v1/audiences/{audience_id}/members")).json()
        return [m["profileId"] for m in page["children"]]

    created = await create(api)
    await eventually(lambda: _is(members(created["id"]), [french]), timeout_s=60)

    renamed = await api.patch(
        f"{AUDIENCES}/{created['id']}", json=[{"op": "replace", "path": "/name", "value": "x"}]
    )
    assert renamed.status_code == 201
    moved = await api.patch(
        f"{AUDIENCES}/{created['id']}",
        json=[{"op": "replace", "path": "/expression/value", "value": GERMAN}],
    )
    assert moved.status_code == 201
    await eventually(lambda: _is(members(created["id"]), [german]), timeout_s=60)

    jobs = (await api.get("/data/core/ups/segment/jobs")).json()["children"]
    assert len(jobs) == 2  # the creation and the new rule; the rename evaluates nothing


async def _is(found: Any, expected: list[str]) -> bool:
    return bool(await found == expected)
