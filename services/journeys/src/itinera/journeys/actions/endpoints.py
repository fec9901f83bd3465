"""Custom actions, ``/v1/actions``: the HTTP calls journeys make.

- ``POST``: create (201, ``Location``; 400 invalid, 409 name taken);
- ``GET``: list, newest first, ``start``/``limit`` (``{items, page, link}``);
- ``GET /{actionId}``; ``PUT /{actionId}`` (replace; an omitted secret is kept);
  ``DELETE /{actionId}`` (204; 409 while a live or closed journey version calls it).

Reads need ``journeys:read``, writes ``journeys:write``; everything is the caller's
sandbox's only.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response, Security

from itinera.common.auth import Principal, require_scope
from itinera.common.service import Db
from itinera.common.web.etags import PRECONDITION, IfMatch, tagged
from itinera.common.web.problems import documented
from itinera.common.web.query import parse_query, query_parameters
from itinera.journeys.actions import service
from itinera.journeys.actions.schemas import PROBLEMS, ActionIn, ActionOut, ActionPage, ListQuery
from itinera.journeys.actions.secrets import Sealer
from itinera.journeys.actions.service import ACTIONS
from itinera.journeys.config import JourneysSettings

router = APIRouter(tags=["custom actions"], responses=PROBLEMS)
Reader = Annotated[Principal, Security(require_scope("journeys:read"))]
Writer = Annotated[Principal, Security(require_scope("journeys:write"))]
_ONE = ACTIONS + "/{actionId}"
_TAKEN: dict[int | str, dict[str, Any]] = {409: documented("Another action of the sandbox has that name")}


def _allowed_hosts(request: Request) -> frozenset[str]:
    settings: JourneysSettings = request.app.state.settings
    return settings.journeys_action_allow_hosts


def _sealer(request: Request) -> Sealer:
    sealer: Sealer = request.app.state.runtime.state["sealer"]
    return sealer


@router.get(
    ACTIONS,
    summary="List the sandbox's custom actions",
    response_model=ActionPage,
    openapi_extra=query_parameters(ListQuery),
)
async def list_actions(request: Request, caller: Reader, db: Db) -> dict[str, Any]:
    query = parse_query(ListQuery, request)
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await service.listing(db, caller.sandbox, query)


@router.post(
    ACTIONS, status_code=201, summary="Create a custom action", response_model=ActionOut, responses=_TAKEN
)
async def create_action(
    request: Request, response: Response, body: ActionIn, caller: Writer, db: Db
) -> dict[str, Any]:
    async with db.transaction():
        created = await service.create(db, caller.sandbox, body, _allowed_hosts(request), _sealer(request))
    response.headers["Location"] = f"{ACTIONS}/{created['id']}"
    return tagged(response, created)


@router.get(_ONE, summary="A custom action, without its secret", response_model=ActionOut)
async def get_action(actionId: str, response: Response, caller: Reader, db: Db) -> dict[str, Any]:
    found = await service.get(db, caller.sandbox, actionId)
    return tagged(response, found)


@router.put(
    _ONE,
    summary="Replace a custom action (a secret omitted is kept)",
    response_model=ActionOut,
    responses={**_TAKEN, **PRECONDITION},
)
async def replace_action(
    request: Request,
    response: Response,
    actionId: str,
    body: ActionIn,
    caller: Writer,
    db: Db,
    if_match: IfMatch = None,
) -> dict[str, Any]:
    async with db.transaction():
        replaced = await service.replace(
            db, caller.sandbox, actionId, body, _allowed_hosts(request), _sealer(request), if_match
        )
    return tagged(response, replaced)


@router.delete(
    _ONE,
    status_code=204,
    summary="Delete a custom action no running journey version calls",
    responses={409: documented("Live or closed journey versions call it (`usedBy`)"), **PRECONDITION},
)
async def delete_action(actionId: str, caller: Writer, db: Db, if_match: IfMatch = None) -> Response:
    async with db.transaction():
        await service.delete(db, caller.sandbox, actionId, if_match)
    return Response(status_code=204)
