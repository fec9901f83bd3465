"""SQL of audience definitions and the references between them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from asyncpg import Record as Row

NAME_INDEX = "segment_definitions_name"
_COLUMNS = {"name": "name", "created_at": "created_at", "updated_at": "updated_at", "id": "id"}


@dataclass(frozen=True, slots=True)
class Columns:
    """What is stored of a definition, but its id and times."""

    name: str
    description: str
    expression: str
    merge_policy_id: str | None
    batch: bool
    continuous: bool
    synchronous: bool
    paths_read: list[str]
    audiences: list[str]
    streaming: bool
    streaming_reasons: list[str]
    lookback: timedelta | None
    time_dependent: bool


async def lock_sandbox(conn: asyncpg.Connection, sandbox: str) -> None:
    """Serialises the sandbox's definition writes until the transaction ends, so a check
    of the reference graph (an audience named exists, no cycle) still holds at commit."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('itinera.segmentation.definitions:' || $1, 0))",
        sandbox,
    )


async def insert(
    conn: asyncpg.Connection, sandbox: str, definition_id: uuid.UUID, c: Columns, origin: str = "rule"
) -> Row:
    row: Row = await conn.fetchrow(
        """INSERT INTO segment_definitions
               (sandbox, id, name, description, expression, merge_policy_id, batch_enabled,
                continuous_enabled, synchronous_enabled, paths_read, audiences, streaming,
                streaming_reasons, lookback, time_dependent, origin)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
           RETURNING *""",
        sandbox,
        definition_id,
        *_values(c),
        origin,
    )
    return row


async def update(conn: asyncpg.Connection, sandbox: str, definition_id: uuid.UUID, c: Columns) -> Row:
    row: Row = await conn.fetchrow(
        """UPDATE segment_definitions
              SET name = $3, description = $4, expression = $5, merge_policy_id = $6,
                  batch_enabled = $7, continuous_enabled = $8, synchronous_enabled = $9,
                  paths_read = $10, audiences = $11, streaming = $12, streaming_reasons = $13,
                  lookback = $14, time_dependent = $15, updated_at = now()
            WHERE sandbox = $1 AND id = $2
        RETURNING *""",
        sandbox,
        definition_id,
        *_values(c),
    )
    return row


def _values(c: Columns) -> tuple[object, ...]:
    return (
        c.name,
        c.description,
        c.expression,
        c.merge_policy_id,
        c.batch,
        c.continuous,
        c.synchronous,
        c.paths_read,
        c.audiences,
        c.streaming,
        c.streaming_reasons,
        c.lookback,
        c.time_dependent,
    )


async def get(
    conn: asyncpg.Connection, sandbox: str, definition_id: uuid.UUID, *, for_update: bool = False
) -> Row | None:
    lock = " FOR UPDATE" if for_update else ""
    row: Row | None = await conn.fetchrow(
        f"SELECT * FROM segment_definitions WHERE sandbox = $1 AND id = $2{lock}", sandbox, definition_id
    )
    return row


async def set_labels(
    conn: asyncpg.Connection, sandbox: str, definition_id: uuid.UUID, labels: list[str]
) -> None:
    """Replace an audience's data usage labels (``/audiences`` writes them)."""
    await conn.execute(
        "UPDATE segment_definitions SET labels = $3 WHERE sandbox = $1 AND id = $2",
        sandbox,
        definition_id,
        labels,
    )


async def get_many(conn: asyncpg.Connection, sandbox: str, ids: Sequence[uuid.UUID]) -> list[Row]:
    rows: list[Row] = await conn.fetch(
        "SELECT * FROM segment_definitions WHERE sandbox = $1 AND id = ANY($2::uuid[])", sandbox, list(ids)
    )
    return rows


async def batch_ids(conn: asyncpg.Connection, sandbox: str) -> list[uuid.UUID]:
    """The definitions evaluated in batch (``evaluationInfo.batch.enabled``), oldest first."""
    rows = await conn.fetch(
        "SELECT id FROM segment_definitions WHERE sandbox = $1 AND batch_enabled ORDER BY created_at, id",
        sandbox,
    )
    return [r["id"] for r in rows]


async def existing(conn: asyncpg.Connection, sandbox: str, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT id FROM segment_definitions WHERE sandbox = $1 AND id = ANY($2::uuid[])", sandbox, list(ids)
    )
    return {r["id"] for r in rows}


async def count(conn: asyncpg.Connection, sandbox: str, continuous: bool | None) -> int:
    total: int = await conn.fetchval(
        """SELECT count(*) FROM segment_definitions
            WHERE sandbox = $1 AND ($2::boolean IS NULL OR continuous_enabled = $2)""",
        sandbox,
        continuous,
    )
    return total


async def page(
    conn: asyncpg.Connection,
    sandbox: str,
    *,
    order: Sequence[tuple[str, bool]],
    offset: int,
    limit: int,
    continuous: bool | None,
) -> list[Row]:
    """``order``: (column, descending) pairs; the id breaks ties so pages never overlap."""
    keys = [f"{_COLUMNS[column]} {'DESC' if descending else 'ASC'}" for column, descending in order]
    if all(column != "id" for column, _ in order):
        keys.append("id ASC")
    rows: list[Row] = await conn.fetch(
        f"""SELECT * FROM segment_definitions
             WHERE sandbox = $1 AND ($2::boolean IS NULL OR continuous_enabled = $2)
             ORDER BY {", ".join(keys)}
             OFFSET $3 LIMIT $4""",
        sandbox,
        continuous,
        offset,
        limit,
    )
    return rows


async def delete(conn: asyncpg.Connection, sandbox: str, definition_id: uuid.UUID) -> bool:
    status: str = await conn.execute(
        "DELETE FROM segment_definitions WHERE sandbox = $1 AND id = $2", sandbox, definition_id
    )
    return status != "DELETE 0"


async def set_references(
    conn: asyncpg.Connection, sandbox: str, definition_id: uuid.UUID, referenced: Sequence[uuid.UUID]
) -> None:
    await conn.execute(
        "DELETE FROM segment_references WHERE sandbox = $1 AND definition_id = $2", sandbox, definition_id
    )
    await conn.execute(
        """INSERT INTO segment_references (sandbox, definition_id, referenced_id)
           SELECT $1, $2, unnest($3::uuid[]) ON CONFLICT DO NOTHING""",
        sandbox,
        definition_id,
        list(referenced),
    )


async def referrers(conn: asyncpg.Connection, sandbox: str, definition_id: uuid.UUID) -> list[Row]:
    """The definitions that name ``definition_id`` (id, name)."""
    rows: list[Row] = await conn.fetch(
        """SELECT d.id, d.name FROM segment_references r
             JOIN segment_definitions d ON d.sandbox = r.sandbox AND d.id = r.definition_id
            WHERE r.sandbox = $1 AND r.referenced_id = $2
            ORDER BY d.name, d.id""",
        sandbox,
        definition_id,
    )
    return rows


async def dependents(conn: asyncpg.Connection, sandbox: str, definition_id: uuid.UUID) -> list[uuid.UUID]:
    """The definitions that name ``definition_id``, directly or through others, by id."""
    rows = await conn.fetch(
        """WITH RECURSIVE dependents(id) AS (
               SELECT definition_id FROM segment_references WHERE sandbox = $1 AND referenced_id = $2
             UNION
               SELECT r.definition_id FROM segment_references r
                 JOIN dependents d ON r.referenced_id = d.id
                WHERE r.sandbox = $1
           )
           SELECT id FROM dependents ORDER BY id""",
        sandbox,
        definition_id,
    )
    return [r["id"] for r in rows]


async def dependents_among(
    conn: asyncpg.Connection, sandbox: str, definition_id: uuid.UUID, among: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """Those of ``among`` that name ``definition_id``, directly or through others: naming
    them from ``definition_id`` would close a cycle."""
    wanted = set(among)
    return [d for d in await dependents(conn, sandbox, definition_id) if d in wanted]


async def profile_only(conn: asyncpg.Connection, sandbox: str, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Those of ``ids`` whose rules read no event, neither themselves nor through the
    audiences they name, directly or not (AEP's profile-only audiences)."""
    rows = await conn.fetch(
        """WITH RECURSIVE reach(root, id) AS (
               SELECT id, id FROM segment_definitions WHERE sandbox = $1 AND id = ANY($2::uuid[])
             UNION
               SELECT reach.root, r.referenced_id FROM reach
                 JOIN segment_references r ON r.sandbox = $1 AND r.definition_id = reach.id
           )
           SELECT reach.root FROM reach
             JOIN segment_definitions d ON d.sandbox = $1 AND d.id = reach.id
            GROUP BY reach.root
           HAVING bool_and(NOT EXISTS (SELECT 1 FROM unnest(d.paths_read) p WHERE p LIKE 'xEvent%'))""",
        sandbox,
        list(ids),
    )
    return {r["root"] for r in rows}
