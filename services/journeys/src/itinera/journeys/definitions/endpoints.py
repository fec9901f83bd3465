"""Journeys, ``/v1/journeys``: versioned graphs, edited as drafts and published.

- ``POST``: a journey and its version 1, a draft (201, ``Location``);
- ``GET``: list, most recently changed first, ``start``/``limit``/``status``;
- ``GET /{journeyId}``: the journey with a summary of every version, and its live
  version's warnings;
- ``PUT /{journeyId}``: replaces the draft, or makes the next version a draft when the
  latest one is live, stopped or closed;
- ``GET /{journeyId}/versions/{version}``: the version's document (a draft's with the
  problems publishing it would meet, found without asking another service; a live one's
  with its warnings: audiences it names found missing since it was published);
- ``POST /{journeyId}/versions/{version}/publish``, ``/stop``, ``/close``: the
  lifecycle (400 with every problem when publishing an invalid draft, 409 when the
  version's status does not allow the move);
- ``DELETE /{journeyId}``: the journey, once nothing of it runs (204; 409 naming what
  still runs: a live or closed version, waiting instances, a running journey that
  jumps to it).

Reads need ``journeys:read``, writes ``journeys:write``; everything is the caller's
sandbox's only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response, Security

from itinera.common.auth import Principal, require_scope
from itinera.common.service import Db
from itinera.common.web.etags import PRECONDITION, IfMatch, tagged
from itinera.common.web.problems import documented
from itinera.common.web.query import parse_query, query_parameters
from itinera.journeys.audiences import repository as audience_answers
from itinera.journeys.config import JourneysSettings
from itinera.journeys.definitions import service
from itinera.journeys.definitions.schemas import (
    PROBLEMS,
    JourneyIn,
    JourneyOut,
    JourneyPage,
    ListQuery,
    VersionOut,
)
from itinera.journeys.definitions.service import JOURNEYS

router = APIRouter(tags=["journeys"], responses=PROBLEMS)
Reader = Annotated[Principal, Security(require_scope("journeys:read"))]
Writer = Annotated[Principal, Security(require_scope("journeys:write"))]
Version = Annotated[int, Path(ge=1, le=1_000_000)]
_ONE = JOURNEYS + "/{journeyId}"
_VERSION = _ONE + "/versions/{version}"
_MOVE: dict[int | str, dict[str, Any]] = {
    409: documented("The version's status does not allow it (`status`)"),
    **PRECONDITION,
}


def _checks(request: Request, answers: dict[str, bool] | None = None) -> service.Checks:
    settings: JourneysSettings = request.app.state.settings
    return service.Checks(
        settings.journeys_max_expression_length,
        settings.journeys_check_templates,
        request.app.state.runtime.state.get("peers"),
        answers,
    )


def _check_size(request: Request, body: JourneyIn) -> None:
    settings: JourneysSettings = request.app.state.settings
    service.check_size(body, settings.journeys_max_nodes)


@router.get(
    JOURNEYS,
    summary="List the sandbox's journeys",
    response_model=JourneyPage,
    response_model_exclude_unset=True,
    openapi_extra=query_parameters(ListQuery),
)
async def list_journeys(request: Request, caller: Reader, db: Db) -> dict[str, Any]:
    query = parse_query(ListQuery, request)
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await service.listing(db, caller.sandbox, query)


@router.post(
    JOURNEYS, status_code=201, summary="Create a journey and its first draft", response_model=JourneyOut
)
async def create_journey(
    request: Request, response: Response, body: JourneyIn, caller: Writer, db: Db
) -> dict[str, Any]:
    _check_size(request, body)
    async with db.transaction():
        created = await service.create(db, caller.sandbox, body)
    response.headers["Location"] = f"{JOURNEYS}/{created['id']}"
    return tagged(response, created)


@router.get(_ONE, summary="A journey and its versions", response_model=JourneyOut)
async def get_journey(journeyId: str, response: Response, caller: Reader, db: Db) -> dict[str, Any]:
    async with db.transaction(isolation="repeatable_read", readonly=True):
        found = await service.get(db, caller.sandbox, journeyId)
    return tagged(response, found)


@router.put(
    _ONE,
    summary="Replace the draft (a new draft version when there is none)",
    response_model=JourneyOut,
    responses=PRECONDITION,
)
async def replace_journey(
    request: Request,
    response: Response,
    journeyId: str,
    body: JourneyIn,
    caller: Writer,
    db: Db,
    if_match: IfMatch = None,
) -> dict[str, Any]:
    _check_size(request, body)
    async with db.transaction():
        replaced = await service.replace(db, caller.sandbox, journeyId, body, if_match)
    return tagged(response, replaced)


@router.delete(
    _ONE,
    status_code=204,
    summary="Delete a journey none of whose versions runs",
    response_class=Response,
    responses={409: documented("Something of it still runs (`runningBy`)"), **PRECONDITION},
)
async def delete_journey(journeyId: str, caller: Writer, db: Db, if_match: IfMatch = None) -> Response:
    async with db.transaction():
        await service.delete(db, caller.sandbox, journeyId, if_match)
    return Response(status_code=204)


@router.get(
    _VERSION, summary="A version's document", response_model=VersionOut, response_model_exclude_unset=True
)
async def get_version(
    request: Request, journeyId: str, version: Version, caller: Reader, db: Db
) -> dict[str, Any]:
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await service.get_version(db, caller.sandbox, journeyId, version, _checks(request))


@router.post(
    _VERSION + "/publish",
    summary="Publish a draft: it goes live, and a version live until then is closed",
    response_model=VersionOut,
    response_model_exclude_unset=True,
    responses=_MOVE,
)
async def publish_version(
    request: Request, journeyId: str, version: Version, caller: Writer, db: Db, if_match: IfMatch = None
) -> dict[str, Any]:
    answers: dict[str, bool] = {}
    try:
        async with db.transaction():
            return await service.publish(
                db, caller.sandbox, journeyId, version, _checks(request, answers), if_match
            )
    finally:
        # What the segmentation service answered is kept even when publishing is
        # refused (its transaction rolled back): a draft's reads report it.
        if answers:
            async with db.transaction():
                await audience_answers.record(db, caller.sandbox, answers, datetime.now(UTC))


@router.post(
    _VERSION + "/stop",
    summary="Stop a live or closed version: its instances end now",
    response_model=VersionOut,
    response_model_exclude_unset=True,
    responses=_MOVE,
)
async def stop_version(
    journeyId: str, version: Version, caller: Writer, db: Db, if_match: IfMatch = None
) -> dict[str, Any]:
    async with db.transaction():
        return await service.stop(db, caller.sandbox, journeyId, version, if_match)


@router.post(
    _VERSION + "/close",
    summary="Close a live version: no new entries, running instances finish",
    response_model=VersionOut,
    response_model_exclude_unset=True,
    responses=_MOVE,
)
async def close_version(
    journeyId: str, version: Version, caller: Writer, db: Db, if_match: IfMatch = None
) -> dict[str, Any]:
    async with db.transaction():
        return await service.close(db, caller.sandbox, journeyId, version, if_match)
