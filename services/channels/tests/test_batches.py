"""What is done a batch at a time, on the session's PostgreSQL and SMTP server: a batch of
message requests is checked and recorded with a few statements
(:class:`~itinera.channels.messages.consumers.MessageHandler`), the claimed messages'
addresses are checked against the suppression list at once, and sent messages are
recorded together (:class:`~itinera.channels.messages.delivery.Coalescing`); each
message still gets what it would get alone."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from itinera.channels.config import ChannelsSettings
from itinera.channels.messages import repository as messages
from itinera.channels.messages.consumers import MessageHandler
from itinera.channels.messages.delivery import Coalescing, DeliveryRunner
from itinera.channels.tracking import Tracker
from itinera.channels.tracking import repository as tracking
from itinera.common.kafka.consumer import Record
from itinera.common.sinks import LocalDelivery

from .conftest import Content, Requests

TEMPLATE = {
    "en": {
        "subject": "Picks for {{profile.person.name.firstName}}",
        "html": '<p><a href="https://shop.example/{{context.sku}}">{{context.sku}}</a></p>',
        "text": "Picks",
    }
}


def person(email: str) -> dict[str, Any]:
    return {"person": {"name": {"firstName": "Ada"}}, "personalEmail": {"address": email}}


def records(sandbox: str, *bodies: dict[str, Any]) -> list[Record]:
    """Message requests as the consumer hands them to the handler, in one batch."""
    return [
        Record(
            topic="itinera.messages.v1",
            partition=0,
            offset=n,
            key=body["profileId"],
            value=orjson.dumps(body),
            headers={"itinera_sandbox": sandbox},
            timestamp_ms=0,
        )
        for n, body in enumerate(bodies)
    ]


@pytest.fixture
def handler(pool: asyncpg.Pool, sandbox: str, channels_settings: ChannelsSettings) -> MessageHandler:
    tracker = Tracker(channels_settings.channels_public_url, channels_settings.link_secret)
    return MessageHandler(pool, sandbox, "UTC", tracker)


async def stored(pool: asyncpg.Pool, sandbox: str, message_id: str) -> asyncpg.Record:
    async with pool.acquire() as conn:
        row = await messages.one(conn, sandbox, uuid.UUID(message_id))
    assert row is not None
    return row


class TestOneBatchOfRequests:
    async def test_a_profile_s_messages_in_one_batch_count_towards_its_caps(
        self,
        api: httpx.AsyncClient,
        content: Content,
        requests: Requests,
        handler: MessageHandler,
        pool: asyncpg.Pool,
        sandbox: str,
    ) -> None:
        await content.publish("picks", TEMPLATE)
        rule = await api.post(
            "/v1/capping/rules", json={"name": "two a day", "channel": "email", "max": 2, "period": "day"}
        )
        assert rule.status_code == 201, rule.text
        to = f"p{uuid.uuid4().hex[:12]}@example.com"
        first = requests.body("picks", person(to), context={"sku": "a"})
        profile = first["profileId"]
        receipt = requests.body("picks", person(to), profile_id=profile, category="transactional")
        more = [
            requests.body("picks", person(to), profile_id=profile, context={"sku": "b"}) for _ in range(2)
        ]
        other = requests.body("picks", person(f"o{uuid.uuid4().hex[:12]}@example.com"))
        # The first request twice in the batch: recorded once, counted once.
        await handler(records(sandbox, first, receipt, first, *more, other))
        states = [(await stored(pool, sandbox, b["messageId"])) for b in (first, receipt, *more, other)]
        assert [s["state"] != "excluded" for s in states] == [True, True, True, False, True]
        assert states[3]["reason"] == "capped"
        # Delivered again, as Kafka may: nothing changes, whatever the state now.
        await handler(records(sandbox, *more))
        assert (await stored(pool, sandbox, more[1]["messageId"]))["reason"] == "capped"

    async def test_suppressed_addresses_and_domains_of_a_batch_are_excluded(
        self,
        api: httpx.AsyncClient,
        content: Content,
        requests: Requests,
        handler: MessageHandler,
        pool: asyncpg.Pool,
        sandbox: str,
    ) -> None:
        await content.publish("picks", TEMPLATE)
        domain = f"{uuid.uuid4().hex[:8]}.example.org"
        listed = f"Listed{uuid.uuid4().hex[:8]}@Example.com"
        added = await api.post(
            "/ajo/config/suppression/addresses", json=[{"entity": {"entityValue": listed}}]
        )
        assert added.status_code == 201, added.text
        added = await api.post(
            "/ajo/config/suppression/domains", json=[{"entity": {"type": "domain", "entityValue": domain}}]
        )
        assert added.status_code == 201, added.text
        bodies = [
            requests.body("picks", person(listed.lower())),
            requests.body("picks", person(f"x@mail.{domain}")),
            requests.body("picks", person(f"x{uuid.uuid4().hex[:8]}@example.com")),
        ]
        await handler(records(sandbox, *bodies))
        found = [(await stored(pool, sandbox, b["messageId"])) for b in bodies]
        assert [f["reason"] for f in found] == ["suppressed", "suppressed", None]
        assert "(manual)" in found[0]["detail"]

    async def test_each_email_of_a_batch_keeps_its_own_links(
        self, content: Content, requests: Requests, handler: MessageHandler, pool: asyncpg.Pool, sandbox: str
    ) -> None:
        await content.publish("picks", TEMPLATE)
        bodies = [
            requests.body(
                "picks", person(f"l{n}{uuid.uuid4().hex[:8]}@example.com"), context={"sku": f"s{n}"}
            )
            for n in range(3)
        ]
        await handler(records(sandbox, *bodies))
        async with pool.acquire() as conn:
            for n, body in enumerate(bodies):
                assert await tracking.links(conn, sandbox, uuid.UUID(body["messageId"])) == [
                    f"https://shop.example/s{n}"
                ]


async def claimed_here(
    pool: asyncpg.Pool, sandbox: str, rows: list[dict[str, Any]]
) -> list[asyncpg.Record | None]:
    """Store these messages as claimed by this worker (attempt 1, leased for a day, so
    the service's own worker leaves them alone); the claimed rows."""
    async with pool.acquire() as conn:
        await messages.insert(conn, rows)
        await conn.execute(
            """UPDATE messages SET state = 'sending', attempts = 1, lease_until = $2 WHERE sandbox = $1""",
            sandbox,
            datetime.now(UTC) + timedelta(days=1),
        )
        return [await messages.one(conn, sandbox, uuid.UUID(str(r["message_id"]))) for r in rows]


class TestClaimedMessages:
    async def test_suppressed_ones_are_excluded_and_the_others_sent_and_recorded_together(
        self,
        api: httpx.AsyncClient,
        pool: asyncpg.Pool,
        sandbox: str,
        channels_settings: ChannelsSettings,
        delivery: LocalDelivery,
    ) -> None:
        """Messages claimed by this worker (attempt 1, leased for long enough that the
        service's own worker leaves them alone), one of whose addresses and one of whose
        domains were suppressed while they waited."""
        domain = f"{uuid.uuid4().hex[:8]}.example.org"
        suppressed, in_domain = f"s{uuid.uuid4().hex[:8]}@example.com", f"x@{domain}"
        fine = [f"f{n}{uuid.uuid4().hex[:8]}@example.com" for n in range(3)]
        now = datetime.now(UTC)
        rows: list[dict[str, Any]] = [
            {
                "sandbox": sandbox,
                "message_id": uuid.uuid4(),
                "profile_id": uuid.uuid4(),
                "channel": "email",
                "category": "transactional",
                "state": "rendered",
                "address": to,
                "content": {"subject": "Receipt", "text": "Paid"},
                "created_at": now,
                "next_attempt_at": now + timedelta(days=1),
            }
            for to in (suppressed, in_domain, *fine)
        ]
        claimed = await claimed_here(pool, sandbox, rows)
        assert (
            await api.post(
                "/ajo/config/suppression/addresses", json=[{"entity": {"entityValue": suppressed}}]
            )
        ).status_code == 201
        assert (
            await api.post(
                "/ajo/config/suppression/domains",
                json=[{"entity": {"type": "domain", "entityValue": domain}}],
            )
        ).status_code == 201
        worker = DeliveryRunner(pool, channels_settings)
        try:
            async with pool.acquire() as conn:
                why = await DeliveryRunner.barred(conn, [r for r in claimed if r is not None])
            assert set(why) == {(sandbox, "email", suppressed), (sandbox, "email", in_domain)}
            await asyncio.gather(
                *(
                    worker.deliver(r, why.get((sandbox, "email", r["address"])))
                    for r in claimed
                    if r is not None
                )
            )
        finally:
            await worker.stop()
        found = [await stored(pool, sandbox, str(r["message_id"])) for r in rows]
        assert [(f["state"], f["reason"]) for f in found] == [
            ("excluded", "suppressed"),
            ("excluded", "suppressed"),
            ("sent", None),
            ("sent", None),
            ("sent", None),
        ]
        assert all(f["sent_at"] is not None and f["lease_until"] is None for f in found[2:])
        received = delivery.mail.find()
        for to in fine:
            assert sum(m.sent_to(to) for m in received) == 1
        assert not delivery.mail.find(lambda m: m.sent_to(suppressed) or m.sent_to(in_domain))

    async def test_an_empty_allowed_list_put_in_force_stops_the_emails_already_waiting(
        self,
        api: httpx.AsyncClient,
        pool: asyncpg.Pool,
        sandbox: str,
        channels_settings: ChannelsSettings,
        delivery: LocalDelivery,
    ) -> None:
        """AJO's way to stop every email of a sandbox at once: an allowed list in force
        with nobody on it. Emails already rendered and waiting (queued, or to be tried
        again) are excluded when claimed; an SMS is not concerned."""
        now = datetime.now(UTC)
        waiting = [
            {
                "sandbox": sandbox,
                "message_id": uuid.uuid4(),
                "profile_id": uuid.uuid4(),
                "channel": channel,
                "category": "marketing",
                "state": "rendered",
                "address": to,
                "content": {"subject": "Sale", "text": "Now on"}
                if channel == "email"
                else {"text": "Now on"},
                "created_at": now,
                "next_attempt_at": now + timedelta(days=1),
            }
            for channel, to in (
                ("email", f"w{uuid.uuid4().hex[:8]}@example.com"),
                ("sms", f"+4420{uuid.uuid4().int % 10**8:08d}"),
            )
        ]
        email = str(waiting[0]["address"])
        claimed = await claimed_here(pool, sandbox, waiting)
        assert (await api.put("/v1/allowed-list", json={"active": True})).status_code == 200
        worker = DeliveryRunner(pool, channels_settings)
        try:
            async with pool.acquire() as conn:
                why = await DeliveryRunner.barred(conn, [r for r in claimed if r is not None])
            assert why == {(sandbox, "email", email): ("not-allowed", f"{email} is not on the allowed list")}
            await asyncio.gather(
                *(worker.deliver(r, why.get((sandbox, r["channel"], r["address"]))) for r in claimed if r)
            )
        finally:
            await worker.stop()
        found = [await stored(pool, sandbox, str(r["message_id"])) for r in waiting]
        assert [(f["state"], f["reason"], f["detail"]) for f in found] == [
            ("excluded", "not-allowed", f"{email} is not on the allowed list"),
            ("sent", None, None),
        ]
        assert not delivery.mail.find(lambda m: m.sent_to(email))


class TestCoalescing:
    async def test_what_comes_while_a_batch_is_written_makes_the_next_batch(self) -> None:
        written: list[list[int]] = []
        writing, hold = asyncio.Event(), asyncio.Event()

        async def write(batch: list[int]) -> None:
            written.append(batch)
            writing.set()
            if len(written) == 1:
                await hold.wait()

        coalescing: Coalescing[int] = Coalescing(write)
        first = asyncio.create_task(coalescing.add(1))
        await writing.wait()
        later = [asyncio.create_task(coalescing.add(n)) for n in (2, 3, 4)]
        await asyncio.sleep(0)
        assert not any(t.done() for t in (first, *later))
        hold.set()
        await asyncio.gather(first, *later)
        assert written == [[1], [2, 3, 4]]

    async def test_a_failed_write_fails_each_of_its_items_and_the_next_batch_is_written(self) -> None:
        written: list[list[str]] = []

        async def write(batch: list[str]) -> None:
            written.append(batch)
            if "bad" in batch:
                raise RuntimeError("the database went away")

        coalescing: Coalescing[str] = Coalescing(write)
        outcomes = await asyncio.gather(
            coalescing.add("bad"), coalescing.add("with it"), return_exceptions=True
        )
        assert [type(o) for o in outcomes] == [RuntimeError, RuntimeError]
        await coalescing.add("good")
        assert written[-1] == ["good"]
