"""Local stand-ins for the SMS and push providers, served by the inbox's web app.

Each answers like the real API (paths, request encoding, success and error bodies),
delivers nothing, and records what it was asked to send for the inbox and for tests.
Credentials are accepted and not checked (Twilio's basic auth, FCM's bearer token).

Twilio-style SMS, ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, a form
(``application/x-www-form-urlencoded``) with ``To``, ``From`` or
``MessagingServiceSid``, ``Body`` (or ``MediaUrl``), optionally ``StatusCallback``:

- ``201`` with Twilio's message resource: ``sid`` (``SM`` + 32 hex digits),
  ``status: "queued"``, ``to``, ``from``, ``body``, ``date_created`` (RFC 2822), ...
- a missing ``To`` / ``Body`` / sender: ``400`` with code 21604 / 21602 / 21603; a
  ``StatusCallback`` that is not an http(s) URL: ``400`` code 21609.
- ``To`` starting with ``+1555000``: ``400`` code 21211 (invalid 'To' number);
  with ``+1555001``: ``400`` code 21610 (unsubscribed recipient); with ``+1555002``:
  ``429`` code 20429 (too many requests: retry later).
  Errors are Twilio's ``{"code", "message", "more_info", "status"}``.
- Status callbacks: for an accepted message with a ``StatusCallback``, after
  ``callback_delay_s``, two form POSTs to that URL as Twilio makes them (``MessageSid``,
  ``SmsSid``, ``AccountSid``, ``From``, ``To``, ``ApiVersion``, ``MessageStatus`` and
  ``SmsStatus``, and ``ErrorCode`` for a failure), signed in ``X-Twilio-Signature``
  (HMAC-SHA1 of the URL and the sorted parameters, keyed with the auth token: the
  password of the request's basic auth): first ``sent``, then ``delivered``; or, for
  ``To`` starting with ``+1555003``, ``undelivered`` with error 30003 (unreachable
  handset); ``+1555004``, ``undelivered`` with 30005 (unknown handset); ``+1555005``,
  ``failed`` with 30008 (unknown error). Each callback made is an :class:`SmsReport`
  with the answer it got; none is repeated (Twilio does not retry them either).

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
  "errorCode"}]}}``. FCM has no delivery reports, and neither has this.

The prefixes are :class:`~itinera.common.sinks.rules.FailureRules`; ``None`` switches a
rule off. Requests refused for their shape are not recorded; everything else is, with
its status (``queued`` / ``sent`` / ``validated``, or ``failed`` and the error code).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from itinera.common.sinks.rules import FailureRules, matches
from itinera.common.sinks.store import Store
from itinera.common.web.responses import Json

TWILIO_API_VERSION = "2010-04-01"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
DEFAULT_CALLBACK_DELAY_S = 0.5

log = logging.getLogger(__name__)


def twilio_signature(auth_token: str, url: str, params: Mapping[str, Sequence[str]]) -> str:
    """Twilio's request signature: the URL followed by each parameter's name and value,
    names sorted (and a name's values sorted), HMAC-SHA1 with the auth token, base64."""
    text = url + "".join(name + value for name in sorted(params) for value in sorted(params[name]))
    digest = hmac.new(auth_token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


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
class SmsReport:
    """One status callback the SMS simulator made."""

    id: str
    sid: str
    """The message's ``SM...`` sid."""
    url: str
    status: str
    """``sent``, ``delivered``, ``undelivered`` or ``failed``."""
    error_code: int | None
    answer: int | None
    """The HTTP status the callback got; None when it got none (``error`` says why)."""
    error: str | None
    received_at: datetime
    """When the callback was made."""

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sid": self.sid,
            "url": self.url,
            "status": self.status,
            "errorCode": self.error_code,
            "answer": self.answer,
            "error": self.error,
            "receivedAt": self.received_at.isoformat(),
        }


class StatusReporter:
    """Makes the SMS simulator's status callbacks, each in a task of its own, and records
    them in ``reports``; :meth:`close` cancels those still waiting."""

    def __init__(self, reports: Store[SmsReport], delay_s: float = DEFAULT_CALLBACK_DELAY_S) -> None:
        self.reports = reports
        self.delay_s = delay_s
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, message: SmsMessage, auth_token: str, final: tuple[str, int | None]) -> None:
        if message.status_callback is None:
            return
        task = asyncio.create_task(self._report(message, auth_token, final), name=f"sms-report:{message.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report(self, message: SmsMessage, auth_token: str, final: tuple[str, int | None]) -> None:
        await asyncio.sleep(self.delay_s)
        for status, code in (("sent", None), final):
            await self._post(message, auth_token, status, code)

    async def _post(self, message: SmsMessage, auth_token: str, status: str, code: int | None) -> None:
        assert message.status_callback is not None
        url = message.status_callback
        params = {
            "MessageSid": message.id,
            "SmsSid": message.id,
            "AccountSid": message.account_sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "To": message.to,
            "ApiVersion": TWILIO_API_VERSION,
        }
        if message.from_ is not None:
            params["From"] = message.from_
        if message.messaging_service_sid is not None:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if code is not None:
            params["ErrorCode"] = str(code)
        signature = twilio_signature(auth_token, url, {k: [v] for k, v in params.items()})
        answer: int | None = None
        error: str | None = None
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10, trust_env=False, follow_redirects=False)
        try:
            response = await self._client.post(url, data=params, headers={"X-Twilio-Signature": signature})
            answer = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning("an SMS status callback failed: %s", error)
        self.reports.add(
            SmsReport(
                id=uuid.uuid4().hex,
                sid=message.id,
                url=url,
                status=status,
                error_code=code,
                answer=answer,
                error=error,
                received_at=datetime.now(UTC),
            )
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _basic_password(request: Request) -> str:
    """The password of the request's basic auth (a Twilio client's auth token), or ""."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[2]


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


def simulator_router(
    sms: Store[SmsMessage], push: Store[PushMessage], rules: FailureRules, reporter: StatusReporter
) -> APIRouter:
    """The two provider APIs, recording into ``sms`` and ``push``; ``reporter`` makes the
    SMS status callbacks."""
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
        callback = one("StatusCallback")
        if callback is not None and not _http_url(callback):
            return _twilio_error(400, 21609, f"Invalid StatusCallback: {callback}")
        failure: tuple[int, int, str] | None = None
        if matches(to, rules.sms_invalid_number):
            failure = (400, 21211, f"Invalid 'To' Phone Number: {to}")
        elif matches(to, rules.sms_unsubscribed):
            failure = (400, 21610, "Attempt to send to unsubscribed recipient")
        elif matches(to, rules.sms_rate_limited):
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
            status_callback=callback,
            status="failed" if failure else "queued",
            error_code=failure[1] if failure else None,
            received_at=now,
        )
        sms.add(record)
        if failure is not None:
            return _twilio_error(*failure)
        reporter.schedule(record, _basic_password(request), rules.sms_report(to))
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
        if isinstance(token, str) and matches(token, rules.push_unregistered):
            failure = (404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        elif isinstance(token, str) and matches(token, rules.push_unavailable):
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


def _http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
