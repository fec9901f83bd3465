"""SQL of templates and fragments and their versions: the two kinds share one shape
(an item row, its version rows, the ids retired by deletion), so one set of statements
serves both, with the tables of the ``Kind`` given (fixed names, never caller input)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg import Record as Row


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    """``template`` or ``fragment``: the record's ``kind`` and its key's prefix."""
    table: str
    versions: str
    owner: str
    """The versions' column naming their item."""
    extra: str
    """The item's fixed property: a template's channel, a fragment's type."""

    @property
    def item_query(self) -> str:
        return f"""
            SELECT i.*,
                   (SELECT v.version FROM {self.versions} v
                     WHERE v.sandbox = i.sandbox AND v.{self.owner} = i.id AND v.status = 'draft')
                       AS draft_version
              FROM {self.table} i"""


TEMPLATES = Kind("template", "templates", "template_versions", "template_id", "channel")
FRAGMENTS = Kind("fragment", "fragments", "fragment_versions", "fragment_id", "type")


async def take_retired(conn: asyncpg.Connection, kind: Kind, sandbox: str, item_id: str) -> int:
    """The last version of a deleted item of this id (0 when none), forgotten: the new
    item's versions continue after it."""
    last: int | None = await conn.fetchval(
        "DELETE FROM retired WHERE sandbox = $1 AND kind = $2 AND id = $3 RETURNING last_version",
        sandbox,
        kind.name,
        item_id,
    )
    return last or 0


async def insert_item(
    conn: asyncpg.Connection,
    kind: Kind,
    sandbox: str,
    item_id: str,
    name: str,
    description: str,
    extra: str,
    version: int,
) -> bool:
    """False when the sandbox already has an item of that id."""
    inserted: str | None = await conn.fetchval(
        f"""INSERT INTO {kind.table} (sandbox, id, name, description, {kind.extra}, latest_version)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (sandbox, id) DO NOTHING RETURNING id""",
        sandbox,
        item_id,
        name,
        description,
        extra,
        version,
    )
    return inserted is not None


async def lock_item(conn: asyncpg.Connection, kind: Kind, sandbox: str, item_id: str) -> Row | None:
    """The item's row, locked until the transaction ends: its writes are serialised."""
    row: Row | None = await conn.fetchrow(
        f"SELECT * FROM {kind.table} WHERE sandbox = $1 AND id = $2 FOR UPDATE", sandbox, item_id
    )
    return row


async def get_item(conn: asyncpg.Connection, kind: Kind, sandbox: str, item_id: str) -> Row | None:
    row: Row | None = await conn.fetchrow(
        f"{kind.item_query} WHERE i.sandbox = $1 AND i.id = $2", sandbox, item_id
    )
    return row


_FILTER = """WHERE i.sandbox = $1 AND ($2::text IS NULL OR i.{extra} = $2)
               AND ($3::text IS NULL OR (i.published_version IS NOT NULL) = ($3 = 'published'))"""


async def count(
    conn: asyncpg.Connection, kind: Kind, sandbox: str, extra: str | None, status: str | None
) -> int:
    total: int = await conn.fetchval(
        f"SELECT count(*) FROM {kind.table} i {_FILTER.format(extra=kind.extra)}", sandbox, extra, status
    )
    return total


async def page(
    conn: asyncpg.Connection,
    kind: Kind,
    sandbox: str,
    extra: str | None,
    status: str | None,
    offset: int,
    limit: int,
) -> list[Row]:
    """Most recently changed first; the id breaks ties so pages never overlap."""
    rows: list[Row] = await conn.fetch(
        f"""{kind.item_query} {_FILTER.format(extra=kind.extra)}
             ORDER BY i.updated_at DESC, i.id OFFSET $4 LIMIT $5""",
        sandbox,
        extra,
        status,
        offset,
        limit,
    )
    return rows


async def versions(conn: asyncpg.Connection, kind: Kind, sandbox: str, item_id: str) -> list[Row]:
    """The versions' summaries (not their documents), oldest first."""
    rows: list[Row] = await conn.fetch(
        f"""SELECT version, status, revision, created_at, updated_at, published_at
              FROM {kind.versions} WHERE sandbox = $1 AND {kind.owner} = $2 ORDER BY version""",
        sandbox,
        item_id,
    )
    return rows


async def get_version(
    conn: asyncpg.Connection, kind: Kind, sandbox: str, item_id: str, version: int
) -> Row | None:
    row: Row | None = await conn.fetchrow(
        f"SELECT * FROM {kind.versions} WHERE sandbox = $1 AND {kind.owner} = $2 AND version = $3",
        sandbox,
        item_id,
        version,
    )
    return row


async def draft(conn: asyncpg.Connection, kind: Kind, sandbox: str, item_id: str) -> Row | None:
    row: Row | None = await conn.fetchrow(
        f"SELECT * FROM {kind.versions} WHERE sandbox = $1 AND {kind.owner} = $2 AND status = 'draft'",
        sandbox,
        item_id,
    )
    return row


async def insert_version(
    conn: asyncpg.Connection,
    kind: Kind,
    sandbox: str,
    item_id: str,
    version: int,
    document: dict[str, Any],
    fragments: list[str],
) -> None:
    await conn.execute(
        f"""INSERT INTO {kind.versions} (sandbox, {kind.owner}, version, status, document, fragments)
            VALUES ($1, $2, $3, 'draft', $4, $5)""",
        sandbox,
        item_id,
        version,
        document,
        fragments,
    )


async def replace_draft(
    conn: asyncpg.Connection,
    kind: Kind,
    sandbox: str,
    item_id: str,
    version: int,
    document: dict[str, Any],
    fragments: list[str],
) -> None:
    await conn.execute(
        f"""UPDATE {kind.versions}
               SET document = $4, fragments = $5, revision = revision + 1, updated_at = now()
             WHERE sandbox = $1 AND {kind.owner} = $2 AND version = $3 AND status = 'draft'""",
        sandbox,
        item_id,
        version,
        document,
        fragments,
    )


async def touch_item(
    conn: asyncpg.Connection,
    kind: Kind,
    sandbox: str,
    item_id: str,
    name: str,
    description: str,
    latest: int,
) -> None:
    await conn.execute(
        f"""UPDATE {kind.table}
               SET name = $3, description = $4, latest_version = $5, updated_at = now(),
                   revision = revision + 1
             WHERE sandbox = $1 AND id = $2""",
        sandbox,
        item_id,
        name,
        description,
        latest,
    )


async def publish_version(
    conn: asyncpg.Connection, kind: Kind, sandbox: str, item_id: str, version: int, at: datetime
) -> Row:
    """The draft ``version`` becomes the item's published version."""
    row: Row = await conn.fetchrow(
        f"""UPDATE {kind.versions} SET status = 'published', published_at = $4, updated_at = $4
             WHERE sandbox = $1 AND {kind.owner} = $2 AND version = $3
         RETURNING *""",
        sandbox,
        item_id,
        version,
        at,
    )
    await conn.execute(
        f"""UPDATE {kind.table} SET published_version = $3, updated_at = $4, revision = revision + 1
             WHERE sandbox = $1 AND id = $2""",
        sandbox,
        item_id,
        version,
        at,
    )
    return row


async def delete_item(conn: asyncpg.Connection, kind: Kind, sandbox: str, item_id: str, last: int) -> None:
    """Deletes the item and its versions, and remembers its last version number."""
    await conn.execute(f"DELETE FROM {kind.table} WHERE sandbox = $1 AND id = $2", sandbox, item_id)
    await conn.execute(
        """INSERT INTO retired (sandbox, kind, id, last_version) VALUES ($1, $2, $3, $4)
           ON CONFLICT (sandbox, kind, id) DO UPDATE SET last_version = excluded.last_version""",
        sandbox,
        kind.name,
        item_id,
        last,
    )
