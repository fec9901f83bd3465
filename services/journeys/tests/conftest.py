"""The journeys service, running once per test session on the real broker and database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.kafka.producer import Producer
from itinera.common.testing import StackInfo, client_for, running, settings_for
from itinera.journeys.app import SERVICE
from itinera.journeys.config import JourneysSettings


@pytest.fixture(scope="session")
def journeys_settings(topics_created: StackInfo) -> JourneysSettings:
    return settings_for(
        topics_created,
        JourneysSettings,
        journeys_action_allow_hosts="crm.internal,10.1.2.3,127.0.0.9",
        journeys_max_nodes=50,
        journeys_max_expression_length=2048,
        journeys_check_templates=False,  # test_templates.py checks them, with templates published
        # test_peers.py asks segmentation and profile services of its own.
        journeys_check_audiences=False,
        journeys_read_profiles=False,
    )


@pytest.fixture(scope="session")
async def journeys_app(journeys_settings: JourneysSettings) -> AsyncIterator[FastAPI]:
    async with running(SERVICE.create_app("all", journeys_settings)) as started:
        yield started


@pytest.fixture
async def http(
    journeys_app: FastAPI, journeys_settings: JourneysSettings
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(journeys_app, mint_token(journeys_settings, scopes=ALL_SCOPES)) as client:
        yield client


@pytest.fixture
async def fresh(
    journeys_app: FastAPI, journeys_settings: JourneysSettings
) -> AsyncIterator[httpx.AsyncClient]:
    """A client in a sandbox of the test's own, for what must see nothing else."""
    token = mint_token(journeys_settings, scopes=ALL_SCOPES, sandbox=f"t{uuid.uuid4().hex[:10]}")
    async with client_for(journeys_app, token) as client:
        yield client


@pytest.fixture
def sandbox() -> str:
    """A sandbox of the test's own."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def api(
    journeys_app: FastAPI, journeys_settings: JourneysSettings, sandbox: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A client with every scope in the test's own sandbox (``sandbox``)."""
    token = mint_token(journeys_settings, scopes=ALL_SCOPES, sandbox=sandbox)
    async with client_for(journeys_app, token) as client:
        yield client


@pytest.fixture
async def producer(journeys_settings: JourneysSettings) -> AsyncIterator[Producer]:
    """A producer on the session's broker, to publish what other services would."""
    started = Producer(journeys_settings)
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
def pool(journeys_app: FastAPI) -> asyncpg.Pool:
    """The session service's database pool."""
    found: asyncpg.Pool = journeys_app.state.runtime.pool
    return found
