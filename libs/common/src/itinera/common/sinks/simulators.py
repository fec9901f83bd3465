"""Local stand-ins for the SMS and push providers, served by the inbox's web app.

Each answers like the real API (paths, request encoding, success and error bodies),
delivers nothing, and records what it was asked to send for the inbox and for tests.
Credentials are accepted and not checked (Twilio's basic auth, FCM's bearer token).

Twilio-style SMS, ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, a form
(``application/x-www-form-urlencoded``) with ``To``, ``From`` or
``MessagingServiceSid``, ``Body`` (or ``MediaUrl``), optionally ``StatusCallback``:

- ``201`` with Twilio's message resource: ``sid`` (``SM`` + 32 hex digits),
  ``status: "queued"``, ``to``, ``from``, ``body``, ``date_created`` (RFC 2822), ...
- a missing ``To`` / ``Body`` / sender: ``400`` with code 21604 / 21602 / 21603.
- ``To`` starting with ``+1555000``: ``400`` code 21211 (invalid 'To' number);
  with ``+1555001``: ``400`` code 21610 (unsubscribed recipient); with ``+1555002``:
  ``429`` code 20429 (too many requests: retry later).
  Errors are Twilio's ``{"code", "message", "more_info", "status"}``.

FCM HTTP v1-style push, ``POST /v1/projects/{project}/messages:send``, JSON
``{"message": {"token" | "topic" | "condition", "notification": {"title", "body"},
"data": {string: string}, "android", "apns", "webpush"}, "validate_only"?}``:

- ``200 {"name": "projects/{project}/messages/{id}"}``.
- not JSON, no ``message``, not exactly one target, or a non-string ``data`` value:
  ``400 INVALID_ARGUMENT``.
- ``token`` starting with ``fail-``: ``404 NOT_FOUND`` with error code
  ``UNREGISTERED`` (the app was uninstalled: drop the token); with ``unavailable-``:
  ``503 UNAVAILABLE`` (retry later). Errors are Google's
  ``{"error": {"code", "status", "message", "details": [{"@type": ...FcmError,
  "errorCode"}]}}``.

The prefixes are :class:`FailureRules`; ``None`` switches a rule off. Requests
refused for their shape are not recorded; everything else is, with its status
(``queued`` / ``sent`` / ``validated``, or ``failed`` and the error code).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from itinera.common.sinks.store import Store
from itinera.common.web.responses import Json

TWILIO_API_VERSION = "2010-04-01"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"


@dataclass(frozen=True, slots=True)
class FailureRules:
    """Recipient prefixes that make a simulator answer as the provider does when it
    refuses a message."""

    sms_invalid_number: str | None = "+1555000"
    """400, Twilio code 21211: the 'To' number is not a valid phone number."""
    sms_unsubscribed: str | None = "+1555001"
    """400, Twilio code 21610: the recipient replied STOP."""
    sms_rate_limited: str | None = "+1555002"
    """429, Twilio code 20429: too many requests (transient)."""
    push_unregistered: str | None = "fail-"
    """404 NOT_FOUND, FCM error code UNREGISTERED: the token is no longer valid."""
    push_unavailable: str | None = "unavailable-"
    """503 UNAVAILABLE, FCM error code UNAVAILABLE: transient."""

    def as_json(self) -> dict[str, str | None]:
        return {
            "smsInvalidNumber": self.sms_invalid_number,
            "smsUnsubscribed": self.sms_unsubscribed,
            "smsRateLimited": self.sms_rate_limited,
            "pushUnregistered": self.push_unregistered,
            "pushUnavailable": self.push_unavailable,
        }


def _matches(value: str, prefix: str | None) -> bool:
    return prefix is not None and value.startswith(prefix)


@dataclass(frozen=True, slots=True)
class SmsMessage:
    """One request the SMS simulator recorded; ``id`` is its ``SM...`` sid."""

    id: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    media_urls: tuple[str, ...]
    status_callback: str | None
    status: str
    """``queued``, or ``failed`` when a failure rule answered."""
    error_code: int | None
    received_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "accountSid": self.account_sid,
            "to": self.to,
            "from": self.from_,
            "messagingServiceSid": self.messaging_service_sid,
            "body": self.body,
            "mediaUrls": list(self.media_urls),
            "statusCallback": self.status_callback,
            "status": self.status,
            "errorCode": self.error_code,
            "receivedAt": self.received_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class PushMessage:
    """One request the push simulator recorded; ``name`` is what FCM would answer."""

    id: str
    name: str
    project: str
    token: str | None
    topic: str | None
    condition: str | None
    title: str | None
    body: str | None
    data: dict[str, str]
    message: dict[str, Any] = field(repr=False)
    """The ``message`` object as sent (``android``, ``apns``, ``webpush`` included)."""
    status: str
    """``sent``, ``validated`` (``validate_only``), or ``failed``."""
    error_code: str | None
    received_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "project": self.project,
            "token": self.token,
            "topic": self.topic,
            "condition": self.condition,
            "title": self.title,
            "body": self.body,
            "data": self.data,
            "message": self.message,
            "status": self.status,
            "errorCode": self.error_code,
            "receivedAt": self.received_at.isoformat(),
        }


def _segments(body: str) -> int:
    """Roughly what Twilio counts: 160 characters in one GSM-7 segment (153 when
    split), 70 in one UCS-2 segment (67 when split); ASCII stands in for GSM-7."""
    single, split = (160, 153) if body.isascii() else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // split)


def _twilio_error(http_status: int, code: int, message: str) -> Response:
    return Json(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": http_status,
        },
        status_code=http_status,
    )


def _fcm_error(http_status: int, status: str, message: str, error_code: str) -> Response:
    return Json(
        {
            "error": {
                "code": http_status,
                "message": message,
                "status": status,
                "details": [{"@type": FCM_ERROR_TYPE, "errorCode": error_code}],
            }
        },
        status_code=http_status,
    )


def _invalid_argument(message: str) -> Response:
    return _fcm_error(400, "INVALID_ARGUMENT", message, "INVALID_ARGUMENT")


def simulator_router(sms: Store[SmsMessage], push: Store[PushMessage], rules: FailureRules) -> APIRouter:
    """The two provider APIs, recording into ``sms`` and ``push``."""
    router = APIRouter()

    @router.post(
        "/2010-04-01/Accounts/{account_sid}/Messages.json",
        tags=["simulators"],
        summary="Twilio-style: send an SMS",
        status_code=201,
    )
    async def send_sms(account_sid: str, request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)

        def one(name: str) -> str | None:
            values = form.get(name)
            return values[0] if values and values[0] != "" else None

        to, sender, service = one("To"), one("From"), one("MessagingServiceSid")
        body, media = one("Body") or "", [url for url in form.get("MediaUrl", []) if url]
        if to is None:
            return _twilio_error(400, 21604, "A 'To' phone number is required.")
        if sender is None and service is None:
            return _twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body and not media:
            return _twilio_error(400, 21602, "Message body is required.")
        failure: tuple[int, int, str] | None = None
        if _matches(to, rules.sms_invalid_number):
            failure = (400, 21211, f"Invalid 'To' Phone Number: {to}")
        elif _matches(to, rules.sms_unsubscribed):
            failure = (400, 21610, "Attempt to send to unsubscribed recipient")
        elif _matches(to, rules.sms_rate_limited):
            failure = (429, 20429, "Too Many Requests")
        now = datetime.now(UTC)
        record = SmsMessage(
            id="SM" + uuid.uuid4().hex,
            account_sid=account_sid,
            to=to,
            from_=sender,
            messaging_service_sid=service,
            body=body,
            media_urls=tuple(media),
            status_callback=one("StatusCallback"),
            status="failed" if failure else "queued",
            error_code=failure[1] if failure else None,
            received_at=now,
        )
        sms.add(record)
        if failure is not None:
            return _twilio_error(*failure)
        date = format_datetime(now)
        return Json(
            {
                "sid": record.id,
                "account_sid": account_sid,
                "api_version": TWILIO_API_VERSION,
                "status": "queued",
                "to": to,
                "from": sender,
                "messaging_service_sid": service,
                "body": body,
                "num_segments": str(_segments(body)),
                "num_media": str(len(media)),
                "direction": "outbound-api",
                "date_created": date,
                "date_updated": date,
                "date_sent": None,
                "error_code": None,
                "error_message": None,
                "price": None,
                "price_unit": "USD",
                "uri": f"/{TWILIO_API_VERSION}/Accounts/{account_sid}/Messages/{record.id}.json",
            },
            status_code=201,
        )

    @router.post(
        "/v1/projects/{project}/messages:send",
        tags=["simulators"],
        summary="FCM HTTP v1-style: send a push notification",
    )
    async def send_push(project: str, request: Request) -> Response:
        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _invalid_argument("Invalid JSON payload received.")
        message = payload.get("message") if isinstance(payload, dict) else None
        if not isinstance(message, dict):
            return _invalid_argument("Request contains an invalid argument.")
        targets = {k: message.get(k) for k in ("token", "topic", "condition")}
        given = {k: v for k, v in targets.items() if v is not None}
        if len(given) != 1 or not all(isinstance(v, str) and v for v in given.values()):
            return _invalid_argument(
                "Exactly one of message.token, message.topic or message.condition must be set."
            )
        data = message.get("data") or {}
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            return _invalid_argument("Invalid value at 'message.data': every value must be a string.")
        notification = message.get("notification")
        notification = notification if isinstance(notification, dict) else {}
        token = targets["token"]
        failure: tuple[int, str, str, str] | None = None
        if isinstance(token, str) and _matches(token, rules.push_unregistered):
            failure = (404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        elif isinstance(token, str) and _matches(token, rules.push_unavailable):
            failure = (503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE")
        validate_only = payload.get("validate_only") is True or payload.get("validateOnly") is True
        message_id = uuid.uuid4().hex
        name = f"projects/{project}/messages/{'fake_message_id' if validate_only else message_id}"
        push.add(
            PushMessage(
                id=message_id,
                name=name,
                project=project,
                token=token if isinstance(token, str) else None,
                topic=_text(targets["topic"]),
                condition=_text(targets["condition"]),
                title=_text(notification.get("title")),
                body=_text(notification.get("body")),
                data=data,
                message=message,
                status="failed" if failure else "validated" if validate_only else "sent",
                error_code=failure[3] if failure else None,
                received_at=datetime.now(UTC),
            )
        )
        if failure is not None:
            return _fcm_error(*failure)
        return Json({"name": name})

    return router


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
