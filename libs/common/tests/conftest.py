"""Fixtures of the shared library's tests: settings on the session's broker and
database, throwaway topics, schemas and migration packages, so these tests never
touch the topics or schemas of the services."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

import asyncpg
import pytest

from itinera.common.db.migrations import migrate
from itinera.common.kafka.admin import create_topics
from itinera.common.kafka.producer import Producer
from itinera.common.kafka.topics import Topic
from itinera.common.settings import CommonSettings
from itinera.common.testing import StackInfo, settings_for

FIXTURES = Path(__file__).parent / "fixtures"
if str(FIXTURES) not in sys.path:
    # Test files are not a package (importlib import mode); the fixture packages are
    # made importable so ``migrations.load`` can read them through importlib.resources.
    sys.path.insert(0, str(FIXTURES))

NewTopic = Callable[..., Awaitable[str]]
MigrationPackage = Callable[[Mapping[str, str]], str]


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def settings(infrastructure: StackInfo) -> CommonSettings:
    return settings_for(infrastructure, CommonSettings)


@pytest.fixture(scope="session")
def new_topic(settings: CommonSettings) -> NewTopic:
    """Creates a topic of its own for a test (one partition unless asked)."""

    async def create(label: str, partitions: int = 1) -> str:
        name = unique(f"test.common.{label}.")
        topic = Topic(name=name, description=label, key="any", payload_schema="", partitions=partitions)
        await create_topics(settings, [topic])
        return name

    return create


@pytest.fixture(scope="session")
async def producer(settings: CommonSettings) -> AsyncIterator[Producer]:
    started = Producer(settings, client_id="itinera-common-tests")
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
def migration_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MigrationPackage:
    """Writes ``{file name: SQL}`` into a fresh importable package; returns its name.

    The files stay editable after the first load: ``importlib.resources`` reads them
    from disk each time, as ``migrate`` would read a redeployed package."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(files: Mapping[str, str]) -> str:
        name = unique("itinera_test_migrations_")
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text("")
        for file_name, sql in files.items():
            (package / file_name).write_text(sql)
        return name

    return write


@pytest.fixture
async def migrated_schema(settings: CommonSettings) -> AsyncIterator[str]:
    """A schema of the test's own, migrated as a service's is (the common migrations and
    the fixture package's), dropped after the test; its name."""
    schema = unique("t_schema_")
    conn = await asyncpg.connect(settings.database_url)
    try:
        await migrate(conn, schema, "itinera_common_fixtures.migrations")
        yield schema
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()
