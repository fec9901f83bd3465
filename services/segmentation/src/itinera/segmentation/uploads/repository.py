"""SQL of the uploads into uploaded audiences."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg
from asyncpg import Record as Row


async def insert(
    conn: asyncpg.Connection,
    sandbox: str,
    upload_id: uuid.UUID,
    audience_id: uuid.UUID,
    namespaces: Sequence[str],
    rows: int,
    identities: int,
) -> None:
    await conn.execute(
        """INSERT INTO audience_uploads (sandbox, id, audience_id, namespaces, rows, identities)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        sandbox,
        upload_id,
        audience_id,
        list(namespaces),
        rows,
        identities,
    )


async def of_audience(conn: asyncpg.Connection, sandbox: str, audience_id: uuid.UUID) -> list[Row]:
    rows: list[Row] = await conn.fetch(
        """SELECT * FROM audience_uploads WHERE sandbox = $1 AND audience_id = $2
           ORDER BY created_at, id""",
        sandbox,
        audience_id,
    )
    return rows
