"""A consumed batch's look-up of past entries reads the instances it needs and no others,
however many the sandbox holds and whatever the planner's statistics say: taken before
the sandbox had any instance (a new sandbox until the next ANALYZE), or none at all (a
new table). Re-entrance and "entered once" are probes by key. As a join over the
sandbox's instances the look-up had cost 17 ms a batch in the entries benchmark,
returning nothing and growing with every instance; as probes on a table never
analysed, the trigger's probe went through the index of a version's instances and read
every instance of the journey for each entry (1.3 s a batch)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from itinera.common.testing import rows_read
from itinera.journeys.runtime import repository

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STORED = 3_000
LOOKED_UP = 30
JOURNEY = uuid.uuid4()


def profile(n: int) -> uuid.UUID:
    return uuid.UUID(int=n + 1)


async def store_ended_entries(pool: asyncpg.Pool, sandbox: str) -> None:
    """One ended instance of ``JOURNEY`` per profile."""
    await pool.execute(
        """INSERT INTO instances (sandbox, id, journey_id, version, profile_id, status, trigger_id,
                                  entered_at, ended_at)
           SELECT $1, gen_random_uuid(), $2, 1,
                  ('00000000-0000-0000-0000-' || lpad(to_hex(n + 1), 12, '0'))::uuid,
                  'completed', 'event-' || n, $3, $3
           FROM generate_series(0, $4 - 1) AS n""",
        sandbox,
        JOURNEY,
        T0,
        STORED,
    )


async def forget_statistics(pool: asyncpg.Pool) -> None:
    """As if the table had never been analysed."""
    await pool.execute(
        """SELECT pg_clear_relation_stats(current_schema(), 'instances'),
                  pg_clear_attribute_stats(current_schema(), 'instances', a.attname, false)
             FROM pg_attribute a
            WHERE a.attrelid = 'instances'::regclass AND a.attnum > 0 AND NOT a.attisdropped"""
    )


@pytest.mark.parametrize("statistics", ["of another sandbox", "none"])
async def test_looking_up_past_entries_reads_only_the_entries_looked_up(
    pool: asyncpg.Pool, sandbox: str, statistics: str
) -> None:
    await store_ended_entries(pool, f"{sandbox}-before")
    await pool.execute("ANALYZE instances")
    await store_ended_entries(pool, sandbox)
    if statistics == "none":
        await forget_statistics(pool)
    step = STORED // LOOKED_UP
    keys = [(profile(n), JOURNEY, f"event-new-{n}") for n in range(0, STORED, step)]
    keys.append((profile(STORED + 1), JOURNEY, "event-0"))  # a trigger already taken

    async with pool.acquire() as conn, conn.transaction():
        before = await rows_read(conn, ["instances"])
        last, taken = await repository.last_entries(conn, sandbox, keys)
        read = (await rows_read(conn, ["instances"]))["instances"] - before["instances"]

    assert sorted(last) == sorted((p, j) for p, j, _ in keys[:-1])
    assert all(row["status"] == "completed" and row["entered_at"] == T0 for row in last.values())
    assert taken == {(JOURNEY, "event-0")}
    assert read == LOOKED_UP + 1
