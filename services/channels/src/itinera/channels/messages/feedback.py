"""Feedback records (``itinera.feedback.v1``), enqueued in the outbox of the transaction
that records what they report. Each has a ``ce_id`` derived from the message id and the
status, so a fact reported again (a retried transaction) carries the same id; a fact that
may happen many times (a click) adds what tells its occurrences apart."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg

from itinera.common.db.outbox import enqueue
from itinera.common.kafka import topics
from itinera.common.kafka.envelope import Envelope

TYPE = "com.itinera.message.feedback.v1"
SOURCE = "/itinera/channels"
_IDS = uuid.UUID("6a0f5e1c-93b4-5d2a-8c7e-1f4b3a2d5c60")


def envelope(
    sandbox: str,
    message: Mapping[str, Any],
    status: str,
    *,
    reason: str | None = None,
    bounce: str | None = None,
    address: str | None = None,
    url: str | None = None,
    at: datetime | None = None,
    occurrence: str | None = None,
) -> Envelope:
    """``message`` holds ``message_id``, ``profile_id``, ``channel`` and ``origin``;
    ``occurrence`` distinguishes repeated facts of one status (each click)."""
    moment = at or datetime.now(UTC)
    data: dict[str, Any] = {
        "sandbox": sandbox,
        "messageId": str(message["message_id"]),
        "profileId": str(message["profile_id"]),
        "channel": message["channel"],
        "status": status,
        "reason": reason,
        "bounce": bounce,
        "address": address,
        "url": url,
        "origin": dict(message.get("origin") or {}),
        "at": moment.isoformat().replace("+00:00", "Z"),
    }
    return Envelope(
        type=TYPE,
        source=SOURCE,
        data=data,
        sandbox=sandbox,
        key=str(message["profile_id"]),
        id=str(
            uuid.uuid5(
                _IDS, f"{sandbox}|{message['message_id']}|{status}" + (f"|{occurrence}" if occurrence else "")
            )
        ),
        time=moment,
    )


async def publish(conn: asyncpg.Connection, envelopes: list[Envelope]) -> None:
    await enqueue(conn, topics.FEEDBACK.name, envelopes)
