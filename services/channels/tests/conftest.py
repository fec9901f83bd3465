"""The channels service, running for this folder's tests on the real broker and database,
sending to a real SMTP server and to the SMS and push simulators (``LocalDelivery``), and
served over HTTP on loopback too, where the SMS simulator's status callbacks reach it.

The service stops when the last of these tests is done (:func:`pytest_runtest_teardown`),
not at the end of the session: left running, it would answer the message requests of
other services' tests with feedback of its own."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiosmtplib
import asyncpg
import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI

from itinera.channels.app import SERVICE
from itinera.channels.config import ChannelsSettings
from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.devstack import free_port
from itinera.common.kafka import topics
from itinera.common.kafka.consumer import Record
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.sinks import LocalDelivery, ReceivedMail
from itinera.common.sinks.local import BOUNCE_ADDRESS
from itinera.common.testing import StackInfo, client_for, eventually, running, settings_for


@pytest.fixture(scope="session")
def bounce_port() -> int:
    """Where the service's bounce mailbox listens, and the sink sends its late bounces."""
    return free_port()


@pytest.fixture(scope="session")
async def delivery(bounce_port: int) -> AsyncIterator[LocalDelivery]:
    async with LocalDelivery(smtp_port=0, web_port=0, bounce_port=bounce_port) as started:
        yield started


COMPLAINT_ADDRESS = "fbl@mail.example.com"
"""Where the feedback loops of these tests send their abuse reports."""
SOFT_BOUNCE_LIMIT = 4
"""One more than a message's attempts (``channels_max_attempts``): one message's soft
bounces alone do not suppress its address."""


@pytest.fixture(scope="session")
def callback_socket() -> Iterator[socket.socket]:
    """The loopback socket the service's HTTP server listens on, bound before the settings
    are made so that they can name it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


@pytest.fixture(scope="session")
def channels_settings(
    topics_created: StackInfo, delivery: LocalDelivery, callback_socket: socket.socket
) -> ChannelsSettings:
    port = callback_socket.getsockname()[1]
    return settings_for(
        topics_created,
        ChannelsSettings,
        channels_smtp_host=delivery.smtp_host,
        channels_bounce_address=BOUNCE_ADDRESS,
        channels_complaint_address=COMPLAINT_ADDRESS,
        channels_bounce_port=delivery.bounce_port,
        channels_smtp_port=delivery.smtp_port,
        channels_sms_base_url=delivery.sms_base_url,
        channels_push_base_url=delivery.push_base_url,
        channels_public_url="https://channels.example.com",
        channels_domain="mail.example.com",
        channels_delivery_interval_s=0.05,
        channels_retry_initial_s=0.1,
        channels_retry_max_s=0.5,
        channels_max_attempts=3,
        channels_soft_bounce_limit=SOFT_BOUNCE_LIMIT,
        channels_webhook_allow_hosts="127.0.0.1",
        channels_callback_url=f"http://127.0.0.1:{port}",
        # No profile service runs beside these tests (test_profiles_read.py has one).
        channels_read_profiles=False,
    )


class _Server(uvicorn.Server):
    """Leaves signals to pytest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@pytest.fixture(scope="session")
async def channels_app(
    channels_settings: ChannelsSettings, callback_socket: socket.socket
) -> AsyncIterator[FastAPI]:
    """The service, its workers running; tests call it in-process (``api``), providers
    over HTTP (``channels_settings.channels_callback_url``)."""
    stack = contextlib.AsyncExitStack()
    started = await stack.enter_async_context(running(SERVICE.create_app("all", channels_settings)))
    server = _Server(uvicorn.Config(started, lifespan="off", log_config=None, access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[callback_socket]))

    async def stop() -> None:
        server.should_exit = True
        await serving
        await stack.aclose()

    _STOPS.append((asyncio.get_running_loop(), stop))
    while not server.started:
        assert not serving.done(), "the channels service's HTTP server did not start"
        await asyncio.sleep(0.01)
    yield started
    await _stop_service()


_STOPS: list[tuple[asyncio.AbstractEventLoop, Callable[[], Awaitable[None]]]] = []
"""How to stop the running service, and the event loop it runs in."""
_HERE = Path(__file__).parent


async def _stop_service() -> None:
    while _STOPS:
        _, stop = _STOPS.pop()
        await stop()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After the last test of this folder, stop the service (in the session's event loop,
    which runs nothing between tests)."""
    if _STOPS and (nextitem is None or _HERE not in nextitem.path.parents):
        loop, _ = _STOPS[-1]
        loop.run_until_complete(_stop_service())


@pytest.fixture(scope="session")
async def producer(channels_settings: ChannelsSettings) -> AsyncIterator[Producer]:
    started = Producer(channels_settings)
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
def pool(channels_app: FastAPI) -> asyncpg.Pool:
    found: asyncpg.Pool = channels_app.state.runtime.pool
    return found


@pytest.fixture
def sandbox() -> str:
    """A sandbox of the test's own."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def api(
    channels_app: FastAPI, channels_settings: ChannelsSettings, sandbox: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A client with every scope in the test's own sandbox (``sandbox``)."""
    token = mint_token(channels_settings, scopes=ALL_SCOPES, sandbox=sandbox)
    async with client_for(channels_app, token) as client:
        yield client


class Content:
    """Publishes templates and fragments as the content service does, and waits until
    the channels' store holds them."""

    def __init__(self, producer: Producer, pool: asyncpg.Pool, sandbox: str) -> None:
        self.producer = producer
        self.pool = pool
        self.sandbox = sandbox

    async def publish(
        self,
        item_id: str,
        variants: dict[str, Any] | None,
        *,
        kind: str = "template",
        channel: str | None = "email",
        version: int = 1,
        default: str = "en",
        fragments: list[str] | None = None,
        deleted: bool = False,
        wait: bool = True,
        tracking: dict[str, bool] | None = None,
    ) -> None:
        data: dict[str, Any] = {
            "sandbox": self.sandbox,
            "kind": kind,
            "id": item_id,
            "version": version,
            "deleted": deleted,
        }
        if not deleted:
            data |= {"name": item_id, "defaultLocale": default, "variants": variants or {}}
            if kind == "template":
                data |= {"channel": channel, "fragments": fragments or []}
                if tracking is not None:
                    data["tracking"] = tracking
            else:
                data["fragmentType"] = "visual"
            data["publishedAt"] = datetime.now(UTC).isoformat()
        envelope = Envelope(
            type="com.itinera.content.v1",
            source="/itinera/content",
            data=data,
            sandbox=self.sandbox,
            key=f"{kind}:{item_id}",
        )
        await self.producer.publish(topics.CONTENT.name, [envelope])
        if wait:

            async def stored() -> bool:
                async with self.pool.acquire() as conn:
                    found = await conn.fetchval(
                        "SELECT version FROM content_items WHERE sandbox = $1 AND kind = $2 AND id = $3",
                        self.sandbox,
                        kind,
                        item_id,
                    )
                return found is not None and found >= version

            await eventually(stored)


@pytest.fixture
def content(producer: Producer, pool: asyncpg.Pool, sandbox: str) -> Content:
    return Content(producer, pool, sandbox)


class Requests:
    """Publishes message requests as journeys and campaigns do."""

    def __init__(self, producer: Producer, sandbox: str) -> None:
        self.producer = producer
        self.sandbox = sandbox

    def body(
        self,
        template: str | None,
        profile: dict[str, Any],
        *,
        channel: str = "email",
        category: str = "marketing",
        context: dict[str, Any] | None = None,
        message_id: str | None = None,
        profile_id: str | None = None,
    ) -> dict[str, Any]:
        return {
            "messageId": message_id or str(uuid.uuid4()),
            "sandbox": self.sandbox,
            "profileId": profile_id or str(uuid.uuid5(uuid.NAMESPACE_URL, repr(sorted(profile.items())))),
            "channel": channel,
            "templateId": template,
            "category": category,
            "context": context or {},
            "profile": profile,
            "origin": {
                "kind": "journey",
                "journeyId": str(uuid.uuid4()),
                "version": 1,
                "nodeId": "send",
                "step": 2,
            },
            "requestedAt": datetime.now(UTC).isoformat(),
        }

    async def send(self, *bodies: dict[str, Any]) -> list[str]:
        envelopes = [
            Envelope(
                type="com.itinera.message.request.v1",
                source="/itinera/journeys",
                data=body,
                sandbox=self.sandbox,
                key=body["profileId"],
            )
            for body in bodies
        ]
        await self.producer.publish(topics.MESSAGES.name, envelopes)
        return [body["messageId"] for body in bodies]


@pytest.fixture
def requests(producer: Producer, sandbox: str) -> Requests:
    return Requests(producer, sandbox)


def feedback_of(records: list[Record], message_id: str) -> list[dict[str, Any]]:
    """The feedback records of one message, in the order they came."""
    found = [orjson.loads(r.value or b"{}") for r in records]
    return [f for f in found if f.get("messageId") == message_id]


async def state(api: httpx.AsyncClient, message_id: str, *wanted: str) -> dict[str, Any]:
    """The message once it is in one of the ``wanted`` states."""
    found: dict[str, Any] = {}

    async def reached() -> bool:
        answer = await api.get(f"/v1/messages/{message_id}")
        if answer.status_code == 200:
            found.update(answer.json())
        return found.get("state") in wanted

    await eventually(reached)
    return found


async def to_mailbox(settings: ChannelsSettings, to: str, message: bytes, sender: str = "") -> str:
    """Send ``message`` to the service's bounce mailbox over SMTP, as a relay or a
    feedback loop does (from the null sender by default); the mailbox's answer to it."""
    async with aiosmtplib.SMTP(
        hostname=settings.channels_bounce_host,
        port=settings.channels_bounce_port,
        start_tls=False,
        timeout=10,
    ) as client:
        _, answer = await client.sendmail(sender, [to], message)
    return answer


async def unsubscribe_by_mail(settings: ChannelsSettings, mail: ReceivedMail, sender: str) -> str:
    """Unsubscribe as a mail client does with an email's ``List-Unsubscribe`` ``mailto:``
    (to its address, with its subject); the subject."""
    mailto = re.search(r"<mailto:([^?]+)\?subject=([^>]+)>", mail.list_unsubscribe or "")
    assert mailto is not None, mail.list_unsubscribe
    subject = unquote(mailto[2])
    asked = f"From: {sender}\r\nTo: {mailto[1]}\r\nSubject: {subject}\r\n\r\n\r\n".encode()
    await to_mailbox(settings, mailto[1], asked, sender=sender)
    return subject
