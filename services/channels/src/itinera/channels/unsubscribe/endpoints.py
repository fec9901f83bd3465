"""``/v1/unsubscribe/{token}``: where List-Unsubscribe's HTTPS link leads. No bearer
token: the signed link is the credential (see :mod:`itinera.channels.unsubscribe.tokens`).

- ``GET``: a page asking to confirm, with a button that POSTs to the same URL (mail
  scanners follow links; a GET changes nothing).
- ``POST``: RFC 8058's one-click (``List-Unsubscribe=One-Click`` in the body, sent by the
  mailbox provider) or the page's button: the address goes on the suppression list
  with the reason ``unsubscribe``, and the feedback ``unsubscribed`` is published. Doing
  it again changes nothing more. An altered or foreign link is a 404.
"""

from __future__ import annotations

import html
import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

from itinera.channels.config import ChannelsSettings
from itinera.channels.suppression import repository as suppression
from itinera.channels.unsubscribe import service
from itinera.channels.unsubscribe.tokens import verify
from itinera.common.errors import NotFound
from itinera.common.service import Db
from itinera.common.web.problems import documented

router = APIRouter(tags=["unsubscribe"])
PATH = "/v1/unsubscribe/{token}"
_GONE: dict[int | str, dict[str, Any]] = {404: documented("Not an unsubscribe link of this service")}


def _claims(request: Request, token: str) -> dict[str, str]:
    settings: ChannelsSettings = request.app.state.settings
    claims = verify(settings.link_secret, token)
    if claims is None or claims["c"] not in suppression.ENTITY_TYPES:
        raise NotFound("this unsubscribe link is not valid")
    try:
        uuid.UUID(claims["m"])
        uuid.UUID(claims["p"])
    except ValueError:
        raise NotFound("this unsubscribe link is not valid") from None
    return claims


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'><meta name='robots' content='noindex'>"
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


@router.get(
    PATH, summary="Confirm unsubscribing (an HTML page)", response_class=HTMLResponse, responses=_GONE
)
async def confirm(token: str, request: Request) -> HTMLResponse:
    claims = _claims(request, token)
    return _page(
        "Unsubscribe",
        f"<p>Stop messages to <strong>{html.escape(claims['a'])}</strong>?</p>"
        f"<form method='post' action='{html.escape(token)}'>"
        "<input type='hidden' name='List-Unsubscribe' value='One-Click'>"
        "<button type='submit'>Unsubscribe</button></form>",
    )


@router.post(PATH, summary="Unsubscribe (RFC 8058 one-click)", response_class=HTMLResponse, responses=_GONE)
async def unsubscribe(token: str, request: Request, db: Db) -> HTMLResponse:
    claims = _claims(request, token)
    sandbox, channel, address = claims["s"], claims["c"], claims["a"]
    async with db.transaction():
        await service.unsubscribe(db, sandbox, channel, address, claims["m"], claims["p"], "one-click")
    return _page("Unsubscribed", f"<p>{html.escape(address)} will get no more of these messages.</p>")
