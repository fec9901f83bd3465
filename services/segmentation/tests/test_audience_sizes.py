"""Audience sizes are counters kept in the transactions that write memberships: what
``/data/core/ups/audiences`` shows is always what the memberships hold, after streaming
entries and exits (merged and deleted profiles included) and after segment jobs; and
the audiences can be sorted by size. Each test has a sandbox of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from itinera.common.db.migrations import load
from itinera.common.kafka import topics
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.projection import Plan
from itinera.common.testing import StackInfo, eventually
from itinera.segmentation.audiences import repository as audiences
from itinera.segmentation.config import SegmentationSettings
from itinera.segmentation.projection import repository as projection

DEFINITIONS = "/data/core/ups/segment/definitions"
JOBS = "/data/core/ups/segment/jobs"
AUDIENCES = "/data/core/ups/audiences"
FRENCH = 'homeAddress.countryCode = "FR"'
FR = {"homeAddress": {"countryCode": "FR"}}
DE = {"homeAddress": {"countryCode": "DE"}}


@pytest.fixture
async def producer(segmentation_settings: SegmentationSettings) -> AsyncIterator[Producer]:
    started = Producer(segmentation_settings)
    await started.start()
    yield started
    await started.stop()


async def define(api: httpx.AsyncClient, rule: str = FRENCH, *, streaming: bool = False) -> str:
    body: dict[str, Any] = {
        "name": f"audience {uuid.uuid4().hex[:8]}",
        "expression": {"type": "PQL", "format": "pql/text", "value": rule},
        "schema": {"name": "_xdm.context.profile"},
    }
    if streaming:
        body["evaluationInfo"] = {"batch": {"enabled": True}, "continuous": {"enabled": True}}
    response = await api.post(DEFINITIONS, json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def ids(count: int) -> list[str]:
    return sorted(str(uuid.uuid4()) for _ in range(count))


async def evaluate(api: httpx.AsyncClient, *audience_ids: str) -> None:
    """Run a segment job over the audiences to its end."""
    response = await api.post(JOBS, json=[{"segmentId": a} for a in audience_ids])
    assert response.status_code == 200, response.text
    job = response.json()["id"]

    async def succeeded() -> bool:
        status = (await api.get(f"{JOBS}/{job}")).json()["status"]
        assert status in ("NEW", "PROCESSING", "SUCCEEDED"), status
        return bool(status == "SUCCEEDED")

    await eventually(succeeded, timeout_s=60)


async def publish(producer: Producer, sandbox: str, profile: str, **data: Any) -> None:
    """A profile change of the profile service's, for ``profile`` in ``sandbox``."""
    body = {
        "sandbox": sandbox,
        "profileId": profile,
        "changes": [],
        "mergedProfileIds": [],
        "changedAt": datetime.now(UTC).isoformat(),
    } | data
    envelope = Envelope(
        type="com.itinera.profile.change.v1", source="/t", data=body, sandbox=sandbox, key=profile
    )
    await producer.publish(topics.PROFILE_CHANGES.name, [envelope])


def country(code: str) -> list[dict[str, Any]]:
    return [{"path": "homeAddress.countryCode", "old": None, "new": code}]


async def held(pool: asyncpg.Pool, sandbox: str, audience: str) -> dict[str, int]:
    """The audience's memberships by status, counted in the memberships themselves."""
    rows = await pool.fetch(
        """SELECT status, count(*) AS n FROM memberships WHERE sandbox = $1 AND audience_id = $2
            GROUP BY status""",
        sandbox,
        uuid.UUID(audience),
    )
    counted = dict.fromkeys(("realized", "existing", "exited"), 0)
    return counted | {r["status"]: r["n"] for r in rows}


async def shown(api: httpx.AsyncClient, audience: str) -> tuple[int, dict[str, int]]:
    """(size, counts by status) as ``/audiences`` shows them."""
    response = await api.get(f"{AUDIENCES}/{audience}")
    assert response.status_code == 200, response.text
    data = response.json()["metrics"]["data"]
    return data["totalProfiles"], data["totalProfilesByStatus"]


async def assert_counted(api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str, audience: str) -> None:
    """The counters shown are the memberships' count, in the listing as in the audience."""
    real = await held(pool, sandbox, audience)
    size = real["realized"] + real["existing"]
    assert await shown(api, audience) == (size, real)
    listed = (await api.get(AUDIENCES, params={"property": f"audienceId=={audience}"})).json()
    assert listed["children"][0]["metrics"]["data"] == {"totalProfiles": size, "totalProfilesByStatus": real}


async def project(pool: asyncpg.Pool, sandbox: str, profiles: Mapping[str, dict[str, Any]]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await projection.apply(conn, sandbox, Plan(profiles=dict(profiles)))


class TestCounters:
    async def test_sizes_follow_streaming_entries_and_exits_then_a_batch_job(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str, producer: Producer
    ) -> None:
        french = await define(api, streaming=True)
        leaves, stays, merged, deleted = ids(4)
        for profile in (leaves, stays, merged, deleted):
            await publish(producer, sandbox, profile, changes=country("FR"))

        async def held_is(expected: dict[str, int]) -> None:
            async def reached() -> bool:
                return await held(pool, sandbox, french) == expected

            await eventually(reached, timeout_s=30)

        await held_is({"realized": 4, "existing": 0, "exited": 0})
        await assert_counted(api, pool, sandbox, french)

        # One leaves France, one is merged into another, one is deleted: three exits. The
        # survivor of the merge is evaluated again and stays.
        await publish(producer, sandbox, leaves, changes=country("DE"))
        await publish(producer, sandbox, stays, mergedProfileIds=[merged])
        await publish(producer, sandbox, deleted, deleted=True)
        await held_is({"realized": 0, "existing": 1, "exited": 3})
        await assert_counted(api, pool, sandbox, french)
        assert (await shown(api, french))[0] == 1

        # A job over the projection: newcomers enter, the one who left France comes back.
        newcomers = ids(3)
        await project(pool, sandbox, dict.fromkeys(newcomers, FR) | {leaves: FR})
        await evaluate(api, french)
        assert await held(pool, sandbox, french) == {"realized": 4, "existing": 1, "exited": 2}
        await assert_counted(api, pool, sandbox, french)

    async def test_sizes_follow_jobs_that_realize_keep_and_exit_members(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
    ) -> None:
        french = await define(api)
        everyone = ids(6)
        await project(pool, sandbox, dict.fromkeys(everyone, FR))
        await evaluate(api, french)
        assert await shown(api, french) == (6, {"realized": 6, "existing": 0, "exited": 0})

        await project(pool, sandbox, dict.fromkeys(everyone[:2], DE))
        await evaluate(api, french)
        assert await shown(api, french) == (4, {"realized": 0, "existing": 4, "exited": 2})
        await assert_counted(api, pool, sandbox, french)

    async def test_folding_the_counters_changes_no_size(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
    ) -> None:
        french = await define(api)
        everyone = ids(4)
        await project(pool, sandbox, dict.fromkeys(everyone, FR))
        await evaluate(api, french)
        await project(pool, sandbox, {everyone[0]: DE})
        await evaluate(api, french)
        before = await shown(api, french)

        async with pool.acquire() as conn, conn.transaction():
            await audiences.fold_sizes(conn, 1000)
        rows = await pool.fetchval(
            "SELECT count(*) FROM audience_sizes WHERE sandbox = $1 AND audience_id = $2",
            sandbox,
            uuid.UUID(french),
        )
        assert rows == 1
        assert await shown(api, french) == before == (3, {"realized": 0, "existing": 3, "exited": 1})

    async def test_a_deleted_audience_takes_its_counters_with_it(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
    ) -> None:
        french = await define(api)
        await project(pool, sandbox, dict.fromkeys(ids(2), FR))
        await evaluate(api, french)
        assert (await api.delete(f"{DEFINITIONS}/{french}")).status_code == 200
        left = await pool.fetchval(
            "SELECT count(*) FROM audience_sizes WHERE sandbox = $1 AND audience_id = $2",
            sandbox,
            uuid.UUID(french),
        )
        assert left == 0


class TestSortedBySize:
    async def test_audiences_are_sorted_by_their_size(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
    ) -> None:
        french = await define(api, FRENCH)
        german = await define(api, 'homeAddress.countryCode = "DE"')
        nobody = await define(api, 'homeAddress.countryCode = "IT"')
        await project(pool, sandbox, dict.fromkeys(ids(3), FR) | dict.fromkeys(ids(2), DE))
        await evaluate(api, french, german, nobody)

        async def order(sort: str, **params: Any) -> list[str]:
            response = await api.get(AUDIENCES, params={"sort": sort, **params})
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["_page"]["sortField"], body["_page"]["sort"]) == tuple(sort.split(":"))
            return [child["id"] for child in body["children"]]

        assert await order("totalProfiles:desc") == [french, german, nobody]
        assert await order("metrics.data.totalProfiles:asc") == [nobody, german, french]
        assert await order("totalProfiles:desc", limit=1, start=1) == [german]
        response = await api.get(AUDIENCES, params={"sort": "metrics.data.totalProfilesByStatus:desc"})
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] == "/query/sort"


class TestBackfill:
    async def test_the_memberships_recorded_before_the_counters_are_counted_by_the_migration(
        self, infrastructure: StackInfo
    ) -> None:
        schema = f"backfill_{uuid.uuid4().hex[:12]}"
        migrations = load("itinera.segmentation.migrations", schema)
        counters = next(m for m in migrations if m.name == "audience_sizes")
        first, second = uuid.uuid4(), uuid.uuid4()
        conn = await asyncpg.connect(infrastructure.database_url, server_settings={"search_path": schema})
        try:
            await conn.execute(f"CREATE SCHEMA {schema}")
            for migration in migrations:
                if migration.version < counters.version:
                    await conn.execute(migration.sql)
            for audience in (first, second):
                await conn.execute(
                    """INSERT INTO segment_definitions (sandbox, id, name, expression, batch_enabled,
                           continuous_enabled, synchronous_enabled, streaming, time_dependent)
                       VALUES ('s', $1, $2, 'true', true, false, false, true, false)""",
                    audience,
                    str(audience),
                )
            statuses = {first: ["realized", "realized", "existing", "exited"], second: ["exited"]}
            for audience, listed in statuses.items():
                await conn.execute(
                    """INSERT INTO memberships (sandbox, audience_id, profile_id, status)
                       SELECT 's', $1, gen_random_uuid(), unnest($2::text[])""",
                    audience,
                    listed,
                )

            await conn.execute(counters.sql)

            async def counted() -> dict[uuid.UUID, tuple[int, int, int]]:
                rows = await conn.fetch(
                    """SELECT audience_id, sum(realized) AS r, sum(existing) AS e, sum(exited) AS x
                         FROM audience_sizes GROUP BY audience_id"""
                )
                return {r["audience_id"]: (r["r"], r["e"], r["x"]) for r in rows}

            assert await counted() == {first: (2, 1, 1), second: (0, 0, 1)}
            # From then on, every write counts.
            await conn.execute("UPDATE memberships SET status = 'exited' WHERE status = 'realized'")
            assert await counted() == {first: (0, 1, 3), second: (0, 0, 1)}
        finally:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
            await conn.close()
