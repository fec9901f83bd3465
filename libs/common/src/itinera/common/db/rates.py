"""Rates kept for every process of a service at once: token buckets in PostgreSQL.

A bucket (a ``key`` of the service's ``rate_buckets``) holds up to ``capacity`` tokens
and gains ``rate`` a second, whatever the number of processes taking from it. A process
leases whole tokens in small lots (what the rate gives in ``lot_s``, at least one, at
most the capacity) with one statement (``lease_tokens``, which locks the bucket's row
for the moment it takes) and spends them itself. Together the processes stay within
the rate, each overshooting by at most the lot it holds when the load moves to others.
"""

from __future__ import annotations

import asyncio
import math

import asyncpg


class SharedRate:
    """At most ``rate`` takes a second on average, in bursts of up to ``capacity``
    (the rate's whole second by default), across every process taking from ``key``."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        key: str,
        rate: float,
        capacity: float | None = None,
        *,
        lot_s: float = 0.05,
    ) -> None:
        if rate <= 0:
            raise ValueError("the rate must be positive")
        self.pool = pool
        self.key = key
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate)
        self.lot = float(max(1, min(math.floor(self.capacity), math.floor(rate * lot_s))))
        self._tokens = 0.0
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        """Return once a token is taken, waiting for the rate when none is left."""
        async with self._lock:
            while self._tokens < 1:
                async with self.pool.acquire() as conn:
                    granted, wait_s = await conn.fetchrow(
                        "SELECT granted, wait_s FROM lease_tokens($1, $2, $3, $4)",
                        self.key,
                        self.rate,
                        self.capacity,
                        self.lot,
                    )
                self._tokens += granted
                if self._tokens < 1:
                    await asyncio.sleep(max(wait_s, 0.001))
            self._tokens -= 1
