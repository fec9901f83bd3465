"""Applying observations to the identity graph, safely under concurrency.

One call takes the identities and links of a batch of records, stores them, finds the
part of the graph they touch (everything reachable through stored links), resolves
it with :func:`~itinera.profile.identity.graph.resolve`, and rewrites that part's
derived state. It runs in a SERIALIZABLE transaction and is retried when PostgreSQL
reports a conflict with a concurrent worker touching the same part of the graph: the
outcome is the one a single worker applying everything would reach, whatever the
order and interleaving (a property test checks it).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg
from prometheus_client import Counter

from itinera.common.db.outbox import enqueue
from itinera.common.kafka import topics
from itinera.common.kafka.envelope import Envelope
from itinera.profile.identity import namespaces as ns
from itinera.profile.identity import repository
from itinera.profile.identity.graph import Link, Node, Seen, anchor, profile_id, resolve

MAX_REACH = 10_000
"""The most identities a resolution in the consumer loads; a larger tangle is resolved in
part there and whole in the background (see :meth:`IdentityGraph.resolve_tangle`)."""
MAX_TANGLE = 1_000_000
"""The most identities the background resolution of one tangle loads."""
RETRIES = 20
CONFLICTS = Counter(
    "itinera_profile_graph_conflicts",
    "Graph transactions run again after a serialization conflict or deadlock",
)
TRUNCATED = Counter(
    "itinera_profile_graph_reach_truncated",
    "Resolutions cut short by the reach limit (a tangle of links larger than it, such as one "
    "device shared by thousands): resolved in part, and noted to be resolved whole in the background",
)
log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Observation:
    """The identities one record carries, and when (the record's own time)."""

    identities: tuple[Node, ...]
    at: datetime


@dataclass
class Outcome:
    profiles: dict[Node, str] = field(default_factory=dict)
    merged: dict[str, str] = field(default_factory=dict)
    """Profile ids that stopped existing -> the id they were merged into."""
    changed: set[str] = field(default_factory=set)
    """Live profiles whose identities changed (new ones included): their views are stale."""


class IdentityGraph:
    def __init__(
        self,
        pool: asyncpg.Pool,
        max_identities: int = 50,
        max_reach: int = MAX_REACH,
        max_tangle: int = MAX_TANGLE,
    ) -> None:
        self.pool = pool
        self.max_identities = max_identities
        self.max_reach = max_reach
        self.max_tangle = max_tangle

    async def observe(
        self,
        sandbox: str,
        observations: Sequence[Observation],
        then: Callable[[asyncpg.Connection, Outcome], Awaitable[None]] | None = None,
        known: Sequence[ns.Namespace] | None = None,
    ) -> Outcome:
        """Apply ``observations`` in one transaction, retried on serialization conflicts.
        ``then`` runs in the same transaction with the outcome (the profile store's
        writes), so the graph and what depends on it commit together or not at all."""

        async def work(conn: asyncpg.Connection) -> Outcome:
            outcome = await self.apply(conn, sandbox, observations, known)
            if then is not None:
                await then(conn, outcome)
            return outcome

        return await self.serializable(work)

    async def serializable(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``work`` in a SERIALIZABLE transaction, again from the start after a
        serialization conflict or deadlock with a concurrent worker."""
        for attempt in range(RETRIES):
            try:
                async with self.pool.acquire() as conn, conn.transaction(isolation="serializable"):
                    return await work(conn)
            except (asyncpg.SerializationError, asyncpg.DeadlockDetectedError):
                CONFLICTS.inc()
                if attempt == RETRIES - 1:
                    raise
                await asyncio.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 6)))
        raise AssertionError("unreachable")

    async def apply(
        self,
        conn: asyncpg.Connection,
        sandbox: str,
        observations: Sequence[Observation],
        known: Sequence[ns.Namespace] | None = None,
    ) -> Outcome:
        """The work of :meth:`observe`, inside the caller's (serializable) transaction.
        ``known``: the sandbox's namespaces, when the caller has just read them."""
        nodes: dict[Node, Seen] = {}
        links: dict[Link, datetime] = {}
        for observation in observations:
            ids = sorted(set(observation.identities))
            for node in ids:
                seen = nodes.get(node)
                nodes[node] = (
                    Seen(observation.at, observation.at)
                    if seen is None
                    else Seen(min(seen.first, observation.at), max(seen.last, observation.at))
                )
            for i, x in enumerate(ids):
                for y in ids[i + 1 :]:
                    link = Link.of(x, y)
                    links[link] = max(links.get(link, observation.at), observation.at)
        if not nodes:
            return Outcome()
        await repository.observe(conn, sandbox, nodes, links)
        return await self.resolve_around(conn, sandbox, nodes, known)

    async def resolve_around(
        self,
        conn: asyncpg.Connection,
        sandbox: str,
        start: Iterable[Node],
        known: Sequence[ns.Namespace] | None = None,
    ) -> Outcome:
        """Resolve the part of the stored graph ``start`` reaches under the rules as they
        are now, and bring its derived state (members, decisions, evictions, merges) to
        what they say. Observing calls it for what a batch touched; a namespace whose
        graph settings changed has its graphs resolved again through it.

        At most ``max_reach`` identities are loaded. A tangle larger than that is resolved
        in part, which depends on the order records came in; the identities where the
        reach was cut are noted, so that :meth:`resolve_tangle` resolves the whole of it
        later and the graph ends as the rules say whatever the order."""
        nodes = set(start)
        reach = await repository.reachable(conn, sandbox, nodes, self.max_reach)
        if reach.cut:
            TRUNCATED.inc()
            log.warning(
                "identity graph tangle larger than the reach limit resolved in part, noted to resolve whole",
                extra={
                    "sandbox": sandbox,
                    "reach_limit": self.max_reach,
                    "namespaces": sorted({n.namespace for n in reach.cut}),
                },
            )
            await repository.note_tangle(conn, sandbox, reach.cut)
        return await self._settle(conn, sandbox, nodes, reach, known)

    async def resolve_tangle(
        self,
        conn: asyncpg.Connection,
        sandbox: str,
        seed: Node,
        known: Sequence[ns.Namespace] | None = None,
    ) -> tuple[Outcome, int]:
        """Resolve the whole tangle holding ``seed`` (up to ``max_tangle`` identities) and
        forget the notes of every identity in it: the outcome, and how many identities
        it held."""
        reach = await repository.reachable(conn, sandbox, [seed], self.max_tangle)
        if reach.cut:
            log.error(
                "identity graph tangle larger than the tangle limit resolved in part",
                extra={"sandbox": sandbox, "tangle_limit": self.max_tangle, "namespace": seed.namespace},
            )
        # The seed too: an identity deleted since it was noted reaches nothing.
        await repository.forget_tangles(conn, sandbox, {seed, *reach.nodes})
        return await self._settle(conn, sandbox, {seed}, reach, known), len(reach.nodes)

    async def _settle(
        self,
        conn: asyncpg.Connection,
        sandbox: str,
        nodes: set[Node],
        reach: repository.Reach,
        known: Sequence[ns.Namespace] | None,
    ) -> Outcome:
        """Apply the rules to ``reach`` and write what changed; the outcome for ``nodes``."""
        rules = ns.rules(known if known is not None else await ns.all_of(conn, sandbox), self.max_identities)
        resolution = resolve(reach.nodes, reach.links, rules)
        before = reach.members
        after: dict[Node, str] = {}
        for component in resolution.components:
            pid = profile_id(sandbox, anchor(component, reach.nodes))
            after.update(dict.fromkeys(component, pid))
        decisions = dict.fromkeys(resolution.refused, "refused")
        decisions.update(
            {
                link: "evicted"
                for link in reach.links
                if link.a in resolution.evicted or link.b in resolution.evicted
            }
        )
        await repository.rewrite(conn, sandbox, reach, after, decisions, resolution.evicted)
        merged = _merges(before, after)
        changed = {
            pid
            for node in reach.nodes
            if before.get(node) != after.get(node)
            for pid in (before.get(node), after.get(node))
            if pid is not None
        }
        await repository.record_merges(conn, sandbox, merged, changed & set(after.values()))
        if merged:
            await enqueue(conn, topics.IDENTITY_MERGES.name, _merge_events(sandbox, merged))
        return Outcome({n: after[n] for n in nodes if n in after}, merged, changed - set(merged))


def _merges(before: dict[Node, str], after: dict[Node, str]) -> dict[str, str]:
    """Ids that no identity holds any more, and where most of their identities went."""
    remaining = set(after.values())
    moved: dict[str, dict[str, int]] = {}
    for node, old in before.items():
        new = after.get(node)
        if old not in remaining and new is not None:
            counts = moved.setdefault(old, {})
            counts[new] = counts.get(new, 0) + 1
    return {old: max(sorted(counts), key=lambda pid: counts[pid]) for old, counts in moved.items()}


def _merge_events(sandbox: str, merged: dict[str, str]) -> list[Envelope]:
    now = datetime.now(UTC)
    survivors: dict[str, list[str]] = {}
    for old, new in sorted(merged.items()):
        survivors.setdefault(new, []).append(old)
    return [
        Envelope(
            type="com.itinera.identity.merge.v1",
            source="/itinera/profile",
            data={
                "sandbox": sandbox,
                "profileId": survivor,
                "mergedProfileIds": olds,
                "mergedAt": now.isoformat(),
            },
            sandbox=sandbox,
            key=survivor,
            time=now,
        )
        for survivor, olds in survivors.items()
    ]


def nodes_from(
    identities: Iterable[tuple[str, str]], by_code: Mapping[str, ns.Namespace]
) -> tuple[Node, ...]:
    """Nodes of (namespace code, value) pairs, values normalised by their namespace
    (``by_code``: :func:`~itinera.profile.identity.namespaces.by_code`)."""
    found = []
    for code, value in identities:
        namespace = by_code.get(code.lower())
        found.append(Node(namespace.code if namespace else code, ns.normalise(namespace, value)))
    return tuple(found)
