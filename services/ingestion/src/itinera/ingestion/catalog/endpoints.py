"""``/v1/datasets`` and ``/v1/connections``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Security

from itinera.common.auth import Principal, require_scope
from itinera.common.errors import NotFound
from itinera.common.service import CurrentRuntime, Db
from itinera.ingestion.catalog import repository
from itinera.ingestion.catalog.schemas import (
    ConnectionIn,
    ConnectionOut,
    ConnectionPage,
    DatasetIn,
    DatasetOut,
    DatasetPage,
)
from itinera.ingestion.catalog.service import Catalog, connection_view, dataset_view
from itinera.ingestion.responses import PROBLEMS

router = APIRouter(prefix="/v1", tags=["datasets and connections"], responses=PROBLEMS)

Reader = Annotated[Principal, Security(require_scope("catalog:read"))]
Writer = Annotated[Principal, Security(require_scope("catalog:write"))]


def _catalog(runtime: CurrentRuntime) -> Catalog:
    catalog: Catalog = runtime.state["catalog"]
    return catalog


@router.post("/datasets", status_code=201, response_model=DatasetOut, summary="Create a dataset")
async def create_dataset(body: DatasetIn, caller: Writer, db: Db, runtime: CurrentRuntime) -> dict[str, Any]:
    async with db.transaction():
        return await _catalog(runtime).create_dataset(db, caller.sandbox, body)


@router.get("/datasets", response_model=DatasetPage, summary="List the sandbox's datasets")
async def list_datasets(caller: Reader, db: Db) -> dict[str, Any]:
    return {"items": [dataset_view(r) for r in await repository.list_datasets(db, caller.sandbox)]}


@router.get("/datasets/{dataset_id}", response_model=DatasetOut, summary="Get a dataset")
async def get_dataset(dataset_id: str, caller: Reader, db: Db) -> dict[str, Any]:
    row = await repository.get_dataset(db, caller.sandbox, dataset_id)
    if row is None:
        raise NotFound(f"no dataset {dataset_id!r} in sandbox {caller.sandbox!r}")
    return dataset_view(row)


@router.post(
    "/connections",
    status_code=201,
    response_model=ConnectionOut,
    summary="Create a streaming connection",
)
async def create_connection(
    body: ConnectionIn, caller: Writer, db: Db, runtime: CurrentRuntime
) -> dict[str, Any]:
    async with db.transaction():
        return await _catalog(runtime).create_connection(db, caller.sandbox, body)


@router.get("/connections", response_model=ConnectionPage, summary="List streaming connections")
async def list_connections(caller: Reader, db: Db) -> dict[str, Any]:
    return {"items": [connection_view(r) for r in await repository.list_connections(db, caller.sandbox)]}


@router.get("/connections/{connection_id}", response_model=ConnectionOut, summary="Get a connection")
async def get_connection(connection_id: str, caller: Reader, db: Db) -> dict[str, Any]:
    row = await repository.get_connection(db, connection_id)
    if row is None or row["sandbox"] != caller.sandbox:
        raise NotFound(f"no streaming connection {connection_id!r} in sandbox {caller.sandbox!r}")
    return connection_view(row)
