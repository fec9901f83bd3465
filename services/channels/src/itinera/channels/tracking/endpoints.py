"""``/v1/t/o/{token}.gif`` (the open pixel) and ``/v1/t/c/{token}`` (the click
redirect). No bearer token: the signed token is the credential (see
:mod:`itinera.channels.unsubscribe.tokens`); one that is altered, made for another
purpose, or names no message or link of this service is a 404 and records nothing.

- The pixel answers a transparent 1x1 GIF, never cached; the first fetch reports
  ``opened`` and later ones are only counted (mail clients and proxies fetch images
  again whenever the message is shown: one open per message is what the feedback says).
- A click answers 302 to the link recorded for the message under the token's index,
  never to a URL the token carries, so the redirect cannot be pointed anywhere else;
  every click reports ``clicked`` with the URL.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from itinera.channels.config import ChannelsSettings
from itinera.channels.messages import feedback
from itinera.channels.tracking import CLICK, CLICK_PATH, OPEN, OPEN_PATH
from itinera.channels.tracking import repository as tracking
from itinera.channels.unsubscribe.tokens import unseal
from itinera.common.errors import NotFound
from itinera.common.service import Db
from itinera.common.web.problems import documented

router = APIRouter(tags=["tracking"])
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}
_GONE: dict[int | str, dict[str, Any]] = {404: documented("Not a tracking link of this service")}


def _claims(request: Request, purpose: str, token: str) -> tuple[str, uuid.UUID, dict[str, Any]]:
    settings: ChannelsSettings = request.app.state.settings
    claims = unseal(settings.link_secret, purpose, token)
    if claims is None or not isinstance(claims.get("s"), str) or not isinstance(claims.get("m"), str):
        raise NotFound("this link is not valid")
    try:
        message_id = uuid.UUID(claims["m"])
    except ValueError:
        raise NotFound("this link is not valid") from None
    return claims["s"], message_id, claims


@router.get(
    OPEN_PATH + "{token}.gif",
    summary="The open pixel (a 1x1 GIF)",
    response_class=Response,
    responses={200: {"content": {"image/gif": {}}, "description": "A transparent 1x1 GIF"}, **_GONE},
)
async def pixel(token: str, request: Request, db: Db) -> Response:
    sandbox, message_id, _ = _claims(request, OPEN, token)
    now = datetime.now(UTC)
    async with db.transaction():
        found = await tracking.opened(db, sandbox, message_id, now)
        if found is None:
            raise NotFound("this link is not valid")
        if found["first"]:
            envelope = feedback.envelope(sandbox, found, "opened", address=found["address"], at=now)
            await feedback.publish(db, [envelope])
    return Response(PIXEL, media_type="image/gif", headers=_NO_STORE)


@router.get(
    CLICK_PATH + "{token}",
    summary="Follow a link of an email (a redirect)",
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"description": "To the link the email had"}, **_GONE},
)
async def click(token: str, request: Request, db: Db) -> RedirectResponse:
    sandbox, message_id, claims = _claims(request, CLICK, token)
    index = claims.get("i")
    if type(index) is not int or index < 0:
        raise NotFound("this link is not valid")
    now = datetime.now(UTC)
    async with db.transaction():
        found = await tracking.clicked(db, sandbox, message_id, index, now)
        if found is None:
            raise NotFound("this link is not valid")
        envelope = feedback.envelope(
            sandbox,
            found,
            "clicked",
            address=found["address"],
            url=found["url"],
            at=now,
            occurrence=uuid.uuid4().hex,
        )
        await feedback.publish(db, [envelope])
    return RedirectResponse(found["url"], status_code=302, headers=_NO_STORE)
