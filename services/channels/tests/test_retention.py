"""Retention: a final message's rendered parts are cleared after the content retention
(its links still redirect), the message with its links and opens is deleted after the
message retention, a message not yet final is kept whatever its age, and provider
reports and soft-bounce counts past their time go."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from pydantic import ValidationError

from itinera.channels.config import ChannelsSettings
from itinera.channels.messages.retention import RetentionSweep
from itinera.common.sinks import LocalDelivery

from .conftest import Content, Requests
from .test_tracking import anonymous, sent_newsletter

DAY = timedelta(days=1)


async def taken_ago(pool: asyncpg.Pool, sandbox: str, message_id: str, age: timedelta) -> None:
    await pool.execute(
        "UPDATE messages SET created_at = now() - $3::interval WHERE sandbox = $1 AND message_id = $2",
        sandbox,
        uuid.UUID(message_id),
        age,
    )


async def row(pool: asyncpg.Pool, sandbox: str, message_id: str) -> asyncpg.Record | None:
    found: asyncpg.Record | None = await pool.fetchrow(
        """SELECT m.state, m.content IS NOT NULL AS has_content,
                  (SELECT count(*) FROM message_links l
                   WHERE l.sandbox = m.sandbox AND l.message_id = m.message_id) AS links
           FROM messages m WHERE m.sandbox = $1 AND m.message_id = $2""",
        sandbox,
        uuid.UUID(message_id),
    )
    return found


async def test_contents_are_cleared_then_messages_deleted_by_age_and_only_when_final(
    api: httpx.AsyncClient,
    content: Content,
    requests: Requests,
    delivery: LocalDelivery,
    pool: asyncpg.Pool,
    sandbox: str,
    channels_settings: ChannelsSettings,
) -> None:
    settings = channels_settings.model_copy(
        update={"channels_content_retention_days": 30, "channels_message_retention_days": 400}
    )
    month_old, _, hrefs = await sent_newsletter(api, content, requests, delivery)
    year_and_more, _, _ = await sent_newsletter(api, content, requests, delivery)
    recent, _, _ = await sent_newsletter(api, content, requests, delivery)
    stuck, _, _ = await sent_newsletter(api, content, requests, delivery)
    await taken_ago(pool, sandbox, month_old, 31 * DAY)
    await taken_ago(pool, sandbox, year_and_more, 401 * DAY)
    await taken_ago(pool, sandbox, stuck, 500 * DAY)
    await pool.execute(  # not final: waiting for a retry far ahead
        """UPDATE messages SET state = 'rendered', next_attempt_at = now() + interval '1 year'
           WHERE sandbox = $1 AND message_id = $2""",
        sandbox,
        uuid.UUID(stuck),
    )

    swept = await RetentionSweep(pool, settings).sweep()

    assert swept.messages >= 1
    assert swept.contents >= 1
    fresh = await row(pool, sandbox, recent)
    assert fresh is not None
    assert fresh["has_content"]
    cleared = await row(pool, sandbox, month_old)
    assert cleared is not None
    assert (cleared["state"], cleared["has_content"], cleared["links"]) == ("sent", False, 2)
    assert (await api.get(f"/v1/messages/{month_old}")).json()["state"] == "sent"
    async with anonymous(api) as reader:  # its links still redirect
        followed = await reader.get(urlsplit(hrefs.hrefs[0]).path)
    assert followed.status_code == 302
    assert await row(pool, sandbox, year_and_more) is None
    assert (await api.get(f"/v1/messages/{year_and_more}")).status_code == 404
    assert not await pool.fetchval(
        "SELECT count(*) FROM message_links WHERE sandbox = $1 AND message_id = $2",
        sandbox,
        uuid.UUID(year_and_more),
    )
    kept = await row(pool, sandbox, stuck)
    assert kept is not None
    assert (kept["state"], kept["has_content"]) == ("rendered", True)


async def test_reports_and_soft_bounces_past_their_time_go(
    pool: asyncpg.Pool, sandbox: str, channels_settings: ChannelsSettings
) -> None:
    now = datetime.now(UTC)
    sids = {
        name: f"SM{uuid.uuid4().hex}"
        for name in ("unmatched-old", "unmatched-new", "applied-old", "applied-mid")
    }
    for name, received, applied in (
        ("unmatched-old", now - 31 * DAY, None),
        ("unmatched-new", now - 2 * DAY, None),
        ("applied-old", now - 401 * DAY, now - 401 * DAY),
        ("applied-mid", now - 100 * DAY, now - 100 * DAY),
    ):
        await pool.execute(
            """INSERT INTO delivery_reports (channel, provider_id, status, received_at, applied_at)
               VALUES ('sms', $1, 'delivered', $2, $3)""",
            sids[name],
            received,
            applied,
        )
    for value, touched in (("old@example.com", now - 31 * DAY), ("new@example.com", now - DAY)):
        await pool.execute(
            """INSERT INTO soft_bounces (sandbox, value, entity_type, events, updated_at)
               VALUES ($1, $2, 'email', '[]', $3)""",
            sandbox,
            value,
            touched,
        )
    settings = channels_settings.model_copy(
        update={
            "channels_content_retention_days": 30,
            "channels_message_retention_days": 400,
            "channels_soft_bounce_period_s": 30 * 86400.0,
        }
    )

    await RetentionSweep(pool, settings).sweep()

    left = {
        r["provider_id"]
        for r in await pool.fetch(
            "SELECT provider_id FROM delivery_reports WHERE provider_id = ANY($1)", list(sids.values())
        )
    }
    assert left == {sids["unmatched-new"], sids["applied-mid"]}
    bounces = await pool.fetch("SELECT value FROM soft_bounces WHERE sandbox = $1", sandbox)
    assert [r["value"] for r in bounces] == ["new@example.com"]


def test_the_content_retention_cannot_outlast_the_message_retention() -> None:
    with pytest.raises(ValidationError, match="must not exceed the message retention"):
        ChannelsSettings(channels_content_retention_days=500, channels_message_retention_days=400)
