"""Delivery providers: email over SMTP, SMS and push over HTTP provider APIs, webhooks.

Each provider sends one rendered message and answers the provider's id of it, or raises
:class:`SendFailed` saying whether trying again may help (``retry``), what kind of bounce
it was, and whether the address should be suppressed. Sends are paced per provider by a
token bucket kept in each process: with N worker processes a provider may see up to N
times the configured rate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class SendFailed(Exception):
    """Why a send failed. ``retry``: a later attempt may succeed (soft); ``bounce``:
    ``hard`` or ``soft`` for an email the receiving server refused; ``suppress``: the
    address should go on the suppression list (``hard`` bounce, unregistered token...)."""

    def __init__(
        self, reason: str, *, retry: bool, bounce: str | None = None, suppress: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.bounce = bounce
        self.suppress = suppress


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message claimed for sending."""

    sandbox: str
    message_id: str
    profile_id: str
    channel: str
    category: str
    address: str
    content: Mapping[str, Any]


class Provider(Protocol):
    async def send(self, message: Outgoing) -> str: ...


class TokenBucket:
    """At most ``rate`` sends a second on average, bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._at = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
                self._at = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)
