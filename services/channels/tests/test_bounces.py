"""Bounces and the suppression list, with the real SMTP server refusing recipients as
receiving servers do (``FailureRules``: ``bounce-...`` is an unknown user, ``softbounce-...``
a full mailbox, ``greylist-...`` refused once): a hard bounce suppresses the address at
once; a soft bounce is tried again and counted, and ``SOFT_BOUNCE_LIMIT`` of them within
the period suppress the address, whichever messages they came from; a delivery starts
the count again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from itinera.channels.config import ChannelsSettings
from itinera.channels.suppression import bounces
from itinera.common.kafka import topics
from itinera.common.sinks import LocalDelivery
from itinera.common.testing import StackInfo, topic_reader

from .conftest import SOFT_BOUNCE_LIMIT, Content, Requests, feedback_of, state

NOTE = {"en": {"subject": "A note", "text": "Hello {{profile.person.name.firstName}}"}}


def person(email: str) -> dict[str, Any]:
    return {"person": {"name": {"firstName": "Ada"}}, "personalEmail": {"address": email}}


def address(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}@example.com"


async def soft_bounces_counted(pool: asyncpg.Pool, sandbox: str, email: str) -> int:
    async with pool.acquire() as conn:
        events = await conn.fetchval(
            "SELECT events FROM soft_bounces WHERE sandbox = $1 AND value = $2", sandbox, email
        )
    return len(events or [])


class TestHardBounces:
    async def test_an_unknown_mailbox_fails_the_message_and_suppresses_the_address(
        self,
        topics_created: StackInfo,
        api: httpx.AsyncClient,
        content: Content,
        requests: Requests,
        delivery: LocalDelivery,
    ) -> None:
        await content.publish("note", NOTE)
        to = address("bounce-")
        async with topic_reader(topics_created, topics.FEEDBACK.name) as feedback:
            (message_id,) = await requests.send(requests.body("note", person(to)))
            found = await feedback.wait_for(lambda r: bool(feedback_of(r, message_id)))
        (bounced,) = feedback_of(found, message_id)
        assert (bounced["status"], bounced["bounce"]) == ("bounced", "hard")
        assert bounced["reason"].startswith("550 5.1.1")
        failed = await state(api, message_id, "failed")
        assert (failed["attempts"], failed["reason"]) == (1, "bounced")
        entry = (await api.get(f"/ajo/config/suppression/addresses/{to}")).json()
        assert (entry["suppressed"]["type"], entry["suppressed"]["reason"]) == ("HARD", "hard")
        assert entry["bounceState"]["softCount"] == 0
        (event,) = entry["bounceState"]["bounceEvents"]
        assert (event["messageId"], event["bounceType"]) == (message_id, "HARD")
        assert event["message"].startswith("550 5.1.1")
        assert not delivery.mail.find(lambda m: m.sent_to(to))
        (later,) = await requests.send(requests.body("note", person(to)))
        assert (await state(api, later, "excluded"))["reason"] == "suppressed"


class TestSoftBounces:
    async def test_soft_bounces_of_several_messages_add_up_to_the_suppression_of_the_address(
        self,
        topics_created: StackInfo,
        api: httpx.AsyncClient,
        content: Content,
        requests: Requests,
        channels_settings: ChannelsSettings,
    ) -> None:
        await content.publish("note", NOTE)
        to = address("softbounce-")
        attempts = channels_settings.channels_max_attempts
        assert attempts < SOFT_BOUNCE_LIMIT
        async with topic_reader(topics_created, topics.FEEDBACK.name) as feedback:
            (first,) = await requests.send(requests.body("note", person(to)))
            tried = await state(api, first, "failed")
            assert tried["attempts"] == attempts
            # Its bounces count, but are not yet enough to suppress the address.
            assert (await api.get(f"/ajo/config/suppression/addresses/{to}")).status_code == 404

            (second,) = await requests.send(requests.body("note", person(to)))
            stopped = await state(api, second, "failed")
            assert stopped["attempts"] == SOFT_BOUNCE_LIMIT - attempts
            found = await feedback.wait_for(lambda r: bool(feedback_of(r, first) and feedback_of(r, second)))
        for message_id in (first, second):
            (bounced,) = feedback_of(found, message_id)
            assert (bounced["status"], bounced["bounce"]) == ("bounced", "soft")
            assert bounced["reason"].startswith("452 4.2.2")
        entry = (await api.get(f"/ajo/config/suppression/addresses/{to}")).json()
        assert (entry["suppressed"]["type"], entry["suppressed"]["reason"]) == ("SOFT", "soft")
        assert entry["bounceState"]["softCount"] == SOFT_BOUNCE_LIMIT
        events = entry["bounceState"]["bounceEvents"]
        from_second = SOFT_BOUNCE_LIMIT - attempts
        assert [e["messageId"] for e in events] == [first] * attempts + [second] * from_second
        assert {e["bounceType"] for e in events} == {"SOFT"}
        (third,) = await requests.send(requests.body("note", person(to)))
        assert (await state(api, third, "excluded"))["reason"] == "suppressed"

    async def test_a_delivery_starts_the_count_again(
        self,
        api: httpx.AsyncClient,
        content: Content,
        requests: Requests,
        delivery: LocalDelivery,
        pool: asyncpg.Pool,
        sandbox: str,
    ) -> None:
        await content.publish("note", NOTE)
        to = address("greylist-")
        (message_id,) = await requests.send(requests.body("note", person(to)))
        sent = await state(api, message_id, "sent")
        assert sent["attempts"] == 2  # refused once (451 4.7.1), then accepted
        await delivery.mail.wait_for(lambda m: m.sent_to(to))
        assert await soft_bounces_counted(pool, sandbox, to) == 0
        assert (await api.get(f"/ajo/config/suppression/addresses/{to}")).status_code == 404

    async def test_only_bounces_within_the_period_count(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, channels_settings: ChannelsSettings, sandbox: str
    ) -> None:
        settings = channels_settings.model_copy(
            update={"channels_soft_bounce_limit": 3, "channels_soft_bounce_period_s": 3600}
        )
        to = address("mailbox-")
        start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        minutes = [0, 45, 90, 100]
        suppressed = []
        for n, offset in enumerate(minutes):
            at = start + timedelta(minutes=offset)
            event = bounces.event(str(uuid.uuid4()), at, f"452 4.2.2 Mailbox full ({n})", "soft")
            async with pool.acquire() as conn, conn.transaction():
                suppressed.append(await bounces.soft(conn, settings, sandbox, "email", to, event, at))
        # At 10:30 the 9:00 bounce is over an hour old and no longer counts: three within
        # the hour come only at 10:40.
        assert suppressed == [False, False, False, True]
        entry = (await api.get(f"/ajo/config/suppression/addresses/{to}")).json()
        assert entry["suppressed"]["type"] == "SOFT"
        assert entry["bounceState"]["softCount"] == 3
        dates = [datetime.fromisoformat(e["date"]) for e in entry["bounceState"]["bounceEvents"]]
        assert dates == [start + timedelta(minutes=m) for m in minutes[1:]]
        assert await soft_bounces_counted(pool, sandbox, to) == 0

    async def test_a_hard_bounce_keeps_the_soft_bounces_counted_before_it(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, channels_settings: ChannelsSettings, sandbox: str
    ) -> None:
        to = address("mailbox-")
        now = datetime.now(UTC)
        async with pool.acquire() as conn, conn.transaction():
            for n in range(2):
                event = bounces.event(str(uuid.uuid4()), now, f"451 4.3.0 Try later ({n})", "soft")
                assert not await bounces.soft(conn, channels_settings, sandbox, "email", to, event, now)
            hard = bounces.event(str(uuid.uuid4()), now, "550 5.1.1 User unknown", "hard")
            await bounces.hard(conn, channels_settings, sandbox, "email", to, hard, now)
        entry = (await api.get(f"/ajo/config/suppression/addresses/{to}")).json()
        assert entry["suppressed"]["type"] == "HARD"
        assert entry["bounceState"]["softCount"] == 2
        assert [e["bounceType"] for e in entry["bounceState"]["bounceEvents"]] == ["SOFT", "SOFT", "HARD"]

    async def test_an_address_taken_off_the_list_starts_from_nothing(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, channels_settings: ChannelsSettings, sandbox: str
    ) -> None:
        to = address("mailbox-")
        now = datetime.now(UTC)
        async with pool.acquire() as conn, conn.transaction():
            event = bounces.event(str(uuid.uuid4()), now, "452 4.2.2 Mailbox full", "soft")
            await bounces.soft(conn, channels_settings, sandbox, "email", to, event, now)
        added = await api.post("/ajo/config/suppression/addresses", json=[{"entity": {"entityValue": to}}])
        assert added.json()[0]["bounceState"]["softCount"] == 0  # suppressed by hand, not by bounces
        assert await soft_bounces_counted(pool, sandbox, to) == 1
        assert (await api.delete(f"/ajo/config/suppression/addresses/{to}")).status_code == 204
        assert await soft_bounces_counted(pool, sandbox, to) == 0
