"""SQL of tracking: the links of each email, their clicks, and opens."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

import asyncpg


async def record_links(
    conn: asyncpg.Connection, sandbox: str, links: Mapping[uuid.UUID, Sequence[str]]
) -> None:
    """The links of several messages, in one statement."""
    rows = [{"m": str(m), "i": i, "u": url} for m, urls in links.items() for i, url in enumerate(urls)]
    if not rows:
        return
    await conn.execute(
        """INSERT INTO message_links (sandbox, message_id, link_index, url)
           SELECT $1, r.m, r.i, r.u FROM jsonb_to_recordset($2::jsonb) AS r(m uuid, i integer, u text)
           ON CONFLICT DO NOTHING""",
        sandbox,
        rows,
    )


async def links(conn: asyncpg.Connection, sandbox: str, message_id: uuid.UUID) -> list[str]:
    rows = await conn.fetch(
        "SELECT url FROM message_links WHERE sandbox = $1 AND message_id = $2 ORDER BY link_index",
        sandbox,
        message_id,
    )
    return [row["url"] for row in rows]


async def clicked(
    conn: asyncpg.Connection, sandbox: str, message_id: uuid.UUID, index: int, now: datetime
) -> asyncpg.Record | None:
    """Count a click of the message's link ``index``: the link's URL with the message's
    profile, channel, address and origin; None when the message has no such link."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """UPDATE message_links l SET clicks = l.clicks + 1, last_clicked_at = $4
           FROM messages m
           WHERE l.sandbox = $1 AND l.message_id = $2 AND l.link_index = $3
             AND m.sandbox = l.sandbox AND m.message_id = l.message_id
           RETURNING l.url, m.message_id, m.profile_id, m.channel, m.address, m.origin""",
        sandbox,
        message_id,
        index,
        now,
    )
    return row


async def opened(
    conn: asyncpg.Connection, sandbox: str, message_id: uuid.UUID, now: datetime
) -> asyncpg.Record | None:
    """Count an open of the message: its profile, channel, address and origin, and
    whether this was the first open (``first``); None when there is no such message."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """WITH counted AS (
               INSERT INTO message_opens (sandbox, message_id, first_at, last_at)
               SELECT sandbox, message_id, $3, $3 FROM messages WHERE sandbox = $1 AND message_id = $2
               ON CONFLICT (sandbox, message_id)
                   DO UPDATE SET last_at = excluded.last_at, opens = message_opens.opens + 1
               RETURNING opens
           )
           SELECT m.message_id, m.profile_id, m.channel, m.address, m.origin, c.opens = 1 AS first
           FROM messages m JOIN counted c ON true
           WHERE m.sandbox = $1 AND m.message_id = $2""",
        sandbox,
        message_id,
        now,
    )
    return row
