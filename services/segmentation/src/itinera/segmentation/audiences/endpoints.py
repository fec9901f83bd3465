"""AEP's audiences, previews and estimates, under ``/data/core/ups``.

- ``GET /audiences``: every segment definition as an audience, with its size;
  ``start``/``limit``/``sort``/``property``/``name``/``description``/``entityType``
  (``{children, _page, _links}``);
- ``GET /audiences/{AUDIENCE_ID}``; ``POST /audiences/bulk-get`` with ``{"ids": [{"id": ...}]}``
  (207, each id's audience or 404 entry);
- ``POST /preview`` with ``{predicateExpression, predicateType, predicateModel, graphType?,
  mergePolicyId?}``: the rule checked and kept RUNNING for a worker to evaluate over the
  sandbox's profiles (201, ``X-Location``; 400 with every problem of the rule);
- ``GET /preview/{PREVIEW_ID}?offset=&limit=``: its state and, once RESULT_READY, the
  qualifying profiles, a page at a time; ``DELETE /preview/{PREVIEW_ID}`` (running or not);
- ``GET /estimate/{ESTIMATE_ID}`` (a preview's id): the audience's estimated size.

Reads need ``audiences:read``. Creating and deleting previews need ``audiences:write``:
a preview stores results and may evaluate a hundred thousand profiles, work that a
read-only client should not be able to cause. Unknown and expired previews are 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response, Security

from itinera.common.auth import Principal, require_scope
from itinera.common.service import Db
from itinera.common.web.problems import documented
from itinera.common.web.query import parse_query, query_parameters
from itinera.segmentation.audiences import service
from itinera.segmentation.audiences.schemas import (
    AudienceOut,
    AudiencePage,
    BulkOut,
    EstimateOut,
    ListQuery,
    PageQuery,
    PreviewIn,
    PreviewOut,
    PreviewQueryOut,
)
from itinera.segmentation.audiences.service import AUDIENCES, ESTIMATES, PREVIEWS, Limits
from itinera.segmentation.definitions.schemas import PROBLEMS, BulkGet, MessageOut

router = APIRouter(responses={status: answer for status, answer in PROBLEMS.items() if status != 400})
Reader = Annotated[Principal, Security(require_scope("audiences:read"))]
Writer = Annotated[Principal, Security(require_scope("audiences:write"))]
_PREVIEW = PREVIEWS + "/{PREVIEW_ID}"
_NO_AUDIENCE: dict[int | str, dict[str, Any]] = {404: documented("No such audience in this sandbox")}
_NO_PREVIEW: dict[int | str, dict[str, Any]] = {
    404: documented("No such preview in this sandbox, or it expired")
}


@router.get(
    AUDIENCES,
    tags=["audiences"],
    summary="List the sandbox's audiences, with their sizes",
    response_model=AudiencePage,
    response_model_exclude_unset=True,
    openapi_extra=query_parameters(ListQuery),
)
async def list_audiences(request: Request, caller: Reader, db: Db) -> dict[str, Any]:
    query = parse_query(ListQuery, request)
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await service.listing(db, caller.sandbox, query)


@router.post(
    AUDIENCES + "/bulk-get",
    tags=["audiences"],
    status_code=207,
    summary="Several audiences by id (1 to 100)",
    response_model=BulkOut,
    response_model_exclude_unset=True,
    responses={
        400: documented("Not 1 to 100 ids"),
        404: documented("None of the audiences asked for exists"),
    },
)
async def bulk_get_audiences(request: Request, body: BulkGet, caller: Reader, db: Db) -> dict[str, Any]:
    request_id = str(getattr(request.state, "request_id", ""))
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await service.bulk_get(db, caller.sandbox, [ref.id for ref in body.ids], request_id)


@router.get(
    AUDIENCES + "/{AUDIENCE_ID}",
    tags=["audiences"],
    summary="An audience, with its size",
    response_model=AudienceOut,
    response_model_exclude_unset=True,
    responses=_NO_AUDIENCE,
)
async def get_audience(AUDIENCE_ID: str, caller: Reader, db: Db) -> dict[str, Any]:
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await service.get(db, caller.sandbox, AUDIENCE_ID)


@router.post(
    PREVIEWS,
    tags=["previews"],
    status_code=201,
    summary="Evaluate a PQL rule over the sandbox's profiles in the background (a preview and an estimate)",
    response_model=PreviewQueryOut,
    responses={400: documented("The rule is not valid: every problem, with its position")},
)
async def create_preview(
    request: Request, response: Response, body: PreviewIn, caller: Writer, db: Db
) -> dict[str, Any]:
    async with db.transaction():
        await service.purge_expired(db)
    limits = Limits.of(request.app.state.settings)
    async with db.transaction():
        created = await service.create_preview(db, caller.sandbox, body, limits)
    response.headers["X-Location"] = f"{PREVIEWS}/{created['previewId']}"
    return created


@router.get(
    _PREVIEW,
    tags=["previews"],
    summary="A preview's state and, once evaluated, a page of the profiles its rule qualifies",
    response_model=PreviewOut,
    response_model_exclude_unset=True,
    openapi_extra=query_parameters(PageQuery),
    responses=_NO_PREVIEW,
)
async def get_preview(request: Request, PREVIEW_ID: str, caller: Reader, db: Db) -> dict[str, Any]:
    page = parse_query(PageQuery, request)
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await service.results(db, caller.sandbox, PREVIEW_ID, page)


@router.delete(
    _PREVIEW,
    tags=["previews"],
    summary="Delete a preview (and its estimate), or cancel one being evaluated",
    response_model=MessageOut,
    responses=_NO_PREVIEW,
)
async def delete_preview(PREVIEW_ID: str, caller: Writer, db: Db) -> dict[str, Any]:
    async with db.transaction():
        await service.delete_preview(db, caller.sandbox, PREVIEW_ID)
    return {"status": True, "message": f"preview {PREVIEW_ID} deleted"}


@router.get(
    ESTIMATES + "/{ESTIMATE_ID}",
    tags=["estimates"],
    summary="The estimated size of a preview's audience (the estimate shares the preview's id)",
    response_model=EstimateOut,
    response_model_exclude_none=True,
    responses={404: documented("No such estimate in this sandbox, or it expired")},
)
async def get_estimate(ESTIMATE_ID: str, caller: Reader, db: Db) -> dict[str, Any]:
    return await service.get_estimate(db, caller.sandbox, ESTIMATE_ID)
