"""Schedules in AEP's shape, ``/data/core/ups/config/schedules``: a daily segment job.

- ``POST``: create from ``{name, type: "batch_segmentation", properties: {segments},
  schedule, state?}`` (200, the schedule; 400 with every problem's path);
- ``GET``: list, ``start``/``limit`` (``{_page, children}``), oldest first;
- ``GET /{SCHEDULE_ID}``; ``PATCH /{SCHEDULE_ID}`` with ``[{op: "add", path: "/state" |
  "/schedule", value}]`` (204); ``DELETE /{SCHEDULE_ID}`` (204).

Reads need ``audiences:read``, writes ``audiences:write``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response, Security
from pydantic import Field

from itinera.common.auth import Principal, require_scope
from itinera.common.service import Db
from itinera.common.web.problems import documented
from itinera.common.web.query import parse_query, query_parameters
from itinera.segmentation.schedules import service
from itinera.segmentation.schedules.schemas import (
    PROBLEMS,
    ListQuery,
    PatchOperation,
    ScheduleIn,
    ScheduleOut,
    SchedulePage,
)
from itinera.segmentation.schedules.service import SCHEDULES

router = APIRouter(tags=["schedules"], responses=PROBLEMS)
Reader = Annotated[Principal, Security(require_scope("audiences:read"))]
Writer = Annotated[Principal, Security(require_scope("audiences:write"))]
_ONE = SCHEDULES + "/{SCHEDULE_ID}"
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: documented("No such schedule in this sandbox")}


@router.get(
    SCHEDULES,
    summary="List the sandbox's schedules",
    response_model=SchedulePage,
    response_model_exclude_none=True,
    openapi_extra=query_parameters(ListQuery),
)
async def list_schedules(request: Request, caller: Reader, db: Db) -> dict[str, Any]:
    query = parse_query(ListQuery, request)
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await service.listing(db, caller.sandbox, query)


@router.post(
    SCHEDULES,
    summary="Create a schedule: a segment job every day at a set time (UTC)",
    response_model=ScheduleOut,
    response_model_exclude_none=True,
)
async def create_schedule(body: ScheduleIn, caller: Writer, db: Db) -> dict[str, Any]:
    async with db.transaction():
        return await service.create(db, caller.sandbox, body)


@router.get(
    _ONE,
    summary="A schedule, with its next and last occurrences",
    response_model=ScheduleOut,
    response_model_exclude_none=True,
    responses=_NOT_FOUND,
)
async def get_schedule(SCHEDULE_ID: str, caller: Reader, db: Db) -> dict[str, Any]:
    return await service.get(db, caller.sandbox, SCHEDULE_ID)


@router.patch(
    _ONE,
    status_code=204,
    summary="Change a schedule's state or cron expression (JSON Patch `add` operations)",
    response_class=Response,
    responses=_NOT_FOUND,
)
async def patch_schedule(
    SCHEDULE_ID: str,
    body: Annotated[list[PatchOperation], Field(min_length=1, max_length=10)],
    caller: Writer,
    db: Db,
) -> Response:
    async with db.transaction():
        await service.patch(db, caller.sandbox, SCHEDULE_ID, body)
    return Response(status_code=204)


@router.delete(
    _ONE,
    status_code=204,
    summary="Delete a schedule (jobs it created are kept)",
    response_class=Response,
    responses=_NOT_FOUND,
)
async def delete_schedule(SCHEDULE_ID: str, caller: Writer, db: Db) -> Response:
    async with db.transaction():
        await service.delete(db, caller.sandbox, SCHEDULE_ID)
    return Response(status_code=204)
