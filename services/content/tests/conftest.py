"""The content service, running once per test session on the real broker and database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.testing import StackInfo, client_for, running, settings_for
from itinera.content.app import SERVICE
from itinera.content.config import ContentSettings


@pytest.fixture(scope="session")
def content_settings(topics_created: StackInfo) -> ContentSettings:
    return settings_for(topics_created, ContentSettings, content_max_locales=5, content_max_part_chars=4096)


@pytest.fixture(scope="session")
async def content_app(content_settings: ContentSettings) -> AsyncIterator[FastAPI]:
    async with running(SERVICE.create_app("all", content_settings)) as started:
        yield started


@pytest.fixture
def sandbox() -> str:
    """A sandbox of the test's own."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def api(
    content_app: FastAPI, content_settings: ContentSettings, sandbox: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A client with every scope in the test's own sandbox (``sandbox``)."""
    token = mint_token(content_settings, scopes=ALL_SCOPES, sandbox=sandbox)
    async with client_for(content_app, token) as client:
        yield client
