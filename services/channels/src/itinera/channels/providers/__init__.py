"""Delivery providers: email over SMTP, SMS and push over HTTP provider APIs, webhooks.

Each provider sends one rendered message and answers the provider's id of it, or raises
:class:`SendFailed` saying whether trying again may help (``retry``), what kind of bounce
it was, and whether the address should be suppressed. Sends are paced per provider by
the delivery runner, at the rate set for it across every worker process
(:mod:`itinera.common.db.rates`).
"""

from __future__ import annotations

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
