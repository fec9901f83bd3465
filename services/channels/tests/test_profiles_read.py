"""A message request with no profile snapshot (journeys knew the recipient by id only)
gets the profile a real profile service holds, read with a token of the channels' own.
A profile it does not know leaves the snapshot empty (no address: excluded); while it
cannot be reached, nothing is decided: the request waits, and is sent once the profile
service is back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from itinera.channels.config import ChannelsSettings
from itinera.channels.messages.consumers import MessageHandler, ProfileSource
from itinera.channels.messages.waiting import ProfileWaits
from itinera.common.auth import ALL_SCOPES, ServiceTokens, mint_token
from itinera.common.devstack import free_port
from itinera.common.kafka import topics
from itinera.common.peers import ProfileReader
from itinera.common.sinks import LocalDelivery
from itinera.common.testing import (
    StackInfo,
    environment_for,
    ready,
    service_process,
    serving,
    stored_profile,
    topic_reader,
)

from .conftest import Content, Requests, feedback_of, state
from .test_batches import records
from .test_pipeline import WELCOME, address, person


@pytest.fixture(scope="module")
def profile_url(topics_created: StackInfo) -> Iterator[str]:
    with serving(topics_created, "profile", role="all") as url:
        yield url


@pytest.fixture
async def source(profile_url: str, channels_settings: ChannelsSettings) -> AsyncIterator[ProfileSource]:
    reader = ProfileReader(profile_url, 5)
    yield ProfileSource(reader, ServiceTokens(channels_settings, "channels"))
    await reader.close()


async def stored(topics_created: StackInfo, profile_url: str, sandbox: str, email: str) -> str:
    """A profile the profile service holds (a record sent as ingestion sends it); its id."""
    record = {
        "person": {"name": {"firstName": "Ada"}},
        "personalEmail": {"address": email},
        "consents": {"marketing": {"email": {"val": "y"}}},
    }
    token = mint_token(ChannelsSettings(), scopes=ALL_SCOPES, sandbox=sandbox)
    async with httpx.AsyncClient(
        base_url=profile_url, headers={"authorization": f"Bearer {token}"}
    ) as client:
        return await stored_profile(topics_created, client, sandbox, email, record)


async def test_a_request_without_a_profile_is_sent_to_the_profile_the_profile_service_holds(
    topics_created: StackInfo,
    profile_url: str,
    source: ProfileSource,
    pool: asyncpg.Pool,
    api: httpx.AsyncClient,
    content: Content,
    requests: Requests,
    delivery: LocalDelivery,
    sandbox: str,
) -> None:
    to = address()
    profile_id = await stored(topics_created, profile_url, sandbox, to)
    await content.publish("welcome", WELCOME)
    body = requests.body("welcome", {}, profile_id=profile_id)
    handler = MessageHandler(pool, sandbox, "UTC", None, source)

    await handler(records(sandbox, body))

    mail = await delivery.mail.wait_for(lambda m: m.sent_to(to))
    assert mail.subject == "Welcome, Ada"
    assert (await state(api, body["messageId"], "sent"))["state"] == "sent"


async def test_a_profile_the_profile_service_does_not_know_leaves_the_request_without_an_address(
    source: ProfileSource, pool: asyncpg.Pool, api: httpx.AsyncClient, content: Content, requests: Requests
) -> None:
    await content.publish("welcome", WELCOME)
    body = requests.body("welcome", {}, profile_id=str(uuid.uuid4()))
    handler = MessageHandler(pool, requests.sandbox, "UTC", None, source)

    await handler(records(requests.sandbox, body))

    found = await state(api, body["messageId"], "excluded")
    assert found["reason"] == "no-address"


@asynccontextmanager
async def unreachable(settings: ChannelsSettings, port: int | None = None) -> AsyncIterator[ProfileSource]:
    """A profile source whose profile service does not listen (yet: ``port`` is where
    a test may start it)."""
    reader = ProfileReader(f"http://127.0.0.1:{port or free_port()}", 5)
    try:
        yield ProfileSource(reader, ServiceTokens(settings, "channels"))
    finally:
        await reader.close()


async def waits_left(pool: asyncpg.Pool, sandbox: str) -> int:
    found: int = await pool.fetchval("SELECT count(*) FROM profile_waits WHERE sandbox = $1", sandbox)
    return found


class TestProfileServiceDown:
    async def test_nothing_is_decided_while_it_is_down_and_the_email_goes_once_it_is_back(
        self,
        topics_created: StackInfo,
        profile_url: str,
        pool: asyncpg.Pool,
        api: httpx.AsyncClient,
        content: Content,
        requests: Requests,
        delivery: LocalDelivery,
        channels_settings: ChannelsSettings,
        sandbox: str,
    ) -> None:
        to, other = address(), address()
        profile_id = await stored(topics_created, profile_url, sandbox, to)
        await content.publish("welcome", WELCOME)
        port = free_port()  # where the profile service will listen, once it is back
        without = requests.body("welcome", {}, profile_id=profile_id)
        carried = requests.body("welcome", person(other, "Grace"))

        async with (
            topic_reader(topics_created, topics.FEEDBACK.name) as feedback,
            unreachable(channels_settings, port) as source,
        ):
            handler = MessageHandler(pool, sandbox, "UTC", None, source)
            waits = ProfileWaits(pool, handler, source, initial_s=60, max_s=600)
            await handler(records(sandbox, without, carried))
            await handler(records(sandbox, without))  # Kafka delivers it again meanwhile
            await waits.retry(datetime.now(UTC) + timedelta(minutes=5))  # asked again: still down

            # The request that carries its profile is not held up by the outage.
            assert (await delivery.mail.wait_for(lambda m: m.sent_to(other))).subject == "Welcome, Grace"
            waiting = await state(api, without["messageId"], "waiting")
            assert waiting["reason"] == "profile-unavailable"
            assert "cannot be reached" in waiting["detail"]

            profile_api = environment_for(topics_created, ITINERA_LOG_LEVEL="ERROR")
            with service_process("profile", profile_api, port, role="api"):
                await ready(f"http://127.0.0.1:{port}")
                await waits.retry(datetime.now(UTC) + timedelta(hours=1))

            mail = await delivery.mail.wait_for(lambda m: m.sent_to(to))
            assert mail.subject == "Welcome, Ada"
            await state(api, without["messageId"], "sent")
            found = await feedback.wait_for(lambda r: len(feedback_of(r, without["messageId"])) >= 1)

        assert [f["status"] for f in feedback_of(found, without["messageId"])] == ["sent"]
        assert await waits_left(pool, sandbox) == 0

    async def test_a_request_that_waited_is_decided_once_when_kafka_delivers_it_again(
        self,
        profile_url: str,
        topics_created: StackInfo,
        source: ProfileSource,
        pool: asyncpg.Pool,
        api: httpx.AsyncClient,
        content: Content,
        requests: Requests,
        delivery: LocalDelivery,
        channels_settings: ChannelsSettings,
        sandbox: str,
    ) -> None:
        to = address()
        profile_id = await stored(topics_created, profile_url, sandbox, to)
        await content.publish("welcome", WELCOME)
        body = requests.body("welcome", {}, profile_id=profile_id)
        async with unreachable(channels_settings) as down:
            await MessageHandler(pool, sandbox, "UTC", None, down)(records(sandbox, body))
        await state(api, body["messageId"], "waiting")
        handler = MessageHandler(pool, sandbox, "UTC", None, source)

        await handler(records(sandbox, body))  # delivered again, the profile service back
        await ProfileWaits(pool, handler, source, initial_s=60, max_s=600).retry(
            datetime.now(UTC) + timedelta(hours=1)
        )

        assert (await state(api, body["messageId"], "sent"))["attempts"] == 1
        await delivery.mail.wait_for(lambda m: m.sent_to(to))
        assert await waits_left(pool, sandbox) == 0

    async def test_a_request_that_waited_past_the_limit_is_excluded_and_reported(
        self,
        topics_created: StackInfo,
        pool: asyncpg.Pool,
        api: httpx.AsyncClient,
        content: Content,
        requests: Requests,
        channels_settings: ChannelsSettings,
        sandbox: str,
    ) -> None:
        await content.publish("welcome", WELCOME)
        body = requests.body("welcome", {}, profile_id=str(uuid.uuid4()))
        async with (
            topic_reader(topics_created, topics.FEEDBACK.name) as feedback,
            unreachable(channels_settings) as source,
        ):
            handler = MessageHandler(pool, sandbox, "UTC", None, source)
            waits = ProfileWaits(pool, handler, source, initial_s=60, max_s=600, limit_s=3_600)
            await handler(records(sandbox, body))
            await waits.retry(datetime.now(UTC) + timedelta(minutes=30))  # within the limit: waits on
            await state(api, body["messageId"], "waiting")

            await waits.retry(datetime.now(UTC) + timedelta(hours=2))  # past it
            found = await feedback.wait_for(lambda r: len(feedback_of(r, body["messageId"])) >= 1)

        excluded = await state(api, body["messageId"], "excluded")
        assert excluded["reason"] == "profile-unavailable"
        (reported,) = feedback_of(found, body["messageId"])
        assert (reported["status"], reported["reason"]) == ("excluded", "profile-unavailable")
        assert await waits_left(pool, sandbox) == 0
