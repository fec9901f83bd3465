"""Campaigns, ``/v1/campaigns``, and AJO's execution API, ``/ajo/im/executions``.

- ``POST /v1/campaigns``: a campaign, a draft (201, ``Location``; 400 naming every
  problem); ``GET``: list, most recently changed first, ``start``/``limit``/``status``/``type``;
- ``GET /v1/campaigns/{campaignId}``; ``PUT`` replaces a draft (409 otherwise);
- ``POST /v1/campaigns/{campaignId}/activate``, ``/stop``: the lifecycle (409 when the
  status does not allow it);
- ``GET /v1/campaigns/{campaignId}/executions``: its executions, newest first;
- ``POST /ajo/im/executions/unitary``: messages to the recipients named (202);
- ``POST /ajo/im/executions/audience``: an execution to an audience, now or at
  ``schedule.executeAt`` (202);
- ``GET /ajo/im/executions/audience/{executionId}``: its status and count;
- ``GET``/``DELETE /ajo/im/executions/schedules/{scheduleId}``: an execution asked for
  later; deleted while it has not started.

Reads need ``journeys:read``, writes ``journeys:write``; everything is the caller's
sandbox's only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, Security

from itinera.common.auth import Principal, require_scope
from itinera.common.service import Db
from itinera.common.web.etags import PRECONDITION, IfMatch, tagged
from itinera.common.web.problems import documented
from itinera.common.web.query import parse_query, query_parameters
from itinera.journeys.campaigns import executions, service
from itinera.journeys.campaigns.schemas import (
    AJO_PROBLEMS,
    PROBLEMS,
    AudienceIn,
    CampaignIn,
    CampaignOut,
    CampaignPage,
    ExecutionPage,
    ExecutionResponse,
    ExecutionStatus,
    ListQuery,
    ScheduledExecution,
    UnitaryIn,
)
from itinera.journeys.campaigns.service import CAMPAIGNS
from itinera.journeys.config import JourneysSettings

router = APIRouter()
Reader = Annotated[Principal, Security(require_scope("journeys:read"))]
Writer = Annotated[Principal, Security(require_scope("journeys:write"))]
_ONE = CAMPAIGNS + "/{campaignId}"
_EXECUTIONS = "/ajo/im/executions"
_MOVE: dict[int | str, dict[str, Any]] = {
    409: documented("The campaign's status does not allow it (`status`)"),
    **PRECONDITION,
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: documented("No such execution in this sandbox")}


def _limits(request: Request) -> dict[str, int]:
    settings: JourneysSettings = request.app.state.settings
    return {
        "max_rate": settings.journeys_campaign_max_rate,
        "max_expression_length": settings.journeys_max_expression_length,
    }


# Campaigns


@router.get(
    CAMPAIGNS,
    tags=["campaigns"],
    responses=PROBLEMS,
    summary="List the sandbox's campaigns",
    response_model=CampaignPage,
    response_model_exclude_unset=True,
    openapi_extra=query_parameters(ListQuery),
)
async def list_campaigns(request: Request, caller: Reader, db: Db) -> dict[str, Any]:
    query = parse_query(ListQuery, request)
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await service.listing(db, caller.sandbox, query)


@router.post(
    CAMPAIGNS,
    tags=["campaigns"],
    responses=PROBLEMS,
    status_code=201,
    summary="Create a campaign, a draft",
    response_model=CampaignOut,
)
async def create_campaign(
    request: Request, response: Response, body: CampaignIn, caller: Writer, db: Db
) -> dict[str, Any]:
    async with db.transaction():
        created = await service.create(db, caller.sandbox, body, **_limits(request))
    response.headers["Location"] = f"{CAMPAIGNS}/{created['id']}"
    return tagged(response, created)


@router.get(_ONE, tags=["campaigns"], responses=PROBLEMS, summary="A campaign", response_model=CampaignOut)
async def get_campaign(campaignId: str, response: Response, caller: Reader, db: Db) -> dict[str, Any]:
    found = await service.get(db, caller.sandbox, campaignId)
    return tagged(response, found)


@router.put(
    _ONE,
    tags=["campaigns"],
    responses={**PROBLEMS, **_MOVE},
    summary="Replace a draft campaign",
    response_model=CampaignOut,
)
async def replace_campaign(
    request: Request,
    response: Response,
    campaignId: str,
    body: CampaignIn,
    caller: Writer,
    db: Db,
    if_match: IfMatch = None,
) -> dict[str, Any]:
    async with db.transaction():
        replaced = await service.replace(
            db, caller.sandbox, campaignId, body, **_limits(request), if_match=if_match
        )
    return tagged(response, replaced)


@router.delete(
    _ONE,
    tags=["campaigns"],
    status_code=204,
    summary="Delete a campaign that is not live and sends no more",
    response_class=Response,
    responses={**PROBLEMS, **_MOVE},
)
async def delete_campaign(campaignId: str, caller: Writer, db: Db, if_match: IfMatch = None) -> Response:
    async with db.transaction():
        await service.delete(db, caller.sandbox, campaignId, if_match)
    return Response(status_code=204)


@router.post(
    _ONE + "/activate",
    tags=["campaigns"],
    responses={**PROBLEMS, **_MOVE},
    summary="Activate a draft: API calls may execute it, or its schedule starts",
    response_model=CampaignOut,
)
async def activate_campaign(
    campaignId: str, caller: Writer, db: Db, request: Request, if_match: IfMatch = None
) -> dict[str, Any]:
    settings: JourneysSettings = request.app.state.settings
    async with db.transaction():
        return await service.activate(
            db,
            caller.sandbox,
            campaignId,
            check_templates=settings.journeys_check_templates,
            peers=request.app.state.runtime.state.get("peers"),
            if_match=if_match,
        )


@router.post(
    _ONE + "/stop",
    tags=["campaigns"],
    responses={**PROBLEMS, **_MOVE},
    summary="Stop a live campaign: its unfinished executions fail",
    response_model=CampaignOut,
)
async def stop_campaign(campaignId: str, caller: Writer, db: Db, if_match: IfMatch = None) -> dict[str, Any]:
    async with db.transaction():
        return await service.stop(db, caller.sandbox, campaignId, if_match)


@router.get(
    _ONE + "/executions",
    tags=["campaigns"],
    responses=PROBLEMS,
    summary="A campaign's executions, newest first",
    response_model=ExecutionPage,
)
async def list_executions(
    campaignId: str,
    caller: Reader,
    db: Db,
    start: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await service.executions(db, caller.sandbox, campaignId, start, limit)


# AJO's execution API


@router.post(
    _EXECUTIONS + "/unitary",
    tags=["executions"],
    responses=AJO_PROBLEMS,
    status_code=202,
    summary="Send an API-triggered campaign's message to the recipients named",
    response_model=ExecutionResponse,
)
async def execute_unitary(body: UnitaryIn, caller: Writer, db: Db, request: Request) -> dict[str, Any]:
    peers = request.app.state.runtime.state.get("peers")
    async with db.transaction():
        return await executions.unitary(db, caller.sandbox, body, caller.subject, datetime.now(UTC), peers)


@router.post(
    _EXECUTIONS + "/audience",
    tags=["executions"],
    responses=AJO_PROBLEMS,
    status_code=202,
    summary="Send an API-triggered campaign's message to an audience, now or later",
    response_model=ExecutionResponse | ScheduledExecution,
)
async def execute_audience(body: AudienceIn, caller: Writer, db: Db, request: Request) -> dict[str, Any]:
    peers = request.app.state.runtime.state.get("peers")
    async with db.transaction():
        answer, _ = await executions.audience(
            db, caller.sandbox, body, caller.subject, datetime.now(UTC), peers
        )
    return answer


@router.get(
    _EXECUTIONS + "/audience/{executionId}",
    tags=["executions"],
    responses={**AJO_PROBLEMS, **_NOT_FOUND},
    summary="An audience execution's status and the profiles targeted so far",
    response_model=ExecutionStatus,
)
async def execution_status(executionId: str, caller: Reader, db: Db) -> dict[str, Any]:
    return await executions.status(db, caller.sandbox, executionId)


@router.get(
    _EXECUTIONS + "/schedules/{scheduleId}",
    tags=["executions"],
    responses={**AJO_PROBLEMS, **_NOT_FOUND},
    summary="An execution asked for later",
    response_model=ScheduledExecution,
)
async def execution_schedule(scheduleId: str, caller: Reader, db: Db) -> dict[str, Any]:
    return await executions.schedule(db, caller.sandbox, scheduleId)


@router.delete(
    _EXECUTIONS + "/schedules/{scheduleId}",
    tags=["executions"],
    responses={**AJO_PROBLEMS, **_NOT_FOUND},
    summary="Delete an execution asked for later, before it starts",
)
async def delete_schedule(scheduleId: str, caller: Writer, db: Db) -> dict[str, Any]:
    async with db.transaction():
        await executions.unschedule(db, caller.sandbox, scheduleId)
    return {}
