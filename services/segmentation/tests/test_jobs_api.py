"""Segment jobs (AEP's batch evaluation, /data/core/ups/segment/jobs): every profile of
the sandbox's projection is evaluated against the job's audiences, chunk by chunk;
entries and exits are recorded and announced on itinera.audiences.v1 with evaluation
"batch". Each test has a sandbox of its own, so a job sees only the test's profiles.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
from fastapi import FastAPI

from itinera.common.auth import mint_token
from itinera.common.kafka import topics
from itinera.common.kafka.consumer import Record
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.projection import Event, Plan
from itinera.common.testing import StackInfo, client_for, eventually, topic_reader
from itinera.segmentation.config import SegmentationSettings
from itinera.segmentation.jobs.service import CHUNK
from itinera.segmentation.projection import repository as projection

DEFINITIONS = "/data/core/ups/segment/definitions"
JOBS = "/data/core/ups/segment/jobs"
FRENCH = 'homeAddress.countryCode = "FR"'
FINISHED = ("SUCCEEDED", "FAILED", "CANCELLED")


async def audience(
    api: httpx.AsyncClient, rule: str, *, streaming: bool = False, name: str | None = None
) -> str:
    """A new audience; evaluated in batch only unless ``streaming``."""
    body: dict[str, Any] = {
        "name": name or f"audience {uuid.uuid4().hex[:8]}",
        "expression": {"type": "PQL", "format": "pql/text", "value": rule},
        "schema": {"name": "_xdm.context.profile"},
    }
    if streaming:
        body["evaluationInfo"] = {"batch": {"enabled": False}, "continuous": {"enabled": True}}
    response = await api.post(DEFINITIONS, json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def project(
    pool: asyncpg.Pool, sandbox: str, profiles: Mapping[str, dict[str, Any]], events: Sequence[Event] = ()
) -> None:
    """Put profiles (and their events) in the projection, as the projection's consumer does."""
    async with pool.acquire() as conn, conn.transaction():
        await projection.apply(conn, sandbox, Plan(profiles=dict(profiles), events=list(events)))


def people(count: int) -> dict[str, dict[str, Any]]:
    """``count`` profiles in id order, every other one French (the first is)."""
    ids = sorted(str(uuid.uuid4()) for _ in range(count))
    return {p: {"homeAddress": {"countryCode": "FR" if i % 2 == 0 else "DE"}} for i, p in enumerate(ids)}


async def job_when(
    api: httpx.AsyncClient, job_id: str, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The job once ``condition`` holds of it."""
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        response = await api.get(f"{JOBS}/{job_id}")
        assert response.status_code == 200, response.text
        seen.clear()
        seen.update(response.json())
        return condition(seen)

    await eventually(reached, timeout_s=60)
    return seen


async def start(api: httpx.AsyncClient, *audiences: str) -> str:
    response = await api.post(JOBS, json=[{"segmentId": a} for a in audiences])
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "NEW"
    return str(response.json()["id"])


async def finished(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    return await job_when(api, job_id, lambda job: job["status"] in FINISHED)


async def run(api: httpx.AsyncClient, *audiences: str) -> dict[str, Any]:
    """A job over ``audiences``, once finished."""
    return await finished(api, await start(api, *audiences))


def done(job: dict[str, Any]) -> int:
    return int(job["itinera"]["progress"]["profilesDone"])


def announced(records: list[Record], audience: str) -> dict[str, list[tuple[str, str]]]:
    """(status, evaluation) of each announcement of ``audience``, by profile."""
    found: dict[str, list[tuple[str, str]]] = {}
    for record in records:
        data = orjson.loads(record.value or b"{}")
        if data["audienceId"] == audience:
            assert record.key == data["profileId"]
            found.setdefault(data["profileId"], []).append((data["status"], data["evaluation"]))
    return found


async def members(api: httpx.AsyncClient, audience: str, status: str = "members") -> list[str]:
    """The audience's members (or its profiles of one status), every page."""
    found: list[str] = []
    after: str | None = None
    while True:
        params: dict[str, str | int] = {"status": status, "limit": 1000}
        if after is not None:
            params["after"] = after
        page = (await api.get(f"/v1/audiences/{audience}/members", params=params)).json()
        found += [c["profileId"] for c in page["children"]]
        after = page["_page"]["next"]
        if after is None:
            return found


@dataclass
class Paused:
    audience: str
    job: dict[str, Any]
    """The job as it stood after its first chunk."""
    conn: asyncpg.Connection
    """The transaction that holds the second chunk's first profile."""


@asynccontextmanager
async def paused_after_first_chunk(
    api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str, count: int
) -> AsyncIterator[Paused]:
    """A job over French profiles among ``count`` (every other one), paused after its
    first chunk: the second chunk's first profile is held, as the projection holds one
    while it applies a change to it, and the job waits for it until the block ends."""
    french = await audience(api, FRENCH)
    profiles = people(count)
    await project(pool, sandbox, profiles)
    async with pool.acquire() as conn, conn.transaction():
        await projection.attributes_of(conn, sandbox, [list(profiles)[CHUNK]])
        job_id = await start(api, french)
        yield Paused(french, await job_when(api, job_id, lambda job: done(job) == CHUNK), conn)


class TestBatchEvaluation:
    async def test_a_job_realizes_the_qualifying_profiles_and_announces_them(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str, infrastructure: StackInfo
    ) -> None:
        french = await audience(api, FRENCH)
        profiles = people(3)
        first, second, third = profiles
        await project(pool, sandbox, profiles)
        async with topic_reader(infrastructure, topics.AUDIENCES.name) as reader:
            job = await run(api, french)
            records = await reader.wait_for(lambda r: len(announced(r, french)) == 2, timeout_s=30)
        assert announced(records, french) == {
            first: [("realized", "batch")],
            third: [("realized", "batch")],
        }
        assert job["status"] == "SUCCEEDED"
        assert job["segments"][0]["segment"]["expression"]["value"] == FRENCH
        assert job["metrics"]["totalProfiles"] == 3
        assert job["metrics"]["segmentedProfileCounter"] == {french: 2}
        assert job["metrics"]["segmentedProfileByStatusCounter"] == {
            french: {"realized": 2, "existing": 0, "exited": 0}
        }
        assert await members(api, french) == [first, third]
        assert second not in await members(api, french, "exited")

    async def test_a_second_job_keeps_members_existing_without_announcing_them_again(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str, infrastructure: StackInfo
    ) -> None:
        french = await audience(api, FRENCH)
        stays, leaves = sorted(str(uuid.uuid4()) for _ in range(2))
        fr = {"homeAddress": {"countryCode": "FR"}}
        await project(pool, sandbox, {stays: fr, leaves: fr})
        async with topic_reader(infrastructure, topics.AUDIENCES.name) as reader:
            await run(api, french)
            again = await run(api, french)
            assert again["metrics"]["segmentedProfileByStatusCounter"] == {
                french: {"realized": 0, "existing": 2, "exited": 0}
            }
            assert await members(api, french, "existing") == [stays, leaves]

            await project(pool, sandbox, {leaves: {"homeAddress": {"countryCode": "DE"}}})
            third = await run(api, french)
            # Announcements of a profile keep their order: had the second job announced
            # anything, it would stand before the exit.
            records = await reader.wait_for(lambda r: len(announced(r, french).get(leaves, [])) == 2)
        assert announced(records, french) == {
            stays: [("realized", "batch")],
            leaves: [("realized", "batch"), ("exited", "batch")],
        }
        assert third["metrics"]["segmentedProfileCounter"] == {french: 1}
        assert third["metrics"]["segmentedProfileByStatusCounter"] == {
            french: {"realized": 0, "existing": 1, "exited": 1}
        }
        assert await members(api, french, "exited") == [leaves]

    async def test_an_audience_evaluated_only_in_batch_gets_members_only_through_jobs(
        self,
        api: httpx.AsyncClient,
        sandbox: str,
        segmentation_settings: SegmentationSettings,
        infrastructure: StackInfo,
    ) -> None:
        rule = 'loyalty.tier = "gold"'
        streaming = await audience(api, rule, streaming=True)
        batch_only = await audience(api, rule)
        profile = str(uuid.uuid4())
        data = {
            "sandbox": sandbox,
            "profileId": profile,
            "changes": [{"path": "loyalty.tier", "old": None, "new": "gold"}],
            "mergedProfileIds": [],
            "changedAt": datetime.now(UTC).isoformat(),
        }
        change = Envelope(
            type="com.itinera.profile.change.v1", source="/t", data=data, sandbox=sandbox, key=profile
        )
        producer = Producer(segmentation_settings)
        await producer.start()
        try:
            async with topic_reader(infrastructure, topics.AUDIENCES.name) as reader:
                await producer.publish(topics.PROFILE_CHANGES.name, [change])
                await reader.wait_for(lambda r: profile in announced(r, streaming), timeout_s=30)
                assert await members(api, batch_only) == []

                await run(api, batch_only)
                records = await reader.wait_for(lambda r: profile in announced(r, batch_only))
        finally:
            await producer.stop()
        assert announced(records, streaming) == {profile: [("realized", "streaming")]}
        assert announced(records, batch_only) == {profile: [("realized", "batch")]}
        assert await members(api, batch_only) == [profile]

    async def test_a_rule_on_events_reads_the_events_within_its_look_back(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
    ) -> None:
        recent_buyer = await audience(
            api, 'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 7 days before now]'
        )
        recent, old = sorted(str(uuid.uuid4()) for _ in range(2))
        now = datetime.now(UTC)

        def purchase(profile: str, days_ago: int) -> Event:
            at = now - timedelta(days=days_ago)
            body = {"_id": f"{profile}-p", "timestamp": at.isoformat(), "eventType": "commerce.purchases"}
            return Event(profile, body["_id"], at, body)

        await project(pool, sandbox, {recent: {}, old: {}}, [purchase(recent, 2), purchase(old, 30)])
        job = await run(api, recent_buyer)
        assert job["metrics"]["segmentedProfileCounter"] == {recent_buyer: 1}
        assert await members(api, recent_buyer) == [recent]

    async def test_a_look_back_longer_than_the_calendar_reads_every_event(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
    ) -> None:
        ever = await audience(api, "xEvent[timestamp occurs <= 5000 years before now].count() > 0")
        profile = str(uuid.uuid4())
        at = datetime(2001, 1, 1, tzinfo=UTC)
        body = {"_id": f"{profile}-p", "timestamp": at.isoformat(), "eventType": "commerce.purchases"}
        await project(pool, sandbox, {profile: {}}, [Event(profile, body["_id"], at, body)])
        job = await run(api, ever)
        assert job["status"] == "SUCCEEDED", job
        assert await members(api, ever) == [profile]

    async def test_an_audience_named_by_another_of_the_job_is_evaluated_first(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
    ) -> None:
        french = await audience(api, FRENCH)
        french_women = await audience(api, f'inSegment("{french}") and person.gender = "female"')
        profile = str(uuid.uuid4())
        await project(
            pool, sandbox, {profile: {"homeAddress": {"countryCode": "FR"}, "person": {"gender": "female"}}}
        )
        job = await run(api, french_women, french)
        assert job["metrics"]["segmentedProfileCounter"] == {french_women: 1, french: 1}
        assert await members(api, french_women) == [profile]

    async def test_a_streaming_audience_naming_one_of_the_job_follows_it(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
    ) -> None:
        french = await audience(api, FRENCH)
        follows = await audience(api, f'inSegment("{french}")', streaming=True)
        follows_batch_only = await audience(api, f'inSegment("{french}")')
        profile = str(uuid.uuid4())
        await project(pool, sandbox, {profile: {"homeAddress": {"countryCode": "FR"}}})
        job = await run(api, french)
        assert [s["segmentId"] for s in job["segments"]] == [french, follows]
        assert job["metrics"]["segmentedProfileCounter"] == {french: 1, follows: 1}
        assert await members(api, follows) == [profile]
        assert follows_batch_only not in job["metrics"]["segmentedProfileCounter"]


class TestJobRequests:
    async def test_a_job_names_existing_segment_definitions_of_the_sandbox(
        self, api: httpx.AsyncClient, http: httpx.AsyncClient
    ) -> None:
        french = await audience(api, FRENCH)
        elsewhere = await audience(http, FRENCH)  # in sandbox "prod"
        response = await api.post(
            JOBS,
            json=[
                {"segmentId": french},
                {"segmentId": str(uuid.uuid4())},
                {"segmentId": "not-an-id"},
                {"segmentId": elsewhere},
            ],
        )
        assert response.status_code == 400, response.text
        assert [e["path"] for e in response.json()["errors"]] == [
            "/1/segmentId",
            "/2/segmentId",
            "/3/segmentId",
        ]
        assert (await api.post(JOBS, json=[])).status_code == 400
        assert (await api.post(JOBS, json=[{"segmentId": french}] * 101)).status_code == 400
        assert (await api.post(JOBS, json={"segmentId": french})).status_code == 422
        assert (await api.post(JOBS, json=[{"segment": french}])).status_code == 422

    async def test_jobs_are_listed_newest_first_and_filtered_by_status_and_segment(
        self, api: httpx.AsyncClient
    ) -> None:
        french = await audience(api, FRENCH)
        other = await audience(api, 'homeAddress.countryCode = "DE"')
        first = await run(api, french)
        second = await run(api, other, french)
        listed = (await api.get(JOBS)).json()
        assert [j["id"] for j in listed["children"]] == [second["id"], first["id"]]
        assert listed["_page"] == {"totalCount": 2, "pageSize": 2}
        one = (await api.get(JOBS, params={"limit": 1, "sort": "creationTime:asc"})).json()
        assert [j["id"] for j in one["children"]] == [first["id"]]
        rest = (await api.get(one["_links"]["next"]["href"])).json()
        assert [j["id"] for j in rest["children"]] == [second["id"]]
        evaluating_other = await api.get(JOBS, params={"property": f"segments~segmentId=={other}"})
        assert [j["id"] for j in evaluating_other.json()["children"]] == [second["id"]]
        assert (await api.get(JOBS, params={"status": "PROCESSING"})).json()["children"] == []
        assert (await api.get(JOBS, params={"property": "name==x"})).status_code == 422
        found = (await api.get(f"{JOBS}/{first['id']}")).json()
        assert found["_links"]["checkStatus"] == {"href": f"{JOBS}/{first['id']}", "method": "GET"}
        assert (await api.get(f"{JOBS}/{uuid.uuid4()}")).status_code == 404
        assert (await api.delete(f"{JOBS}/{first['id']}")).status_code == 409

    async def test_several_jobs_are_got_by_id_each_or_its_error(
        self, api: httpx.AsyncClient, http: httpx.AsyncClient
    ) -> None:
        french = await audience(api, FRENCH)
        first, second = await run(api, french), await run(api, french)
        elsewhere = await run(http, await audience(http, FRENCH))  # in sandbox "prod"
        missing = str(uuid.uuid4())
        asked = [first["id"], missing, second["id"], "not-an-id", elsewhere["id"]]

        response = await api.post(f"{JOBS}/bulk-get", json={"ids": [{"id": i} for i in asked]})
        assert response.status_code == 207, response.text
        results = response.json()["results"]
        assert list(results) == asked
        assert results[first["id"]] == (await api.get(f"{JOBS}/{first['id']}")).json()
        assert results[second["id"]]["status"] == "SUCCEEDED"
        for unknown in (missing, "not-an-id", elsewhere["id"]):
            assert results[unknown]["errors"] == {
                "404": [{"code": 404, "message": f"no segment job {unknown!r} in this sandbox"}]
            }
            assert "requestId" in results[unknown]

    async def test_a_bulk_get_names_1_to_100_jobs_and_finds_one_at_least(
        self, api: httpx.AsyncClient
    ) -> None:
        async def refused(body: Any, status: int) -> list[str]:
            response = await api.post(f"{JOBS}/bulk-get", json=body)
            assert response.status_code == status, response.text
            assert response.headers["content-type"] == "application/problem+json"
            return [e["path"] for e in response.json().get("errors", [])]

        assert await refused({"ids": []}, 400) == ["/ids"]
        assert await refused({"ids": [{"id": str(uuid.uuid4())} for _ in range(101)]}, 400) == ["/ids"]
        assert await refused({"ids": [{"id": str(uuid.uuid4())}]}, 404) == []
        assert await refused({"ids": [{"jobId": "x"}]}, 422) == ["/body/ids/0/id", "/body/ids/0/jobId"]
        assert await refused([{"id": "x"}], 422) == ["/body"]

    async def test_jobs_are_listed_by_the_name_of_the_snapshot_they_take(
        self, api: httpx.AsyncClient
    ) -> None:
        name = f"inUS {uuid.uuid4().hex[:8]}"
        in_us = await audience(api, 'workAddress.country = "US"', name=name)
        other = await audience(api, FRENCH)
        first = await run(api, in_us)
        await run(api, other)
        assert first["itinera"]["snapshots"] == [{"segmentId": in_us, "name": name}]

        async def listed(**params: Any) -> list[str]:
            response = await api.get(JOBS, params=params)
            assert response.status_code == 200, response.text
            return [job["id"] for job in response.json()["children"]]

        assert await listed(**{"snapshot.name": name}) == [first["id"]]
        assert await listed(**{"snapshot.name": name.upper()}) == [first["id"]]
        # A snapshot keeps the name the audience had when the job was created.
        renamed = f"inUS renamed {uuid.uuid4().hex[:8]}"
        patched = await api.patch(f"{DEFINITIONS}/{in_us}", json={"name": renamed})
        assert patched.status_code == 200, patched.text
        second = await run(api, in_us, other)
        assert await listed(**{"snapshot.name": name}) == [first["id"]]
        assert await listed(**{"snapshot.name": renamed}) == [second["id"]]
        assert await listed(**{"snapshot.name": "nobody"}) == []

        # The next page keeps the filter.
        third = await run(api, in_us)
        page = (await api.get(JOBS, params={"snapshot.name": renamed, "limit": 1})).json()
        assert [job["id"] for job in page["children"]] == [third["id"]]
        assert page["_page"] == {"totalCount": 2, "pageSize": 1}
        rest = (await api.get(page["_links"]["next"]["href"])).json()
        assert [job["id"] for job in rest["children"]] == [second["id"]]

        # Jobs here wait as NEW until a worker takes them: none is ever QUEUED.
        assert await listed(status="QUEUED") == []
        for bad in ({"snapshot.name": ""}, {"status": "WAITING"}):
            response = await api.get(JOBS, params=bad)
            assert response.status_code == 422, bad
            assert response.headers["content-type"] == "application/problem+json"

    async def test_reading_needs_audiences_read_and_creating_or_cancelling_audiences_write(
        self,
        api: httpx.AsyncClient,
        segmentation_app: FastAPI,
        segmentation_settings: SegmentationSettings,
        sandbox: str,
    ) -> None:
        french = await audience(api, FRENCH)
        job = await run(api, french)
        token = mint_token(segmentation_settings, scopes=["audiences:read"], sandbox=sandbox)
        async with client_for(segmentation_app, token) as reader:
            assert (await reader.get(JOBS)).status_code == 200
            assert (await reader.get(f"{JOBS}/{job['id']}")).status_code == 200
            bulk = await reader.post(f"{JOBS}/bulk-get", json={"ids": [{"id": job["id"]}]})
            assert bulk.status_code == 207
            assert (await reader.post(JOBS, json=[{"segmentId": french}])).status_code == 403
            assert (await reader.delete(f"{JOBS}/{job['id']}")).status_code == 403


class TestChunks:
    async def test_progress_and_metrics_are_reported_as_chunks_commit(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
    ) -> None:
        async with paused_after_first_chunk(api, pool, sandbox, CHUNK + 10) as paused:
            french, halfway = paused.audience, paused.job
        assert halfway["status"] == "PROCESSING"
        assert halfway["itinera"]["progress"] == {"profilesDone": CHUNK, "profilesTotal": CHUNK + 10}
        assert halfway["metrics"]["segmentedProfileCounter"] == {french: CHUNK // 2}
        assert "endTimeInMs" not in halfway["metrics"]["totalTime"]

        job = await finished(api, halfway["id"])
        assert job["status"] == "SUCCEEDED"
        assert job["itinera"]["progress"] == {"profilesDone": CHUNK + 10, "profilesTotal": CHUNK + 10}
        metrics = job["metrics"]
        assert metrics["totalProfiles"] == CHUNK + 10
        assert metrics["segmentedProfileByStatusCounter"] == {
            french: {"realized": CHUNK // 2 + 5, "existing": 0, "exited": 0}
        }
        total, segmentation = metrics["totalTime"], metrics["profileSegmentationTime"]
        assert total["startTimeInMs"] == job["creationTime"]
        assert total["startTimeInMs"] <= segmentation["startTimeInMs"] <= segmentation["endTimeInMs"]
        assert segmentation["endTimeInMs"] == total["endTimeInMs"]
        assert total["totalTimeInMs"] == total["endTimeInMs"] - total["startTimeInMs"]

    async def test_a_cancelled_job_stops_before_its_next_chunk(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
    ) -> None:
        async with paused_after_first_chunk(api, pool, sandbox, 2 * CHUNK + 10) as paused:
            job_id = paused.job["id"]
            # A job that no worker has taken yet (the only one is busy) ends at once.
            queued = await start(api, paused.audience)
            assert (await api.delete(f"{JOBS}/{queued}")).status_code == 204
            assert (await api.get(f"{JOBS}/{queued}")).json()["status"] == "CANCELLED"
            # The job in progress ends when its chunk is done.
            assert (await api.delete(f"{JOBS}/{job_id}")).status_code == 204
            assert (await api.get(f"{JOBS}/{job_id}")).json()["status"] == "CANCELLING"
        job = await finished(api, job_id)
        assert job["status"] == "CANCELLED"
        assert done(job) == 2 * CHUNK  # the chunk in progress, not the next one
        assert len(await members(api, paused.audience)) == CHUNK
        assert (await api.delete(f"{JOBS}/{job_id}")).status_code == 204

    async def test_a_job_resumes_from_its_last_committed_chunk_after_a_failure(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
    ) -> None:
        async with paused_after_first_chunk(api, pool, sandbox, CHUNK + 10) as paused:
            waiting: list[int] = []

            async def worker_waits() -> bool:
                waiting[:] = await paused.conn.fetchval(
                    """SELECT coalesce(array_agg(pid), '{}') FROM pg_stat_activity
                       WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"""
                )
                return len(waiting) == 1

            await eventually(worker_waits)
            # The second chunk fails: the server cancels the statement that waits.
            assert await paused.conn.fetchval("SELECT pg_cancel_backend($1)", waiting[0])
        job = await finished(api, paused.job["id"])
        assert job["status"] == "SUCCEEDED"
        # Each profile was evaluated once: the first chunk was not evaluated again.
        assert job["metrics"]["totalProfiles"] == CHUNK + 10
        assert job["metrics"]["segmentedProfileByStatusCounter"] == {
            paused.audience: {"realized": CHUNK // 2 + 5, "existing": 0, "exited": 0}
        }
        assert len(await members(api, paused.audience, "realized")) == CHUNK // 2 + 5

    async def test_a_job_fails_with_the_reason_when_one_of_its_audiences_is_deleted(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
    ) -> None:
        async with paused_after_first_chunk(api, pool, sandbox, CHUNK + 10) as paused:
            assert (await api.delete(f"{DEFINITIONS}/{paused.audience}")).status_code == 200
        job = await finished(api, paused.job["id"])
        assert job["status"] == "FAILED"
        assert paused.audience in job["errors"][0]["msg"]
        assert done(job) == CHUNK
