"""Graphs resolved again after a namespace's graph settings change.

The graph is a function of what was observed and of the rules; the rules include each
namespace's ``uniquePerGraph`` and ``priority``. When either changes, the graphs that
hold an identity of that namespace may resolve differently: a namespace made unique
splits the graphs holding two of its values (the weakest link is refused), one no
longer unique lets refused links join, a new priority changes which link is weakest.
Only those graphs can change (the rules about a namespace concern graphs holding it),
so the rebuild walks the namespace's identities in value order, a chunk at a time,
and resolves what each chunk reaches, exactly as a new observation would: merges are
recorded and announced, views refreshed and changes published, in the chunk's
transaction. Records observed meanwhile are resolved under the new rules already.

The same worker resolves whole the tangles the consumer could resolve only in part
(larger than its reach limit, see
:meth:`~itinera.profile.identity.service.IdentityGraph.resolve_tangle`): one tangle a
tick, from the oldest identity noted at least ``settle_s`` ago, so a tangle still
growing is resolved once every few seconds rather than after every batch.

Any number of replicas run the worker: a chunk or a tangle is taken under its row's lock
(``SKIP LOCKED``), in the SERIALIZABLE transaction that resolves it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from prometheus_client import Counter

from itinera.common.periodic import Periodic
from itinera.profile.identity import namespaces as ns
from itinera.profile.identity import repository
from itinera.profile.identity.graph import Node
from itinera.profile.identity.service import IdentityGraph, Outcome
from itinera.profile.profiles.outputs import publish_updates

log = logging.getLogger(__name__)

RESOLVED = Counter(
    "itinera_profile_rebuild_identities",
    "Identities resolved again by graph rebuilds and whole-tangle resolutions",
)
TANGLES = Counter(
    "itinera_profile_graph_tangles_resolved",
    "Tangles of links larger than the reach limit resolved whole in the background",
)
CHUNK = 200


def graph_settings(namespace: ns.Namespace) -> dict[str, Any]:
    return {"uniquePerGraph": namespace.unique_per_graph, "priority": namespace.priority}


async def request(conn: asyncpg.Connection, sandbox: str, before: ns.Namespace, after: ns.Namespace) -> bool:
    """Ask for the namespace's graphs to be resolved again if its graph settings
    changed (in the transaction that changes them); whether a rebuild was asked."""
    if graph_settings(before) == graph_settings(after):
        return False
    await conn.execute(
        """INSERT INTO graph_rebuilds (sandbox, namespace, settings) VALUES ($1, $2, $3::jsonb)
           ON CONFLICT (sandbox, namespace) WHERE finished_at IS NULL DO UPDATE
           SET settings = EXCLUDED.settings, requested_at = now(), after_value = NULL""",
        sandbox,
        after.code,
        orjson.dumps(graph_settings(after)).decode(),
    )
    return True


def view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "namespace": row["namespace"],
        "settings": orjson.loads(row["settings"]),
        "status": "finished" if row["finished_at"] is not None else "running",
        "requestedAt": row["requested_at"].isoformat(),
        "finishedAt": row["finished_at"].isoformat() if row["finished_at"] is not None else None,
        "identities": row["identities"],
        "profilesChanged": row["profiles_changed"],
        "merges": row["merges"],
    }


async def listed(conn: asyncpg.Connection, sandbox: str, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM graph_rebuilds WHERE sandbox = $1 ORDER BY id DESC LIMIT $2", sandbox, limit
    )
    return [view(r) for r in rows]


@dataclass(frozen=True, slots=True)
class Step:
    rebuild: int
    identities: int
    finished: bool


@dataclass(frozen=True, slots=True)
class Untangled:
    sandbox: str
    identities: int
    profiles_changed: int


class GraphRebuilder(Periodic):
    """Resolves one chunk of one open rebuild, or one noted tangle, per tick; ticks again
    at once while there is more."""

    def __init__(self, graph: IdentityGraph, interval_s: float, settle_s: float = 5.0) -> None:
        super().__init__("profile:graph-rebuild", interval_s)
        self.graph = graph
        self.settle_s = settle_s

    async def tick(self) -> bool:
        return await self.step() is not None or await self.untangle() is not None

    async def untangle(self, settle_s: float | None = None) -> Untangled | None:
        """Resolve the whole tangle of the oldest noted identity (noted at least
        ``settle_s`` ago, the worker's own by default); None when none is waiting."""
        wait = self.settle_s if settle_s is None else settle_s

        async def work(conn: asyncpg.Connection) -> Untangled | None:
            noted = await repository.next_tangle(conn, wait)
            if noted is None:
                return None
            sandbox, seed = noted
            outcome, identities = await self.graph.resolve_tangle(conn, sandbox, seed)
            await publish_updates(conn, sandbox, outcome, [], [])
            return Untangled(sandbox, identities, len(outcome.changed))

        done = await self.graph.serializable(work)
        if done is not None:
            TANGLES.inc()
            RESOLVED.inc(done.identities)
            log.info(
                "identity graph tangle resolved whole",
                extra={
                    "sandbox": done.sandbox,
                    "identities": done.identities,
                    "profiles_changed": done.profiles_changed,
                },
            )
        return done

    async def step(self) -> Step | None:
        """Resolve the next chunk of an open rebuild; None when none is open."""
        return await self.graph.serializable(self._chunk)

    async def _chunk(self, conn: asyncpg.Connection) -> Step | None:
        job = await conn.fetchrow(
            """SELECT id, sandbox, namespace, after_value FROM graph_rebuilds
               WHERE finished_at IS NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"""
        )
        if job is None:
            return None
        sandbox, namespace = job["sandbox"], job["namespace"]
        values = [
            r["value"]
            for r in await conn.fetch(
                """SELECT value FROM identities
                   WHERE sandbox = $1 AND namespace = $2 AND ($3::text IS NULL OR value > $3)
                   ORDER BY value LIMIT $4""",
                sandbox,
                namespace,
                job["after_value"],
                CHUNK,
            )
        ]
        outcome = Outcome()
        if values:
            known = await ns.all_of(conn, sandbox)
            outcome = await self.graph.resolve_around(
                conn, sandbox, [Node(namespace, v) for v in values], known
            )
            await publish_updates(conn, sandbox, outcome, [], [])
        finished = len(values) < CHUNK
        await conn.execute(
            """UPDATE graph_rebuilds
               SET after_value = coalesce($2, after_value), identities = identities + $3,
                   profiles_changed = profiles_changed + $4, merges = merges + $5,
                   finished_at = CASE WHEN $6 THEN now() END
               WHERE id = $1""",
            job["id"],
            values[-1] if values else None,
            len(values),
            len(outcome.changed),
            len(outcome.merged),
            finished,
        )
        RESOLVED.inc(len(values))
        if finished:
            log.info("graph rebuild finished", extra={"sandbox": sandbox, "namespace": namespace})
        return Step(job["id"], len(values), finished)
