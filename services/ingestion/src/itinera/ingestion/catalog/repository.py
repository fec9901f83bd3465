"""SQL of datasets and streaming connections."""

from __future__ import annotations

import asyncpg
from asyncpg import Record as Row


async def insert_dataset(
    conn: asyncpg.Connection,
    *,
    sandbox: str,
    dataset_id: str,
    name: str,
    description: str,
    schema_id: str,
    content_type: str,
    class_id: str,
    profile_enabled: bool,
) -> Row:
    row: Row = await conn.fetchrow(
        """INSERT INTO datasets (sandbox, id, name, description, schema_id, content_type,
                                 class_id, profile_enabled)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *""",
        sandbox,
        dataset_id,
        name,
        description,
        schema_id,
        content_type,
        class_id,
        profile_enabled,
    )
    return row


async def list_datasets(conn: asyncpg.Connection, sandbox: str) -> list[Row]:
    rows: list[Row] = await conn.fetch(
        "SELECT * FROM datasets WHERE sandbox = $1 ORDER BY created_at, id", sandbox
    )
    return rows


async def get_dataset(conn: asyncpg.Connection, sandbox: str, dataset_id: str) -> Row | None:
    row: Row | None = await conn.fetchrow(
        "SELECT * FROM datasets WHERE sandbox = $1 AND id = $2", sandbox, dataset_id
    )
    return row


async def datasets_using(conn: asyncpg.Connection, sandbox: str, schema_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT id FROM datasets WHERE sandbox = $1 AND schema_id = $2", sandbox, schema_id
    )
    return [r["id"] for r in rows]


async def insert_connection(
    conn: asyncpg.Connection,
    *,
    sandbox: str,
    connection_id: str,
    name: str,
    description: str,
    dataset_id: str,
    source_name: str,
) -> Row:
    row: Row = await conn.fetchrow(
        """INSERT INTO connections (sandbox, id, name, description, dataset_id, source_name)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING *""",
        sandbox,
        connection_id,
        name,
        description,
        dataset_id,
        source_name,
    )
    return row


async def list_connections(conn: asyncpg.Connection, sandbox: str) -> list[Row]:
    rows: list[Row] = await conn.fetch(
        "SELECT * FROM connections WHERE sandbox = $1 ORDER BY created_at, id", sandbox
    )
    return rows


async def get_connection(conn: asyncpg.Connection, connection_id: str) -> Row | None:
    """Connection ids are unique across sandboxes; the caller checks the sandbox."""
    row: Row | None = await conn.fetchrow("SELECT * FROM connections WHERE id = $1", connection_id)
    return row


async def find_dataset_by_name(conn: asyncpg.Connection, sandbox: str, name: str) -> Row | None:
    row: Row | None = await conn.fetchrow(
        "SELECT * FROM datasets WHERE sandbox = $1 AND name = $2", sandbox, name
    )
    return row


async def find_connection_by_name(conn: asyncpg.Connection, sandbox: str, name: str) -> Row | None:
    row: Row | None = await conn.fetchrow(
        "SELECT * FROM connections WHERE sandbox = $1 AND name = $2", sandbox, name
    )
    return row
