"""Pytest fixtures shared by every test suite (loaded from the root ``conftest.py``).

The broker and the database are real and started once per test session, by the
same code as ``make run`` (:mod:`itinera.common.devstack`), on free ports, with a
fresh database. ``ITINERA_TEST_BACKEND=docker`` starts Apache Kafka and PostgreSQL
containers through testcontainers instead; nothing else changes.
``ITINERA_KAFKA_BOOTSTRAP`` / ``ITINERA_DATABASE_URL`` use servers already running.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI

from itinera.common.devstack import Infrastructure, free_port
from itinera.common.kafka import topics
from itinera.common.kafka.consumer import Record, _record
from itinera.common.settings import CommonSettings

S = TypeVar("S", bound=CommonSettings)


@dataclass(frozen=True)
class StackInfo:
    kafka_bootstrap: str
    database_url: str


def _docker_infrastructure() -> Iterator[StackInfo]:
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.postgres import PostgresContainer

    with (
        # Confluent's packaging of Apache Kafka, in KRaft mode: the image testcontainers drives.
        KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as kafka,
        PostgresContainer("postgres:17", driver=None) as postgres,
    ):
        yield StackInfo(kafka.get_bootstrap_server(), postgres.get_connection_url())


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[StackInfo]:
    if os.environ.get("ITINERA_TEST_BACKEND") == "docker":
        yield from _docker_infrastructure()
        return
    # Not under pytest's basetemp: pytest prunes old basetemps, and a concurrent
    # session's pruning must not delete a running server's data directory.
    state = Path(tempfile.mkdtemp(prefix="itinera-test-stack-"))
    infra = Infrastructure.start(
        state,
        kafka_bootstrap=os.environ.get("ITINERA_KAFKA_BOOTSTRAP"),
        database_url=os.environ.get("ITINERA_DATABASE_URL"),
        kafka_port=free_port(),
        pg_port=free_port(),
    )
    try:
        yield StackInfo(infra.kafka_bootstrap, infra.database_url)
    finally:
        infra.stop()
        shutil.rmtree(state, ignore_errors=True)


def environment_for(infrastructure: StackInfo, **overrides: str) -> dict[str, str]:
    """The environment of an ``itinera`` child process on the session's stack."""
    return {
        **os.environ,
        "ITINERA_KAFKA_BOOTSTRAP": infrastructure.kafka_bootstrap,
        "ITINERA_DATABASE_URL": infrastructure.database_url,
        **overrides,
    }


def settings_for(infrastructure: StackInfo, kind: type[S], **overrides: Any) -> S:
    """Settings of ``kind`` pointing at the session's stack, with the quick retries and
    polls tests want (a test waits for effects; it should not wait for backoff)."""
    values: dict[str, Any] = {
        "kafka_bootstrap": infrastructure.kafka_bootstrap,
        "database_url": infrastructure.database_url,
        "consumer_backoff_initial_ms": 10,
        "consumer_backoff_max_ms": 40,
        "outbox_poll_interval_ms": 50,
        "log_format": "text",
        "log_level": "WARNING",
    }
    return kind(**(values | overrides))


@pytest.fixture(scope="session")
async def topics_created(infrastructure: StackInfo) -> StackInfo:
    from itinera.common.kafka.admin import create_topics
    from itinera.common.settings import CommonSettings

    await create_topics(CommonSettings(kafka_bootstrap=infrastructure.kafka_bootstrap))
    return infrastructure


class TopicReader:
    """Reads a topic from the offsets it had when opened, without a consumer group
    (manual assignment joins nothing, so it is ready at once)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.records: list[Record] = []

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(self.topic)
        if not partitions:
            await self._consumer.stop()
            raise LookupError(f"topic {self.topic} does not exist")
        assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_end(*assigned)
        # Tansu answers ListOffsets with the last batch's base offset + 1, not the end,
        # so seek_to_end can land inside the last batch. A fetch reports the true high
        # watermark: read once, then start from there.
        await self._consumer.getmany(timeout_ms=300)
        for tp in assigned:
            high = self._consumer.highwater(tp)
            if high is not None:
                self._consumer.seek(tp, high)
            await self._consumer.position(tp)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def wait_for(
        self, predicate: Callable[[list[Record]], bool], timeout_s: float = 20.0
    ) -> list[Record]:
        """Collect records until ``predicate(all records so far)`` holds."""
        deadline = time.monotonic() + timeout_s
        while not predicate(self.records):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.topic}: condition not met in {timeout_s}s; saw {len(self.records)} record(s)"
                )
            batch = await self._consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                self.records.extend(_record(m) for m in messages)
        return self.records

    async def wait_count(self, count: int, timeout_s: float = 20.0) -> list[Record]:
        return await self.wait_for(lambda records: len(records) >= count, timeout_s)


def topic_reader(infrastructure: StackInfo, topic: str) -> AbstractAsyncContextManager[TopicReader]:
    return TopicReader(infrastructure.kafka_bootstrap, topic)


@contextmanager
def serving(
    infrastructure: StackInfo, service: str, role: str = "api", timeout_s: float = 60, **settings: str
) -> Iterator[str]:
    """A service's server in a process of its own (``itinera serve``), ready; its URL.
    ``settings``: more environment (``ITINERA_...``) for it."""
    port = free_port()
    env = environment_for(infrastructure, ITINERA_LOG_LEVEL="ERROR", **settings)
    command = [
        sys.executable,
        "-m",
        "itinera.common.cli",
        "serve",
        service,
        "--role",
        role,
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {service} server did not start")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
async def own_database(topics_created: StackInfo) -> AsyncIterator[str]:
    """A database of the test's own on the session's server, dropped after it; its URL.
    For a service process under test that nothing else of the session may share (a
    worker killed and restarted, with consumer groups of its own too)."""
    import asyncpg

    name = f"own_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(topics_created.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base, _, _ = topics_created.database_url.rpartition("/")
        yield f"{base}/{name}"
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@contextmanager
def service_process(
    service: str, env: dict[str, str], port: int, role: str = "all"
) -> Iterator[subprocess.Popen[bytes]]:
    """``itinera serve SERVICE --role ROLE`` in a process group of its own (so a test can
    SIGKILL it whole), stopped at the end if it still runs."""
    command = [
        sys.executable,
        "-m",
        "itinera.common.cli",
        "serve",
        service,
        "--role",
        role,
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


async def ready(url: str, timeout_s: float = 60) -> None:
    """Wait until the service at ``url`` answers ``/readyz`` with 200."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{url}/readyz", timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{url} did not become ready")


def no_server_errors(
    url: str,
    token: str,
    *,
    at_least: int,
    examples: int = 25,
    path_parameters: dict[str, str] | None = None,
) -> None:
    """Schemathesis sends every operation of the server's OpenAPI document ``examples``
    generated requests (bodies, parameters, headers) and fails on any 5xx answer.
    ``path_parameters`` replaces generated ones (a real resource, so bodies get past the
    look-up); ``at_least`` guards against a document that lost operations."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    headers = {"Authorization": f"Bearer {token}"}
    api: Any = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= at_least, "the OpenAPI document lost operations"
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def call(case: Any) -> None:
            for name, value in (path_parameters or {}).items():
                if case.path_parameters and name in case.path_parameters:
                    case.path_parameters[name] = value
            case.call_and_validate(headers=headers, checks=[not_a_server_error], timeout=30)

        call()


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    """Run the app's lifespan (pool, migrations, producer, workers) around a block."""
    async with app.router.lifespan_context(app):
        yield app


def client_for(app: FastAPI, token: str | None = None, **headers: str) -> httpx.AsyncClient:
    """An HTTP client that calls the app in-process (no socket), as a partner would."""
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers
    )


async def publish_entity(
    infrastructure: StackInfo, sandbox: str, topic: str, key: str, dataset: str, body: dict[str, Any]
) -> None:
    """Publish one XDM entity as ingestion would (sandbox, dataset, ``ce_id`` and
    ``ce_time`` headers), for the services downstream of it."""
    producer = AIOKafkaProducer(bootstrap_servers=infrastructure.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            value=orjson.dumps(body),
            key=key.encode(),
            headers=[
                ("itinera_sandbox", sandbox.encode()),
                ("itinera_dataset", dataset.encode()),
                ("ce_id", str(uuid.uuid4()).encode()),
                ("ce_time", str(body.get("timestamp", "2026-11-28T12:00:00Z")).encode()),
            ],
        )
    finally:
        await producer.stop()


async def stored_profile(
    infrastructure: StackInfo, profiles: httpx.AsyncClient, sandbox: str, email: str, record: dict[str, Any]
) -> str:
    """Send a profile record of ``email`` (its Email identity added) as ingestion does, and
    wait until the profile service ``profiles`` (a client of its API, with a token of the
    sandbox) holds it: the profile's id."""
    body = {"identityMap": {"Email": [{"id": email, "primary": True}]}, **record}
    await publish_entity(infrastructure, sandbox, topics.RECORDS.name, f"Email:{email}", "crm", body)
    found: dict[str, Any] = {}

    async def held() -> bool:
        answer = await profiles.get("/v1/profiles", params={"identity": f"Email:{email}"})
        found.update(answer.json() if answer.status_code == 200 else {})
        return "profileId" in found

    await eventually(held, timeout_s=30)
    return str(found["profileId"])


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0) -> None:
    """Wait until ``check()`` holds; for effects that land asynchronously."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.1)


async def rows_read(conn: asyncpg.Connection, tables: list[str]) -> dict[str, int]:
    """Rows of each table (of the connection's schema) its backend has read, by scans and
    index look-ups, as PostgreSQL counts them so far. The counts of the backend's earlier
    transactions may still be in them: compare two readings in one transaction."""
    found = await conn.fetch(
        """SELECT relname, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) AS read
           FROM pg_stat_xact_user_tables WHERE schemaname = current_schema() AND relname = ANY($1)""",
        tables,
    )
    counts = {r["relname"]: r["read"] for r in found}
    return {table: counts.get(table, 0) for table in tables}
