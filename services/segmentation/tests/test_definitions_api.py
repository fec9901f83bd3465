"""``/data/core/ups/segment/definitions``: audiences defined in PQL, in AEP's shape, per sandbox."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.testing import client_for
from itinera.segmentation.config import SegmentationSettings

DEFINITIONS = "/data/core/ups/segment/definitions"
FRENCH = 'homeAddress.countryCode = "FR"'
RECENT_PURCHASE = 'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 24 hours before now]'
WEEKLY_PURCHASE = 'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 7 days before now]'


def unique(name: str) -> str:
    return f"{name} {uuid.uuid4().hex[:8]}"


def definition(name: str, rule: str = FRENCH, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "description": "",
        "expression": {"type": "PQL", "format": "pql/text", "value": rule},
        "schema": {"name": "_xdm.context.profile"},
        **extra,
    }


def streaming(batch: bool = False, continuous: bool = True, synchronous: bool = False) -> dict[str, Any]:
    return {
        "batch": {"enabled": batch},
        "continuous": {"enabled": continuous},
        "synchronous": {"enabled": synchronous},
    }


async def create(http: httpx.AsyncClient, rule: str = FRENCH, **extra: Any) -> dict[str, Any]:
    response = await http.post(DEFINITIONS, json=definition(unique("audience"), rule, **extra))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def paths(response: httpx.Response) -> set[str]:
    return {e["path"] for e in response.json()["errors"]}


@pytest.fixture
async def fresh(
    segmentation_app: FastAPI, segmentation_settings: SegmentationSettings
) -> AsyncIterator[httpx.AsyncClient]:
    """A client in a sandbox of the test's own, for what must see nothing else."""
    token = mint_token(segmentation_settings, scopes=ALL_SCOPES, sandbox=f"t{uuid.uuid4().hex[:10]}")
    async with client_for(segmentation_app, token) as client:
        yield client


@pytest.fixture
async def other(
    segmentation_app: FastAPI, segmentation_settings: SegmentationSettings
) -> AsyncIterator[httpx.AsyncClient]:
    token = mint_token(segmentation_settings, scopes=ALL_SCOPES, sandbox="other")
    async with client_for(segmentation_app, token) as client:
        yield client


class TestLifecycle:
    async def test_a_definition_round_trips_through_create_get_list_patch_and_delete(
        self, http: httpx.AsyncClient
    ) -> None:
        name = unique("French customers")
        created = await http.post(DEFINITIONS, json=definition(name, description="lives in France"))
        assert created.status_code == 200
        body = created.json()
        assert created.headers["x-location"] == f"{DEFINITIONS}/{body['id']}"
        assert (await http.get(f"{DEFINITIONS}/{body['id']}")).json() == body
        listed = (await http.get(DEFINITIONS, params={"limit": 1000})).json()
        assert body in listed["segments"]

        patched = await http.patch(
            f"{DEFINITIONS}/{body['id']}",
            json={
                "name": name + " (FR)",
                "expression": {"type": "PQL", "format": "pql/text", "value": RECENT_PURCHASE},
            },
        )
        assert patched.status_code == 200
        after = patched.json()
        assert (after["name"], after["description"]) == (name + " (FR)", "lives in France")
        assert after["expression"]["value"] == RECENT_PURCHASE
        assert after["itinera"]["references"] == ["xEvent.eventType", "xEvent.timestamp"]
        assert after["creationTime"] == body["creationTime"]
        assert after["updateTime"] >= body["updateTime"]
        assert (await http.get(f"{DEFINITIONS}/{body['id']}")).json() == after

        deleted = await http.delete(f"{DEFINITIONS}/{body['id']}")
        assert deleted.status_code == 200
        assert deleted.json()["status"] is True
        assert (await http.get(f"{DEFINITIONS}/{body['id']}")).status_code == 404
        assert (await http.delete(f"{DEFINITIONS}/{body['id']}")).status_code == 404

    async def test_a_new_definition_has_the_aep_shape_and_is_evaluated_in_batch(
        self, http: httpx.AsyncClient
    ) -> None:
        before = int(time.time() * 1000)
        body = await create(http)
        assert uuid.UUID(body["id"])
        assert body["imsOrgId"] == "prod"
        assert body["schema"] == {"name": "_xdm.context.profile"}
        assert body["expression"] == {"type": "PQL", "format": "pql/text", "value": FRENCH}
        assert body["evaluationInfo"] == streaming(batch=True, continuous=False)
        assert body["dataGovernancePolicy"] == {"excludeOptOut": True}
        assert before - 5000 <= body["creationTime"] <= int(time.time() * 1000) + 5000
        assert body["updateEpoch"] == body["updateTime"] // 1000
        assert "mergePolicyId" not in body

    async def test_what_the_engine_found_is_kept_with_the_definition(self, http: httpx.AsyncClient) -> None:
        named = await create(http)
        rule = f'{WEEKLY_PURCHASE} and person.name.firstName = "Jane" and inSegment("{named["id"]}")'
        body = await create(http, rule)
        found = body["itinera"]
        assert found["references"] == ["person.name.firstName", "xEvent.eventType", "xEvent.timestamp"]
        assert found["audiences"] == [named["id"]]
        assert found["streaming"]["eligible"] is False
        assert found["streaming"]["reasons"]
        assert found["lookbackSeconds"] == 7 * 24 * 3600
        assert found["timeDependent"] is True

    async def test_the_merge_policy_is_kept_as_given_until_removed(self, http: httpx.AsyncClient) -> None:
        body = await create(http, mergePolicyId="5ed35fd8-6eeb-4ad2-bed9-43e695b8ac0b")
        assert body["mergePolicyId"] == "5ed35fd8-6eeb-4ad2-bed9-43e695b8ac0b"
        kept = (await http.patch(f"{DEFINITIONS}/{body['id']}", json={"description": "x"})).json()
        assert kept["mergePolicyId"] == "5ed35fd8-6eeb-4ad2-bed9-43e695b8ac0b"
        removed = (await http.patch(f"{DEFINITIONS}/{body['id']}", json={"mergePolicyId": None})).json()
        assert "mergePolicyId" not in removed

    async def test_a_returned_definition_can_be_sent_back_as_a_patch(self, http: httpx.AsyncClient) -> None:
        body = await create(http)
        changed = {**body, "description": "edited"}
        response = await http.patch(f"{DEFINITIONS}/{body['id']}", json=changed)
        assert response.status_code == 200
        assert response.json()["description"] == "edited"

    async def test_an_unknown_or_malformed_id_is_a_404(self, http: httpx.AsyncClient) -> None:
        for segment_id in (str(uuid.uuid4()), "not-an-id"):
            assert (await http.get(f"{DEFINITIONS}/{segment_id}")).status_code == 404
            assert (
                await http.patch(f"{DEFINITIONS}/{segment_id}", json={"description": "x"})
            ).status_code == 404
            assert (await http.delete(f"{DEFINITIONS}/{segment_id}")).status_code == 404


class TestBulkGet:
    async def test_each_id_gets_its_definition_or_a_404_entry(self, http: httpx.AsyncClient) -> None:
        first, second = await create(http), await create(http)
        missing = str(uuid.uuid4())
        response = await http.post(
            f"{DEFINITIONS}/bulk-get",
            json={"ids": [{"id": first["id"]}, {"id": second["id"]}, {"id": missing}]},
        )
        assert response.status_code == 207
        results = response.json()["results"]
        assert (results[first["id"]], results[second["id"]]) == (first, second)
        assert results[missing]["errors"]["404"][0]["code"] == 404

    async def test_none_found_is_a_404_and_no_ids_a_400(self, http: httpx.AsyncClient) -> None:
        none_found = await http.post(f"{DEFINITIONS}/bulk-get", json={"ids": [{"id": str(uuid.uuid4())}]})
        assert none_found.status_code == 404
        no_ids = await http.post(f"{DEFINITIONS}/bulk-get", json={"ids": []})
        assert no_ids.status_code == 400
        assert paths(no_ids) == {"/ids"}


class TestPaging:
    async def test_pages_follow_the_sort_and_hold_every_definition_once(
        self, fresh: httpx.AsyncClient
    ) -> None:
        names = [f"audience {letter}" for letter in "ecadb"]
        for name in names:
            assert (await fresh.post(DEFINITIONS, json=definition(name))).status_code == 200
        seen: list[str] = []
        for page in range(3):
            body = (
                await fresh.get(DEFINITIONS, params={"limit": 2, "page": page, "sort": "name:asc"})
            ).json()
            assert (body["page"]["totalCount"], body["page"]["totalPages"]) == (5, 3)
            assert (body["page"]["sortField"], body["page"]["sort"]) == ("name", "asc")
            assert body["page"]["pageSize"] == len(body["segments"])
            assert ("next" in body["link"]) == (page < 2)
            seen += [s["name"] for s in body["segments"]]
        assert seen == sorted(names)

    async def test_start_is_an_offset_and_next_links_to_the_following_page(
        self, fresh: httpx.AsyncClient
    ) -> None:
        for letter in "abc":
            await fresh.post(DEFINITIONS, json=definition(f"audience {letter}"))
        first = (await fresh.get(DEFINITIONS, params={"start": 1, "limit": 1, "sort": "name:desc"})).json()
        assert [s["name"] for s in first["segments"]] == ["audience b"]
        following = (await fresh.get(first["link"]["next"])).json()
        assert [s["name"] for s in following["segments"]] == ["audience a"]
        assert following["link"] == {}

    async def test_the_newest_come_first_by_default(self, fresh: httpx.AsyncClient) -> None:
        for letter in "abc":
            await fresh.post(DEFINITIONS, json=definition(f"audience {letter}"))
        body = (await fresh.get(DEFINITIONS)).json()
        assert [s["name"] for s in body["segments"]] == ["audience c", "audience b", "audience a"]
        assert (body["page"]["sortField"], body["page"]["sort"]) == ("creationTime", "desc")

    async def test_streaming_audiences_can_be_listed_alone(self, fresh: httpx.AsyncClient) -> None:
        await fresh.post(DEFINITIONS, json=definition("batch"))
        await fresh.post(DEFINITIONS, json=definition("streaming", evaluationInfo=streaming()))
        body = (await fresh.get(DEFINITIONS, params={"evaluationInfo.continuous.enabled": "true"})).json()
        assert [s["name"] for s in body["segments"]] == ["streaming"]

    async def test_an_unknown_sort_key_or_a_bad_limit_is_a_422(self, http: httpx.AsyncClient) -> None:
        unknown = await http.get(DEFINITIONS, params={"sort": "internalId:desc"})
        assert unknown.status_code == 422
        assert paths(unknown) == {"/query/sort"}
        assert "internalId" in unknown.json()["errors"][0]["message"]
        assert (await http.get(DEFINITIONS, params={"limit": 0})).status_code == 422


class TestNames:
    async def test_a_name_used_twice_in_a_sandbox_is_refused_whatever_its_case(
        self, http: httpx.AsyncClient
    ) -> None:
        name = unique("Loyal customers")
        assert (await http.post(DEFINITIONS, json=definition(name))).status_code == 200
        again = await http.post(DEFINITIONS, json=definition(name.upper()))
        assert again.status_code == 422
        assert again.json()["type"].endswith("/already-exists")
        assert paths(again) == {"/name"}

    async def test_renaming_to_a_name_in_use_is_refused(self, http: httpx.AsyncClient) -> None:
        first, second = await create(http), await create(http)
        response = await http.patch(f"{DEFINITIONS}/{second['id']}", json={"name": first["name"]})
        assert response.status_code == 422
        assert (await http.get(f"{DEFINITIONS}/{second['id']}")).json()["name"] == second["name"]


class TestValidation:
    async def test_invalid_pql_is_a_400_with_the_position_of_each_problem(
        self, http: httpx.AsyncClient
    ) -> None:
        response = await http.post(
            DEFINITIONS, json=definition(unique("broken"), 'homeAddress.countryCode = "FR" and\n  = "x"')
        )
        assert response.status_code == 400
        assert paths(response) == {"/expression/value"}
        (problem, *_) = response.json()["problems"]
        assert (problem["line"], problem["column"]) == (2, 3)
        assert {"offset", "endOffset", "construct", "message"} <= problem.keys()

    async def test_pql_json_is_refused_by_name(self, http: httpx.AsyncClient) -> None:
        body = definition(unique("json"))
        body["expression"] = {"type": "PQL", "format": "pql/json", "value": '{"nodeType": "literal"}'}
        response = await http.post(DEFINITIONS, json=body)
        assert response.status_code == 400
        assert paths(response) == {"/expression/format"}
        assert "pql/json" in response.json()["errors"][0]["message"]

    async def test_the_schema_must_be_the_profile_class(self, http: httpx.AsyncClient) -> None:
        body = definition(unique("events"), schema={"name": "_xdm.context.experienceevent"})
        response = await http.post(DEFINITIONS, json=body)
        assert response.status_code == 400
        assert paths(response) == {"/schema/name"}

    async def test_every_reason_is_given_at_once(self, http: httpx.AsyncClient) -> None:
        body = definition(
            unique("wrong"), "a = = 1", schema={"name": "x"}, evaluationInfo=streaming(continuous=False)
        )
        response = await http.post(DEFINITIONS, json=body)
        assert paths(response) == {"/schema/name", "/evaluationInfo", "/expression/value"}

    async def test_an_expression_over_the_limit_is_refused(self, http: httpx.AsyncClient) -> None:
        response = await http.post(DEFINITIONS, json=definition(unique("long"), "true and " * 600 + "true"))
        assert response.status_code == 400
        assert response.json()["errors"][0]["code"] == "maxLength"

    async def test_a_body_of_the_wrong_shape_is_a_422_with_paths(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            DEFINITIONS,
            json={
                "name": " ",
                "description": "nul \u0000 here",
                "schema": {"name": "_xdm.context.profile"},
                "evaluationInfo": {"batch": {"enabled": "sometimes"}},
                "colour": "blue",
            },
        )
        assert response.status_code == 422
        assert paths(response) == {
            "/body/name",
            "/body/description",
            "/body/expression",
            "/body/evaluationInfo/batch/enabled",
            "/body/colour",
        }

    async def test_a_refused_patch_changes_nothing(self, http: httpx.AsyncClient) -> None:
        body = await create(http)
        for patch in (
            {"expression": {"type": "PQL", "format": "pql/text", "value": "a = "}},
            {"expression": {"type": "PQL", "format": "pql/json", "value": "{}"}},
            {"name": None},
            {"id": str(uuid.uuid4())},
        ):
            response = await http.patch(f"{DEFINITIONS}/{body['id']}", json=patch)
            assert response.status_code == 400, patch
        assert (await http.get(f"{DEFINITIONS}/{body['id']}")).json() == body


class TestEvaluationModes:
    async def test_continuous_evaluation_of_a_rule_that_cannot_stream_is_refused_with_the_reasons(
        self, http: httpx.AsyncClient
    ) -> None:
        response = await http.post(
            DEFINITIONS, json=definition(unique("weekly"), WEEKLY_PURCHASE, evaluationInfo=streaming())
        )
        assert response.status_code == 400
        assert paths(response) == {"/evaluationInfo/continuous/enabled"}
        (reason,) = response.json()["streamingReasons"]
        assert "24 hours" in reason

    async def test_a_rule_that_can_stream_is_evaluated_continuously_and_at_the_edge(
        self, http: httpx.AsyncClient
    ) -> None:
        body = await create(http, RECENT_PURCHASE, evaluationInfo=streaming(synchronous=True))
        assert body["evaluationInfo"] == streaming(synchronous=True)
        assert body["itinera"]["streaming"] == {"eligible": True, "reasons": []}
        assert body["itinera"]["lookbackSeconds"] == 24 * 3600

    async def test_edge_evaluation_needs_a_rule_that_can_stream(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            DEFINITIONS,
            json=definition(
                unique("edge"),
                "xEvent.count() > 3",
                evaluationInfo=streaming(continuous=False, synchronous=True),
            ),
        )
        assert response.status_code == 400
        assert paths(response) == {"/evaluationInfo/synchronous/enabled"}

    async def test_a_streaming_audience_keeps_a_rule_that_can_stream(self, http: httpx.AsyncClient) -> None:
        body = await create(http, RECENT_PURCHASE, evaluationInfo=streaming())
        weekly = {"expression": {"type": "PQL", "format": "pql/text", "value": WEEKLY_PURCHASE}}
        refused = await http.patch(f"{DEFINITIONS}/{body['id']}", json=weekly)
        assert refused.status_code == 400
        assert paths(refused) == {"/evaluationInfo/continuous/enabled"}
        accepted = await http.patch(
            f"{DEFINITIONS}/{body['id']}",
            json={**weekly, "evaluationInfo": streaming(batch=True, continuous=False)},
        )
        assert accepted.status_code == 200
        assert accepted.json()["itinera"]["streaming"]["eligible"] is False


class TestStreamingOnOtherAudiences:
    """AEP streams a rule combining its event with ``inSegment`` only when every audience
    it names is profile-only: it reads no event, itself or through those it names."""

    async def test_an_event_with_a_profile_only_audience_streams_and_with_another_does_not(
        self, http: httpx.AsyncClient
    ) -> None:
        french = await create(http)
        french_too = await create(http, f'inSegment("{french["id"]}") and person.gender = "female"')
        buyers = await create(http, WEEKLY_PURCHASE)
        for profile_only in (french, french_too):
            body = await create(
                http, f'inSegment("{profile_only["id"]}") and {RECENT_PURCHASE}', evaluationInfo=streaming()
            )
            assert body["itinera"]["streaming"] == {"eligible": True, "reasons": []}
        for reading_events in (buyers, await create(http, f'inSegment("{buyers["id"]}")')):
            refused = await http.post(
                DEFINITIONS,
                json=definition(
                    unique("mixed"),
                    f'inSegment("{reading_events["id"]}") and {RECENT_PURCHASE}',
                    evaluationInfo=streaming(),
                ),
            )
            assert refused.status_code == 400
            assert paths(refused) == {"/evaluationInfo/continuous/enabled"}
            assert "profile-only" in refused.json()["streamingReasons"][0]

    async def test_validation_says_the_same(self, http: httpx.AsyncClient) -> None:
        french, buyers = await create(http), await create(http, WEEKLY_PURCHASE)
        for named, eligible in ((french, True), (buyers, False)):
            found = await http.post(
                "/v1/pql/validate", json={"expression": f'inSegment("{named["id"]}") and {RECENT_PURCHASE}'}
            )
            assert found.status_code == 200
            assert found.json()["streaming"]["eligible"] is eligible

    async def test_an_audience_a_streaming_one_relies_on_cannot_start_reading_events(
        self, http: httpx.AsyncClient
    ) -> None:
        french = await create(http)
        relying = await create(
            http, f'inSegment("{french["id"]}") and {RECENT_PURCHASE}', evaluationInfo=streaming()
        )
        refused = await http.patch(
            f"{DEFINITIONS}/{french['id']}", json={"expression": {"value": WEEKLY_PURCHASE}}
        )
        assert refused.status_code == 409
        assert refused.json()["streamingDependents"] == [{"id": relying["id"], "name": relying["name"]}]
        assert (await http.get(f"{DEFINITIONS}/{french['id']}")).json() == french

        batch = {"evaluationInfo": streaming(batch=True, continuous=False)}
        assert (await http.patch(f"{DEFINITIONS}/{relying['id']}", json=batch)).status_code == 200
        changed = await http.patch(
            f"{DEFINITIONS}/{french['id']}", json={"expression": {"value": WEEKLY_PURCHASE}}
        )
        assert changed.status_code == 200
        # and the audience relying on it cannot go back to streaming
        again = await http.patch(f"{DEFINITIONS}/{relying['id']}", json={"evaluationInfo": streaming()})
        assert again.status_code == 400
        assert paths(again) == {"/evaluationInfo/continuous/enabled"}


class TestAudienceReferences:
    async def test_a_rule_naming_unknown_audiences_is_refused_with_their_ids(
        self, http: httpx.AsyncClient
    ) -> None:
        known, unknown = await create(http), str(uuid.uuid4())
        rule = f'inSegment("{known["id"]}") and inSegment("{unknown}") and inSegment("vip")'
        response = await http.post(DEFINITIONS, json=definition(unique("refs"), rule))
        assert response.status_code == 400
        assert sorted(response.json()["unknownAudiences"]) == sorted([unknown, "vip"])
        assert paths(response) == {"/expression/value"}

    async def test_an_audience_named_by_another_cannot_be_deleted(self, http: httpx.AsyncClient) -> None:
        base = await create(http)
        user = await create(http, f'inSegment("{base["id"]}") and {FRENCH}')
        refused = await http.delete(f"{DEFINITIONS}/{base['id']}")
        assert refused.status_code == 409
        assert refused.json()["referencedBy"] == [{"id": user["id"], "name": user["name"]}]
        assert (await http.delete(f"{DEFINITIONS}/{user['id']}")).status_code == 200
        assert (await http.delete(f"{DEFINITIONS}/{base['id']}")).status_code == 200

    async def test_an_audience_no_longer_named_can_be_deleted(self, http: httpx.AsyncClient) -> None:
        base = await create(http)
        user = await create(http, f'inSegment("{base["id"]}")')
        await http.patch(f"{DEFINITIONS}/{user['id']}", json={"expression": {"value": FRENCH}})
        assert (await http.delete(f"{DEFINITIONS}/{base['id']}")).status_code == 200

    async def test_audiences_cannot_depend_on_themselves(self, http: httpx.AsyncClient) -> None:
        base = await create(http)
        middle = await create(http, f'inSegment("{base["id"]}")')
        top = await create(http, f'inSegment("{middle["id"]}")')
        for target, named in ((base, top), (base, base)):
            response = await http.patch(
                f"{DEFINITIONS}/{target['id']}", json={"expression": {"value": f'inSegment("{named["id"]}")'}}
            )
            assert response.status_code == 400
            assert response.json()["errors"][0]["code"] == "cycle"
        assert (await http.get(f"{DEFINITIONS}/{base['id']}")).json() == base


class TestAccess:
    async def test_reading_needs_audiences_read_and_writing_audiences_write(
        self, http: httpx.AsyncClient, segmentation_app: FastAPI, segmentation_settings: SegmentationSettings
    ) -> None:
        body = await create(http)
        one = f"{DEFINITIONS}/{body['id']}"
        reader = mint_token(segmentation_settings, scopes=["audiences:read"])
        async with client_for(segmentation_app, reader) as client:
            assert (await client.get(one)).status_code == 200
            assert (await client.get(DEFINITIONS)).status_code == 200
            assert (
                await client.post(f"{DEFINITIONS}/bulk-get", json={"ids": [{"id": body["id"]}]})
            ).status_code == 207
            assert (await client.post(DEFINITIONS, json=definition(unique("x")))).status_code == 403
            assert (await client.patch(one, json={"description": "x"})).status_code == 403
            assert (await client.delete(one)).status_code == 403
        outsider = mint_token(segmentation_settings, scopes=["profiles:read"])
        async with client_for(segmentation_app, outsider) as client:
            assert (await client.get(one)).status_code == 403
            assert (await client.get(DEFINITIONS)).status_code == 403
        async with client_for(segmentation_app) as anonymous:
            assert (await anonymous.get(DEFINITIONS)).status_code == 401

    async def test_each_sandbox_sees_only_its_own(
        self, http: httpx.AsyncClient, other: httpx.AsyncClient
    ) -> None:
        mine = await create(http)
        one = f"{DEFINITIONS}/{mine['id']}"
        assert (await other.get(one)).status_code == 404
        assert (await other.patch(one, json={"description": "x"})).status_code == 404
        assert (await other.delete(one)).status_code == 404
        assert (
            await other.post(f"{DEFINITIONS}/bulk-get", json={"ids": [{"id": mine["id"]}]})
        ).status_code == 404
        assert mine["id"] not in {
            s["id"] for s in (await other.get(DEFINITIONS, params={"limit": 1000})).json()["segments"]
        }
        theirs = await other.post(DEFINITIONS, json=definition(mine["name"]))
        assert theirs.status_code == 200
        assert theirs.json()["imsOrgId"] == "other"
        crossing = await other.post(DEFINITIONS, json=definition(unique("x"), f'inSegment("{mine["id"]}")'))
        assert crossing.status_code == 400
        assert (await http.get(one)).json() == mine

    async def test_the_sandbox_header_must_match_the_token(self, http: httpx.AsyncClient) -> None:
        response = await http.get(DEFINITIONS, headers={"x-sandbox-name": "other"})
        assert response.status_code == 403
