"""SQL of custom actions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg import Record as Row

NAME_INDEX = "actions_name"


@dataclass(frozen=True, slots=True)
class Columns:
    """What is stored of an action, but its id and times."""

    name: str
    description: str
    config: dict[str, Any]
    endpoint: str
    parameters: list[str]
    response_fields: list[str]


async def insert(conn: asyncpg.Connection, sandbox: str, action_id: uuid.UUID, c: Columns) -> Row:
    row: Row = await conn.fetchrow(
        """INSERT INTO actions (sandbox, id, name, description, config, endpoint, parameters, response_fields)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           RETURNING *""",
        sandbox,
        action_id,
        c.name,
        c.description,
        c.config,
        c.endpoint,
        c.parameters,
        c.response_fields,
    )
    return row


async def update(conn: asyncpg.Connection, sandbox: str, action_id: uuid.UUID, c: Columns) -> Row:
    row: Row = await conn.fetchrow(
        """UPDATE actions
              SET name = $3, description = $4, config = $5, endpoint = $6, parameters = $7,
                  response_fields = $8, updated_at = now(), revision = revision + 1
            WHERE sandbox = $1 AND id = $2
        RETURNING *""",
        sandbox,
        action_id,
        c.name,
        c.description,
        c.config,
        c.endpoint,
        c.parameters,
        c.response_fields,
    )
    return row


async def get(
    conn: asyncpg.Connection, sandbox: str, action_id: uuid.UUID, *, for_update: bool = False
) -> Row | None:
    lock = " FOR UPDATE" if for_update else ""
    row: Row | None = await conn.fetchrow(
        f"SELECT * FROM actions WHERE sandbox = $1 AND id = $2{lock}", sandbox, action_id
    )
    return row


async def facts(conn: asyncpg.Connection, sandbox: str, ids: Sequence[uuid.UUID], *, lock: bool) -> list[Row]:
    """The parameters and response fields of the actions ``ids`` that exist. With
    ``lock``, they stay as read (and cannot be deleted) until the transaction ends."""
    share = " FOR SHARE" if lock else ""
    rows: list[Row] = await conn.fetch(
        f"""SELECT id, parameters, response_fields FROM actions
             WHERE sandbox = $1 AND id = ANY($2::uuid[]) ORDER BY id{share}""",
        sandbox,
        list(ids),
    )
    return rows


async def count(conn: asyncpg.Connection, sandbox: str) -> int:
    total: int = await conn.fetchval("SELECT count(*) FROM actions WHERE sandbox = $1", sandbox)
    return total


async def page(conn: asyncpg.Connection, sandbox: str, offset: int, limit: int) -> list[Row]:
    """Newest first; the id breaks ties so pages never overlap."""
    rows: list[Row] = await conn.fetch(
        "SELECT * FROM actions WHERE sandbox = $1 ORDER BY created_at DESC, id OFFSET $2 LIMIT $3",
        sandbox,
        offset,
        limit,
    )
    return rows


async def delete(conn: asyncpg.Connection, sandbox: str, action_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM actions WHERE sandbox = $1 AND id = $2", sandbox, action_id)


async def running_versions(conn: asyncpg.Connection, sandbox: str, action_id: uuid.UUID) -> list[Row]:
    """The journey versions that may still call the action: live ones, and closed ones
    whose instances finish."""
    rows: list[Row] = await conn.fetch(
        """SELECT journey_id, version, status FROM journey_versions
            WHERE sandbox = $1 AND actions @> ARRAY[$2::uuid] AND status IN ('live', 'closed')
            ORDER BY journey_id, version""",
        sandbox,
        action_id,
    )
    return rows
