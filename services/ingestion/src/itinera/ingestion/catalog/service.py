"""Datasets and streaming connections, and the in-process catalogue the hot path reads.

Validation must not touch the database per message: connections, datasets and their
compiled validators are cached in memory. A change in the registry or the catalogue
sends ``NOTIFY ingestion_catalog`` with the sandbox; every replica listening drops
that sandbox's entries. A time-to-live bounds staleness if a notification is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from itinera.common.errors import Conflict, FieldError, NotFound, ValidationFailed
from itinera.common.xdm.models import EXPERIENCE_EVENT
from itinera.common.xdm.schemas import CompiledSchema
from itinera.ingestion.catalog import repository
from itinera.ingestion.catalog.schemas import ConnectionIn, DatasetIn
from itinera.ingestion.registry.repository import notify_catalog_changed
from itinera.ingestion.registry.service import IdentityField, Registry

log = logging.getLogger(__name__)

CHANNEL = "ingestion_catalog"
DEFAULT_CONTENT_TYPE = "application/vnd.adobe.xed-full+json;version=1"


@dataclass(frozen=True, slots=True)
class Dataset:
    sandbox: str
    id: str
    name: str
    schema_id: str
    content_type: str
    class_id: str
    profile_enabled: bool
    validator: CompiledSchema
    identity_fields: tuple[IdentityField, ...]

    @property
    def is_event(self) -> bool:
        return self.class_id == EXPERIENCE_EVENT


@dataclass(frozen=True, slots=True)
class Connection:
    sandbox: str
    id: str
    name: str
    dataset_id: str
    source_name: str


def dataset_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "schemaRef": {"id": row["schema_id"], "contentType": row["content_type"]},
        "classId": row["class_id"],
        "profileEnabled": row["profile_enabled"],
        "sandbox": row["sandbox"],
        "createdAt": row["created_at"].isoformat(),
    }


def connection_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "datasetId": row["dataset_id"],
        "sourceName": row["source_name"],
        "sandbox": row["sandbox"],
        "inletUrl": f"/collection/{row['id']}",
        "batchInletUrl": f"/collection/batch/{row['id']}",
        "createdAt": row["created_at"].isoformat(),
    }


class Catalog:
    def __init__(self, pool: asyncpg.Pool, registry: Registry, ttl_s: float) -> None:
        self.pool = pool
        self.registry = registry
        self.ttl_s = ttl_s
        self._connections: dict[str, tuple[float, Connection]] = {}
        self._datasets: dict[tuple[str, str], tuple[float, Dataset]] = {}
        self._compile_lock = asyncio.Lock()
        self._listener: asyncpg.Connection | None = None

    async def start(self) -> None:
        self._listener = await self.pool.acquire()
        await self._listener.add_listener(CHANNEL, self._changed)

    async def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.remove_listener(CHANNEL, self._changed)
            await self.pool.release(self._listener)
            self._listener = None

    def _changed(self, _conn: object, _pid: int, _channel: str, sandbox: str) -> None:
        self.invalidate(sandbox)

    def invalidate(self, sandbox: str) -> None:
        self._datasets = {k: v for k, v in self._datasets.items() if k[0] != sandbox}
        self._connections = {k: v for k, v in self._connections.items() if v[1].sandbox != sandbox}

    # -- the hot path ---------------------------------------------------------------

    async def connection(self, connection_id: str, sandbox: str) -> Connection:
        now = time.monotonic()
        cached = self._connections.get(connection_id)
        if cached is None or cached[0] < now:
            async with self.pool.acquire() as conn:
                row = await repository.get_connection(conn, connection_id)
            if row is None:
                raise NotFound(f"no streaming connection {connection_id!r}")
            cached = (now + self.ttl_s, _connection(row))
            self._connections[connection_id] = cached
        if cached[1].sandbox != sandbox:
            # Same answer as an unknown id: ids of other sandboxes are not disclosed.
            raise NotFound(f"no streaming connection {connection_id!r} in sandbox {sandbox!r}")
        return cached[1]

    async def dataset(self, sandbox: str, dataset_id: str) -> Dataset:
        key = (sandbox, dataset_id)
        cached = self._datasets.get(key)
        if cached is not None and cached[0] >= time.monotonic():
            return cached[1]
        async with self._compile_lock:
            cached = self._datasets.get(key)
            if cached is not None and cached[0] >= time.monotonic():
                return cached[1]
            async with self.pool.acquire() as conn:
                row = await repository.get_dataset(conn, sandbox, dataset_id)
                if row is None:
                    raise NotFound(f"no dataset {dataset_id!r} in sandbox {sandbox!r}")
                dataset = await self._build(conn, row)
            self._datasets[key] = (time.monotonic() + self.ttl_s, dataset)
            return dataset

    async def _build(self, conn: asyncpg.Connection, row: asyncpg.Record) -> Dataset:
        sandbox = row["sandbox"]
        class_id, union, resources = await self.registry.resolve(conn, sandbox, row["schema_id"])
        fields = await self.registry.identity_fields(conn, sandbox, row["schema_id"])
        started = time.perf_counter()
        validator = await asyncio.to_thread(self.registry.library.compile, union, resources)
        log.info(
            "validator compiled",
            extra={
                "dataset": row["id"],
                "schema": row["schema_id"],
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return Dataset(
            sandbox=sandbox,
            id=row["id"],
            name=row["name"],
            schema_id=row["schema_id"],
            content_type=row["content_type"],
            class_id=class_id,
            profile_enabled=row["profile_enabled"],
            validator=validator,
            identity_fields=tuple(fields),
        )

    # -- management -----------------------------------------------------------------

    async def create_dataset(self, conn: asyncpg.Connection, sandbox: str, body: DatasetIn) -> dict[str, Any]:
        try:
            class_id, _, _ = await self.registry.resolve(conn, sandbox, body.schema_ref.id)
        except NotFound:
            raise ValidationFailed(
                "the dataset's schema does not exist",
                [
                    FieldError(
                        "/schemaRef/id",
                        f"no schema {body.schema_ref.id!r} in sandbox {sandbox!r}",
                        "reference",
                    )
                ],
            ) from None
        try:
            row = await repository.insert_dataset(
                conn,
                sandbox=sandbox,
                dataset_id=secrets.token_hex(12),
                name=body.name,
                description=body.description,
                schema_id=body.schema_ref.id,
                content_type=body.schema_ref.content_type or DEFAULT_CONTENT_TYPE,
                class_id=class_id,
                profile_enabled=body.profile_enabled,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a dataset named {body.name!r} exists") from None
        await notify_catalog_changed(conn, sandbox)
        return dataset_view(row)

    async def create_connection(
        self, conn: asyncpg.Connection, sandbox: str, body: ConnectionIn
    ) -> dict[str, Any]:
        if await repository.get_dataset(conn, sandbox, body.dataset_id) is None:
            raise ValidationFailed(
                "the connection's dataset does not exist",
                [
                    FieldError(
                        "/datasetId",
                        f"no dataset {body.dataset_id!r} in sandbox {sandbox!r}",
                        "reference",
                    )
                ],
            )
        try:
            row = await repository.insert_connection(
                conn,
                sandbox=sandbox,
                connection_id=secrets.token_hex(32),
                name=body.name,
                description=body.description,
                dataset_id=body.dataset_id,
                source_name=body.source_name or body.name,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a connection named {body.name!r} exists") from None
        await notify_catalog_changed(conn, sandbox)
        return connection_view(row)


def _connection(row: asyncpg.Record) -> Connection:
    return Connection(
        sandbox=row["sandbox"],
        id=row["id"],
        name=row["name"],
        dataset_id=row["dataset_id"],
        source_name=row["source_name"],
    )
