"""Specification of the schema migrations (``itinera.common.db.migrations``) on the real
database. Each test migrates a schema of its own from a package it writes itself."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import asyncpg
import pytest

from itinera.common.db.migrations import COMMON_PACKAGE, MigrationError, load, migrate
from itinera.common.settings import CommonSettings

# The shared tables every schema gets first (the outbox...), as the runner names them.
COMMON = [f"common/{m.version:04d}_{m.name}" for m in load(COMMON_PACKAGE, "common")]
COMMON_ROWS = [("common", m.version, m.name) for m in load(COMMON_PACKAGE, "common")]

MigrationPackage = Callable[[Mapping[str, str]], str]
"""The ``migration_package`` fixture: writes ``{file name: SQL}`` as a package, returns its name."""

CREATE_ITEMS = "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);"
ADD_COLOUR = "ALTER TABLE items ADD COLUMN colour text;"


@pytest.fixture
def schema() -> str:
    return f"t_migrate_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def conn(settings: CommonSettings, schema: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(settings.database_url)
    try:
        yield connection
    finally:
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await connection.close()


async def recorded(conn: asyncpg.Connection, schema: str) -> list[tuple[str, int, str]]:
    rows = await conn.fetch(f"SELECT component, version, name FROM {schema}.schema_migrations ORDER BY 1, 2")
    return [(r["component"], r["version"], r["name"]) for r in rows]


async def columns(conn: asyncpg.Connection, schema: str, table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
        schema,
        table,
    )
    return [r["column_name"] for r in rows]


async def schema_exists(conn: asyncpg.Connection, schema: str) -> bool:
    found: bool = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema)
    return found


class TestAFirstMigration:
    async def test_applies_every_migration_in_version_order_with_the_common_ones_first(
        self, conn: asyncpg.Connection, schema: str, migration_package: MigrationPackage
    ) -> None:
        package = migration_package(
            {"0010_colour.sql": ADD_COLOUR, "0002_items.sql": CREATE_ITEMS, "README.md": "not SQL"}
        )

        applied = await migrate(conn, schema, package)

        assert applied == [*COMMON, f"{schema}/0002_items", f"{schema}/0010_colour"]
        assert await columns(conn, schema, "items") == ["id", "name", "colour"]
        assert "topic" in await columns(conn, schema, "outbox")

    async def test_records_each_migration_with_its_checksum(
        self, conn: asyncpg.Connection, schema: str, migration_package: MigrationPackage
    ) -> None:
        package = migration_package({"0001_items.sql": CREATE_ITEMS})

        await migrate(conn, schema, package)

        assert await recorded(conn, schema) == [*COMMON_ROWS, (schema, 1, "items")]
        checksums = {
            r["name"]: r["checksum"]
            for r in await conn.fetch(f"SELECT name, checksum FROM {schema}.schema_migrations")
        }
        assert checksums["items"] == load(package, schema)[0].checksum
        assert len(checksums["outbox"]) == 64

    async def test_creates_its_tables_in_the_schema_not_in_public(
        self, conn: asyncpg.Connection, schema: str, migration_package: MigrationPackage
    ) -> None:
        await migrate(conn, schema, migration_package({"0001_items.sql": CREATE_ITEMS}))

        in_public = await conn.fetchval("SELECT to_regclass('public.items')")
        assert in_public is None
        # The connection's own search path is left as it was.
        assert await conn.fetchval("SELECT current_schema()") == "public"


class TestASecondMigration:
    async def test_applies_nothing_when_nothing_is_new(
        self, conn: asyncpg.Connection, schema: str, migration_package: MigrationPackage
    ) -> None:
        package = migration_package({"0001_items.sql": CREATE_ITEMS})
        await migrate(conn, schema, package)

        assert await migrate(conn, schema, package) == []
        assert len(await recorded(conn, schema)) == len(COMMON) + 1

    async def test_applies_only_the_migrations_added_since(
        self,
        conn: asyncpg.Connection,
        schema: str,
        migration_package: MigrationPackage,
        tmp_path: Path,
    ) -> None:
        package = migration_package({"0001_items.sql": CREATE_ITEMS})
        await migrate(conn, schema, package)
        (tmp_path / package / "0002_colour.sql").write_text(ADD_COLOUR)

        assert await migrate(conn, schema, package) == [f"{schema}/0002_colour"]

    async def test_refuses_a_migration_edited_after_it_was_applied(
        self,
        conn: asyncpg.Connection,
        schema: str,
        migration_package: MigrationPackage,
        tmp_path: Path,
    ) -> None:
        package = migration_package({"0001_items.sql": CREATE_ITEMS})
        await migrate(conn, schema, package)
        (tmp_path / package / "0001_items.sql").write_text(CREATE_ITEMS + "\n-- tidied up\n")
        (tmp_path / package / "0002_colour.sql").write_text(ADD_COLOUR)

        with pytest.raises(MigrationError, match=rf"{schema}/0001_items changed after it was applied"):
            await migrate(conn, schema, package)
        assert await columns(conn, schema, "items") == ["id", "name"]


class TestConcurrentMigrations:
    async def test_apply_each_migration_once(
        self,
        settings: CommonSettings,
        conn: asyncpg.Connection,
        schema: str,
        migration_package: MigrationPackage,
    ) -> None:
        # CREATE TABLE without IF NOT EXISTS: a second application would fail.
        package = migration_package(
            {
                "0001_items.sql": CREATE_ITEMS,
                "0002_colour.sql": ADD_COLOUR,
                "0003_slow.sql": "SELECT pg_sleep(0.05);",
            }
        )
        replicas = [await asyncpg.connect(settings.database_url) for _ in range(6)]
        try:
            results = await asyncio.gather(*(migrate(c, schema, package) for c in replicas))
        finally:
            for replica in replicas:
                await replica.close()

        applied = [name for result in results for name in result]
        assert sorted(applied) == sorted(
            [*COMMON, f"{schema}/0001_items", f"{schema}/0002_colour", f"{schema}/0003_slow"]
        )
        assert sum(1 for result in results if result) == 1
        assert len(await recorded(conn, schema)) == len(COMMON) + 3


class TestAFailingMigration:
    async def test_names_its_file_and_leaves_nothing_half_applied(
        self, conn: asyncpg.Connection, schema: str, migration_package: MigrationPackage
    ) -> None:
        package = migration_package(
            {
                "0001_items.sql": CREATE_ITEMS,
                "0002_broken.sql": "CREATE TABLE half (id int);\nINSERT INTO no_such_table VALUES (1);",
            }
        )

        with pytest.raises(MigrationError, match=rf"^{schema}/0002_broken: .*no_such_table"):
            await migrate(conn, schema, package)

        assert not await schema_exists(conn, schema)

    async def test_can_be_fixed_and_applied_afterwards(
        self,
        conn: asyncpg.Connection,
        schema: str,
        migration_package: MigrationPackage,
        tmp_path: Path,
    ) -> None:
        package = migration_package({"0001_items.sql": CREATE_ITEMS, "0002_broken.sql": "ALTER TABLE nope;"})
        with pytest.raises(MigrationError):
            await migrate(conn, schema, package)

        (tmp_path / package / "0002_broken.sql").write_text(ADD_COLOUR)

        assert await migrate(conn, schema, package) == [
            *COMMON,
            f"{schema}/0001_items",
            f"{schema}/0002_broken",
        ]


class TestRefusals:
    async def test_a_schema_name_that_is_not_a_plain_identifier_is_refused(
        self, conn: asyncpg.Connection, migration_package: MigrationPackage
    ) -> None:
        package = migration_package({"0001_items.sql": CREATE_ITEMS})
        for bad in ("Upper", "a-b", "x; DROP SCHEMA public", "", "1abc"):
            with pytest.raises(MigrationError, match="invalid schema name"):
                await migrate(conn, bad, package)

    def test_two_migrations_with_one_version_are_refused(self, migration_package: MigrationPackage) -> None:
        package = migration_package({"0001_items.sql": CREATE_ITEMS, "0001_other.sql": ADD_COLOUR})
        with pytest.raises(MigrationError, match="two migrations share a version"):
            load(package, "x")

    def test_the_fixture_package_is_importable_like_a_service_one(self) -> None:
        assert [m.name for m in load("itinera_common_fixtures.migrations", "x")] == ["notes"]


class TestSandboxStatistics:
    """No ``sandbox`` column keeps planner statistics: with them, a sandbox newer than the
    last ANALYZE is estimated at a row or two, and an index that narrows to the sandbox
    alone looks as cheap as the look-up by key a statement wants."""

    async def sandbox_statistics(self, conn: asyncpg.Connection, schema: str) -> dict[str, int]:
        rows = await conn.fetch(
            "SELECT tablename, count(*) AS n FROM pg_stats WHERE schemaname = $1 AND attname = 'sandbox'"
            " GROUP BY tablename",
            schema,
        )
        return {r["tablename"]: r["n"] for r in rows}

    async def test_a_migrated_schema_keeps_none_even_after_analyze(
        self, conn: asyncpg.Connection, schema: str, migration_package: MigrationPackage
    ) -> None:
        package = migration_package(
            {
                "0001_visits.sql": """
                    CREATE TABLE visits (sandbox text NOT NULL, id bigint NOT NULL, page text NOT NULL,
                                         PRIMARY KEY (sandbox, id));
                    INSERT INTO visits SELECT 'prod', g, 'home' FROM generate_series(1, 500) g;""",
            }
        )

        await migrate(conn, schema, package)
        await conn.execute(f"ANALYZE {schema}.visits")

        assert await self.sandbox_statistics(conn, schema) == {}
        pages = await conn.fetchval(
            "SELECT count(*) FROM pg_stats WHERE schemaname = $1 AND tablename = 'visits' AND attname = $2",
            schema,
            "page",
        )
        assert pages == 1  # the other columns keep theirs

    async def test_statistics_taken_before_are_dropped(
        self, conn: asyncpg.Connection, schema: str, migration_package: MigrationPackage
    ) -> None:
        first = {
            "0001_visits.sql": """CREATE TABLE visits (sandbox text NOT NULL, id bigint NOT NULL);
                                  INSERT INTO visits SELECT 'prod', g FROM generate_series(1, 500) g;
                                  ANALYZE visits;""",
        }
        await migrate(conn, schema, migration_package(first))
        await conn.execute(f"ALTER TABLE {schema}.visits ALTER COLUMN sandbox SET STATISTICS -1")
        await conn.execute(f"ANALYZE {schema}.visits")
        assert await self.sandbox_statistics(conn, schema) == {"visits": 1}

        await migrate(
            conn, schema, migration_package({**first, "0002_more.sql": ADD_COLOUR.replace("items", "visits")})
        )

        assert await self.sandbox_statistics(conn, schema) == {}
