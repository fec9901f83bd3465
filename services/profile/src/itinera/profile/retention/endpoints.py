"""``/v1/datasets/{datasetId}/event-ttl``: how long a dataset's experience events are kept."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Security
from fastapi.responses import Response
from pydantic import BaseModel, Field

from itinera.common.auth import Principal, require_scope
from itinera.common.errors import NotFound
from itinera.common.service import Db
from itinera.profile.retention import repository

router = APIRouter(tags=["retention"])
Reader = Annotated[Principal, Security(require_scope("profiles:read"))]
Writer = Annotated[Principal, Security(require_scope("profiles:write"))]
DatasetId = Annotated[str, Path(min_length=1, max_length=256)]
MAX_DAYS = 36_500


class Retention(BaseModel):
    ttlDays: int = Field(
        ge=1, le=MAX_DAYS, description="Days an experience event is kept, from its timestamp"
    )


def _view(dataset_id: str, ttl: timedelta) -> dict[str, Any]:
    return {"datasetId": dataset_id, "ttlDays": ttl.days}


@router.get("/v1/event-ttls", summary="Datasets whose experience events expire")
async def list_ttls(caller: Reader, db: Db) -> dict[str, Any]:
    found = await repository.ttls_of(db, caller.sandbox)
    return {"children": [_view(d, t) for d, t in sorted(found.items())]}


@router.get("/v1/datasets/{datasetId}/event-ttl", summary="How long a dataset's events are kept")
async def get_ttl(datasetId: DatasetId, caller: Reader, db: Db) -> dict[str, Any]:
    ttl = (await repository.ttls_of(db, caller.sandbox)).get(datasetId)
    if ttl is None:
        raise NotFound(f"dataset {datasetId!r} keeps its events (no time-to-live)")
    return _view(datasetId, ttl)


@router.put("/v1/datasets/{datasetId}/event-ttl", summary="Keep a dataset's events this many days")
async def put_ttl(datasetId: DatasetId, body: Retention, caller: Writer, db: Db) -> dict[str, Any]:
    await repository.set_ttl(db, caller.sandbox, datasetId, timedelta(days=body.ttlDays))
    return _view(datasetId, timedelta(days=body.ttlDays))


@router.delete("/v1/datasets/{datasetId}/event-ttl", status_code=204, summary="Keep a dataset's events")
async def delete_ttl(datasetId: DatasetId, caller: Writer, db: Db) -> Response:
    if not await repository.drop_ttl(db, caller.sandbox, datasetId):
        raise NotFound(f"dataset {datasetId!r} has no time-to-live")
    return Response(status_code=204)
