"""Signed link tokens: what a link names, as base64url JSON, and an HMAC-SHA256 of it with
``ITINERA_AUTH_SECRET``, so that a link cannot be forged or altered to act on someone
else's message. The MAC covers a purpose (``unsubscribe``, ``open``, ``click``) as well
as the payload, so a token made for one kind of link is refused by the others. Tokens
do not expire: a recipient may unsubscribe from, or follow a link of, an old message.

Unsubscribe tokens name the sandbox, message, profile, channel and address; the tracking
ones (:mod:`itinera.channels.tracking`) the sandbox, message and link index."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson

_FIELDS = ("s", "m", "p", "c", "a")
UNSUBSCRIBE = "unsubscribe"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, purpose: str, payload: str) -> bytes:
    digest = hmac.new(secret.encode(), f"{purpose}|{payload}".encode(), hashlib.sha256).digest()
    return _b64(digest).encode()


def seal(secret: str, purpose: str, claims: Mapping[str, str | int]) -> str:
    """A token carrying ``claims``, good only for ``purpose``."""
    payload = _b64(orjson.dumps(dict(claims)))
    return f"{payload}.{_mac(secret, purpose, payload).decode()}"


def unseal(secret: str, purpose: str, token: str) -> dict[str, Any] | None:
    """The claims of a token sealed for ``purpose``, or None when it is not one of ours."""
    payload, _, mac = token.partition(".")
    if not payload or not mac:
        return None
    try:
        # Bytes, not str: compare_digest refuses non-ASCII text, and a token is any input.
        given = mac.encode()
        expected = _mac(secret, purpose, payload)
    except UnicodeEncodeError:
        return None
    if not hmac.compare_digest(given, expected):
        return None
    try:
        data: Any = orjson.loads(_unb64(payload))
    except (ValueError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def sign(secret: str, sandbox: str, message_id: str, profile_id: str, channel: str, address: str) -> str:
    claims = {"s": sandbox, "m": message_id, "p": profile_id, "c": channel, "a": address}
    return seal(secret, UNSUBSCRIBE, claims)


def verify(secret: str, token: str) -> dict[str, str] | None:
    """What an unsubscribe token names, or None when it is not one of ours."""
    data = unseal(secret, UNSUBSCRIBE, token)
    if data is None or not all(isinstance(data.get(k), str) for k in _FIELDS):
        return None
    return {k: data[k] for k in _FIELDS}
