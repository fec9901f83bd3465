"""What bounces do to the suppression list, in the caller's transaction.

- A **hard** bounce (a mailbox or number that does not exist, a token that is gone)
  suppresses the address at once, reason ``hard``.
- A **soft** bounce (a full mailbox, a greylisting server, a handset out of coverage) is
  counted: ``ITINERA_CHANNELS_SOFT_BOUNCE_LIMIT`` of them within
  ``ITINERA_CHANNELS_SOFT_BOUNCE_PERIOD_S`` suppress the address, reason ``soft``. Every
  attempt that bounces counts, of one message or of several, as AJO counts them.
- A **delivery** (an email the SMTP server accepted, an SMS reported delivered) starts
  the count again.

The entry written keeps AJO's bounce state: ``softCount``, the soft bounces counted when
the address was suppressed, and ``bounceEvents``, those bounces and the hard one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg

from itinera.channels.config import ChannelsSettings
from itinera.channels.suppression import repository


def event(message_id: str, at: datetime, message: str | None, kind: str) -> dict[str, Any]:
    """One of AJO's ``bounceEvents``; ``kind`` ``hard`` or ``soft``."""
    return {
        "messageId": message_id,
        "date": at.isoformat().replace("+00:00", "Z"),
        "message": message,
        "bounceType": kind.upper(),
    }


def value_of(channel: str, address: str) -> str:
    """The address as the suppression list and the soft bounces keep it."""
    return _key(channel, address)[0]


def _key(channel: str, address: str) -> tuple[str, str]:
    entity_type = repository.ENTITY_TYPES[channel]
    return repository.normal(address, entity_type), entity_type


async def hard(
    conn: asyncpg.Connection,
    settings: ChannelsSettings,
    sandbox: str,
    channel: str,
    address: str,
    bounce: dict[str, Any],
    now: datetime,
) -> None:
    """Suppress the address after a hard bounce."""
    value, entity_type = _key(channel, address)
    since = now - timedelta(seconds=settings.channels_soft_bounce_period_s)
    soft = [
        e
        for e in await repository.take_soft_bounces(conn, sandbox, value)
        if datetime.fromisoformat(e["date"]) > since
    ]
    await repository.record_bounce(conn, sandbox, value, entity_type, "hard", [*soft, bounce], len(soft))


async def soft(
    conn: asyncpg.Connection,
    settings: ChannelsSettings,
    sandbox: str,
    channel: str,
    address: str,
    bounce: dict[str, Any],
    now: datetime,
) -> bool:
    """Count a soft bounce of the address; True when it reached the limit and the address
    is now suppressed."""
    value, entity_type = _key(channel, address)
    counted = await repository.count_soft_bounce(
        conn, sandbox, value, entity_type, bounce, now=now, period_s=settings.channels_soft_bounce_period_s
    )
    if len(counted) < settings.channels_soft_bounce_limit:
        return False
    await repository.take_soft_bounces(conn, sandbox, value)
    await repository.record_bounce(conn, sandbox, value, entity_type, "soft", counted, len(counted))
    return True


async def delivered(conn: asyncpg.Connection, sandbox: str, channel: str, address: str) -> None:
    """The address took a message: its soft bounces no longer count."""
    value, _ = _key(channel, address)
    await repository.take_soft_bounces(conn, sandbox, value)
