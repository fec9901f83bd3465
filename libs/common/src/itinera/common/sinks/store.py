"""A bounded in-memory store of what the local sinks received, newest first.

One store per kind (mail, SMS, push). It lives on the event loop that runs the sinks:
the SMTP handler and the simulators add to it, the inbox and tests read it, and
:meth:`Store.wait_for` lets a test wait for a delivery that lands asynchronously
without polling on a timer. Not thread-safe: use it from that loop only.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar


class Identified(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=Identified)

DEFAULT_CAP = 10_000


class Store(Generic[T]):
    """At most ``cap`` items, newest first; the oldest is dropped when a new one arrives
    at the cap, so a long-running ``make run`` holds bounded memory."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        if cap < 1:
            raise ValueError("a store holds at least one item")
        self.cap = cap
        self._items: deque[T] = deque()
        self._by_id: dict[str, T] = {}
        self._changed: asyncio.Event | None = None

    def add(self, item: T) -> None:
        if len(self._items) >= self.cap:
            dropped = self._items.pop()
            self._by_id.pop(dropped.id, None)
        self._items.appendleft(item)
        self._by_id[item.id] = item
        self._notify()

    def get(self, item_id: str) -> T | None:
        return self._by_id.get(item_id)

    def find(self, predicate: Callable[[T], bool] | None = None, limit: int | None = None) -> list[T]:
        """Items matching ``predicate`` (all by default), newest first, at most ``limit``."""
        found: list[T] = []
        for item in self._items:
            if limit is not None and len(found) >= limit:
                break
            if predicate is None or predicate(item):
                found.append(item)
        return found

    def clear(self) -> None:
        self._items.clear()
        self._by_id.clear()
        self._notify()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        """Newest first, over a snapshot (adding while iterating is allowed)."""
        return iter(list(self._items))

    async def wait_for(self, predicate: Callable[[T], bool], timeout_s: float = 10.0) -> T:
        """The newest item for which ``predicate`` holds, once there is one; raises
        ``TimeoutError`` after ``timeout_s``."""
        found = await self._wait(lambda: self.find(predicate, limit=1), timeout_s)
        return found[0]

    async def wait_count(
        self, count: int, predicate: Callable[[T], bool] | None = None, timeout_s: float = 10.0
    ) -> list[T]:
        """Once at least ``count`` items match ``predicate``: every matching item, newest first."""
        return await self._wait(
            lambda: matching if len(matching := self.find(predicate)) >= count else [], timeout_s
        )

    async def _wait(self, attempt: Callable[[], list[T]], timeout_s: float) -> list[T]:
        deadline = time.monotonic() + timeout_s
        while True:
            # Taken before the check: an item added after it sets this very event.
            changed = self._changed_event()
            found = attempt()
            if found:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching item within {timeout_s}s; the store holds {len(self)}")
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                pass

    def _changed_event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        # Waiters hold the current event; setting it wakes them, and the next wait
        # takes a fresh one.
        if self._changed is not None:
            self._changed.set()
            self._changed = None
