"""A channels worker killed between rendering a message and sending it (SIGKILL: no
cleanup), then started again, sends the message exactly once: the claim it left
(``sending``) runs out and the restarted worker sends it; the same request delivered
again afterwards changes nothing.

The worker under test runs as a process of its own, with a database, consumer groups
and an SMTP sink of its own, so that nothing else of the test session does its work or
sees what it sends. ``ITINERA_CHANNELS_TEST_PAUSE_BEFORE_SEND_S`` holds it between the
claim and the send long enough to kill it there.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from itinera.channels.config import ChannelsSettings
from itinera.common.devstack import free_port
from itinera.common.kafka import topics
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.sinks import LocalDelivery
from itinera.common.testing import StackInfo, environment_for, ready, service_process


async def state_of(database_url: str, sandbox: str, message_id: str) -> str | None:
    conn = await asyncpg.connect(database_url)
    try:
        found: str | None = await conn.fetchval(
            "SELECT state FROM channels.messages WHERE sandbox = $1 AND message_id = $2",
            sandbox,
            uuid.UUID(message_id),
        )
        return found
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()


async def until_state(
    database_url: str, sandbox: str, message_id: str, wanted: str, timeout_s: float = 60
) -> None:
    deadline = time.monotonic() + timeout_s
    while await state_of(database_url, sandbox, message_id) != wanted:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the message did not become {wanted}")
        await asyncio.sleep(0.1)


async def test_a_worker_killed_between_render_and_send_sends_the_message_once(
    topics_created: StackInfo, channels_settings: ChannelsSettings, own_database: str
) -> None:
    sandbox = f"crash-{uuid.uuid4().hex[:8]}"
    to = f"crash-{uuid.uuid4().hex[:8]}@example.com"
    message_id, profile_id = str(uuid.uuid4()), str(uuid.uuid4())
    template = {
        "sandbox": sandbox,
        "kind": "template",
        "id": "crash",
        "version": 1,
        "deleted": False,
        "channel": "email",
        "defaultLocale": "en",
        "variants": {"en": {"subject": "Once, {{profile.person.name.firstName}}", "text": "only once"}},
        "fragments": [],
    }
    request: dict[str, Any] = {
        "messageId": message_id,
        "sandbox": sandbox,
        "profileId": profile_id,
        "channel": "email",
        "templateId": "crash",
        "category": "marketing",
        "context": {},
        "profile": {"person": {"name": {"firstName": "Kim"}}, "personalEmail": {"address": to}},
        "origin": {"kind": "campaign"},
        "requestedAt": datetime.now(UTC).isoformat(),
    }
    producer = Producer(channels_settings)
    await producer.start()
    try:
        async with LocalDelivery(smtp_port=0, web_port=0) as sink:
            groups = uuid.uuid4().hex[:8]
            base = environment_for(
                topics_created,
                **sink.environment(),
                ITINERA_DATABASE_URL=own_database,
                ITINERA_CHANNELS_CONSUMER_GROUP=f"channels-crash-{groups}",
                ITINERA_CHANNELS_CONTENT_CONSUMER_GROUP=f"channels-crash-content-{groups}",
                ITINERA_AUTH_SECRET=channels_settings.auth_secret.get_secret_value(),
                ITINERA_CHANNELS_DELIVERY_INTERVAL_S="0.05",
                ITINERA_CHANNELS_DELIVERY_BATCH="5000",
                ITINERA_CHANNELS_SEND_LEASE_S="3",
                ITINERA_CHANNELS_DOMAIN="crash.example.com",
                ITINERA_LOG_LEVEL="ERROR",
            )
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            await producer.publish(
                topics.CONTENT.name,
                [
                    Envelope(
                        type="com.itinera.content.v1",
                        source="/t",
                        data=template,
                        sandbox=sandbox,
                        key="template:crash",
                    )
                ],
            )
            paused = base | {"ITINERA_CHANNELS_TEST_PAUSE_BEFORE_SEND_S": "120"}
            with service_process("channels", paused, port) as first:
                await ready(url)
                # The template first: the content consumer must hold it when the request comes.
                deadline = time.monotonic() + 60
                while True:
                    conn = await asyncpg.connect(own_database)
                    try:
                        held = await conn.fetchval(
                            "SELECT count(*) FROM channels.content_items WHERE sandbox = $1", sandbox
                        )
                    finally:
                        await conn.close()
                    if held:
                        break
                    assert time.monotonic() < deadline, "the template never reached the store"
                    await asyncio.sleep(0.1)
                envelope = Envelope(
                    type="com.itinera.message.request.v1",
                    source="/t",
                    data=request,
                    sandbox=sandbox,
                    key=profile_id,
                )
                await producer.publish(topics.MESSAGES.name, [envelope])
                await until_state(own_database, sandbox, message_id, "sending")
                os.killpg(first.pid, signal.SIGKILL)
                first.wait(timeout=30)
            assert not sink.mail.find(lambda m: m.sent_to(to))  # killed before the send
            with service_process("channels", base, port):
                await ready(url)
                await sink.mail.wait_for(lambda m: m.sent_to(to), timeout_s=60)
                await until_state(own_database, sandbox, message_id, "sent")
                # Delivered again after it was sent: nothing more goes out.
                await producer.publish(topics.MESSAGES.name, [envelope])
                later = dict(request, messageId=str(uuid.uuid4()))
                await producer.publish(
                    topics.MESSAGES.name,
                    [
                        Envelope(
                            type="com.itinera.message.request.v1",
                            source="/t",
                            data=later,
                            sandbox=sandbox,
                            key=profile_id,
                        )
                    ],
                )
                await until_state(own_database, sandbox, later["messageId"], "sent")
            copies = sink.mail.find(lambda m: m.message_id == f"<{message_id}@crash.example.com>")
            assert len(copies) == 1
    finally:
        await producer.stop()
