"""How long the channels keep what they know of each message.

- A final message's rendered parts (``content``: an email's HTML and text, most of a
  row) are cleared ``ITINERA_CHANNELS_CONTENT_RETENTION_DAYS`` (30) after it was taken.
  Nothing reads them once the message is sent, failed or excluded; they are kept that
  long to answer "what did we send?".
- The message itself, with its links and opens, is deleted
  ``ITINERA_CHANNELS_MESSAGE_RETENTION_DAYS`` (400) after it was taken, if final. Until
  then its tracking links redirect, its reports and bounces find it and frequency caps
  count it (so the setting is at least 32 days: a calendar month's cap). After it, its
  links answer 404, and a copy of its request consumed again would be sent again (the
  request topic keeps records for days, not months).
- A provider's report that never matched a message goes after the content retention; a
  matched one with its message.
- A soft-bounce count untouched for longer than ``ITINERA_CHANNELS_SOFT_BOUNCE_PERIOD_S``
  no longer counts, and goes.

Any number of replicas run the sweep: each chunk is one statement over rows picked by
age, and a row deleted twice is deleted once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client import Counter

from itinera.channels.config import ChannelsSettings
from itinera.common.db.sweeps import delete_oldest
from itinera.common.periodic import Periodic

log = logging.getLogger(__name__)

CHUNK = 2_000
FINAL = ("sent", "failed", "excluded")
CLEARED = Counter("itinera_channels_contents_cleared", "Final messages whose rendered parts were cleared")
DELETED = Counter("itinera_channels_messages_deleted", "Final messages deleted after their retention")


@dataclass
class Swept:
    contents: int = 0
    messages: int = 0
    reports: int = 0
    soft_bounces: int = 0


async def clear_contents(conn: asyncpg.Connection, before: datetime, limit: int) -> int:
    cleared: int = await conn.fetchval(
        """WITH old AS (
               SELECT sandbox, message_id FROM messages
               WHERE content IS NOT NULL AND created_at < $1 AND state = ANY($2::text[])
               ORDER BY created_at LIMIT $3
           ), done AS (
               UPDATE messages m SET content = NULL FROM old
               WHERE m.sandbox = old.sandbox AND m.message_id = old.message_id
               RETURNING 1
           )
           SELECT count(*) FROM done""",
        before,
        list(FINAL),
        limit,
    )
    return cleared


async def delete_messages(conn: asyncpg.Connection, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` final messages taken before ``before`` whose parts are
    cleared (every one that old is: the content retention is the shorter)."""
    return await delete_oldest(
        conn,
        "messages",
        ("sandbox", "message_id"),
        "created_at",
        before,
        limit,
        "content IS NULL AND state = ANY($3::text[])",
        list(FINAL),
    )


async def delete_reports(
    conn: asyncpg.Connection, unmatched_before: datetime, before: datetime, limit: int
) -> int:
    """Delete up to ``limit`` reports received before ``unmatched_before`` that never
    matched a message, or before ``before`` whatever they matched."""
    return await delete_oldest(
        conn,
        "delivery_reports",
        ("channel", "provider_id", "status"),
        "received_at",
        unmatched_before,
        limit,
        "applied_at IS NULL OR received_at < $3",
        before,
    )


async def delete_soft_bounces(conn: asyncpg.Connection, before: datetime) -> int:
    status: str = await conn.execute("DELETE FROM soft_bounces WHERE updated_at < $1", before)
    return int(status.split()[-1])


class RetentionSweep(Periodic):
    """Clears and deletes what is past its retention, a chunk a statement, every
    ``ITINERA_CHANNELS_RETENTION_INTERVAL_S``."""

    def __init__(self, pool: asyncpg.Pool, settings: ChannelsSettings) -> None:
        super().__init__("channels:retention", settings.channels_retention_interval_s)
        self.pool = pool
        self.settings = settings

    async def tick(self) -> bool:
        await self.sweep()
        return False

    async def sweep(self, now: datetime | None = None) -> Swept:
        """One pass to the end of what is due; what it cleared and deleted."""
        at = now or datetime.now(UTC)
        content_before = at - timedelta(days=self.settings.channels_content_retention_days)
        message_before = at - timedelta(days=self.settings.channels_message_retention_days)
        swept = Swept(
            contents=await self.drain(self.pool, lambda c: clear_contents(c, content_before, CHUNK), CHUNK),
            messages=await self.drain(self.pool, lambda c: delete_messages(c, message_before, CHUNK), CHUNK),
            reports=await self.drain(
                self.pool, lambda c: delete_reports(c, content_before, message_before, CHUNK), CHUNK
            ),
        )
        CLEARED.inc(swept.contents)
        DELETED.inc(swept.messages)
        async with self.pool.acquire() as conn:
            swept.soft_bounces = await delete_soft_bounces(
                conn, at - timedelta(seconds=self.settings.channels_soft_bounce_period_s)
            )
        if swept != Swept():
            log.info(
                "channels retention swept",
                extra={
                    "contents_cleared": swept.contents,
                    "messages_deleted": swept.messages,
                    "reports_deleted": swept.reports,
                    "soft_bounces_deleted": swept.soft_bounces,
                },
            )
        return swept
