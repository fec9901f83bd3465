"""SQL of the messages table: each message request taken, and its way to delivery."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

_COLUMNS = (
    "sandbox, message_id, profile_id, channel, category, template_id, template_version, locale, "
    "state, reason, detail, address, content, origin, requested_at, created_at, next_attempt_at, "
    "queued_until, lease_until, attempts, sent_at, provider_id, updated_at, delivery_status, "
    "delivery_reported_at"
)


_INSERTED = (
    "sandbox",
    "message_id",
    "profile_id",
    "channel",
    "category",
    "template_id",
    "template_version",
    "locale",
    "state",
    "reason",
    "detail",
    "address",
    "content",
    "origin",
    "requested_at",
    "created_at",
    "next_attempt_at",
    "queued_until",
)


async def lock_profiles(conn: asyncpg.Connection, sandbox: str, profile_ids: Sequence[uuid.UUID]) -> None:
    """Serialise the checks of each profile's messages (caps count what was taken before):
    one transaction-scoped advisory lock per profile, all taken in one statement, in the
    order of the profiles' ids as text, so that two batches never wait on each other in
    a circle."""
    keys = [f"{sandbox}|{p}" for p in sorted({str(p) for p in profile_ids})]
    await conn.execute(
        """SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0)))
           FROM unnest($1::text[]) AS k""",
        keys,
    )


async def known(conn: asyncpg.Connection, sandbox: str, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT message_id FROM messages WHERE sandbox = $1 AND message_id = ANY($2::uuid[])",
        sandbox,
        list(ids),
    )
    return {row["message_id"] for row in rows}


async def insert(conn: asyncpg.Connection, rows: Sequence[Mapping[str, Any]]) -> set[uuid.UUID]:
    """Record message requests with what was decided, in one statement; the ids of those
    recorded (an id already taken is not recorded again)."""
    if not rows:
        return set()
    recorded = await conn.fetch(
        """INSERT INTO messages
               (sandbox, message_id, profile_id, channel, category, template_id, template_version,
                locale, state, reason, detail, address, content, origin, requested_at, created_at,
                next_attempt_at, queued_until)
           SELECT r.sandbox, r.message_id, r.profile_id, r.channel, r.category, r.template_id,
                  r.template_version, r.locale, r.state, r.reason, r.detail, r.address, r.content,
                  coalesce(r.origin, '{}'), r.requested_at, r.created_at, r.next_attempt_at,
                  r.queued_until
           FROM jsonb_to_recordset($1::jsonb) AS r(
               sandbox text, message_id uuid, profile_id uuid, channel text, category text,
               template_id text, template_version integer, locale text, state text, reason text,
               detail text, address text, content jsonb, origin jsonb, requested_at timestamptz,
               created_at timestamptz, next_attempt_at timestamptz, queued_until timestamptz)
           ON CONFLICT (sandbox, message_id) DO NOTHING
           RETURNING message_id""",
        [
            {k: row.get(k) for k in _INSERTED}
            | {"message_id": str(row["message_id"]), "profile_id": str(row["profile_id"])}
            for row in rows
        ],
    )
    return {row["message_id"] for row in recorded}


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


async def finish_sent(
    conn: asyncpg.Connection,
    claims: Sequence[tuple[str, uuid.UUID, int, str | None, str | None]],
    now: datetime,
) -> set[tuple[str, uuid.UUID]]:
    """Record several claims ``(sandbox, message id, attempt, provider id, soft-bounce key)``
    sent, in one statement, as :func:`finish` does one: only those still that claim's (its
    lease did not run out for another worker to take it), locked in the order of their
    keys. The soft bounces counted for the address (``soft_bounces``, by the key given,
    as the suppression list keeps it) of each one recorded are forgotten in the same
    statement: the provider took the message. Answers the (sandbox, message id) of those
    recorded."""
    if not claims:
        return set()
    rows = await conn.fetch(
        """WITH wanted AS MATERIALIZED (
               SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(s text, m uuid, a integer, p text, b text)
               ORDER BY r.s, r.m
           ), ours AS (
               -- Each a look-up by key, locked in key order. Nothing else in the look-up:
               -- offered "state = 'sending'", the planner read every message being sent
               -- through the partial index of leases for each one (80 ms a call).
               SELECT m.sandbox, m.message_id, w.p, w.b FROM wanted w
               CROSS JOIN LATERAL (
                   SELECT sandbox, message_id, attempts, state FROM messages
                   WHERE sandbox = w.s AND message_id = w.m
                   OFFSET 0 FOR UPDATE
               ) m
               WHERE m.attempts = w.a AND m.state = 'sending'
           ), sent AS (
               UPDATE messages m SET state = 'sent', provider_id = coalesce(o.p, m.provider_id),
                   next_attempt_at = NULL, lease_until = NULL, sent_at = $2, updated_at = $2
               FROM ours o WHERE m.sandbox = o.sandbox AND m.message_id = o.message_id
               RETURNING m.sandbox, m.message_id
           ), doomed AS (
               SELECT b.sandbox, b.value FROM soft_bounces b
               JOIN ours o ON b.sandbox = o.sandbox AND b.value = o.b
               ORDER BY b.sandbox, b.value
               FOR UPDATE OF b
           ), forgotten AS (
               DELETE FROM soft_bounces b USING doomed d WHERE b.sandbox = d.sandbox AND b.value = d.value
           )
           SELECT sandbox, message_id FROM sent""",
        [{"s": s, "m": str(m), "a": a, "p": p, "b": b} for s, m, a, p, b in claims],
        now,
    )
    return {(row["sandbox"], row["message_id"]) for row in rows}


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


async def email_by_id(conn: asyncpg.Connection, message_id: uuid.UUID) -> asyncpg.Record | None:
    """The email of this id (in whichever sandbox: ids are UUIDs), once it was sent."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM messages
            WHERE channel = 'email' AND message_id = $1 AND sent_at IS NOT NULL LIMIT 1""",
        message_id,
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


def _waiting_row(request: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "message_id": str(request["_id"]),
        "profile_id": str(request["_profile"]),
        "request": {k: v for k, v in request.items() if not k.startswith("_")},
    }


async def park(
    conn: asyncpg.Connection,
    sandbox: str,
    requests: Sequence[Mapping[str, Any]],
    now: datetime,
    next_attempt_at: datetime,
    error: str,
) -> None:
    """Keep requests that wait for their profile (the profile service could not answer),
    as they came, in one statement; one already recorded as a message, or already
    waiting, is left as it is."""
    await conn.execute(
        """INSERT INTO profile_waits
               (sandbox, message_id, profile_id, request, parked_at, next_attempt_at, error)
           SELECT $1, r.message_id, r.profile_id, r.request, $2, $3, $4
           FROM jsonb_to_recordset($5::jsonb) AS r(message_id uuid, profile_id uuid, request jsonb)
           WHERE NOT EXISTS (
               SELECT 1 FROM messages m WHERE m.sandbox = $1 AND m.message_id = r.message_id)
           ON CONFLICT (sandbox, message_id) DO NOTHING""",
        sandbox,
        now,
        next_attempt_at,
        error,
        [_waiting_row(r) for r in requests],
    )


async def unpark(conn: asyncpg.Connection, sandbox: str, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Take requests off the wait, for the caller's transaction to decide them: the ids of
    those that were waiting (another transaction that took one first leaves nothing
    here for this one)."""
    rows = await conn.fetch(
        "DELETE FROM profile_waits WHERE sandbox = $1 AND message_id = ANY($2::uuid[]) RETURNING message_id",
        sandbox,
        list(ids),
    )
    return {row["message_id"] for row in rows}


async def claim_waits(
    conn: asyncpg.Connection, now: datetime, limit: int, initial_s: float, max_s: float
) -> list[asyncpg.Record]:
    """The waiting requests whose time to ask again has come (at most ``limit``, the
    longest due first), each with its next time set in the same statement: after
    ``initial_s * 2^attempts`` (at most ``max_s``), so a worker that dies asking leaves
    them for another to take then. ``FOR UPDATE SKIP LOCKED``: workers share them."""
    rows = await conn.fetch(
        """WITH due AS (
               SELECT sandbox, message_id FROM profile_waits
               WHERE next_attempt_at <= $1
               ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED
           )
           UPDATE profile_waits w SET attempts = w.attempts + 1,
               next_attempt_at = $1 + make_interval(
                   secs => least($4::float8, $3::float8 * power(2.0::float8, least(w.attempts, 30))))
           FROM due WHERE w.sandbox = due.sandbox AND w.message_id = due.message_id
           RETURNING w.sandbox, w.message_id, w.profile_id, w.request, w.parked_at""",
        now,
        limit,
        initial_s,
        max_s,
    )
    return list(rows)


async def still_waiting(conn: asyncpg.Connection, sandbox: str, ids: Sequence[uuid.UUID], error: str) -> None:
    """Keep why the profile service could not answer, on requests that go on waiting."""
    await conn.execute(
        "UPDATE profile_waits SET error = $3 WHERE sandbox = $1 AND message_id = ANY($2::uuid[])",
        sandbox,
        list(ids),
        error,
    )


async def waiting(conn: asyncpg.Connection, sandbox: str, message_id: uuid.UUID) -> asyncpg.Record | None:
    """The request of this id, if it waits for its profile."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT sandbox, message_id, profile_id, request, parked_at, attempts, next_attempt_at, error
           FROM profile_waits WHERE sandbox = $1 AND message_id = $2""",
        sandbox,
        message_id,
    )
    return row
