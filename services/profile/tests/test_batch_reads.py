"""A consumed batch reads the rows it needs and no others, however many the sandbox holds
and whatever the planner's statistics say (here: taken before the sandbox had any row,
as they are for a new sandbox until the next ANALYZE): its look-ups are probes by key.
Read as a join over the sandbox's rows, or through an index that only narrows to the
sandbox, they had cost 9 ms a batch at 20,000 profiles and grew with every profile."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
from fastapi import FastAPI

from itinera.common.testing import rows_read
from itinera.profile.identity import repository
from itinera.profile.identity.graph import Node
from itinera.profile.identity.service import IdentityGraph, Observation
from itinera.profile.profiles.repository import fragments_of_profiles, store_fragments

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STORED = 3_000
TOUCHED = 30


async def seeded(pool: asyncpg.Pool, sandbox: str) -> IdentityGraph:
    """A graph of ``STORED`` lone identities, stored after statistics were taken that
    know another sandbox's as many, and not this one's."""
    graph = IdentityGraph(pool)
    lone = [Observation((Node("ECID", f"{n:05}"),), T0) for n in range(STORED)]
    await graph.observe(f"{sandbox}-before", lone)
    await pool.execute("ANALYZE identities, members, evictions, links, fragments")
    await graph.observe(sandbox, lone)
    return graph


def difference(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {table: after[table] - before[table] for table in after}


async def test_resolving_a_batch_reads_only_the_identities_it_reaches(
    profile_app: FastAPI, sandbox: str
) -> None:
    pool = profile_app.state.runtime.pool
    await seeded(pool, sandbox)
    batch = [Node("ECID", f"{n:05}") for n in range(0, STORED, STORED // TOUCHED)]

    # Links and evictions: none here, and a table of a few rows may rightly be scanned.
    tables = ["identities", "members"]
    async with pool.acquire() as conn, conn.transaction():
        before = await rows_read(conn, tables)
        reach = await repository.reachable(conn, sandbox, batch, limit=10_000)
        read = difference(before, await rows_read(conn, tables))

    assert set(reach.nodes) == set(batch)
    assert read == {"identities": TOUCHED, "members": TOUCHED}


async def test_refreshing_views_reads_only_the_profiles_refreshed(profile_app: FastAPI, sandbox: str) -> None:
    pool = profile_app.state.runtime.pool
    await seeded(pool, sandbox)
    nodes = [Node("ECID", f"{n:05}") for n in range(STORED)]
    async with pool.acquire() as conn:
        await store_fragments(
            conn, sandbox, [("crm", node, {"n": node.value}, T0, node.value) for node in nodes]
        )
        members = await conn.fetch(
            "SELECT DISTINCT profile_id::text FROM members WHERE sandbox = $1", sandbox
        )
    refreshed = sorted(r[0] for r in members)[:TOUCHED]

    tables = ["members", "fragments"]
    async with pool.acquire() as conn, conn.transaction():
        before = await rows_read(conn, tables)
        fragments = await fragments_of_profiles(conn, sandbox, refreshed)
        read = difference(before, await rows_read(conn, tables))

    assert {pid: len(found) for pid, found in fragments.items()} == dict.fromkeys(refreshed, 1)
    assert read == {"members": TOUCHED, "fragments": TOUCHED}
