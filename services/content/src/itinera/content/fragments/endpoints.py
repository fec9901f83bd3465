"""Fragments, ``/v1/fragments``: visual and expression fragments, versioned and published.

- ``POST``: a fragment and its first version, a draft (201, ``Location``; 409 when the
  id is taken);
- ``GET``: list, most recently changed first, ``start``/``limit``/``type``/``status``;
- ``GET /{fragmentId}``: the fragment, its latest content, what includes it, and every
  version's summary;
- ``PUT /{fragmentId}``: replaces the draft, or makes the next version a draft when the
  latest one is published (409 when the type would change);
- ``DELETE /{fragmentId}``: 204, or 409 while published content includes it (``usedBy``);
- ``GET /{fragmentId}/versions/{version}``: the version (a draft's with the problems
  publishing it would meet);
- ``POST /{fragmentId}/publish``: publishes the draft (400 with every problem; 409 when
  there is no draft);
- ``POST /{fragmentId}/preview``: renders a version on its own, for a profile and a
  context.

Reads and previews need ``content:read``, writes ``content:write``; everything is the caller's
sandbox's only.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response, Security

from itinera.common.auth import Principal, require_scope
from itinera.common.service import Db
from itinera.common.web.etags import PRECONDITION, IfMatch, tagged
from itinera.common.web.problems import documented
from itinera.common.web.query import parse_query, query_parameters
from itinera.content.config import ContentSettings
from itinera.content.fragments import service
from itinera.content.fragments.schemas import (
    FragmentIn,
    FragmentOut,
    FragmentPage,
    FragmentPreviewOut,
    FragmentVersionOut,
    ListQuery,
)
from itinera.content.fragments.service import FRAGMENTS
from itinera.content.previews import named_profile
from itinera.content.templates.schemas import PreviewData
from itinera.content.values import problems_documented

router = APIRouter(tags=["fragments"], responses=problems_documented("fragment"))
Reader = Annotated[Principal, Security(require_scope("content:read"))]
Writer = Annotated[Principal, Security(require_scope("content:write"))]
Version = Annotated[int, Path(ge=1, le=1_000_000)]
_ONE = FRAGMENTS + "/{fragmentId}"


def _check_size(request: Request, body: FragmentIn) -> None:
    settings: ContentSettings = request.app.state.settings
    service.check_size(body, settings.content_max_part_chars)


@router.get(
    FRAGMENTS,
    summary="List the sandbox's fragments",
    response_model=FragmentPage,
    response_model_exclude_unset=True,
    openapi_extra=query_parameters(ListQuery),
)
async def list_fragments(request: Request, caller: Reader, db: Db) -> dict[str, Any]:
    query = parse_query(ListQuery, request)
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await service.listing(
            db, caller.sandbox, kind=query.type, status=query.status, start=query.start, limit=query.limit
        )


@router.post(
    FRAGMENTS,
    status_code=201,
    summary="Create a fragment and its first draft",
    response_model=FragmentOut,
    responses={409: documented("The sandbox has a fragment of that id")},
)
async def create_fragment(
    request: Request, response: Response, body: FragmentIn, caller: Writer, db: Db
) -> dict[str, Any]:
    _check_size(request, body)
    async with db.transaction():
        created = await service.create(db, caller.sandbox, body)
    response.headers["Location"] = f"{FRAGMENTS}/{created['id']}"
    return tagged(response, created)


@router.get(
    _ONE, summary="A fragment, its latest version, its users and its versions", response_model=FragmentOut
)
async def get_fragment(fragmentId: str, response: Response, caller: Reader, db: Db) -> dict[str, Any]:
    async with db.transaction(isolation="repeatable_read", readonly=True):
        found = await service.get(db, caller.sandbox, fragmentId)
    return tagged(response, found)


@router.put(
    _ONE,
    summary="Replace the draft (a new draft version when the latest is published)",
    response_model=FragmentOut,
    responses={409: documented("The type would change"), **PRECONDITION},
)
async def replace_fragment(
    request: Request,
    response: Response,
    fragmentId: str,
    body: FragmentIn,
    caller: Writer,
    db: Db,
    if_match: IfMatch = None,
) -> dict[str, Any]:
    _check_size(request, body)
    async with db.transaction():
        replaced = await service.replace(db, caller.sandbox, fragmentId, body, if_match)
    return tagged(response, replaced)


@router.delete(
    _ONE,
    status_code=204,
    summary="Delete a fragment and its versions",
    response_class=Response,
    responses={409: documented("Published templates or fragments include it (`usedBy`)"), **PRECONDITION},
)
async def delete_fragment(fragmentId: str, caller: Writer, db: Db, if_match: IfMatch = None) -> Response:
    async with db.transaction():
        await service.delete(db, caller.sandbox, fragmentId, if_match)
    return Response(status_code=204)


@router.get(
    _ONE + "/versions/{version}",
    summary="A version of a fragment",
    response_model=FragmentVersionOut,
    response_model_exclude_unset=True,
)
async def get_version(fragmentId: str, version: Version, caller: Reader, db: Db) -> dict[str, Any]:
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await service.get_version(db, caller.sandbox, fragmentId, version)


@router.post(
    _ONE + "/publish",
    summary="Publish the draft: templates include it from now on",
    response_model=FragmentVersionOut,
    response_model_exclude_unset=True,
    responses={409: documented("There is no draft to publish"), **PRECONDITION},
)
async def publish_fragment(
    fragmentId: str, caller: Writer, db: Db, if_match: IfMatch = None
) -> dict[str, Any]:
    async with db.transaction():
        return await service.publish(db, caller.sandbox, fragmentId, if_match)


@router.post(
    _ONE + "/preview",
    summary="Render a version on its own for a profile and a context",
    response_model=FragmentPreviewOut,
    response_model_exclude_unset=True,
)
async def preview_fragment(
    fragmentId: str, body: PreviewData, caller: Reader, db: Db, request: Request
) -> dict[str, Any]:
    """The profile is given (``profile``) or named (``profileId`` or ``identity``: read
    from the profile service with the caller's token, which needs ``profiles:read``)."""
    read = await named_profile(request, body)
    async with db.transaction(isolation="repeatable_read", readonly=True):
        return await service.preview(db, caller.sandbox, fragmentId, body, read)
