"""The ingestion service, running once per test session on the real broker and database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.testing import StackInfo, client_for, running, settings_for
from itinera.ingestion.app import SERVICE
from itinera.ingestion.config import IngestionSettings


@pytest.fixture(scope="session")
def settings(topics_created: StackInfo) -> IngestionSettings:
    return settings_for(topics_created, IngestionSettings, consumer_max_attempts=2)


@pytest.fixture(scope="session")
async def app(settings: IngestionSettings) -> AsyncIterator[FastAPI]:
    async with running(SERVICE.create_app("all", settings)) as started:
        yield started


@pytest.fixture(scope="session")
def token(settings: IngestionSettings) -> str:
    return mint_token(settings, scopes=ALL_SCOPES, sandbox="prod")


@pytest.fixture
async def client(app: FastAPI, token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, token) as http:
        yield http


EVENT_CLASS = "https://ns.adobe.com/xdm/context/experienceevent"
PROFILE_CLASS = "https://ns.adobe.com/xdm/context/profile"


async def _create(app: FastAPI, token: str, name: str, schema_id: str, profile: bool) -> dict[str, str]:
    async with client_for(app, token) as http:
        dataset = await http.post(
            "/v1/datasets", json={"name": name, "schemaRef": {"id": schema_id}, "profileEnabled": profile}
        )
        assert dataset.status_code == 201, dataset.text
        connection = await http.post(
            "/v1/connections", json={"name": name, "datasetId": dataset.json()["id"]}
        )
        assert connection.status_code == 201, connection.text
        return {"dataset": dataset.json()["id"], "connection": connection.json()["id"]}


@pytest.fixture(scope="session")
async def events_inlet(app: FastAPI, token: str) -> dict[str, str]:
    """A profile-enabled experience-event dataset and a connection to it."""
    return await _create(app, token, "web events", EVENT_CLASS, True)


@pytest.fixture(scope="session")
async def profiles_inlet(app: FastAPI, token: str) -> dict[str, str]:
    """A profile-enabled profile-record dataset and a connection to it."""
    return await _create(app, token, "crm profiles", PROFILE_CLASS, True)
