"""A journey's instances: who is where, and what each did.

- ``GET /v1/journeys/{journeyId}/instances?status=&profileId=&start=&limit=``: newest
  entries first;
- ``GET /v1/journeys/{journeyId}/instances/{instanceId}``: one instance with its steps;
- ``GET /v1/journeys/{journeyId}/reads?start=&limit=``: the reads of its audience (a
  ``readAudience`` entry), latest occurrence first, with why one failed.

All need ``journeys:read``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from asyncpg import Record as Row
from fastapi import APIRouter, Query, Security

from itinera.common.auth import Principal, require_scope
from itinera.common.errors import NotFound
from itinera.common.service import Db
from itinera.common.web.problems import documented
from itinera.journeys.definitions.schemas import PROBLEMS
from itinera.journeys.runtime import repository

router = APIRouter(tags=["instances"], responses=PROBLEMS)
Reader = Annotated[Principal, Security(require_scope("journeys:read"))]


def _time(value: Any) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def view(row: Row) -> dict[str, Any]:
    return {
        "instanceId": str(row["id"]),
        "journeyId": str(row["journey_id"]),
        "version": row["version"],
        "profileId": str(row["profile_id"]),
        "status": row["status"],
        "node": row["node"],
        "steps": row["steps"],
        "testMode": row["test_mode"],
        "enteredAt": _time(row["entered_at"]),
        "endedAt": _time(row["ended_at"]),
        "endReason": row["end_reason"],
        "messages": dict((row["context"] or {}).get("messages") or {}),
    }


@router.get("/v1/journeys/{journeyId}/instances", summary="A journey's instances, newest entries first")
async def list_instances(
    journeyId: uuid.UUID,
    caller: Reader,
    db: Db,
    status: Annotated[Literal["waiting", "completed", "exited", "failed"] | None, Query()] = None,
    profileId: Annotated[uuid.UUID | None, Query()] = None,
    start: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    rows = await repository.instances_of(db, caller.sandbox, journeyId, status, profileId, start, limit)
    return {"items": [view(r) for r in rows], "page": {"start": start, "limit": limit, "pageSize": len(rows)}}


@router.get(
    "/v1/journeys/{journeyId}/instances/{instanceId}",
    summary="One instance, with every step it took",
    responses={404: documented("No such instance of this journey in this sandbox")},
)
async def get_instance(journeyId: uuid.UUID, instanceId: uuid.UUID, caller: Reader, db: Db) -> dict[str, Any]:
    row = await repository.instance(db, caller.sandbox, instanceId)
    if row is None or row["journey_id"] != journeyId:
        raise NotFound(f"no instance {instanceId} of journey {journeyId} in sandbox {caller.sandbox!r}")
    steps = await repository.steps_of(db, caller.sandbox, instanceId)
    return view(row) | {
        "history": [
            {
                "step": s["step"],
                "kind": s["kind"],
                "nodeId": s["node"],
                "nodeType": s["node_type"],
                "reason": s["reason"],
                "detail": s["detail"],
                "at": _time(s["at"]),
            }
            for s in steps
        ]
    }


@router.get("/v1/journeys/{journeyId}/reads", summary="A journey's reads of its audience, latest first")
async def list_reads(
    journeyId: uuid.UUID,
    caller: Reader,
    db: Db,
    start: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    rows = await repository.reads_of(db, caller.sandbox, journeyId, start, limit)
    items = [
        {
            "version": r["version"],
            "occurrence": _time(r["occurrence"]),
            "audienceId": r["audience_id"],
            "status": r["status"],
            "membersRead": r["members_read"],
            "entered": r["entered"],
            "reason": r["reason"],
            "createdAt": _time(r["created_at"]),
            "finishedAt": _time(r["finished_at"]),
        }
        for r in rows
    ]
    return {"items": items, "page": {"start": start, "limit": limit, "pageSize": len(rows)}}
