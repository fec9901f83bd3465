"""Applying delivery reports, in the caller's transaction.

A final report is kept once per message and status (:func:`received`); a report
received again changes nothing and publishes nothing. Applied to its message, it
becomes feedback through the outbox (``delivered``; ``bounced`` with ``bounce`` ``hard``
or ``soft``; or ``failed``, with the provider's status and error as the reason), is
kept on the message (``deliveryStatus``), and acts on the number's suppression (see
:mod:`itinera.channels.suppression.bounces`).

The provider may report before the worker that sent the message has recorded its answer
(the message id is known by the provider's sid only from then on). Such a report waits,
and the worker applies it when it records the message sent (:func:`sent`). Both take the
same lock on the sid first, so whichever comes second sees what the first committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from itinera.channels.config import ChannelsSettings
from itinera.channels.messages import feedback
from itinera.channels.messages import repository as messages
from itinera.channels.reports import repository
from itinera.channels.reports.twilio import Report, outcome
from itinera.channels.suppression import bounces

CHANNEL = "sms"


async def received(
    conn: asyncpg.Connection, settings: ChannelsSettings, report: Report, now: datetime
) -> bool:
    """Take a final report of an SMS; False when it was received before."""
    await repository.lock(conn, CHANNEL, report.sid)
    if not await repository.add(conn, CHANNEL, report.sid, report.status, report.error_code, now):
        return False
    message = await messages.by_sms_sid(conn, report.sid)
    if message is not None:
        await repository.applied(
            conn, CHANNEL, report.sid, report.status, message["sandbox"], message["message_id"], now
        )
        await apply(conn, settings, message, report, now)
    return True


async def sent(
    conn: asyncpg.Connection, settings: ChannelsSettings, message: Mapping[str, Any], sid: str, now: datetime
) -> None:
    """The SMS was just recorded sent under ``sid``: apply the reports that came first."""
    await repository.lock(conn, CHANNEL, sid)
    waiting = await repository.take_waiting(
        conn, CHANNEL, sid, message["sandbox"], message["message_id"], now
    )
    for row in waiting:
        code = row["error_code"]
        await apply(conn, settings, message, Report(sid, row["status"], int(code) if code else None), now)


async def apply(
    conn: asyncpg.Connection,
    settings: ChannelsSettings,
    message: Mapping[str, Any],
    report: Report,
    now: datetime,
) -> None:
    """``message`` holds the message's ``sandbox``, ``message_id``, ``profile_id``,
    ``channel``, ``address`` and ``origin``."""
    sandbox, address = message["sandbox"], message["address"] or ""
    message_id: uuid.UUID = message["message_id"]
    await messages.reported(conn, sandbox, message_id, report.status, now)
    result = outcome(report)
    if result.status == "delivered":
        await bounces.delivered(conn, sandbox, CHANNEL, address)
    elif result.bounce is not None:
        event = bounces.event(str(message_id), now, result.reason, result.bounce)
        if result.bounce == "hard":
            await bounces.hard(conn, settings, sandbox, CHANNEL, address, event, now)
        else:
            await bounces.soft(conn, settings, sandbox, CHANNEL, address, event, now)
    envelope = feedback.envelope(
        sandbox,
        message,
        result.status,
        reason=result.reason,
        bounce=result.bounce,
        address=message["address"],
        at=now,
    )
    await feedback.publish(conn, [envelope])
