"""Experience event retention, per dataset (AEP's experience event expiration).

A dataset's time-to-live applies three ways: an event already older than it when it
arrives is not stored (nor published); reads never return an expired event; and the
expiry sweep, a worker of the profile service, deletes expired events in chunks
every ``ITINERA_PROFILE_EXPIRY_INTERVAL_S`` seconds. A time-to-live is counted from
the event's own ``timestamp``.
"""

from __future__ import annotations

import functools
import logging

import asyncpg
from prometheus_client import Counter

from itinera.common.periodic import Periodic
from itinera.profile.retention import repository

log = logging.getLogger(__name__)

EXPIRED = Counter("itinera_profile_events_expired", "Experience events deleted by their dataset's TTL")
CHUNK = 5_000


class ExpirySweep(Periodic):
    """Deletes expired events; any number of replicas may run it (a chunk's rows are
    deleted once, by whichever gets them)."""

    def __init__(self, pool: asyncpg.Pool, interval_s: float) -> None:
        super().__init__("profile:expiry", interval_s)
        self.pool = pool

    async def tick(self) -> bool:
        await self.sweep()
        return False

    async def sweep(self) -> int:
        """One pass over every dataset with a time-to-live; how many events were deleted."""
        async with self.pool.acquire() as conn:
            ttls = await repository.all_ttls(conn)
        deleted = 0
        for sandbox, dataset_id, ttl in ttls:
            expire = functools.partial(
                repository.delete_expired, sandbox=sandbox, dataset_id=dataset_id, ttl=ttl, limit=CHUNK
            )
            count = await self.drain(self.pool, expire, CHUNK)
            deleted += count
            EXPIRED.inc(count)
        if deleted:
            log.info("expired events deleted", extra={"events": deleted})
        return deleted
