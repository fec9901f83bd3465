"""Ended instances are deleted ``ITINERA_JOURNEYS_INSTANCE_RETENTION_DAYS`` (91) after
they ended, with their steps, waits and calls.

As in Journey Optimizer, whose journey data goes once its 91-day global timeout has
passed, what is deleted bounds what re-entrance can see: a journey that does not allow
re-entrance keeps a profile out while its last instance is kept, so for at least the
retention after it ended, not for ever. The steps were published on
``itinera.journey.steps.v1`` as they were taken; reporting keeps them there, not here.
Any number of replicas run the sweep: each chunk is one statement.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client import Counter

from itinera.common.periodic import Periodic

log = logging.getLogger(__name__)

CHUNK = 2_000
DELETED = Counter("itinera_journeys_instances_deleted", "Ended instances deleted after their retention")


async def delete_ended(conn: asyncpg.Connection, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` instances that ended before ``before``, oldest first."""
    deleted: int = await conn.fetchval(
        """WITH old AS (
               SELECT sandbox, id FROM instances
               WHERE status <> 'waiting' AND ended_at < $1
               ORDER BY ended_at LIMIT $2
           ), gone AS (
               DELETE FROM instances i USING old
               WHERE i.sandbox = old.sandbox AND i.id = old.id
               RETURNING 1
           )
           SELECT count(*) FROM gone""",
        before,
        limit,
    )
    return deleted


class InstanceRetention(Periodic):
    def __init__(self, pool: asyncpg.Pool, retention_days: float, interval_s: float) -> None:
        super().__init__("journeys:retention", interval_s)
        self.pool = pool
        self.retention = timedelta(days=retention_days)

    async def tick(self) -> bool:
        await self.sweep()
        return False

    async def sweep(self, now: datetime | None = None) -> int:
        """Delete every instance past its retention, a chunk a statement; how many."""
        before = (now or datetime.now(UTC)) - self.retention
        deleted = await self.drain(self.pool, lambda conn: delete_ended(conn, before, CHUNK), CHUNK)
        DELETED.inc(deleted)
        if deleted:
            log.info("ended journey instances deleted", extra={"instances": deleted})
        return deleted
