"""AEP's audiences (``/data/core/ups/audiences``), previews (``/preview``) and estimates
(``/estimate``). Each test has a sandbox of its own, so sizes and counts are exact.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.projection import Event, Plan
from itinera.common.testing import client_for, eventually
from itinera.segmentation.audiences import repository as audience_repository
from itinera.segmentation.audiences import service
from itinera.segmentation.audiences.schemas import PreviewIn
from itinera.segmentation.audiences.service import Limits
from itinera.segmentation.config import SegmentationSettings
from itinera.segmentation.projection import repository as projection

DEFINITIONS = "/data/core/ups/segment/definitions"
JOBS = "/data/core/ups/segment/jobs"
AUDIENCES = "/data/core/ups/audiences"
PREVIEW = "/data/core/ups/preview"
ESTIMATE = "/data/core/ups/estimate"
FRENCH = 'homeAddress.countryCode = "FR"'
FR = {"homeAddress": {"countryCode": "FR"}}
DE = {"homeAddress": {"countryCode": "DE"}}


@dataclass
class Tenant:
    """A sandbox of the test's own: a client with every scope in it, and its projection."""

    sandbox: str
    api: httpx.AsyncClient
    pool: asyncpg.Pool

    async def project(self, profiles: Mapping[str, dict[str, Any]], events: Sequence[Event] = ()) -> None:
        """Put profiles (and their events) in the projection, as the projection's consumer does."""
        async with self.pool.acquire() as conn, conn.transaction():
            await projection.apply(conn, self.sandbox, Plan(profiles=dict(profiles), events=list(events)))


@pytest.fixture
async def tenant(
    segmentation_app: FastAPI, segmentation_settings: SegmentationSettings
) -> AsyncIterator[Tenant]:
    sandbox = f"aud-{uuid.uuid4().hex[:12]}"
    token = mint_token(segmentation_settings, scopes=ALL_SCOPES, sandbox=sandbox)
    async with client_for(segmentation_app, token) as client:
        yield Tenant(sandbox, client, segmentation_app.state.runtime.pool)


@pytest.fixture
def api(tenant: Tenant) -> httpx.AsyncClient:
    return tenant.api


async def define(
    api: httpx.AsyncClient, rule: str = FRENCH, *, name: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A new audience (a segment definition); its definition as created."""
    body = {
        "name": name or f"audience {uuid.uuid4().hex[:8]}",
        "expression": {"type": "PQL", "format": "pql/text", "value": rule},
        "schema": {"name": "_xdm.context.profile"},
        **extra,
    }
    response = await api.post(DEFINITIONS, json=body)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def ids(count: int) -> list[str]:
    return sorted(str(uuid.uuid4()) for _ in range(count))


async def evaluate(api: httpx.AsyncClient, *audiences: str) -> None:
    """Run a segment job over ``audiences`` to its end, so that they have members."""
    response = await api.post(JOBS, json=[{"segmentId": a} for a in audiences])
    assert response.status_code == 200, response.text
    job = response.json()["id"]

    async def succeeded() -> bool:
        status = (await api.get(f"{JOBS}/{job}")).json()["status"]
        assert status in ("NEW", "PROCESSING", "SUCCEEDED"), status
        return bool(status == "SUCCEEDED")

    await eventually(succeeded, timeout_s=60)


def sizes(listing: dict[str, Any]) -> dict[str, tuple[int, dict[str, int]]]:
    """(size, counts by status) of each listed audience, by id."""
    return {
        child["id"]: (
            child["metrics"]["data"]["totalProfiles"],
            child["metrics"]["data"]["totalProfilesByStatus"],
        )
        for child in listing["children"]
    }


async def start_preview(api: httpx.AsyncClient, rule: str, **extra: Any) -> str:
    """A new preview of ``rule``, as answered: RUNNING, for a worker to evaluate."""
    response = await api.post(
        PREVIEW,
        json={
            "predicateExpression": rule,
            "predicateType": "pql/text",
            "predicateModel": "_xdm.context.profile",
        }
        | extra,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["state"] == body["previewQueryStatus"] == "RUNNING"
    assert response.headers["X-Location"] == f"{PREVIEW}/{body['previewId']}"
    return str(body["previewId"])


async def evaluated(api: httpx.AsyncClient, preview_id: str) -> None:
    """Wait until the preview is RESULT_READY."""

    async def ready() -> bool:
        response = await api.get(f"{PREVIEW}/{preview_id}")
        assert response.status_code == 200, response.text
        state = response.json()["state"]
        assert state in ("RUNNING", "RESULT_READY"), state
        return bool(state == "RESULT_READY")

    await eventually(ready, timeout_s=30)


async def preview(api: httpx.AsyncClient, rule: str, **extra: Any) -> str:
    """A preview of ``rule``, once evaluated."""
    preview_id = await start_preview(api, rule, **extra)
    await evaluated(api, preview_id)
    return preview_id


async def qualifying(api: httpx.AsyncClient, preview_id: str, limit: int = 1000) -> list[str]:
    """The profile ids of every page of a preview's results, once evaluated."""
    await evaluated(api, preview_id)
    found: list[str] = []
    offset = "0"
    while True:
        response = await api.get(f"{PREVIEW}/{preview_id}", params={"offset": offset, "limit": limit})
        assert response.status_code == 200, response.text
        page = response.json()
        found += [result["objectId"] for result in page["results"]]
        if "next" not in page["_page"]:
            return found
        offset = page["_page"]["next"]


class TestAudiences:
    async def test_every_definition_is_listed_as_an_audience_with_its_members_counted(
        self, api: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        french = await define(api, FRENCH, description="People in France")
        gold = (await define(api, 'loyalty.tier = "gold"'))["id"]
        first, second, third, fourth = ids(4)
        await tenant.project({first: FR, second: FR, third: DE, fourth: DE})
        await evaluate(api, french["id"], gold)

        listing = (await api.get(AUDIENCES)).json()
        assert sizes(listing) == {
            french["id"]: (2, {"realized": 2, "existing": 0, "exited": 0}),
            gold: (0, {"realized": 0, "existing": 0, "exited": 0}),
        }
        assert listing["_page"]["totalCount"] == 2
        shown = next(child for child in listing["children"] if child["id"] == french["id"])
        assert shown["audienceId"] == french["id"]
        assert shown["name"] == french["name"]
        assert shown["description"] == "People in France"
        assert shown["expression"] == {"type": "PQL", "format": "pql/text", "value": FRENCH}
        assert shown["evaluationInfo"] == french["evaluationInfo"]
        assert shown["originName"] == "REAL_TIME_CUSTOMER_PROFILE"
        assert shown["lifecycleState"] == "published"
        assert shown["namespace"] == "AEPSegments"
        assert shown["type"] == "SegmentDefinition"
        assert shown["creationTime"] == french["creationTime"]
        assert shown["createEpoch"] == french["creationTime"] // 1000
        assert shown["updateEpoch"] == french["updateEpoch"]

        await tenant.project({second: DE})
        await evaluate(api, french["id"])
        again = (await api.get(AUDIENCES)).json()
        assert sizes(again)[french["id"]] == (1, {"realized": 0, "existing": 1, "exited": 1})

    async def test_the_list_is_paged_sorted_and_filtered_as_aep_documents(
        self, api: httpx.AsyncClient
    ) -> None:
        alpha = await define(api, name="Alpha buyers", description="Bought ONLINE")
        beta = await define(api, name="Beta buyers", description="bought in store")
        gamma = await define(
            api,
            'loyalty.tier = "gold"',
            name="Gamma members",
            evaluationInfo={"batch": {"enabled": False}, "continuous": {"enabled": True}},
        )

        async def names(**params: Any) -> list[str]:
            response = await api.get(AUDIENCES, params=params)
            assert response.status_code == 200, response.text
            return [child["name"] for child in response.json()["children"]]

        first = (await api.get(AUDIENCES, params={"sort": "name:asc", "limit": 2})).json()
        assert [child["name"] for child in first["children"]] == ["Alpha buyers", "Beta buyers"]
        assert first["_page"] | {"totalPages": 2, "next": 2} == first["_page"]
        assert (first["_page"]["sortField"], first["_page"]["sort"]) == ("name", "asc")
        rest = (await api.get(first["_links"]["next"]["href"])).json()
        assert [child["name"] for child in rest["children"]] == ["Gamma members"]
        assert "next" not in rest["_page"]
        assert rest["_links"] == {}

        assert await names(sort="name:desc") == ["Gamma members", "Beta buyers", "Alpha buyers"]
        assert await names(name="BUYERS", sort="name:asc") == ["Alpha buyers", "Beta buyers"]
        assert await names(description="online") == ["Alpha buyers"]
        assert await names(property="name==Beta buyers") == ["Beta buyers"]
        assert await names(property="name==beta buyers") == []
        assert await names(property=f"audienceId=={gamma['id']}") == ["Gamma members"]
        assert await names(property=f"id=={alpha['id']}") == ["Alpha buyers"]
        assert await names(property="audienceId==not-an-id") == []
        assert await names(property="evaluationInfo.continuous.enabled==true") == ["Gamma members"]
        assert len(await names(property="originName==REAL_TIME_CUSTOMER_PROFILE")) == 3
        assert await names(property="originName==AUDIENCE_ORCHESTRATION") == []
        assert len(await names(entityType="_xdm.context.profile")) == 3
        assert await names(entityType="_xdm.context.account") == []
        assert beta["id"] in [c["id"] for c in (await api.get(AUDIENCES)).json()["children"]]

        for bad in ({"property": "color==blue"}, {"property": "name"}, {"sort": "size:desc"}, {"limit": 0}):
            response = await api.get(AUDIENCES, params=bad)
            assert response.status_code == 422, bad
            assert response.headers["content-type"] == "application/problem+json"

    async def test_one_audience_and_several_are_got_by_id(self, api: httpx.AsyncClient) -> None:
        french = await define(api)
        missing = str(uuid.uuid4())

        one = await api.get(f"{AUDIENCES}/{french['id']}")
        assert one.status_code == 200, one.text
        assert one.json()["audienceId"] == french["id"]
        assert one.json()["metrics"]["data"]["totalProfiles"] == 0
        for unknown in (missing, "not-an-id"):
            response = await api.get(f"{AUDIENCES}/{unknown}")
            assert response.status_code == 404
            assert response.headers["content-type"] == "application/problem+json"

        both = await api.post(f"{AUDIENCES}/bulk-get", json={"ids": [{"id": french["id"]}, {"id": missing}]})
        assert both.status_code == 207, both.text
        results = both.json()["results"]
        assert results[french["id"]]["originName"] == "REAL_TIME_CUSTOMER_PROFILE"
        assert results[missing]["errors"]["404"][0]["code"] == 404
        none = await api.post(f"{AUDIENCES}/bulk-get", json={"ids": [{"id": missing}]})
        assert none.status_code == 404
        assert (await api.post(f"{AUDIENCES}/bulk-get", json={"ids": []})).status_code == 400

    async def test_an_audience_shows_the_audiences_it_names_and_those_naming_it(
        self, api: httpx.AsyncClient
    ) -> None:
        french = await define(api)
        french_gold = await define(api, f'inSegment("{french["id"]}") and loyalty.tier = "gold"')

        named = (await api.get(f"{AUDIENCES}/{french['id']}")).json()
        naming = (await api.get(f"{AUDIENCES}/{french_gold['id']}")).json()
        assert (named["dependents"], named["dependencies"]) == ([], [french_gold["id"]])
        assert (naming["dependents"], naming["dependencies"]) == ([french["id"]], [])

    async def test_audiences_of_another_sandbox_are_not_seen(
        self, api: httpx.AsyncClient, http: httpx.AsyncClient
    ) -> None:
        french = await define(api)
        assert (await http.get(f"{AUDIENCES}/{french['id']}")).status_code == 404
        listed = (await http.get(AUDIENCES, params={"property": f"audienceId=={french['id']}"})).json()
        assert listed["children"] == []


class TestPreviews:
    async def test_a_preview_returns_the_qualifying_profiles_and_an_estimate_that_matches(
        self, api: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        profiles = dict(zip(ids(5), [FR, DE, FR, DE, FR], strict=True))
        await tenant.project(profiles)
        french = [p for p, attributes in profiles.items() if attributes == FR]

        preview_id = await preview(api, FRENCH, graphType="none")

        page = (await api.get(f"{PREVIEW}/{preview_id}")).json()
        assert page["state"] == "RESULT_READY"
        assert [result["objectId"] for result in page["results"]] == french
        assert page["results"][0]["entity"] == FR
        assert page["results"][0]["_href"] == (
            f"/data/core/ups/access/entities?schema.name=_xdm.context.profile&entityId={french[0]}"
        )
        assert page["_page"] == {"offset": "0", "limit": 1000, "pageSize": 3, "totalCount": 3}

        estimate = (await api.get(f"{ESTIMATE}/{preview_id}")).json()
        assert (
            estimate
            | {
                "estimatedSize": 3,
                "profilesMatchedSoFar": 3,
                "profilesReadSoFar": 5,
                "numRowsToRead": 5,
                "totalRows": 5,
                "standardError": 0,
                "state": "RESULT_READY",
                "confidenceInterval": "95%",
                "_links": {"preview": f"{PREVIEW}/{preview_id}"},
            }
            == estimate
        )
        assert estimate["itinera"]["sampled"] is False
        assert estimate["itinera"]["interval"] == {"low": 3, "high": 3}

    async def test_the_estimate_counts_the_qualifying_profiles_by_the_namespaces_of_their_identities(
        self, api: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        def person(country: str, **identity_map: list[dict[str, str]]) -> dict[str, Any]:
            return {"homeAddress": {"countryCode": country}, "identityMap": identity_map}

        email, device, loyalty = [{"id": "x@example.com"}], [{"id": "1" * 38}], [{"id": "L-1"}]
        await tenant.project(
            dict(
                zip(
                    ids(5),
                    [
                        person("FR", Email=email, ECID=device),
                        person("FR", email=email),  # a standard code in another case
                        person("FR", ECID=device, loyaltyId=loyalty, Phone=[]),  # no phone: an empty list
                        person("DE", Email=email, ECID=device),  # does not qualify
                        FR,  # no identityMap
                    ],
                    strict=True,
                )
            )
        )

        preview_id = await preview(api, FRENCH)

        estimate = (await api.get(f"{ESTIMATE}/{preview_id}")).json()
        assert estimate["profilesMatchedSoFar"] == 4
        assert estimate["estimatedNamespaceDistribution"] == [
            {"namespaceId": "4", "namespaceCode": "ECID", "profilesMatchedSoFar": 2},
            {"namespaceId": "6", "namespaceCode": "Email", "profilesMatchedSoFar": 2},
            {"namespaceId": "loyaltyId", "namespaceCode": "loyaltyId", "profilesMatchedSoFar": 1},
        ]

    async def test_the_results_are_paged_by_offset(self, api: httpx.AsyncClient, tenant: Tenant) -> None:
        everyone = ids(5)
        await tenant.project(dict.fromkeys(everyone, FR))
        preview_id = await preview(api, FRENCH)

        first = (await api.get(f"{PREVIEW}/{preview_id}", params={"limit": 2})).json()
        assert first["_page"] == {"offset": "0", "limit": 2, "pageSize": 2, "totalCount": 5, "next": "2"}
        assert first["link"] == f"{PREVIEW}/{preview_id}?offset=2&limit=2"
        assert await qualifying(api, preview_id, limit=2) == everyone
        past = (await api.get(f"{PREVIEW}/{preview_id}", params={"offset": 10})).json()
        assert (past["results"], past["_page"]["pageSize"]) == ([], 0)

    async def test_a_rule_reads_the_profiles_events_and_memberships(
        self, api: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        buyer, browser, french_buyer = ids(3)
        now = datetime.now(UTC)

        def purchase(profile: str, n: int, event_type: str = "commerce.purchases") -> Event:
            at = now - timedelta(hours=n)
            body = {"_id": f"{profile}-{n}", "timestamp": at.isoformat(), "eventType": event_type}
            return Event(profile, body["_id"], at, body)

        events = [
            purchase(buyer, 1),
            purchase(buyer, 2),
            purchase(browser, 1, "web.visit"),
            purchase(french_buyer, 3),
            purchase(french_buyer, 30 * 24),  # outside the look-back below
        ]
        await tenant.project({buyer: DE, browser: FR, french_buyer: FR}, events)
        french = (await define(api))["id"]
        await evaluate(api, french)

        recent = 'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 7 days before now]'
        assert await qualifying(api, await preview(api, recent)) == [buyer, french_buyer]
        twice = 'xEvent[eventType = "commerce.purchases"].count() >= 2'
        assert await qualifying(api, await preview(api, twice)) == [buyer, french_buyer]
        assert await qualifying(api, await preview(api, f'inSegment("{french}") and {recent}')) == [
            french_buyer
        ]

    async def test_a_rule_that_is_not_valid_pql_is_a_400_with_every_problem_and_its_position(
        self, api: httpx.AsyncClient
    ) -> None:
        response = await api.post(PREVIEW, json={"predicateExpression": "foo(1) and bar(2)"})
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert [e["path"] for e in body["errors"]] == ["/predicateExpression", "/predicateExpression"]
        assert [(p["line"], p["column"], p["offset"], p["endOffset"]) for p in body["problems"]] == [
            (1, 1, 0, 6),
            (1, 12, 11, 17),
        ]

        cut_short = (
            await api.post(PREVIEW, json={"predicateExpression": "homeAddress.countryCode ="})
        ).json()
        assert [(p["line"], p["column"]) for p in cut_short["problems"]] == [(1, 26)]

    async def test_what_cannot_be_previewed_is_a_400_at_its_path(self, api: httpx.AsyncClient) -> None:
        async def paths(**body: Any) -> list[str]:
            response = await api.post(PREVIEW, json={"predicateExpression": FRENCH} | body)
            assert response.status_code == 400, response.text
            return [e["path"] for e in response.json()["errors"]]

        assert await paths(predicateType="pql/json") == ["/predicateType"]
        assert await paths(predicateModel="_xdm.context.account") == ["/predicateModel"]
        assert await paths(predicateExpression="x" * 5000) == ["/predicateExpression"]
        assert await paths(predicateExpression=f'inSegment("{uuid.uuid4()}")') == ["/predicateExpression"]
        response = await api.post(PREVIEW, json={"predicateExpression": FRENCH, "graphType": "other"})
        assert response.status_code == 422

    async def test_unknown_previews_and_estimates_are_404(
        self, api: httpx.AsyncClient, http: httpx.AsyncClient
    ) -> None:
        unknown = str(uuid.uuid4())
        for response in (
            await api.get(f"{PREVIEW}/{unknown}"),
            await api.get(f"{ESTIMATE}/{unknown}"),
            await api.delete(f"{PREVIEW}/{unknown}"),
            await api.get(f"{PREVIEW}/not-an-id"),
            await api.get(f"{ESTIMATE}/not-an-id"),
        ):
            assert response.status_code == 404
            assert response.headers["content-type"] == "application/problem+json"
        mine = await preview(api, FRENCH)
        assert (await http.get(f"{PREVIEW}/{mine}")).status_code == 404
        assert (await http.delete(f"{PREVIEW}/{mine}")).status_code == 404
        assert (await api.get(f"{PREVIEW}/{mine}")).status_code == 200

    async def test_a_deleted_preview_and_its_estimate_are_gone(self, api: httpx.AsyncClient) -> None:
        preview_id = await preview(api, FRENCH)
        deleted = await api.delete(f"{PREVIEW}/{preview_id}")
        assert deleted.status_code == 200
        assert deleted.json()["status"] is True
        assert (await api.get(f"{PREVIEW}/{preview_id}")).status_code == 404
        assert (await api.get(f"{ESTIMATE}/{preview_id}")).status_code == 404
        assert (await api.delete(f"{PREVIEW}/{preview_id}")).status_code == 404

    async def test_reading_needs_audiences_read_and_previewing_audiences_write(
        self, segmentation_app: FastAPI, segmentation_settings: SegmentationSettings, tenant: Tenant
    ) -> None:
        token = mint_token(segmentation_settings, scopes=["audiences:read"], sandbox=tenant.sandbox)
        async with client_for(segmentation_app, token) as reader:
            assert (await reader.get(AUDIENCES)).status_code == 200
            assert (await reader.post(PREVIEW, json={"predicateExpression": FRENCH})).status_code == 403
            assert (await reader.delete(f"{PREVIEW}/{uuid.uuid4()}")).status_code == 403
        async with client_for(segmentation_app) as anonymous:
            assert (await anonymous.get(AUDIENCES)).status_code == 401


@asynccontextmanager
async def events_held(tenant: Tenant) -> AsyncIterator[asyncpg.Connection]:
    """A transaction holding the table of events: an evaluation that reads events waits
    for it to end."""
    async with tenant.pool.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE profile_events IN ACCESS EXCLUSIVE MODE")
        yield conn


async def waited_for(held: asyncpg.Connection) -> None:
    """Wait until a session waits for ``held`` (its transaction)."""

    async def waiting() -> bool:
        found: int = await held.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
        )
        return found > 0

    await eventually(waiting)


class TestPreviewsInTheBackground:
    """A preview is evaluated by a worker, not in the request that creates it. While the
    evaluation cannot finish (the events it reads are held), the preview is RUNNING."""

    RULE = 'xEvent[eventType = "commerce.purchases"].count() >= 1'

    @staticmethod
    async def buyer_and_browser(tenant: Tenant) -> tuple[str, str]:
        buyer, browser = ids(2)
        at = datetime.now(UTC)
        bought = {"_id": f"{buyer}-1", "timestamp": at.isoformat(), "eventType": "commerce.purchases"}
        await tenant.project({buyer: FR, browser: FR}, [Event(buyer, bought["_id"], at, bought)])
        return buyer, browser

    async def test_creating_answers_running_and_the_results_come_when_evaluated(
        self, api: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        buyer, _ = await self.buyer_and_browser(tenant)
        async with events_held(tenant) as held:
            preview_id = await start_preview(api, self.RULE)
            await waited_for(held)  # the evaluation has begun, and cannot end
            page = (await api.get(f"{PREVIEW}/{preview_id}")).json()
            assert page == {
                "state": "RUNNING",
                "results": [],
                "_page": {"offset": "0", "limit": 1000, "pageSize": 0, "totalCount": 0},
            }
            estimate = (await api.get(f"{ESTIMATE}/{preview_id}")).json()
            assert (estimate["state"], estimate["estimatedSize"], estimate["profilesReadSoFar"]) == (
                "RUNNING",
                0,
                0,
            )
            assert list(estimate["itinera"]) == ["expiresAt"]

        assert await qualifying(api, preview_id) == [buyer]
        estimate = (await api.get(f"{ESTIMATE}/{preview_id}")).json()
        assert (estimate["state"], estimate["estimatedSize"], estimate["totalRows"]) == ("RESULT_READY", 1, 2)
        assert estimate["itinera"]["evaluatedAt"] < estimate["itinera"]["expiresAt"]

    async def test_a_running_estimate_shows_how_far_the_evaluation_has_got(
        self, api: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        await self.buyer_and_browser(tenant)
        async with events_held(tenant) as held:
            preview_id = await start_preview(api, self.RULE)
            await waited_for(held)
            # What the worker records after each chunk, on a connection of its own.
            await audience_repository.record_progress(
                tenant.pool, tenant.sandbox, uuid.UUID(preview_id), 2, 1, 1
            )

            estimate = (await api.get(f"{ESTIMATE}/{preview_id}")).json()
            assert estimate["state"] == "RUNNING"
            assert (
                estimate["profilesReadSoFar"],
                estimate["profilesMatchedSoFar"],
                estimate["totalRows"],
            ) == (
                1,
                1,
                2,
            )
            assert estimate["estimatedSize"] == 2  # so far, one in one

        await evaluated(api, preview_id)
        estimate = (await api.get(f"{ESTIMATE}/{preview_id}")).json()
        assert (estimate["profilesReadSoFar"], estimate["estimatedSize"]) == (2, 1)
        left = await tenant.pool.fetchval(
            "SELECT count(*) FROM preview_progress WHERE sandbox = $1", tenant.sandbox
        )
        assert left == 0  # the worker's progress goes with its evaluation

    async def test_the_evaluation_reports_its_progress_after_each_chunk(self, tenant: Tenant) -> None:
        french, german = ids(3), ids(2)
        await tenant.project(
            {**dict.fromkeys(french, FR), **{g: {"homeAddress": {"countryCode": "DE"}} for g in german}}
        )
        heard: list[tuple[int, int, int]] = []

        async def progress(total: int, read: int, matched: int) -> None:
            heard.append((total, read, matched))

        preview = {"sandbox": tenant.sandbox, "id": uuid.uuid4(), "expression": FRENCH, "max_profiles": 100}
        async with tenant.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            kept = await service.evaluate_preview(conn, preview, 100, progress, chunk=2)

        assert not kept  # no such preview row: nothing stored
        assert [(total, read) for total, read, _ in heard] == [(5, 2), (5, 4), (5, 5)]
        assert heard[-1][2] == 3
        assert [m for _, _, m in heard] == sorted(m for _, _, m in heard)

    async def test_a_preview_deleted_while_it_is_evaluated_keeps_nothing(
        self, api: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        await self.buyer_and_browser(tenant)
        async with events_held(tenant) as held:
            cancelled = await start_preview(api, self.RULE)
            await waited_for(held)
            # The evaluation holds no lock on the preview: deleting it does not wait.
            deleted = await api.delete(f"{PREVIEW}/{cancelled}")
            assert deleted.status_code == 200, deleted.text
            assert (await api.get(f"{PREVIEW}/{cancelled}")).status_code == 404
        # The service's one worker takes previews in turn: once the next one is
        # evaluated, the deleted one's evaluation has ended.
        await preview(api, FRENCH)
        assert (await api.get(f"{PREVIEW}/{cancelled}")).status_code == 404
        kept = await tenant.pool.fetchval(
            "SELECT count(*) FROM preview_profiles WHERE sandbox = $1 AND preview_id = $2",
            tenant.sandbox,
            uuid.UUID(cancelled),
        )
        assert kept == 0

    async def test_a_preview_that_cannot_be_evaluated_fails_with_the_reason(
        self, api: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        # Rules are checked when previews are created: this one is written straight into
        # the table, as one kept from before a change of the grammar would be.
        broken = uuid.uuid4()
        await tenant.pool.execute(
            """INSERT INTO previews (sandbox, id, state, expression, predicate_model, max_profiles,
                                     expires_at)
               VALUES ($1, $2, 'RUNNING', 'homeAddress.countryCode = ', '_xdm.context.profile', 10,
                       now() + interval '1 hour')""",
            tenant.sandbox,
            broken,
        )

        async def failed() -> bool:
            state = (await api.get(f"{PREVIEW}/{broken}")).json()["state"]
            assert state in ("RUNNING", "FAILED"), state
            return bool(state == "FAILED")

        await eventually(failed)
        estimate = (await api.get(f"{ESTIMATE}/{broken}")).json()
        assert estimate["state"] == "FAILED"
        assert estimate["error"]["description"].startswith("PqlError")
        assert (await api.get(f"{PREVIEW}/{broken}")).json()["results"] == []


class TestKeptAndSampled:
    """Through the service, with limits other than the running service's settings."""

    @staticmethod
    async def create(tenant: Tenant, rule: str, limits: Limits) -> str:
        async with tenant.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            body = PreviewIn(predicateExpression=rule)
            created = await service.create_preview(conn, tenant.sandbox, body, limits)
        return str(created["previewId"])

    @staticmethod
    def limits(segmentation_settings: SegmentationSettings, **changes: Any) -> Limits:
        return Limits.of(segmentation_settings.model_copy(update=changes))

    async def test_a_preview_past_its_expiry_is_404(
        self, api: httpx.AsyncClient, tenant: Tenant, segmentation_settings: SegmentationSettings
    ) -> None:
        expired = await self.create(
            tenant, FRENCH, self.limits(segmentation_settings, segmentation_preview_ttl_s=-1.0)
        )
        assert (await api.get(f"{PREVIEW}/{expired}")).status_code == 404
        assert (await api.get(f"{ESTIMATE}/{expired}")).status_code == 404
        assert (await api.delete(f"{PREVIEW}/{expired}")).status_code == 404

    async def test_beyond_the_bound_a_stable_sample_is_evaluated_and_the_estimate_extrapolated(
        self, api: httpx.AsyncClient, tenant: Tenant, segmentation_settings: SegmentationSettings
    ) -> None:
        everyone = ids(10)
        await tenant.project({p: FR if i % 2 == 0 else DE for i, p in enumerate(everyone)})
        bounded = self.limits(segmentation_settings, segmentation_preview_max_profiles=4)

        sample = await qualifying(api, await self.create(tenant, "true", bounded))
        assert len(sample) == 4
        assert set(sample) <= set(everyone)
        assert await qualifying(api, await self.create(tenant, "true", bounded)) == sample

        french = await self.create(tenant, FRENCH, bounded)
        matched = await qualifying(api, french)
        assert set(matched) <= set(sample)
        estimate = (await api.get(f"{ESTIMATE}/{french}")).json()
        assert estimate["profilesReadSoFar"] == estimate["numRowsToRead"] == 4
        assert estimate["profilesMatchedSoFar"] == len(matched)
        assert estimate["totalRows"] == 10
        assert estimate["estimatedSize"] == round(len(matched) * 10 / 4)
        assert estimate["itinera"]["sampled"] is True
        interval = estimate["itinera"]["interval"]
        assert (
            len(matched)
            <= interval["low"]
            <= estimate["estimatedSize"]
            <= interval["high"]
            <= 10 - (4 - len(matched))
        )


class TestEstimateArithmetic:
    def test_every_profile_read_gives_the_exact_count(self) -> None:
        assert service.estimate(total=10, read=10, matched=4) == service.Estimate(4, 0, 4, 4)
        assert service.estimate(total=0, read=0, matched=0) == service.Estimate(0, 0, 0, 0)

    def test_a_sample_is_extrapolated_with_its_error_and_interval(self) -> None:
        found = service.estimate(total=1_000_000, read=100_000, matched=25_000)
        assert found.size == 250_000
        # sqrt(0.25 * 0.75 / 100000 * 900000 / 999999) * 1000000
        assert found.standard_error == 1299
        assert found.low < 250_000 - 2_400
        assert 250_000 + 2_400 < found.high
        assert found.high - found.low < 2 * 1.96 * 1_299 + 10

    def test_a_sample_where_none_qualifies_still_has_an_interval_above_zero(self) -> None:
        found = service.estimate(total=1_000, read=100, matched=0)
        assert (found.size, found.standard_error, found.low) == (0, 0, 0)
        assert 0 < found.high < 100
