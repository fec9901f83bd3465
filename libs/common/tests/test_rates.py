"""Specification of the rates shared by a service's processes (``itinera.common.db.rates``),
on the real PostgreSQL: each test has a schema of its own, migrated like a service's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import cast

import asyncpg
import pytest

from itinera.common.db.pool import create_pool
from itinera.common.db.rates import SharedRate
from itinera.common.settings import CommonSettings


@pytest.fixture
async def pools(
    settings: CommonSettings, migrated_schema: str
) -> AsyncIterator[tuple[asyncpg.Pool, asyncpg.Pool]]:
    """Two pools on one schema, as two processes of one service have."""
    first, second = await create_pool(settings, migrated_schema), await create_pool(settings, migrated_schema)
    try:
        yield first, second
    finally:
        await second.close()
        await first.close()


async def test_a_bucket_starts_full_then_says_how_long_until_the_next_token(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    pool, _ = pools
    lease = "SELECT granted, wait_s FROM lease_tokens($1, $2, $3, $4)"
    assert tuple(await pool.fetchrow(lease, "sms", 1.0, 5.0, 3.0)) == (3.0, 0.0)
    assert tuple(await pool.fetchrow(lease, "sms", 1.0, 5.0, 3.0)) == (2.0, 0.0)  # what is left
    granted, wait_s = await pool.fetchrow(lease, "sms", 1.0, 5.0, 3.0)
    assert granted == 0
    assert 0.5 < wait_s <= 1.0  # a token a second, less what came since
    assert tuple(await pool.fetchrow(lease, "email", 1.0, 5.0, 3.0)) == (3.0, 0.0)  # a bucket per key


async def test_two_processes_together_stay_within_the_rate(pools: tuple[asyncpg.Pool, asyncpg.Pool]) -> None:
    """Each of two processes takes 25 tokens of a bucket of 20 a second (bursts of 20).
    Apart, each would be done in a quarter of a second; sharing the bucket, the 50
    cannot be taken faster than the burst plus the rate allow (plus the lot of one token
    each may hold). A slow machine only makes it slower."""
    rate, capacity, each = 20.0, 20.0, 25
    rates = [SharedRate(pool, "push", rate, capacity) for pool in pools]
    assert [r.lot for r in rates] == [1.0, 1.0]

    async def take_all(shared: SharedRate) -> None:
        for _ in range(each):
            await shared.take()

    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(take_all(r) for r in rates)), timeout=60)
    elapsed = time.monotonic() - started

    least = (2 * each - capacity - sum(r.lot for r in rates)) / rate
    assert elapsed >= least


def test_lots_follow_the_rate_within_the_burst() -> None:
    pool = cast(asyncpg.Pool, object())  # no statement is made
    assert SharedRate(pool, "k", 1_000).lot == 50
    assert SharedRate(pool, "k", 1_000, capacity=10).lot == 10
    assert SharedRate(pool, "k", 0.5).lot == 1
    with pytest.raises(ValueError, match="positive"):
        SharedRate(pool, "k", 0)
