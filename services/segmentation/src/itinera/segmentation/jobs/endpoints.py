"""Segment jobs in AEP's shape, ``/data/core/ups/segment/jobs``: batch evaluation of
audiences over every profile of the sandbox.

- ``POST`` with ``[{"segmentId": ...}]`` (1 to 100, each a definition of the sandbox;
  400 with ``/i/segmentId`` paths otherwise): 200, the NEW job;
- ``GET``: list, ``start``/``limit``/``status``/``sort``/``property``/``snapshot.name``
  (``{_page, children, _links}``);
- ``POST /bulk-get`` with ``{"ids": [{"id": ...}]}``: 207, each id's job or 404 entry;
- ``GET /{SEGMENT_JOB_ID}``: the job, its metrics and progress;
- ``DELETE /{SEGMENT_JOB_ID}``: cancel (204; 409 when it has finished).

Reads need ``audiences:read``, creating and cancelling ``audiences:write``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response, Security

from itinera.common.auth import Principal, require_scope
from itinera.common.service import Db
from itinera.common.web.problems import documented
from itinera.common.web.query import parse_query, query_parameters
from itinera.segmentation.definitions.schemas import BulkGet
from itinera.segmentation.jobs import service
from itinera.segmentation.jobs.schemas import PROBLEMS, BulkOut, JobOut, JobPage, JobRequest, ListQuery
from itinera.segmentation.jobs.service import JOBS

router = APIRouter(tags=["segment jobs"], responses=PROBLEMS)
Reader = Annotated[Principal, Security(require_scope("audiences:read"))]
Writer = Annotated[Principal, Security(require_scope("audiences:write"))]
_ONE = JOBS + "/{SEGMENT_JOB_ID}"
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: documented("No such segment job in this sandbox")}


@router.get(
    JOBS,
    summary="List the sandbox's segment jobs",
    response_model=JobPage,
    response_model_exclude_none=True,
    openapi_extra=query_parameters(ListQuery),
)
async def list_jobs(request: Request, caller: Reader, db: Db) -> dict[str, Any]:
    query = parse_query(ListQuery, request)
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await service.listing(db, caller.sandbox, query)


@router.post(
    JOBS,
    summary="Evaluate segment definitions over every profile of the sandbox (a batch job)",
    response_model=JobOut,
    response_model_exclude_none=True,
    responses={
        400: documented("A segment definition named does not exist, or there are not 1 to 100 of them")
    },
)
async def create_job(body: list[JobRequest], caller: Writer, db: Db) -> dict[str, Any]:
    async with db.transaction():
        return await service.create(db, caller.sandbox, [item.segmentId for item in body])


@router.post(
    JOBS + "/bulk-get",
    status_code=207,
    summary="Several segment jobs by id (1 to 100)",
    response_model=BulkOut,
    response_model_exclude_none=True,
    responses={
        400: documented("Not 1 to 100 ids"),
        404: documented("None of the segment jobs asked for exists"),
    },
)
async def bulk_get_jobs(request: Request, body: BulkGet, caller: Reader, db: Db) -> dict[str, Any]:
    request_id = str(getattr(request.state, "request_id", ""))
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await service.bulk_get(db, caller.sandbox, [ref.id for ref in body.ids], request_id)


@router.get(
    _ONE,
    summary="A segment job: its status, metrics and progress",
    response_model=JobOut,
    response_model_exclude_none=True,
    responses=_NOT_FOUND,
)
async def get_job(SEGMENT_JOB_ID: str, caller: Reader, db: Db) -> dict[str, Any]:
    return await service.get(db, caller.sandbox, SEGMENT_JOB_ID)


@router.delete(
    _ONE,
    status_code=204,
    summary="Cancel a segment job: it stops before its next chunk of profiles",
    response_class=Response,
    responses={**_NOT_FOUND, 409: documented("The job has already finished")},
)
async def cancel_job(SEGMENT_JOB_ID: str, caller: Writer, db: Db) -> Response:
    async with db.transaction():
        await service.cancel(db, caller.sandbox, SEGMENT_JOB_ID)
    return Response(status_code=204)
