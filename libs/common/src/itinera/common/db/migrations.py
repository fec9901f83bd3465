"""Ordered SQL migrations, applied at start-up and by ``itinera migrate``.

A migration is a file ``NNNN_name.sql`` in a service's ``migrations`` package. Each is
applied once, in its own transaction, with the service's schema on the search path,
and recorded with a checksum: editing an applied migration is refused rather than
silently diverging. A transaction-level advisory lock per schema lets any number of
replicas start at once; one applies, the others wait and find nothing left to do.
Every schema also gets the shared tables (the outbox) from ``itinera.common.db.sql``.

Once migrated, no ``sandbox`` column of the schema keeps planner
statistics (:data:`NO_SANDBOX_STATISTICS`). Those statistics list the sandboxes seen at
the last ANALYZE; a newer sandbox is then estimated at a row or two, and any index led
by the sandbox looks as cheap as the look-up by key a statement wants: the profile
service's look-up of a profile's members read every member of the sandbox for each
profile. Without statistics, equality on the sandbox is estimated at 0.5% of a table,
never under a look-up by key.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
COMMON_PACKAGE = "itinera.common.db.sql"


NO_SANDBOX_STATISTICS = """
DO $$
DECLARE
    t text;
BEGIN
    FOR t IN
        SELECT c.relname FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
           AND a.attname = 'sandbox' AND NOT a.attisdropped AND a.attstattarget IS DISTINCT FROM 0
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN sandbox SET STATISTICS 0', t);
        -- ANALYZE keeps what it took before it stopped taking them: dropped here.
        PERFORM pg_clear_attribute_stats(current_schema(), t, 'sandbox', false);
    END LOOP;
END $$"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load(package: str, component: str) -> list[Migration]:
    found = []
    for entry in resources.files(package).iterdir():
        match = _NAME.match(entry.name)
        if match is None:
            continue
        found.append(Migration(component, int(match[1]), match[2], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version in {package}: {versions}")
    return found


def _check_schema_name(schema: str) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise MigrationError(f"invalid schema name {schema!r}")


async def migrate(conn: asyncpg.Connection, schema: str, package: str) -> list[str]:
    """Apply the pending migrations of ``package`` (and the common ones) to ``schema``.

    Returns the names applied, in order.
    """
    _check_schema_name(schema)
    pending = load(COMMON_PACKAGE, "common") + load(package, schema)
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"itinera.migrate.{schema}")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                    component text NOT NULL,
                    version integer NOT NULL,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (component, version))"""
        )
        rows = await conn.fetch(f"SELECT component, version, name, checksum FROM {schema}.schema_migrations")
        done = {(r["component"], r["version"]): r for r in rows}
        await conn.execute(f"SET LOCAL search_path TO {schema}, public")
        for migration in pending:
            row = done.get((migration.component, migration.version))
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.component}/{migration.version:04d}_{migration.name}"
                        " changed after it was applied; add a new migration instead"
                    )
                continue
            async with conn.transaction():  # a savepoint: the error names the file
                try:
                    await conn.execute(migration.sql)
                except asyncpg.PostgresError as exc:
                    raise MigrationError(
                        f"{migration.component}/{migration.version:04d}_{migration.name}: {exc}"
                    ) from exc
            await conn.execute(
                f"INSERT INTO {schema}.schema_migrations (component, version, name, checksum)"
                " VALUES ($1, $2, $3, $4)",
                migration.component,
                migration.version,
                migration.name,
                migration.checksum,
            )
            applied.append(f"{migration.component}/{migration.version:04d}_{migration.name}")
        await conn.execute(NO_SANDBOX_STATISTICS)  # a no-op once every column is done
    if applied:
        log.info("migrations applied", extra={"schema": schema, "migrations": applied})
    return applied
