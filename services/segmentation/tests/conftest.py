"""The segmentation service, running once per test session on the real broker and database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.testing import StackInfo, client_for, running, settings_for
from itinera.segmentation.app import SERVICE
from itinera.segmentation.config import SegmentationSettings


@pytest.fixture(scope="session")
def segmentation_settings(topics_created: StackInfo) -> SegmentationSettings:
    return settings_for(
        topics_created,
        SegmentationSettings,
        segmentation_max_expression_length=4096,
        segmentation_schedule_interval_s=0.5,
        segmentation_job_interval_s=0.05,
        segmentation_upload_max_bytes=64 * 1024,
        segmentation_upload_max_people=1000,
        # Tests run the jobs they mean to; test_jobs_api checks the jobs a save creates.
        segmentation_evaluate_on_save=False,
    )


@pytest.fixture(scope="session")
async def segmentation_app(segmentation_settings: SegmentationSettings) -> AsyncIterator[FastAPI]:
    async with running(SERVICE.create_app("all", segmentation_settings)) as started:
        yield started


@pytest.fixture
async def http(
    segmentation_app: FastAPI, segmentation_settings: SegmentationSettings
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(segmentation_app, mint_token(segmentation_settings, scopes=ALL_SCOPES)) as client:
        yield client


@pytest.fixture
def sandbox() -> str:
    """A sandbox of the test's own: a job or a listing sees only the test's data."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def api(
    segmentation_app: FastAPI, segmentation_settings: SegmentationSettings, sandbox: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A client with every scope in the test's own sandbox (``sandbox``)."""
    token = mint_token(segmentation_settings, scopes=ALL_SCOPES, sandbox=sandbox)
    async with client_for(segmentation_app, token) as client:
        yield client


@pytest.fixture
def pool(segmentation_app: FastAPI) -> asyncpg.Pool:
    """The service's database pool, for what a test writes or reads directly."""
    found: asyncpg.Pool = segmentation_app.state.runtime.pool
    return found


@pytest.fixture
async def saving_api(
    segmentation_app: FastAPI, segmentation_settings: SegmentationSettings, sandbox: str
) -> AsyncIterator[httpx.AsyncClient]:
    """An API of the service with re-evaluation on save on (as by default), in the test's
    sandbox; the session's worker runs the jobs it creates."""
    settings = segmentation_settings.model_copy(update={"segmentation_evaluate_on_save": True})
    async with running(SERVICE.create_app("api", settings)) as app:
        token = mint_token(settings, scopes=ALL_SCOPES, sandbox=sandbox)
        async with client_for(app, token) as client:
            yield client
