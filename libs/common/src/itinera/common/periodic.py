"""A worker that does a unit of work every so often, and at once again while there is
more: expiry sweeps, scheduled evaluations, batch jobs.

A subclass implements :meth:`Periodic.tick`, which does one unit and says whether more
is waiting; a failing tick is logged and retried after the interval, never ends the
worker; ``stop`` lets the tick in hand finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

import asyncpg

log = logging.getLogger(__name__)


class Periodic(ABC):
    def __init__(self, name: str, interval_s: float) -> None:
        self.name = name
        self.interval_s = interval_s
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @abstractmethod
    async def tick(self) -> bool:
        """Do one unit of work; True when more is waiting (the next tick comes at once)."""

    async def drain(
        self, pool: asyncpg.Pool, chunk: Callable[[asyncpg.Connection], Awaitable[int]], size: int
    ) -> int:
        """Run ``chunk`` (one statement over at most ``size`` rows, each on a connection of
        its own) until it does fewer than ``size`` or the worker is stopping; how many rows
        it did in all. For sweeps that delete or clear what is past its time."""
        done = 0
        while not self.stopping:
            async with pool.acquire() as conn:
                count = await chunk(conn)
            done += count
            if count < size:
                break
        return done

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                more = await self.tick()
            except Exception:
                log.exception("periodic work failed", extra={"worker": self.name})
                more = False
            if more:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)
