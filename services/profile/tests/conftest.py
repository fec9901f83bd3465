"""The profile service, running once per test session on the real broker and database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.testing import StackInfo, client_for, running, settings_for
from itinera.profile.app import SERVICE
from itinera.profile.config import ProfileSettings


@pytest.fixture(scope="session")
def profile_settings(topics_created: StackInfo) -> ProfileSettings:
    return settings_for(topics_created, ProfileSettings, consumer_max_attempts=2)


@pytest.fixture(scope="session")
async def profile_app(profile_settings: ProfileSettings) -> AsyncIterator[FastAPI]:
    async with running(SERVICE.create_app("all", profile_settings)) as started:
        yield started


@pytest.fixture
async def profile_client(
    profile_app: FastAPI, profile_settings: ProfileSettings
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(profile_app, mint_token(profile_settings, scopes=ALL_SCOPES)) as http:
        yield http


@pytest.fixture
def sandbox() -> str:
    """A sandbox of the test's own: what it stores and reads is not shared."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def http(
    profile_app: FastAPI, profile_settings: ProfileSettings, sandbox: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A client with every scope in the test's sandbox."""
    token = mint_token(profile_settings, scopes=ALL_SCOPES, sandbox=sandbox)
    async with client_for(profile_app, token) as client:
        yield client
