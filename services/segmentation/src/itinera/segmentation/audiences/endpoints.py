"""AEP's audiences, previews and estimates, under ``/data/core/ups``.

- ``GET /audiences``: every segment definition as an audience, with its size;
  ``start``/``limit``/``sort``/``property``/``name``/``description``/``entityType``
  (``{children, _page, _links}``);
- ``POST /audiences`` (201), ``PUT /audiences/{AUDIENCE_ID}`` and ``PATCH`` (a JSON
  Patch) (201, as AEP answers them), ``DELETE /audiences/{AUDIENCE_ID}`` (204): audiences
  written as segment definitions are (see ``audiences.editing``), re-evaluated when their
  rule changes;
- ``GET /audiences/{AUDIENCE_ID}``; ``POST /audiences/bulk-get`` with ``{"ids": [{"id": ...}]}``
  (207, each id's audience or 404 entry);
- ``POST /preview`` with ``{predicateExpression, predicateType, predicateModel, graphType?,
  mergePolicyId?}``: the rule checked and kept RUNNING for a worker to evaluate over the
  sandbox's profiles (201, ``X-Location``; 400 with every problem of the rule);
- ``GET /preview/{PREVIEW_ID}?offset=&limit=``: its state and, once RESULT_READY, the
  qualifying profiles, a page at a time; ``DELETE /preview/{PREVIEW_ID}`` (running or not);
- ``GET /estimate/{ESTIMATE_ID}`` (a preview's id): the audience's estimated size.

Reads need ``audiences:read``; writing audiences needs ``audiences:write``, as do
creating and deleting previews:
a preview stores results and may evaluate a hundred thousand profiles, work that a
read-only client should not be able to cause. Unknown and expired previews are 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from asyncpg import Connection
from fastapi import APIRouter, Request, Response, Security

from itinera.common.auth import Principal, require_scope
from itinera.common.service import Db
from itinera.common.web.problems import documented
from itinera.common.web.query import parse_query, query_parameters
from itinera.segmentation.audiences import editing, service
from itinera.segmentation.audiences.schemas import (
    AudienceIn,
    AudienceOut,
    AudiencePage,
    BulkOut,
    EstimateOut,
    ListQuery,
    PageQuery,
    PatchOperationIn,
    PreviewIn,
    PreviewOut,
    PreviewQueryOut,
)
from itinera.segmentation.audiences.service import AUDIENCES, ESTIMATES, PREVIEWS, Limits
from itinera.segmentation.definitions.endpoints import max_expression_length, reevaluate_on_save
from itinera.segmentation.definitions.schemas import PROBLEMS, BulkGet, MessageOut

router = APIRouter(responses={status: answer for status, answer in PROBLEMS.items() if status != 400})
Reader = Annotated[Principal, Security(require_scope("audiences:read"))]
Writer = Annotated[Principal, Security(require_scope("audiences:write"))]
_PREVIEW = PREVIEWS + "/{PREVIEW_ID}"
_AUDIENCE = AUDIENCES + "/{AUDIENCE_ID}"
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


async def _written(
    request: Request, db: Connection, sandbox: str, audience_id: str, *, rule_changed: bool
) -> dict[str, Any]:
    """The audience as written, its rule evaluated again when it changed (in the write's
    transaction, as the definitions' writes do)."""
    if rule_changed:
        await reevaluate_on_save(request, db, sandbox, audience_id)
    return await service.get(db, sandbox, audience_id)


@router.post(
    AUDIENCES,
    tags=["audiences"],
    status_code=201,
    summary="Create an audience defined by a PQL rule",
    response_model=AudienceOut,
    response_model_exclude_unset=True,
    responses={
        400: documented("The audience is not valid: every problem, with its path"),
        422: documented(
            "An audience of that name exists (`already-exists`), or the body has the wrong shape"
        ),
    },
)
async def create_audience(
    request: Request, response: Response, body: AudienceIn, caller: Writer, db: Db
) -> dict[str, Any]:
    async with db.transaction():
        audience_id = await editing.create(db, caller.sandbox, body, max_expression_length(request))
        created = await _written(request, db, caller.sandbox, audience_id, rule_changed=True)
    response.headers["X-Location"] = f"{AUDIENCES}/{audience_id}"
    return created


@router.put(
    _AUDIENCE,
    tags=["audiences"],
    status_code=201,
    summary="Replace an audience's name, description, rule, schema and labels",
    response_model=AudienceOut,
    response_model_exclude_unset=True,
    responses={
        **_NO_AUDIENCE,
        400: documented("The audience is not valid, or its id or namespace would change"),
        422: documented("Another audience has that name (`already-exists`), or the body has the wrong shape"),
    },
)
async def replace_audience(
    request: Request, AUDIENCE_ID: str, body: AudienceIn, caller: Writer, db: Db
) -> dict[str, Any]:
    async with db.transaction():
        changed = await editing.replace(db, caller.sandbox, AUDIENCE_ID, body, max_expression_length(request))
        return await _written(request, db, caller.sandbox, AUDIENCE_ID, rule_changed=changed)


@router.patch(
    _AUDIENCE,
    tags=["audiences"],
    status_code=201,
    summary="Change an audience with a JSON Patch (name, description, expression, labels, evaluationInfo...)",
    response_model=AudienceOut,
    response_model_exclude_unset=True,
    responses={
        **_NO_AUDIENCE,
        400: documented("An operation is not possible, or the patched audience is not valid"),
        422: documented("Another audience has that name (`already-exists`), or the body has the wrong shape"),
    },
)
async def patch_audience(
    request: Request, AUDIENCE_ID: str, body: list[PatchOperationIn], caller: Writer, db: Db
) -> dict[str, Any]:
    async with db.transaction():
        changed = await editing.patch(db, caller.sandbox, AUDIENCE_ID, body, max_expression_length(request))
        return await _written(request, db, caller.sandbox, AUDIENCE_ID, rule_changed=changed)


@router.delete(
    _AUDIENCE,
    tags=["audiences"],
    status_code=204,
    summary="Delete an audience that no other audience names",
    response_class=Response,
    responses={**_NO_AUDIENCE, 409: documented("Other audiences name it (`referencedBy`)")},
)
async def delete_audience(AUDIENCE_ID: str, caller: Writer, db: Db) -> Response:
    async with db.transaction():
        await editing.delete(db, caller.sandbox, AUDIENCE_ID)
    return Response(status_code=204)


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
    _AUDIENCE,
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
