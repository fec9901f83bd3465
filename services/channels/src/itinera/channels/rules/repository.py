"""SQL of capping rules and quiet hours."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

_RULE = "id, name, channel, max_count, period, category, created_at, updated_at"
_QUIET = "id, name, channel, start_time, end_time, days, action, category, created_at, updated_at"


def rule_out(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "channel": row["channel"],
        "max": row["max_count"],
        "period": row["period"],
        "category": row["category"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def quiet_out(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "channel": row["channel"],
        "start": row["start_time"],
        "end": row["end_time"],
        "days": list(row["days"]),
        "action": row["action"],
        "category": row["category"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


async def capping_rules(conn: asyncpg.Connection, sandbox: str) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            f"SELECT {_RULE} FROM capping_rules WHERE sandbox = $1 ORDER BY created_at, id", sandbox
        )
    )


async def capping_rule(conn: asyncpg.Connection, sandbox: str, rule_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_RULE} FROM capping_rules WHERE sandbox = $1 AND id = $2", sandbox, rule_id
    )
    return row


async def save_capping_rule(
    conn: asyncpg.Connection, sandbox: str, rule_id: uuid.UUID, body: dict[str, Any], *, create: bool
) -> asyncpg.Record | None:
    values = (sandbox, rule_id, body["name"], body["channel"], body["max"], body["period"], body["category"])
    if create:
        sql = f"""INSERT INTO capping_rules (sandbox, id, name, channel, max_count, period, category)
                  VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_RULE}"""
    else:
        sql = f"""UPDATE capping_rules SET name = $3, channel = $4, max_count = $5, period = $6,
                      category = $7, updated_at = now()
                  WHERE sandbox = $1 AND id = $2 RETURNING {_RULE}"""
    row: asyncpg.Record | None = await conn.fetchrow(sql, *values)
    return row


async def delete_capping_rule(conn: asyncpg.Connection, sandbox: str, rule_id: uuid.UUID) -> bool:
    return (
        await conn.fetchval(
            "DELETE FROM capping_rules WHERE sandbox = $1 AND id = $2 RETURNING true", sandbox, rule_id
        )
        is not None
    )


async def quiet_hours(conn: asyncpg.Connection, sandbox: str) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            f"SELECT {_QUIET} FROM quiet_hours WHERE sandbox = $1 ORDER BY created_at, id", sandbox
        )
    )


async def quiet_hour(conn: asyncpg.Connection, sandbox: str, rule_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_QUIET} FROM quiet_hours WHERE sandbox = $1 AND id = $2", sandbox, rule_id
    )
    return row


async def save_quiet_hours(
    conn: asyncpg.Connection, sandbox: str, rule_id: uuid.UUID, body: dict[str, Any], *, create: bool
) -> asyncpg.Record | None:
    values = (
        sandbox,
        rule_id,
        body["name"],
        body["channel"],
        body["start"],
        body["end"],
        sorted(set(body["days"])),
        body["action"],
        body["category"],
    )
    if create:
        sql = f"""INSERT INTO quiet_hours
                      (sandbox, id, name, channel, start_time, end_time, days, action, category)
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {_QUIET}"""
    else:
        sql = f"""UPDATE quiet_hours SET name = $3, channel = $4, start_time = $5, end_time = $6,
                      days = $7, action = $8, category = $9, updated_at = now()
                  WHERE sandbox = $1 AND id = $2 RETURNING {_QUIET}"""
    row: asyncpg.Record | None = await conn.fetchrow(sql, *values)
    return row


async def delete_quiet_hours(conn: asyncpg.Connection, sandbox: str, rule_id: uuid.UUID) -> bool:
    return (
        await conn.fetchval(
            "DELETE FROM quiet_hours WHERE sandbox = $1 AND id = $2 RETURNING true", sandbox, rule_id
        )
        is not None
    )


async def sent_since(
    conn: asyncpg.Connection,
    sandbox: str,
    profile_id: uuid.UUID,
    since: datetime,
    channel: str | None,
    marketing_only: bool,
) -> int:
    """Messages of the profile taken for delivery (to be sent, being sent, sent) since then."""
    count: int = await conn.fetchval(
        """SELECT count(*) FROM messages
           WHERE sandbox = $1 AND profile_id = $2 AND created_at >= $3
             AND state IN ('rendered', 'sending', 'sent')
             AND ($4::text IS NULL OR channel = $4) AND (NOT $5 OR category = 'marketing')""",
        sandbox,
        profile_id,
        since,
        channel,
        marketing_only,
    )
    return count
