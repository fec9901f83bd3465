"""Trimming the projection's events to what rules can read.

An event older than the longest look-back of the rules of its sandbox that read events
can no longer change any answer, and is deleted; but never one younger than
``ITINERA_SEGMENTATION_EVENT_RETENTION_S`` (90 days), so that a rule created later with
a look-back up to that finds the events it reads. A sandbox with a rule that reads
events without a look-back (``xEvent[...].count() > 2``) keeps them all. The profile
service's per-dataset time-to-live still bounds what exists at all.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import asyncpg

from itinera.common.periodic import Periodic
from itinera.segmentation.projection import repository

log = logging.getLogger(__name__)

BATCH = 10_000
"""Events deleted in one transaction."""


class EventTrim(Periodic):
    """Deletes the events no rule can read, :data:`BATCH` at a time; at once again while
    there are more, else after ``interval_s``."""

    def __init__(self, pool: asyncpg.Pool, interval_s: float, minimum: timedelta, batch: int = BATCH) -> None:
        super().__init__("segmentation:event-trim", interval_s)
        self.pool = pool
        self.minimum = minimum
        self.batch = batch

    async def tick(self) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            deleted = await repository.trim_events(conn, datetime.now(UTC), self.minimum, self.batch)
        if deleted:
            log.info("projection events trimmed", extra={"events": deleted})
        return deleted == self.batch
