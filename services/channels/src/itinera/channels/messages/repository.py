"""SQL of the messages table: each message request taken, and its way to delivery."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

_COLUMNS = (
    "sandbox, message_id, profile_id, channel, category, template_id, template_version, locale, "
    "state, reason, detail, address, content, origin, requested_at, created_at, next_attempt_at, "
    "queued_until, lease_until, attempts, sent_at, provider_id, updated_at, delivery_status, "
    "delivery_reported_at"
)


async def lock_profile(conn: asyncpg.Connection, sandbox: str, profile_id: uuid.UUID) -> None:
    """Serialise the checks of one profile's messages (caps count what was taken before)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"{sandbox}|{profile_id}")


async def known(conn: asyncpg.Connection, sandbox: str, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT message_id FROM messages WHERE sandbox = $1 AND message_id = ANY($2::uuid[])",
        sandbox,
        list(ids),
    )
    return {row["message_id"] for row in rows}


async def insert(conn: asyncpg.Connection, row: dict[str, Any]) -> bool:
    """Record a message request with what was decided; False when its id was taken."""
    inserted = await conn.fetchval(
        """INSERT INTO messages
               (sandbox, message_id, profile_id, channel, category, template_id, template_version,
                locale, state, reason, detail, address, content, origin, requested_at, created_at,
                next_attempt_at, queued_until)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14::jsonb, $15, $16,
                   $17, $18)
           ON CONFLICT (sandbox, message_id) DO NOTHING
           RETURNING true""",
        row["sandbox"],
        row["message_id"],
        row["profile_id"],
        row["channel"],
        row["category"],
        row.get("template_id"),
        row.get("template_version"),
        row.get("locale"),
        row["state"],
        row.get("reason"),
        row.get("detail"),
        row.get("address"),
        row.get("content"),
        row.get("origin") or {},
        row.get("requested_at"),
        row["created_at"],
        row.get("next_attempt_at"),
        row.get("queued_until"),
    )
    return bool(inserted)


async def claim(conn: asyncpg.Connection, now: datetime, batch: int, lease_s: float) -> list[asyncpg.Record]:
    """Take due messages for sending: rendered ones whose time has come, and ones left
    ``sending`` past their lease by a worker that died. Each claim counts an attempt."""
    rows = await conn.fetch(
        f"""WITH fresh AS (
                SELECT sandbox, message_id FROM messages
                WHERE state = 'rendered' AND next_attempt_at <= $1
                ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED
            ), expired AS (
                SELECT sandbox, message_id FROM messages
                WHERE state = 'sending' AND lease_until <= $1
                ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED
            ), due AS (SELECT * FROM fresh UNION ALL SELECT * FROM expired)
            UPDATE messages m SET state = 'sending', attempts = m.attempts + 1,
                lease_until = $1 + make_interval(secs => $3), updated_at = $1
            FROM due WHERE m.sandbox = due.sandbox AND m.message_id = due.message_id
            RETURNING {", ".join("m." + c.strip() for c in _COLUMNS.split(","))}""",
        now,
        batch,
        lease_s,
    )
    return list(rows)


async def hold(conn: asyncpg.Connection, sandbox: str, message_id: uuid.UUID, attempt: int) -> bool:
    """Lock the message for the rest of the transaction if it is still the claim
    ``attempt``'s; False when it is not (its lease ran out and another worker took it)."""
    held = await conn.fetchval(
        """SELECT true FROM messages
           WHERE sandbox = $1 AND message_id = $2 AND attempts = $3 AND state = 'sending'
           FOR UPDATE""",
        sandbox,
        message_id,
        attempt,
    )
    return bool(held)


async def finish(
    conn: asyncpg.Connection,
    sandbox: str,
    message_id: uuid.UUID,
    attempt: int,
    state: str,
    *,
    now: datetime,
    reason: str | None = None,
    detail: str | None = None,
    provider_id: str | None = None,
    next_attempt_at: datetime | None = None,
) -> bool:
    """Record the outcome of the claim ``attempt``; False when the message is no longer
    that claim's (its lease ran out and another worker took it)."""
    done = await conn.fetchval(
        """UPDATE messages SET state = $4, reason = coalesce($5, reason), detail = coalesce($6, detail),
               provider_id = coalesce($7, provider_id), next_attempt_at = $8, lease_until = NULL,
               sent_at = CASE WHEN $4 = 'sent' THEN $9 ELSE sent_at END, updated_at = $9
           WHERE sandbox = $1 AND message_id = $2 AND attempts = $3 AND state = 'sending'
           RETURNING true""",
        sandbox,
        message_id,
        attempt,
        state,
        reason,
        detail,
        provider_id,
        next_attempt_at,
        now,
    )
    return bool(done)


async def one(conn: asyncpg.Connection, sandbox: str, message_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM messages WHERE sandbox = $1 AND message_id = $2", sandbox, message_id
    )
    return row


async def by_sms_sid(conn: asyncpg.Connection, sid: str) -> asyncpg.Record | None:
    """The SMS the provider gave this sid (its message id), when it was recorded sent."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM messages WHERE channel = 'sms' AND provider_id = $1 LIMIT 1", sid
    )
    return row


async def reported(
    conn: asyncpg.Connection, sandbox: str, message_id: uuid.UUID, status: str, now: datetime
) -> None:
    """Keep the provider's latest final report on the message."""
    await conn.execute(
        """UPDATE messages SET delivery_status = $3, delivery_reported_at = $4, updated_at = $4
           WHERE sandbox = $1 AND message_id = $2""",
        sandbox,
        message_id,
        status,
        now,
    )
