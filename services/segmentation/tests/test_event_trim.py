"""The projection keeps the events its rules can read: within the longest look-back of
its sandbox's rules that read events, never less than the minimum, and all of them when
a rule reads events without a look-back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from itinera.common.projection import Event, Plan
from itinera.segmentation.projection import repository as projection

DEFINITIONS = "/data/core/ups/segment/definitions"
NOW = datetime.now(UTC)
MINIMUM = timedelta(days=30)
AGES = (1, 10, 40, 100)
"""Days before now of each profile's events."""


async def rule(api: httpx.AsyncClient, pql: str) -> None:
    body: dict[str, Any] = {
        "name": f"audience {uuid.uuid4().hex[:8]}",
        "expression": {"type": "PQL", "format": "pql/text", "value": pql},
        "schema": {"name": "_xdm.context.profile"},
    }
    response = await api.post(DEFINITIONS, json=body)
    assert response.status_code == 200, response.text


async def with_events(pool: asyncpg.Pool, sandbox: str) -> str:
    """A profile with an event at each of :data:`AGES`; its id."""
    profile = str(uuid.uuid4())
    events = []
    for days in AGES:
        at = NOW - timedelta(days=days)
        events.append(
            Event(profile, f"{profile}-{days}", at, {"_id": f"{profile}-{days}", "timestamp": at.isoformat()})
        )
    async with pool.acquire() as conn, conn.transaction():
        await projection.apply(conn, sandbox, Plan(profiles={profile: {}}, events=events))
    return profile


async def ages_kept(pool: asyncpg.Pool, sandbox: str) -> list[int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT occurred_at FROM profile_events WHERE sandbox = $1 ORDER BY occurred_at DESC", sandbox
        )
    return [round((NOW - r["occurred_at"]) / timedelta(days=1)) for r in rows]


async def trim(pool: asyncpg.Pool, batch: int = 100_000) -> None:
    async with pool.acquire() as conn, conn.transaction():
        while await projection.trim_events(conn, NOW, MINIMUM, batch) == batch:
            pass


class TestTrimming:
    async def test_without_rules_on_events_a_sandbox_keeps_the_minimum(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
    ) -> None:
        await rule(api, 'homeAddress.countryCode = "FR"')
        await with_events(pool, sandbox)
        await trim(pool)
        assert await ages_kept(pool, sandbox) == [1, 10]

    async def test_the_longest_look_back_in_use_is_kept_when_longer_than_the_minimum(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
    ) -> None:
        await rule(api, "exists E from xEvent where E.timestamp occurs <= 7 days before now")
        await rule(api, "exists E from xEvent where E.timestamp occurs <= 60 days before now")
        await with_events(pool, sandbox)
        await trim(pool)
        assert await ages_kept(pool, sandbox) == [1, 10, 40]

    async def test_a_rule_reading_events_without_a_look_back_keeps_them_all(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
    ) -> None:
        await rule(api, "exists E from xEvent where E.timestamp occurs <= 7 days before now")
        await rule(api, 'xEvent[eventType = "commerce.purchases"].count() >= 2')
        await with_events(pool, sandbox)
        await trim(pool, batch=1)
        assert await ages_kept(pool, sandbox) == list(AGES)
