"""SQL of the template store (``content_items``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg


async def keep_latest(conn: asyncpg.Connection, sandbox: str, item: Mapping[str, Any]) -> bool:
    """Store ``item`` unless a version as new or newer is held; whether it was stored."""
    stored = await conn.fetchval(
        """INSERT INTO content_items
               (sandbox, kind, id, version, deleted, channel, default_locale, variants, fragments, tracking)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (sandbox, kind, id) DO UPDATE SET
               version = EXCLUDED.version, deleted = EXCLUDED.deleted, channel = EXCLUDED.channel,
               default_locale = EXCLUDED.default_locale, variants = EXCLUDED.variants,
               fragments = EXCLUDED.fragments, tracking = EXCLUDED.tracking, updated_at = now()
           WHERE content_items.version < EXCLUDED.version
           RETURNING true""",
        sandbox,
        item["kind"],
        item["id"],
        item["version"],
        item["deleted"],
        item.get("channel"),
        item.get("defaultLocale"),
        {} if item["deleted"] else item.get("variants") or {},
        [] if item["deleted"] else list(item.get("fragments") or []),
        None if item["deleted"] else item.get("tracking"),
    )
    return bool(stored)


async def templates(conn: asyncpg.Connection, sandbox: str, ids: Sequence[str]) -> dict[str, asyncpg.Record]:
    """The live templates of these ids."""
    rows = await conn.fetch(
        """SELECT id, version, channel, default_locale, variants, fragments, tracking FROM content_items
           WHERE sandbox = $1 AND kind = 'template' AND id = ANY($2::text[]) AND NOT deleted""",
        sandbox,
        list(ids),
    )
    return {row["id"]: row for row in rows}


async def fragments(conn: asyncpg.Connection, sandbox: str, ids: Sequence[str]) -> dict[str, asyncpg.Record]:
    """The live fragments of these ids."""
    rows = await conn.fetch(
        """SELECT id, version, default_locale, variants FROM content_items
           WHERE sandbox = $1 AND kind = 'fragment' AND id = ANY($2::text[]) AND NOT deleted""",
        sandbox,
        list(ids),
    )
    return {row["id"]: row for row in rows}
