"""``GET /v1/messages/{messageId}``: what became of a message request (``channels:read``):
its state, and the provider's last final report of it (``deliveryStatus``: an SMS's
``delivered``, ``undelivered`` or ``failed``) once there is one. A request that waits for
its profile (the profile service could not answer) is ``waiting``, reason
``profile-unavailable``, with the profile service's last failure as the detail and the
time it is asked again as ``nextAttemptAt``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Security
from pydantic import BaseModel

from itinera.channels.messages import repository
from itinera.common.auth import Principal, require_scope
from itinera.common.errors import NotFound
from itinera.common.service import Db
from itinera.common.web.problems import documented

router = APIRouter(tags=["messages"], responses={404: documented("No such message in the sandbox")})
Reader = Annotated[Principal, Security(require_scope("channels:read"))]


class MessageOut(BaseModel):
    messageId: str
    profileId: str
    channel: str
    category: str
    templateId: str | None
    templateVersion: int | None
    locale: str | None
    state: str
    reason: str | None
    detail: str | None
    address: str | None
    attempts: int
    createdAt: datetime
    nextAttemptAt: datetime | None
    queuedUntil: datetime | None
    sentAt: datetime | None
    providerId: str | None
    deliveryStatus: str | None
    deliveryReportedAt: datetime | None
    origin: dict[str, Any]


@router.get("/v1/messages/{messageId}", summary="A message request and its state", response_model=MessageOut)
async def get_message(messageId: str, caller: Reader, db: Db) -> dict[str, Any]:
    try:
        message_id = uuid.UUID(messageId)
    except ValueError:
        raise NotFound(f"no message {messageId!r}") from None
    row = await repository.one(db, caller.sandbox, message_id)
    if row is None:
        waiting = await repository.waiting(db, caller.sandbox, message_id)
        if waiting is None:
            raise NotFound(f"no message {messageId!r}")
        return _waiting(waiting)
    return {
        "messageId": str(row["message_id"]),
        "profileId": str(row["profile_id"]),
        "channel": row["channel"],
        "category": row["category"],
        "templateId": row["template_id"],
        "templateVersion": row["template_version"],
        "locale": row["locale"],
        "state": row["state"],
        "reason": row["reason"],
        "detail": row["detail"],
        "address": row["address"],
        "attempts": row["attempts"],
        "createdAt": row["created_at"],
        "nextAttemptAt": row["next_attempt_at"],
        "queuedUntil": row["queued_until"],
        "sentAt": row["sent_at"],
        "providerId": row["provider_id"],
        "deliveryStatus": row["delivery_status"],
        "deliveryReportedAt": row["delivery_reported_at"],
        "origin": row["origin"] or {},
    }


def _waiting(row: Mapping[str, Any]) -> dict[str, Any]:
    request = row["request"]
    return {
        "messageId": str(row["message_id"]),
        "profileId": str(row["profile_id"]),
        "channel": request["channel"],
        "category": request["category"],
        "templateId": request.get("templateId"),
        "templateVersion": None,
        "locale": None,
        "state": "waiting",
        "reason": "profile-unavailable",
        "detail": row["error"],
        "address": None,
        "attempts": 0,
        "createdAt": row["parked_at"],
        "nextAttemptAt": row["next_attempt_at"],
        "queuedUntil": None,
        "sentAt": None,
        "providerId": None,
        "deliveryStatus": None,
        "deliveryReportedAt": None,
        "origin": request.get("origin") or {},
    }
