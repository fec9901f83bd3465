"""Uploaded audiences (see :mod:`itinera.segmentation.uploads.service`):

- ``POST /v1/audiences/uploads?name=&description=`` with a ``text/csv`` body: a new
  audience of the people listed (201, ``{audience, upload}``, ``Location``);
- ``POST /v1/audiences/{audienceId}/uploads``: more people for it (200, the upload;
  409 for an audience defined by a rule);
- ``GET /v1/audiences/{audienceId}/uploads``: what was uploaded into it.

Uploading needs ``audiences:write``, reading ``audiences:read``. A body over
``ITINERA_SEGMENTATION_UPLOAD_MAX_BYTES`` is a 413, a body that is not ``text/csv`` a
415, a bad CSV a 400 with every problem's line and column.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, Security

from itinera.common.auth import Principal, require_scope
from itinera.common.service import Db
from itinera.common.web import bodies
from itinera.common.web.problems import documented
from itinera.segmentation.config import SegmentationSettings
from itinera.segmentation.definitions.schemas import PROBLEMS, Description, Name
from itinera.segmentation.definitions.service import DEFINITIONS
from itinera.segmentation.uploads import service

router = APIRouter(tags=["audiences"], responses=PROBLEMS)
Reader = Annotated[Principal, Security(require_scope("audiences:read"))]
Writer = Annotated[Principal, Security(require_scope("audiences:write"))]
AudienceId = Annotated[str, Path(max_length=64, description="An uploaded audience's id")]
_CSV = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {
                "schema": {"type": "string"},
                "example": "Email,CRMID\njane@example.com,C-1001\njohn@example.com,\n",
            }
        },
    }
}
_SENT: dict[int | str, dict[str, Any]] = {
    413: documented("The CSV is larger than ITINERA_SEGMENTATION_UPLOAD_MAX_BYTES"),
    415: documented("The body is not text/csv"),
}


async def _people(request: Request) -> service.People:
    settings: SegmentationSettings = request.app.state.settings
    bodies.content_type(request, ("text/csv",))
    data = await bodies.read(request, settings.segmentation_upload_max_bytes)
    return service.read_csv(data, settings.segmentation_upload_max_people)


@router.post(
    "/v1/audiences/uploads",
    status_code=201,
    summary="A new audience of the people a CSV of identities lists",
    openapi_extra=_CSV,
    responses={**_SENT, 422: documented("A definition of that name exists, or a parameter is malformed")},
)
async def create_upload(
    request: Request,
    response: Response,
    caller: Writer,
    db: Db,
    name: Annotated[Name, Query(description="The audience's name, unique in the sandbox")],
    description: Annotated[Description, Query()] = "",
) -> dict[str, Any]:
    people = await _people(request)
    settings: SegmentationSettings = request.app.state.settings
    async with db.transaction():
        created = await service.create(
            db, caller.sandbox, name, description, people, settings.segmentation_max_expression_length
        )
    response.headers["Location"] = f"{DEFINITIONS}/{created['audience']['id']}"
    return created


@router.post(
    "/v1/audiences/{audienceId}/uploads",
    summary="More people for an uploaded audience",
    openapi_extra=_CSV,
    responses={
        **_SENT,
        404: documented("No such audience in this sandbox"),
        409: documented("The audience is defined by a rule"),
    },
)
async def add_upload(request: Request, audienceId: AudienceId, caller: Writer, db: Db) -> dict[str, Any]:
    people = await _people(request)
    async with db.transaction():
        return await service.add(db, caller.sandbox, audienceId, people)


@router.get(
    "/v1/audiences/{audienceId}/uploads",
    summary="What was uploaded into an audience",
    responses={404: documented("No such audience in this sandbox")},
)
async def list_uploads(audienceId: AudienceId, caller: Reader, db: Db) -> dict[str, Any]:
    return await service.history(db, caller.sandbox, audienceId)
