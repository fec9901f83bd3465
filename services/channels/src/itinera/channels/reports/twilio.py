"""Twilio's status callbacks: their signature, their fields, and what each status and
error code means for the message and its number.

Twilio signs every callback in ``X-Twilio-Signature``: the base64 HMAC-SHA1, keyed with
the account's auth token, of the callback URL followed by each form parameter's name
and value, names in sorted order. The URL is the one Twilio was given
(``StatusCallback``), so it is checked against that, not against the URL the request
arrived at (a proxy in front of the service may change the host or the scheme).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from itinera.common.errors import FieldError, ValidationFailed

FINAL = frozenset({"delivered", "undelivered", "failed"})
"""Statuses that say what became of the message."""
INTERIM = frozenset(
    {
        "accepted",
        "scheduled",
        "queued",
        "sending",
        "sent",
        "canceled",
        "receiving",
        "received",
        "read",
        "partially_delivered",
    }
)
"""Statuses Twilio also reports, acknowledged and otherwise ignored: ``sent`` (handed to
the carrier) was already reported when Twilio accepted the message."""

ERRORS = {
    21211: "Invalid 'To' phone number",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    30001: "Queue overflow",
    30002: "Account suspended",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}
HARD = frozenset({21211, 21610, 21614, 30005, 30006})
"""Codes that say the number cannot take SMS: it is suppressed (a hard bounce)."""
SOFT = frozenset({30003})
"""Codes that say the handset could not be reached this time: a soft bounce."""

_SID = re.compile(r"^[A-Za-z]{2}[0-9A-Za-z]{1,62}$")
_CODE = re.compile(r"^[0-9]{1,9}$")


def signature(auth_token: str, url: str, params: Mapping[str, Sequence[str]]) -> str:
    text = url + "".join(name + value for name in sorted(params) for value in sorted(params[name]))
    return base64.b64encode(hmac.new(auth_token.encode(), text.encode(), hashlib.sha1).digest()).decode()


def signed(auth_token: str, url: str, params: Mapping[str, Sequence[str]], given: str) -> bool:
    return hmac.compare_digest(signature(auth_token, url, params).encode(), given.strip().encode())


@dataclass(frozen=True, slots=True)
class Report:
    sid: str
    status: str
    error_code: int | None


def report(params: Mapping[str, Sequence[str]]) -> Report:
    """The callback's message sid, status and error code; a 400 naming each bad field."""
    problems: list[FieldError] = []

    def one(name: str) -> str | None:
        values = [v for v in params.get(name, []) if v != ""]
        if len(set(values)) > 1:
            problems.append(
                FieldError(f"/body/{name}", "given more than once, with different values", "duplicate")
            )
            return None
        return values[0] if values else None

    sid, status, code = (
        one("MessageSid") or one("SmsSid"),
        one("MessageStatus") or one("SmsStatus"),
        one("ErrorCode"),
    )
    if sid is None:
        problems.append(FieldError("/body/MessageSid", "the message sid is required", "required"))
    elif not _SID.fullmatch(sid):
        problems.append(FieldError("/body/MessageSid", "not a message sid", "format"))
    if status is None:
        problems.append(FieldError("/body/MessageStatus", "the message status is required", "required"))
    elif status not in FINAL | INTERIM:
        problems.append(FieldError("/body/MessageStatus", f"{status[:40]!r} is not a message status", "enum"))
    if code is not None and not _CODE.fullmatch(code):
        problems.append(FieldError("/body/ErrorCode", "not an error code", "format"))
    if problems or sid is None or status is None:
        raise ValidationFailed("the status callback is not valid", problems)
    return Report(sid, status, int(code) if code is not None else None)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The feedback a final report gives: ``delivered``, ``bounced`` (``bounce`` ``hard`` or
    ``soft``) or ``failed``, with the reason."""

    status: str
    bounce: str | None
    reason: str | None


def outcome(found: Report) -> Outcome:
    if found.status == "delivered":
        return Outcome("delivered", None, None)
    code = found.error_code
    reason = found.status if code is None else f"{found.status} {code} {ERRORS.get(code, '')}".strip()
    if code in HARD:
        return Outcome("bounced", "hard", reason)
    if code in SOFT:
        return Outcome("bounced", "soft", reason)
    return Outcome("failed", None, reason)
