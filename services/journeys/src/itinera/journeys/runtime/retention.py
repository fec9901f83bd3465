"""Ended instances are deleted ``ITINERA_JOURNEYS_INSTANCE_RETENTION_DAYS`` (91) after
they ended, with their steps, waits and calls.

As in Journey Optimizer, whose journey data goes once its 91-day global timeout has
passed, what is deleted bounds what re-entrance can see: a journey that does not allow
re-entrance keeps a profile out while its last instance is kept, so for at least the
retention after it ended, not for ever. The steps were published on
``itinera.journey.steps.v1`` as they were taken; reporting keeps them there, not here.
Finished campaign executions and audience reads are deleted
``ITINERA_JOURNEYS_HISTORY_RETENTION_DAYS`` (91) after they finished: one unitary call
is one execution, so they would otherwise grow without end. A call repeating the
``requestId`` of an execution deleted is executed again under the same id (derived from
the campaign and the ``requestId``), so its messages have the same ids, which the
channels do not send twice while they keep them.

Any number of replicas run the sweep: each chunk is one statement.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client import Counter

from itinera.common.db.sweeps import delete_oldest
from itinera.common.periodic import Periodic

log = logging.getLogger(__name__)

CHUNK = 2_000
DELETED = Counter("itinera_journeys_instances_deleted", "Ended instances deleted after their retention")
HISTORY_DELETED = Counter(
    "itinera_journeys_history_deleted",
    "Finished campaign executions and audience reads deleted after their retention",
    ["kind"],
)


async def delete_ended(conn: asyncpg.Connection, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` instances that ended before ``before``, oldest first."""
    return await delete_oldest(
        conn, "instances", ("sandbox", "id"), "ended_at", before, limit, "status <> 'waiting'"
    )


async def delete_finished_executions(conn: asyncpg.Connection, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` campaign executions that finished before ``before``."""
    return await delete_oldest(
        conn, "campaign_executions", ("sandbox", "id"), "finished_at", before, limit, "due_at IS NULL"
    )


async def delete_finished_reads(conn: asyncpg.Connection, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` audience reads that finished (done, cancelled) before
    ``before``; the schedules that made them stay."""
    keys = ("sandbox", "journey_id", "version", "occurrence")
    return await delete_oldest(
        conn, "audience_reads", keys, "finished_at", before, limit, "status <> 'running'"
    )


class InstanceRetention(Periodic):
    def __init__(
        self, pool: asyncpg.Pool, retention_days: float, interval_s: float, *, history_days: float = 91
    ) -> None:
        super().__init__("journeys:retention", interval_s)
        self.pool = pool
        self.retention = timedelta(days=retention_days)
        self.history_retention = timedelta(days=history_days)

    async def tick(self) -> bool:
        await self.sweep()
        return False

    async def sweep(self, now: datetime | None = None) -> int:
        """Delete every instance past its retention, a chunk a statement, then the
        finished executions and reads past theirs; how many instances."""
        now = now or datetime.now(UTC)
        before = now - self.retention
        deleted = await self.drain(self.pool, lambda conn: delete_ended(conn, before, CHUNK), CHUNK)
        DELETED.inc(deleted)
        if deleted:
            log.info("ended journey instances deleted", extra={"instances": deleted})
        await self.sweep_history(now)
        return deleted

    async def sweep_history(self, now: datetime) -> dict[str, int]:
        """Delete the finished executions and reads past their retention; how many of each."""
        before = now - self.history_retention
        counts: dict[str, int] = {}
        sweeps: dict[str, Callable[[asyncpg.Connection], Awaitable[int]]] = {
            "execution": lambda conn: delete_finished_executions(conn, before, CHUNK),
            "read": lambda conn: delete_finished_reads(conn, before, CHUNK),
        }
        for kind, chunk in sweeps.items():
            counts[kind] = await self.drain(self.pool, chunk, CHUNK)
            HISTORY_DELETED.labels(kind).inc(counts[kind])
        if any(counts.values()):
            log.info("finished campaign executions and audience reads deleted", extra=counts)
        return counts
