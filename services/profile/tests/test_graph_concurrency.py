"""The stored graph does not depend on arrival order or on how records are spread over
concurrent workers: whatever the interleaving, it ends equal to the rules applied to
everything observed."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from itinera.profile.identity import namespaces as ns
from itinera.profile.identity.graph import Link, Node, Seen, anchor, profile_id, resolve
from itinera.profile.identity.rebuild import GraphRebuilder
from itinera.profile.identity.service import IdentityGraph, Observation

T0 = datetime(2026, 1, 1, tzinfo=UTC)
identities = st.builds(
    Node, st.sampled_from(["CRMID", "Email", "Phone", "ECID"]), st.sampled_from(["a", "b", "c", "d", "e"])
)
observations = st.lists(
    st.builds(
        Observation,
        st.lists(identities, min_size=1, max_size=4, unique=True).map(tuple),
        st.integers(0, 1000).map(lambda m: T0 + timedelta(minutes=m)),
    ),
    min_size=1,
    max_size=24,
)


def expected(sandbox: str, seen: list[Observation], limit: int) -> dict[Node, str]:
    """What a single worker applying everything at once must store."""
    nodes: dict[Node, Seen] = {}
    links: dict[Link, datetime] = {}
    for o in seen:
        for n in o.identities:
            s = nodes.get(n)
            nodes[n] = Seen(o.at, o.at) if s is None else Seen(min(s.first, o.at), max(s.last, o.at))
        ids = sorted(set(o.identities))
        for i, x in enumerate(ids):
            for y in ids[i + 1 :]:
                links[Link.of(x, y)] = max(links.get(Link.of(x, y), o.at), o.at)
    rules = ns.rules(list(ns.STANDARD), limit)
    return {
        n: profile_id(sandbox, anchor(c, nodes)) for c in resolve(nodes, links, rules).components for n in c
    }


async def stored(pool: asyncpg.Pool, sandbox: str) -> dict[Node, str]:
    rows = await pool.fetch("SELECT namespace, value, profile_id FROM members WHERE sandbox = $1", sandbox)
    return {Node(r["namespace"], r["value"]): str(r["profile_id"]) for r in rows}


async def observed(
    graph: IdentityGraph, sandbox: str, seen: list[Observation], workers: int, order: object
) -> None:
    """``seen`` shuffled by ``order`` and dealt to ``workers`` concurrent workers, each
    observing two records a transaction, so that their transactions interleave."""
    shuffled = list(seen)
    order.shuffle(shuffled)  # type: ignore[attr-defined]

    async def worker(lane: list[Observation]) -> None:
        for start in range(0, len(lane), 2):
            await graph.observe(sandbox, lane[start : start + 2])

    await asyncio.gather(*(worker(shuffled[i::workers]) for i in range(workers)))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(seen=observations, workers=st.integers(1, 4), order=st.randoms(), limit=st.sampled_from([3, 50]))
async def test_concurrent_workers_in_any_order_reach_the_graph_the_rules_allow(
    profile_app: FastAPI, seen: list[Observation], workers: int, order: object, limit: int
) -> None:
    sandbox = f"t-{uuid.uuid4().hex[:12]}"
    graph = IdentityGraph(profile_app.state.runtime.pool, max_identities=limit)
    await observed(graph, sandbox, seen, workers, order)
    assert await stored(graph.pool, sandbox) == expected(sandbox, seen, limit)


async def untangled(graph: IdentityGraph, sandbox: str) -> None:
    """Resolve noted tangles until none of ``sandbox`` is left (the service's own worker
    may take some meanwhile)."""
    rebuilder = GraphRebuilder(graph, interval_s=60)
    for _ in range(400):
        if await rebuilder.untangle(settle_s=0) is None:
            if not await graph.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM graph_tangles WHERE sandbox = $1)", sandbox
            ):
                return
            await asyncio.sleep(0.05)
    raise AssertionError("tangles still noted")


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(seen=observations, workers=st.integers(1, 4), order=st.randoms(), reach=st.sampled_from([8, 12]))
async def test_tangles_larger_than_the_reach_end_as_the_rules_allow_once_resolved_whole(
    profile_app: FastAPI, seen: list[Observation], workers: int, order: object, reach: int
) -> None:
    # The consumer's resolutions load at most `reach` identities: larger graphs are
    # resolved in part (order-dependent) and noted; resolving the notes settles them.
    sandbox = f"t-{uuid.uuid4().hex[:12]}"
    graph = IdentityGraph(profile_app.state.runtime.pool, max_identities=50, max_reach=reach)
    await observed(graph, sandbox, seen, workers, order)
    await untangled(graph, sandbox)

    assert await stored(graph.pool, sandbox) == expected(sandbox, seen, 50)


async def test_a_tangle_larger_than_the_reach_is_counted_logged_and_resolved_whole(
    profile_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = f"t-{uuid.uuid4().hex[:12]}"
    pool = profile_app.state.runtime.pool
    graph = IdentityGraph(pool, max_identities=50, max_reach=6)
    shared_device = Node("ECID", "kiosk")
    visitors = [Observation((shared_device, Node("Email", f"v{n}@example.com")), T0) for n in range(8)]

    def truncated() -> float:
        return REGISTRY.get_sample_value("itinera_profile_graph_reach_truncated_total") or 0.0

    before = truncated()
    await graph.observe(sandbox, visitors[:4])  # five identities: within the reach
    assert truncated() == before
    with caplog.at_level(logging.WARNING, logger="itinera.profile.identity.service"):
        await graph.observe(sandbox, visitors[4:])  # nine

    assert truncated() == before + 1
    assert any("larger than the reach limit" in r.getMessage() for r in caplog.records)
    noted = await pool.fetch("SELECT namespace, value FROM graph_tangles WHERE sandbox = $1", sandbox)
    assert [(r["namespace"], r["value"]) for r in noted] == [("ECID", "kiosk")]  # where the reach was cut

    await untangled(graph, sandbox)

    members = await stored(pool, sandbox)
    assert len(members) == 9
    assert len(set(members.values())) == 1  # one profile
    assert members == expected(sandbox, visitors, 50)


async def test_a_tangle_waits_to_settle_before_it_is_resolved_whole(profile_app: FastAPI) -> None:
    sandbox = f"t-{uuid.uuid4().hex[:12]}"
    pool = profile_app.state.runtime.pool
    graph = IdentityGraph(pool, max_identities=50, max_reach=3)
    visits = [Observation((Node("ECID", "hub"), Node("Email", f"{n}@x.org")), T0) for n in range(5)]
    await graph.observe(sandbox, visits[:4])
    await graph.observe(sandbox, visits[4:])  # reaches 3 of the 6
    rebuilder = GraphRebuilder(graph, interval_s=60, settle_s=3600)

    await rebuilder.untangle()  # nothing noted an hour ago: this sandbox's note stays

    assert await pool.fetchval("SELECT count(*) FROM graph_tangles WHERE sandbox = $1", sandbox) == 1


async def test_a_noted_identity_deleted_since_is_forgotten(profile_app: FastAPI) -> None:
    sandbox = f"t-{uuid.uuid4().hex[:12]}"
    pool = profile_app.state.runtime.pool
    await pool.execute(
        """INSERT INTO graph_tangles (sandbox, namespace, value, noted_at)
           VALUES ($1, 'ECID', 'gone', now() - interval '1 hour')""",
        sandbox,
    )
    rebuilder = GraphRebuilder(IdentityGraph(pool, max_identities=50), interval_s=60)

    for _ in range(50):  # the oldest notes first: other tests' may come before it
        if not await pool.fetchval("SELECT count(*) FROM graph_tangles WHERE sandbox = $1", sandbox):
            break
        if await rebuilder.untangle(settle_s=0) is None:
            await asyncio.sleep(0.05)  # the service's own worker holds it

    assert await pool.fetchval("SELECT count(*) FROM graph_tangles WHERE sandbox = $1", sandbox) == 0
