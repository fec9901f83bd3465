"""``GET /v1/projection/profiles/{profileId}``: what the segmentation service knows of a
profile, the data its audiences' rules are evaluated on."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Security

from itinera.common.auth import Principal, require_scope
from itinera.common.errors import NotFound
from itinera.common.service import Db
from itinera.segmentation.projection import repository

router = APIRouter(tags=["projection"])
Reader = Annotated[Principal, Security(require_scope("audiences:read"))]


@router.get("/v1/projection/profiles/{profileId}", summary="A profile as the audiences' rules see it")
async def projected(
    profileId: Annotated[uuid.UUID, Path()],
    caller: Reader,
    db: Db,
    events: Annotated[int, Query(ge=0, le=1000)] = 100,
) -> dict[str, Any]:
    found = await repository.profile(db, caller.sandbox, str(profileId), events)
    if found is None:
        raise NotFound(f"profile {profileId} is not in the projection of sandbox {caller.sandbox!r}")
    attributes, recent = found
    return {"profileId": str(profileId), "attributes": attributes, "xEvent": recent}
