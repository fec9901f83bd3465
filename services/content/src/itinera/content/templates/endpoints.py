"""Templates, ``/v1/templates``: per channel and locale, versioned, published, previewed.

- ``POST``: a template and its first version, a draft (201, ``Location``; 409 when the
  id is taken);
- ``GET``: list, most recently changed first, ``start``/``limit``/``channel``/``status``;
- ``GET /{templateId}``: the template, its latest version's variants and every
  version's summary;
- ``PUT /{templateId}``: replaces the draft, or makes the next version a draft when the
  latest one is published (409 when the channel would change);
- ``DELETE /{templateId}``: the template and its versions (204);
- ``GET /{templateId}/versions/{version}``: the version (a draft's with the problems
  publishing it would meet);
- ``POST /{templateId}/publish``: publishes the draft (400 with every problem; 409
  when there is no draft);
- ``POST /{templateId}/preview``: renders a version for a profile and a context.

Reads and previews need ``content:read``, writes ``content:write``; everything is the
caller's sandbox's only.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request, Response, Security

from itinera.common.auth import Principal, require_scope
from itinera.common.service import Db
from itinera.common.web.etags import PRECONDITION, IfMatch, tagged
from itinera.common.web.problems import documented
from itinera.common.web.query import parse_query, query_parameters
from itinera.content.config import ContentSettings
from itinera.content.previews import named_profile
from itinera.content.templates import service
from itinera.content.templates.schemas import (
    ListQuery,
    PreviewIn,
    PreviewOut,
    TemplateIn,
    TemplateOut,
    TemplatePage,
    TemplateVersionOut,
)
from itinera.content.templates.service import TEMPLATES
from itinera.content.values import problems_documented

router = APIRouter(tags=["templates"], responses=problems_documented("template"))
Reader = Annotated[Principal, Security(require_scope("content:read"))]
Writer = Annotated[Principal, Security(require_scope("content:write"))]
Version = Annotated[int, Path(ge=1, le=1_000_000)]
Document = Annotated[TemplateIn, Body()]
_ONE = TEMPLATES + "/{templateId}"


def _check_size(request: Request, body: TemplateIn) -> None:
    settings: ContentSettings = request.app.state.settings
    service.check_size(body, settings.content_max_locales, settings.content_max_part_chars)


@router.get(
    TEMPLATES,
    summary="List the sandbox's templates",
    response_model=TemplatePage,
    response_model_exclude_unset=True,
    openapi_extra=query_parameters(ListQuery),
)
async def list_templates(request: Request, caller: Reader, db: Db) -> dict[str, Any]:
    query = parse_query(ListQuery, request)
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await service.listing(
            db,
            caller.sandbox,
            channel=query.channel,
            status=query.status,
            start=query.start,
            limit=query.limit,
        )


@router.post(
    TEMPLATES,
    status_code=201,
    summary="Create a template and its first draft",
    response_model=TemplateOut,
    responses={409: documented("The sandbox has a template of that id")},
)
async def create_template(
    request: Request, response: Response, body: Document, caller: Writer, db: Db
) -> dict[str, Any]:
    _check_size(request, body)
    async with db.transaction():
        created = await service.create(db, caller.sandbox, body)
    response.headers["Location"] = f"{TEMPLATES}/{created['id']}"
    return tagged(response, created)


@router.get(_ONE, summary="A template, its latest version and its versions", response_model=TemplateOut)
async def get_template(templateId: str, response: Response, caller: Reader, db: Db) -> dict[str, Any]:
    async with db.transaction(isolation="repeatable_read", readonly=True):
        found = await service.get(db, caller.sandbox, templateId)
    return tagged(response, found)


@router.put(
    _ONE,
    summary="Replace the draft (a new draft version when the latest is published)",
    response_model=TemplateOut,
    responses={409: documented("The channel would change"), **PRECONDITION},
)
async def replace_template(
    request: Request,
    response: Response,
    templateId: str,
    body: Document,
    caller: Writer,
    db: Db,
    if_match: IfMatch = None,
) -> dict[str, Any]:
    _check_size(request, body)
    async with db.transaction():
        replaced = await service.replace(db, caller.sandbox, templateId, body, if_match)
    return tagged(response, replaced)


@router.delete(
    _ONE,
    status_code=204,
    summary="Delete a template and its versions",
    response_class=Response,
    responses=PRECONDITION,
)
async def delete_template(templateId: str, caller: Writer, db: Db, if_match: IfMatch = None) -> Response:
    async with db.transaction():
        await service.delete(db, caller.sandbox, templateId, if_match)
    return Response(status_code=204)


@router.get(
    _ONE + "/versions/{version}",
    summary="A version of a template",
    response_model=TemplateVersionOut,
    response_model_exclude_unset=True,
)
async def get_version(templateId: str, version: Version, caller: Reader, db: Db) -> dict[str, Any]:
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await service.get_version(db, caller.sandbox, templateId, version)


@router.post(
    _ONE + "/publish",
    summary="Publish the draft: it becomes the version the channels send",
    response_model=TemplateVersionOut,
    response_model_exclude_unset=True,
    responses={409: documented("There is no draft to publish"), **PRECONDITION},
)
async def publish_template(
    templateId: str, caller: Writer, db: Db, if_match: IfMatch = None
) -> dict[str, Any]:
    async with db.transaction():
        return await service.publish(db, caller.sandbox, templateId, if_match)


@router.post(
    _ONE + "/preview",
    summary="Render a version for a profile and a context",
    response_model=PreviewOut,
)
async def preview_template(
    templateId: str, body: PreviewIn, caller: Reader, db: Db, request: Request
) -> dict[str, Any]:
    """The profile is given (``profile``) or named (``profileId`` or ``identity``: read
    from the profile service with the caller's token, which needs ``profiles:read``)."""
    read = await named_profile(request, body)
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await service.preview(db, caller.sandbox, templateId, body, read)
