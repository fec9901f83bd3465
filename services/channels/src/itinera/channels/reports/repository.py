"""SQL of delivery reports: each final report once, and those waiting for their message."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg


async def lock(conn: asyncpg.Connection, channel: str, provider_id: str) -> None:
    """Serialise what concerns one provider id until the transaction ends: a report and
    the recording of its message as sent, which may come in either order."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"report|{channel}|{provider_id}"
    )


async def add(
    conn: asyncpg.Connection,
    channel: str,
    provider_id: str,
    status: str,
    error_code: int | None,
    now: datetime,
) -> bool:
    """Keep a report; False when it was received before (it changes nothing)."""
    added = await conn.fetchval(
        """INSERT INTO delivery_reports (channel, provider_id, status, error_code, received_at)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (channel, provider_id, status) DO NOTHING
           RETURNING true""",
        channel,
        provider_id,
        status,
        None if error_code is None else str(error_code),
        now,
    )
    return bool(added)


async def applied(
    conn: asyncpg.Connection,
    channel: str,
    provider_id: str,
    status: str,
    sandbox: str,
    message_id: uuid.UUID,
    now: datetime,
) -> None:
    await conn.execute(
        """UPDATE delivery_reports SET sandbox = $4, message_id = $5, applied_at = $6
           WHERE channel = $1 AND provider_id = $2 AND status = $3""",
        channel,
        provider_id,
        status,
        sandbox,
        message_id,
        now,
    )


async def take_waiting(
    conn: asyncpg.Connection,
    channel: str,
    provider_id: str,
    sandbox: str,
    message_id: uuid.UUID,
    now: datetime,
) -> list[asyncpg.Record]:
    """The reports that came before their message was recorded sent, now applied to it;
    in the order they were received."""
    rows = await conn.fetch(
        """UPDATE delivery_reports SET sandbox = $3, message_id = $4, applied_at = $5
           WHERE channel = $1 AND provider_id = $2 AND applied_at IS NULL
           RETURNING status, error_code, received_at""",
        channel,
        provider_id,
        sandbox,
        message_id,
        now,
    )
    return sorted(rows, key=lambda r: r["received_at"])
