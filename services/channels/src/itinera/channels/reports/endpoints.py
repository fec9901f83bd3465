"""``POST /v1/providers/sms/status``: Twilio's ``StatusCallback``, where the SMS provider
reports what became of each message it accepted. No bearer token: Twilio signs the
request (``X-Twilio-Signature``, checked with ``ITINERA_CHANNELS_SMS_TOKEN``).

- A form (``application/x-www-form-urlencoded``, at most 16 KiB) with ``MessageSid``,
  ``MessageStatus`` and, for a failure, ``ErrorCode``, among Twilio's other fields.
- No signature, or one that does not match: ``403``. A body that is not such a form: ``415``
  or ``400``; a missing or malformed field: ``400`` naming it (``/body/MessageSid``).
- Accepted: ``204``. A final status (``delivered``, ``undelivered``, ``failed``) becomes
  feedback of the message (see :mod:`itinera.channels.reports.service`), once: the same
  report again changes nothing. Interim ones (``queued``, ``sent``, ...) change nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Header, Request, Response

from itinera.channels.config import ChannelsSettings
from itinera.channels.reports import service, twilio
from itinera.common.errors import FieldError, Forbidden, ValidationFailed
from itinera.common.service import Db
from itinera.common.web.bodies import content_type, read
from itinera.common.web.problems import documented

router = APIRouter(tags=["provider callbacks"])
PATH = "/v1/providers/sms/status"
FORM = "application/x-www-form-urlencoded"
MAX_BODY = 16 * 1024
MAX_FIELDS = 100

_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["MessageSid", "MessageStatus"],
    "properties": {
        "MessageSid": {"type": "string", "description": "The provider's id of the message (`SM...`)"},
        "MessageStatus": {"type": "string", "enum": sorted(twilio.FINAL | twilio.INTERIM)},
        "ErrorCode": {"type": "string", "description": "Twilio's error code, for a failure"},
        "AccountSid": {"type": "string"},
        "To": {"type": "string"},
        "From": {"type": "string"},
    },
    "additionalProperties": {"type": "string"},
}


def _form(raw: bytes) -> dict[str, list[str]]:
    try:
        text = raw.decode("utf-8")
        form = parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except UnicodeDecodeError:
        raise ValidationFailed(
            "the body is not a form", [FieldError("/body", "not UTF-8", "encoding")]
        ) from None
    except ValueError:
        raise ValidationFailed(
            "the body is not a form", [FieldError("/body", f"more than {MAX_FIELDS} fields", "size")]
        ) from None
    if any("\x00" in key or any("\x00" in v for v in values) for key, values in form.items()):
        raise ValidationFailed("the body is not a form", [FieldError("/body", "NUL characters", "format")])
    return form


@router.post(
    PATH,
    status_code=204,
    summary="SMS status callback (Twilio-style, signed)",
    response_class=Response,
    responses={
        204: {"description": "Accepted"},
        400: documented("A field is missing or malformed (each with its path)"),
        403: documented("No X-Twilio-Signature, or one that does not match"),
        413: documented("The body is over 16 KiB"),
        415: documented("The body is not a form"),
    },
    openapi_extra={"requestBody": {"required": True, "content": {FORM: {"schema": _FORM_SCHEMA}}}},
)
async def sms_status(
    request: Request,
    db: Db,
    signature: Annotated[str | None, Header(alias="X-Twilio-Signature", max_length=512)] = None,
) -> Response:
    settings: ChannelsSettings = request.app.state.settings
    content_type(request, (FORM,))
    raw = await read(request, MAX_BODY)
    if not signature:
        raise Forbidden("the callback is not signed (X-Twilio-Signature)")
    form = _form(raw)
    url = settings.sms_status_callback + (f"?{request.url.query}" if request.url.query else "")
    if not twilio.signed(settings.channels_sms_token.get_secret_value(), url, form, signature):
        raise Forbidden("the callback's signature does not match")
    report = twilio.report(form)
    if report.status in twilio.FINAL:
        async with db.transaction():
            await service.received(db, settings, report, datetime.now(UTC))
    return Response(status_code=204)
