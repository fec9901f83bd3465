"""Unsubscribe tokens: what the link names (sandbox, message, profile, channel, address),
as base64url JSON, and an HMAC-SHA256 of it with ``ITINERA_AUTH_SECRET``, so that a link
cannot be forged or altered to unsubscribe someone else. Tokens do not expire: a
recipient may unsubscribe from an old message."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson

_FIELDS = ("s", "m", "p", "c", "a")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), b"unsubscribe|" + payload.encode(), hashlib.sha256).digest())


def sign(secret: str, sandbox: str, message_id: str, profile_id: str, channel: str, address: str) -> str:
    payload = _b64(orjson.dumps({"s": sandbox, "m": message_id, "p": profile_id, "c": channel, "a": address}))
    return f"{payload}.{_mac(secret, payload)}"


def verify(secret: str, token: str) -> dict[str, str] | None:
    """What the token names, or None when it is not one of ours."""
    payload, _, mac = token.partition(".")
    if not payload or not mac or not hmac.compare_digest(mac, _mac(secret, payload)):
        return None
    try:
        data: Any = orjson.loads(_unb64(payload))
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in _FIELDS):
        return None
    return {k: data[k] for k in _FIELDS}
