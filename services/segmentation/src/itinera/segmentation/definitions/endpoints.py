"""Audience definitions in AEP's shape, ``/data/core/ups/segment/definitions``.

- ``POST``: create (200, ``X-Location``; 400 invalid, 422 name taken);
- ``GET``: list, ``start``/``limit``/``page``/``sort`` (``{segments, page, link}``);
- ``GET /{SEGMENT_ID}``, ``PATCH /{SEGMENT_ID}`` (partial, re-validated),
  ``DELETE /{SEGMENT_ID}`` (409 while another audience names it);
- ``POST /bulk-get`` with ``{"ids": [{"id": ...}]}``: 207, each id's definition or 404.

Saving a rule (creating a definition, or a PATCH with an ``expression``) also creates,
in the same transaction, a segment job (``itinera.trigger: "saved"``) over it and the
audiences that name it: memberships follow the rule as it now stands for every profile
(unless ``ITINERA_SEGMENTATION_EVALUATE_ON_SAVE`` is off).

Reads need ``audiences:read``, writes ``audiences:write``; everything is the caller's
sandbox's only.
"""

from __future__ import annotations

from typing import Annotated, Any

from asyncpg import Connection
from fastapi import APIRouter, Request, Response, Security

from itinera.common.auth import Principal, require_scope
from itinera.common.service import Db
from itinera.common.web.problems import documented
from itinera.common.web.query import parse_query, query_parameters
from itinera.segmentation.config import SegmentationSettings
from itinera.segmentation.definitions import compositions, service
from itinera.segmentation.definitions.compositions import CompositionIn
from itinera.segmentation.definitions.schemas import (
    PROBLEMS,
    BulkGet,
    BulkOut,
    DefinitionIn,
    DefinitionOut,
    DefinitionPage,
    DefinitionPatch,
    ListQuery,
    MessageOut,
)
from itinera.segmentation.definitions.service import DEFINITIONS
from itinera.segmentation.jobs import service as jobs

router = APIRouter(tags=["audiences"], responses=PROBLEMS)
Reader = Annotated[Principal, Security(require_scope("audiences:read"))]
Writer = Annotated[Principal, Security(require_scope("audiences:write"))]
_ONE = DEFINITIONS + "/{SEGMENT_ID}"
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: documented("No such definition in this sandbox")}


def max_expression_length(request: Request) -> int:
    settings: SegmentationSettings = request.app.state.settings
    return settings.segmentation_max_expression_length


async def reevaluate_on_save(request: Request, db: Connection, sandbox: str, definition_id: str) -> None:
    settings: SegmentationSettings = request.app.state.settings
    if settings.segmentation_evaluate_on_save:
        await jobs.reevaluate(db, sandbox, definition_id)


@router.get(
    DEFINITIONS,
    summary="List the sandbox's segment definitions",
    response_model=DefinitionPage,
    response_model_exclude_unset=True,
    openapi_extra=query_parameters(ListQuery),
)
async def list_definitions(request: Request, caller: Reader, db: Db) -> dict[str, Any]:
    query = parse_query(ListQuery, request)
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await service.listing(db, caller.sandbox, query)


@router.post(
    DEFINITIONS,
    summary="Create a segment definition (evaluated in batch unless evaluationInfo says otherwise)",
    response_model=DefinitionOut,
    response_model_exclude_unset=True,
    responses={
        422: documented(
            "A definition of that name exists (`already-exists`), or the body has the wrong shape"
        )
    },
)
async def create_definition(
    request: Request, response: Response, body: DefinitionIn, caller: Writer, db: Db
) -> dict[str, Any]:
    async with db.transaction():
        created = await service.create(db, caller.sandbox, body, max_expression_length(request))
        await reevaluate_on_save(request, db, caller.sandbox, created["id"])
    response.headers["X-Location"] = f"{DEFINITIONS}/{created['id']}"
    return created


@router.post(
    "/v1/audiences/compositions",
    summary="An audience of other audiences: union, intersection or exclusion",
    response_model=DefinitionOut,
    response_model_exclude_unset=True,
    responses={422: documented("A definition of that name exists, or the body is malformed")},
)
async def create_composition(
    request: Request, response: Response, body: CompositionIn, caller: Writer, db: Db
) -> dict[str, Any]:
    async with db.transaction():
        created = await compositions.create(db, caller.sandbox, body, max_expression_length(request))
        await reevaluate_on_save(request, db, caller.sandbox, created["id"])
    response.headers["X-Location"] = f"{DEFINITIONS}/{created['id']}"
    return created


@router.post(
    DEFINITIONS + "/bulk-get",
    status_code=207,
    summary="Several segment definitions by id (1 to 100)",
    response_model=BulkOut,
    response_model_exclude_unset=True,
    responses={404: documented("None of the definitions asked for exists")},
)
async def bulk_get_definitions(request: Request, body: BulkGet, caller: Reader, db: Db) -> dict[str, Any]:
    request_id = str(getattr(request.state, "request_id", ""))
    return await service.bulk_get(db, caller.sandbox, [ref.id for ref in body.ids], request_id)


@router.get(
    _ONE,
    summary="A segment definition",
    response_model=DefinitionOut,
    response_model_exclude_unset=True,
    responses=_NOT_FOUND,
)
async def get_definition(SEGMENT_ID: str, caller: Reader, db: Db) -> dict[str, Any]:
    return await service.get(db, caller.sandbox, SEGMENT_ID)


@router.patch(
    _ONE,
    summary="Change a segment definition's name, description, expression, evaluationInfo or mergePolicyId",
    response_model=DefinitionOut,
    response_model_exclude_unset=True,
    responses={
        **_NOT_FOUND,
        422: documented(
            "Another definition has that name (`already-exists`), or the body has the wrong shape"
        ),
    },
)
async def patch_definition(
    request: Request, response: Response, SEGMENT_ID: str, body: DefinitionPatch, caller: Writer, db: Db
) -> dict[str, Any]:
    async with db.transaction():
        updated = await service.update(db, caller.sandbox, SEGMENT_ID, body, max_expression_length(request))
        if body.expression is not None:
            await reevaluate_on_save(request, db, caller.sandbox, updated["id"])
    response.headers["X-Location"] = f"{DEFINITIONS}/{updated['id']}"
    return updated


@router.delete(
    _ONE,
    summary="Delete a segment definition that no other audience names",
    response_model=MessageOut,
    responses={**_NOT_FOUND, 409: documented("Other audiences name it (`referencedBy`)")},
)
async def delete_definition(SEGMENT_ID: str, caller: Writer, db: Db) -> dict[str, Any]:
    async with db.transaction():
        await service.delete(db, caller.sandbox, SEGMENT_ID)
    return {"status": True, "message": f"segment definition {SEGMENT_ID} deleted"}
