"""Who is in an audience, and which audiences a profile is in."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Security

from itinera.common.auth import Principal, require_scope
from itinera.common.errors import NotFound
from itinera.common.service import Db
from itinera.segmentation.membership import repository

router = APIRouter(tags=["memberships"])
Reader = Annotated[Principal, Security(require_scope("audiences:read"))]
Id = Annotated[uuid.UUID, Path()]


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@router.get("/v1/audiences/{audienceId}/members", summary="An audience's members, paged by profile id")
async def members(
    audienceId: Id,
    caller: Reader,
    db: Db,
    status: Annotated[Literal["members", "realized", "existing", "exited"], Query()] = "members",
    after: Annotated[uuid.UUID | None, Query(description="the last profile id of the page before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    if not await repository.audience_exists(db, caller.sandbox, str(audienceId)):
        raise NotFound(f"no audience {audienceId} in sandbox {caller.sandbox!r}")
    statuses = ["realized", "existing"] if status == "members" else [status]
    rows = await repository.members(
        db, caller.sandbox, str(audienceId), statuses, str(after) if after else None, limit
    )
    children = [
        {
            "profileId": str(r["profile_id"]),
            "status": r["status"],
            "enteredAt": _time(r["entered_at"]),
            "exitedAt": _time(r["exited_at"]),
        }
        for r in rows
    ]
    return {
        "audienceId": str(audienceId),
        "children": children,
        "_page": {"count": len(children), "next": children[-1]["profileId"] if len(rows) == limit else None},
    }


@router.get("/v1/profiles/{profileId}/audiences", summary="The audiences a profile is, or was, in")
async def audiences(profileId: Id, caller: Reader, db: Db) -> dict[str, Any]:
    rows = await repository.audiences_of(db, caller.sandbox, str(profileId))
    return {
        "profileId": str(profileId),
        "audiences": [
            {
                "audienceId": str(r["audience_id"]),
                "name": r["name"],
                "status": r["status"],
                "enteredAt": _time(r["entered_at"]),
                "exitedAt": _time(r["exited_at"]),
            }
            for r in rows
        ],
    }
