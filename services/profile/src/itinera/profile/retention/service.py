"""Experience event retention, per dataset (AEP's experience event expiration).

A dataset's time-to-live applies three ways: an event already older than it when it
arrives is not stored (nor published); reads never return an expired event; and the
expiry sweep, a worker of the profile service, deletes expired events in chunks
every ``ITINERA_PROFILE_EXPIRY_INTERVAL_S`` seconds. A time-to-live is counted from
the event's own ``timestamp``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from prometheus_client import Counter

from itinera.profile.retention import repository

log = logging.getLogger(__name__)

EXPIRED = Counter("itinera_profile_events_expired", "Experience events deleted by their dataset's TTL")
CHUNK = 5_000


class ExpirySweep:
    """Deletes expired events; any number of replicas may run it (a chunk's rows are
    deleted once, by whichever gets them)."""

    def __init__(self, pool: asyncpg.Pool, interval_s: float) -> None:
        self.pool = pool
        self.interval_s = interval_s
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="profile:expiry")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sweep()
            except Exception:
                log.exception("event expiry sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)

    async def sweep(self) -> int:
        """One pass over every dataset with a time-to-live; how many events were deleted."""
        async with self.pool.acquire() as conn:
            ttls = await repository.all_ttls(conn)
        deleted = 0
        for sandbox, dataset_id, ttl in ttls:
            while not self._stopping.is_set():
                async with self.pool.acquire() as conn:
                    count = await repository.delete_expired(conn, sandbox, dataset_id, ttl, CHUNK)
                deleted += count
                EXPIRED.inc(count)
                if count < CHUNK:
                    break
        if deleted:
            log.info("expired events deleted", extra={"events": deleted})
        return deleted
