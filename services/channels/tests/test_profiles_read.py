"""A message request with no profile snapshot (journeys knew the recipient by id only)
gets the profile a real profile service holds, read with a token of the channels' own;
when that service cannot be reached, the request is decided with what it carries."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from itinera.channels.config import ChannelsSettings
from itinera.channels.messages.consumers import MessageHandler, ProfileSource
from itinera.common.auth import ALL_SCOPES, ServiceTokens, mint_token
from itinera.common.devstack import free_port
from itinera.common.peers import ProfileReader
from itinera.common.sinks import LocalDelivery
from itinera.common.testing import StackInfo, serving, stored_profile

from .conftest import Content, Requests, state
from .test_batches import records
from .test_pipeline import WELCOME, address


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


async def test_a_profile_service_out_of_reach_leaves_the_request_as_it_came(
    pool: asyncpg.Pool,
    api: httpx.AsyncClient,
    content: Content,
    requests: Requests,
    channels_settings: ChannelsSettings,
    sandbox: str,
) -> None:
    await content.publish("welcome", WELCOME)
    body = requests.body("welcome", {}, profile_id=str(uuid.uuid4()))
    reader = ProfileReader(f"http://127.0.0.1:{free_port()}", 5)
    handler = MessageHandler(
        pool, sandbox, "UTC", None, ProfileSource(reader, ServiceTokens(channels_settings, "c"))
    )
    try:
        await handler(records(sandbox, body))
    finally:
        await reader.close()

    found = await state(api, body["messageId"], "excluded")
    assert found["reason"] == "no-address"
