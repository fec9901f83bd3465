"""SQL of journeys and their versions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg import Record as Row

# A journey with the numbers of its draft and live versions, and the status the list shows.
_JOURNEY = """
    SELECT j.*,
           (SELECT v.version FROM journey_versions v
             WHERE v.sandbox = j.sandbox AND v.journey_id = j.id AND v.status = 'draft') AS draft_version,
           (SELECT v.version FROM journey_versions v
             WHERE v.sandbox = j.sandbox AND v.journey_id = j.id AND v.status = 'live') AS live_version,
           (SELECT v.status FROM journey_versions v
             WHERE v.sandbox = j.sandbox AND v.journey_id = j.id
             ORDER BY (v.status = 'live') DESC, v.version DESC LIMIT 1) AS status
      FROM journeys j
"""


@dataclass(frozen=True, slots=True)
class Facts:
    """What is recorded of a version besides its document, for the runtime to find it by."""

    entry_node: str | None
    entry_type: str | None
    entry_key: str | None
    templates: list[str]
    audiences: list[str]
    actions: list[uuid.UUID]
    jumps: list[uuid.UUID]


async def insert_journey(
    conn: asyncpg.Connection, sandbox: str, journey_id: uuid.UUID, name: str, description: str
) -> None:
    await conn.execute(
        "INSERT INTO journeys (sandbox, id, name, description) VALUES ($1, $2, $3, $4)",
        sandbox,
        journey_id,
        name,
        description,
    )


async def lock_journey(conn: asyncpg.Connection, sandbox: str, journey_id: uuid.UUID) -> Row | None:
    """The journey's row, locked until the transaction ends: its writes are serialised."""
    row: Row | None = await conn.fetchrow(
        "SELECT * FROM journeys WHERE sandbox = $1 AND id = $2 FOR UPDATE", sandbox, journey_id
    )
    return row


async def touch_journey(
    conn: asyncpg.Connection, sandbox: str, journey_id: uuid.UUID, name: str, description: str, latest: int
) -> None:
    await conn.execute(
        """UPDATE journeys
              SET name = $3, description = $4, latest_version = $5, updated_at = now(),
                  revision = revision + 1
            WHERE sandbox = $1 AND id = $2""",
        sandbox,
        journey_id,
        name,
        description,
        latest,
    )


async def get_journey(conn: asyncpg.Connection, sandbox: str, journey_id: uuid.UUID) -> Row | None:
    row: Row | None = await conn.fetchrow(
        f"{_JOURNEY} WHERE j.sandbox = $1 AND j.id = $2", sandbox, journey_id
    )
    return row


async def existing_journeys(
    conn: asyncpg.Connection, sandbox: str, ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT id FROM journeys WHERE sandbox = $1 AND id = ANY($2::uuid[])", sandbox, list(ids)
    )
    return {r["id"] for r in rows}


async def count(conn: asyncpg.Connection, sandbox: str, status: str | None) -> int:
    total: int = await conn.fetchval(
        f"""SELECT count(*) FROM ({_JOURNEY} WHERE j.sandbox = $1) listed
             WHERE $2::text IS NULL OR status = $2""",
        sandbox,
        status,
    )
    return total


async def page(
    conn: asyncpg.Connection, sandbox: str, status: str | None, offset: int, limit: int
) -> list[Row]:
    """Most recently changed first; the id breaks ties so pages never overlap."""
    rows: list[Row] = await conn.fetch(
        f"""SELECT * FROM ({_JOURNEY} WHERE j.sandbox = $1) listed
             WHERE $2::text IS NULL OR status = $2
             ORDER BY updated_at DESC, id
             OFFSET $3 LIMIT $4""",
        sandbox,
        status,
        offset,
        limit,
    )
    return rows


async def versions(conn: asyncpg.Connection, sandbox: str, journey_id: uuid.UUID) -> list[Row]:
    """The versions' summaries (not their documents), oldest first."""
    rows: list[Row] = await conn.fetch(
        """SELECT version, status, created_at, updated_at, published_at, stopped_at, closed_at
             FROM journey_versions WHERE sandbox = $1 AND journey_id = $2 ORDER BY version""",
        sandbox,
        journey_id,
    )
    return rows


async def get_version(
    conn: asyncpg.Connection, sandbox: str, journey_id: uuid.UUID, version: int
) -> Row | None:
    row: Row | None = await conn.fetchrow(
        "SELECT * FROM journey_versions WHERE sandbox = $1 AND journey_id = $2 AND version = $3",
        sandbox,
        journey_id,
        version,
    )
    return row


async def draft(conn: asyncpg.Connection, sandbox: str, journey_id: uuid.UUID) -> Row | None:
    row: Row | None = await conn.fetchrow(
        "SELECT * FROM journey_versions WHERE sandbox = $1 AND journey_id = $2 AND status = 'draft'",
        sandbox,
        journey_id,
    )
    return row


async def insert_version(
    conn: asyncpg.Connection,
    sandbox: str,
    journey_id: uuid.UUID,
    version: int,
    definition: dict[str, Any],
    facts: Facts,
) -> Row:
    row: Row = await conn.fetchrow(
        """INSERT INTO journey_versions
               (sandbox, journey_id, version, status, definition, entry_node, entry_type, entry_key,
                templates, audiences, actions, jumps)
           VALUES ($1, $2, $3, 'draft', $4, $5, $6, $7, $8, $9, $10, $11)
           RETURNING *""",
        sandbox,
        journey_id,
        version,
        definition,
        *_facts(facts),
    )
    return row


async def replace_draft(
    conn: asyncpg.Connection,
    sandbox: str,
    journey_id: uuid.UUID,
    version: int,
    definition: dict[str, Any],
    facts: Facts,
) -> Row:
    row: Row = await conn.fetchrow(
        """UPDATE journey_versions
              SET definition = $4, entry_node = $5, entry_type = $6, entry_key = $7, templates = $8,
                  audiences = $9, actions = $10, jumps = $11, updated_at = now()
            WHERE sandbox = $1 AND journey_id = $2 AND version = $3 AND status = 'draft'
        RETURNING *""",
        sandbox,
        journey_id,
        version,
        definition,
        *_facts(facts),
    )
    return row


def _facts(facts: Facts) -> tuple[object, ...]:
    return (
        facts.entry_node,
        facts.entry_type,
        facts.entry_key,
        facts.templates,
        facts.audiences,
        facts.actions,
        facts.jumps,
    )


async def set_status(
    conn: asyncpg.Connection, sandbox: str, journey_id: uuid.UUID, version: int, status: str, at: datetime
) -> Row:
    """Moves a version to ``status`` and stamps when (``published_at``, ``stopped_at``
    or ``closed_at``)."""
    stamp = {"live": "published_at", "stopped": "stopped_at", "closed": "closed_at"}[status]
    row: Row = await conn.fetchrow(
        f"""UPDATE journey_versions SET status = $4, {stamp} = $5, updated_at = $5
             WHERE sandbox = $1 AND journey_id = $2 AND version = $3
         RETURNING *""",
        sandbox,
        journey_id,
        version,
        status,
        at,
    )
    return row


async def live_version(conn: asyncpg.Connection, sandbox: str, journey_id: uuid.UUID) -> int | None:
    version: int | None = await conn.fetchval(
        "SELECT version FROM journey_versions WHERE sandbox = $1 AND journey_id = $2 AND status = 'live'",
        sandbox,
        journey_id,
    )
    return version


async def running(conn: asyncpg.Connection, sandbox: str, journey_id: uuid.UUID) -> list[Row]:
    """What keeps a journey from being deleted: its versions still running (live, or
    closed with instances finishing), its waiting instances (by version), and the other
    journeys' running versions that jump to it; ``{what, journey_id, version, status}``."""
    rows: list[Row] = await conn.fetch(
        """SELECT 'version' AS what, journey_id, version, status FROM journey_versions
            WHERE sandbox = $1 AND journey_id = $2 AND status IN ('live', 'closed')
           UNION ALL
           SELECT 'instances', journey_id, version, 'waiting' FROM instances
            WHERE sandbox = $1 AND journey_id = $2 AND status = 'waiting'
            GROUP BY journey_id, version
           UNION ALL
           SELECT 'jump', journey_id, version, status FROM journey_versions
            WHERE sandbox = $1 AND jumps @> ARRAY[$2::uuid] AND journey_id <> $2
              AND status IN ('live', 'closed')
           ORDER BY 1, 2, 3""",
        sandbox,
        journey_id,
    )
    return rows


async def delete_journey(conn: asyncpg.Connection, sandbox: str, journey_id: uuid.UUID) -> None:
    """The journey, its versions and its (ended) instances with their history, and its
    audience reads and their schedules."""
    for table in ("instances", "audience_reads", "read_schedules"):
        await conn.execute(f"DELETE FROM {table} WHERE sandbox = $1 AND journey_id = $2", sandbox, journey_id)
    await conn.execute("DELETE FROM journeys WHERE sandbox = $1 AND id = $2", sandbox, journey_id)


async def touch(conn: asyncpg.Connection, sandbox: str, journey_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE journeys SET updated_at = now(), revision = revision + 1 WHERE sandbox = $1 AND id = $2",
        sandbox,
        journey_id,
    )
