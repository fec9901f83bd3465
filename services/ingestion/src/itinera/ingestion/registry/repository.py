"""SQL of the schema registry: tenant schemas, tenant field groups, descriptors."""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg import Record as Row


async def list_resources(conn: asyncpg.Connection, sandbox: str, kind: str) -> list[Row]:
    rows: list[Row] = await conn.fetch(
        "SELECT * FROM tenant_schemas WHERE sandbox = $1 AND kind = $2 ORDER BY title",
        sandbox,
        kind,
    )
    return rows


async def get_resource(conn: asyncpg.Connection, sandbox: str, kind: str, ref: str) -> Row | None:
    """By ``$id`` or ``meta:altId``."""
    row: Row | None = await conn.fetchrow(
        """SELECT * FROM tenant_schemas
           WHERE sandbox = $1 AND kind = $2 AND (id = $3 OR alt_id = $3)""",
        sandbox,
        kind,
        ref,
    )
    return row


async def get_by_ids(conn: asyncpg.Connection, sandbox: str, ids: list[str]) -> list[Row]:
    rows: list[Row] = await conn.fetch(
        "SELECT * FROM tenant_schemas WHERE sandbox = $1 AND id = ANY($2::text[])", sandbox, ids
    )
    return rows


async def insert_resource(
    conn: asyncpg.Connection,
    sandbox: str,
    kind: str,
    resource_id: str,
    alt_id: str,
    title: str,
    document: dict[str, Any],
) -> Row:
    row: Row = await conn.fetchrow(
        """INSERT INTO tenant_schemas (sandbox, id, alt_id, kind, title, document)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING *""",
        sandbox,
        resource_id,
        alt_id,
        kind,
        title,
        document,
    )
    return row


async def update_resource(
    conn: asyncpg.Connection, sandbox: str, resource_id: str, title: str, document: dict[str, Any]
) -> Row:
    row: Row = await conn.fetchrow(
        """UPDATE tenant_schemas SET title = $3, document = $4, version = version + 1,
                  updated_at = now()
           WHERE sandbox = $1 AND id = $2 RETURNING *""",
        sandbox,
        resource_id,
        title,
        document,
    )
    return row


async def delete_resource(conn: asyncpg.Connection, sandbox: str, resource_id: str) -> None:
    await conn.execute("DELETE FROM tenant_schemas WHERE sandbox = $1 AND id = $2", sandbox, resource_id)


async def referencing_schemas(conn: asyncpg.Connection, sandbox: str, resource_id: str) -> list[str]:
    """Tenant schemas whose ``allOf`` names ``resource_id``."""
    rows = await conn.fetch(
        """SELECT id FROM tenant_schemas
           WHERE sandbox = $1 AND kind = 'schemas'
             AND document -> 'allOf' @> jsonb_build_array(jsonb_build_object('$ref', $2::text))""",
        sandbox,
        resource_id,
    )
    return [r["id"] for r in rows]


async def list_descriptors(conn: asyncpg.Connection, sandbox: str) -> list[Row]:
    rows: list[Row] = await conn.fetch(
        "SELECT * FROM descriptors WHERE sandbox = $1 ORDER BY created_at, id", sandbox
    )
    return rows


async def descriptors_for(conn: asyncpg.Connection, sandbox: str, schema_id: str) -> list[Row]:
    rows: list[Row] = await conn.fetch(
        "SELECT * FROM descriptors WHERE sandbox = $1 AND source_schema = $2 ORDER BY id",
        sandbox,
        schema_id,
    )
    return rows


async def get_descriptor(conn: asyncpg.Connection, sandbox: str, descriptor_id: str) -> Row | None:
    row: Row | None = await conn.fetchrow(
        "SELECT * FROM descriptors WHERE sandbox = $1 AND id = $2", sandbox, descriptor_id
    )
    return row


async def insert_descriptor(
    conn: asyncpg.Connection, sandbox: str, descriptor_id: str, document: dict[str, Any]
) -> Row:
    row: Row = await conn.fetchrow(
        """INSERT INTO descriptors (sandbox, id, type, source_schema, document)
           VALUES ($1, $2, $3, $4, $5) RETURNING *""",
        sandbox,
        descriptor_id,
        document["@type"],
        document["xdm:sourceSchema"],
        document,
    )
    return row


async def replace_descriptor(
    conn: asyncpg.Connection, sandbox: str, descriptor_id: str, document: dict[str, Any]
) -> Row:
    row: Row = await conn.fetchrow(
        """UPDATE descriptors SET type = $3, source_schema = $4, document = $5
           WHERE sandbox = $1 AND id = $2 RETURNING *""",
        sandbox,
        descriptor_id,
        document["@type"],
        document["xdm:sourceSchema"],
        document,
    )
    return row


async def delete_descriptor(conn: asyncpg.Connection, sandbox: str, descriptor_id: str) -> bool:
    status: str = await conn.execute(
        "DELETE FROM descriptors WHERE sandbox = $1 AND id = $2", sandbox, descriptor_id
    )
    return status.endswith(" 1")


async def count_resources(conn: asyncpg.Connection, sandbox: str) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT kind, count(*) AS n FROM tenant_schemas WHERE sandbox = $1 GROUP BY kind", sandbox
    )
    return {r["kind"]: r["n"] for r in rows}


async def notify_catalog_changed(conn: asyncpg.Connection, sandbox: str) -> None:
    await conn.execute("SELECT pg_notify('ingestion_catalog', $1)", sandbox)
