"""Applying delivery reports, in the caller's transaction.

A final report is kept once per message and status (:func:`received` for an SMS's
status callback, :func:`notified` for an email's delivery status notification); a
report received again changes nothing and publishes nothing. Applied to its message, it
becomes feedback through the outbox (``delivered``; ``bounced`` with ``bounce`` ``hard``
or ``soft``; or ``failed``, with the provider's status and error as the reason), is
kept on the message (``deliveryStatus``), and acts on the number's suppression (see
:mod:`itinera.channels.suppression.bounces`).

An email's abuse complaint (a feedback loop's report, :func:`complained`) is kept the same
way, once per email: its recipient's address is suppressed (reason ``complaint``) and the
feedback ``complained`` is published with the report's type as the reason (``abuse`` or
``fraud``; ingestion makes it a ``message.tracking`` event, interaction
``spam_complaint``). A plain-text bounce that names no
code (:func:`unclassified`) is kept too, and does nothing else.

The provider may report before the worker that sent the message has recorded its answer
(the message id is known by the provider's sid only from then on). Such a report waits,
and the worker applies it when it records the message sent (:func:`sent`). Both take the
same lock on the sid first, so whichever comes second sees what the first committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from itinera.channels.config import ChannelsSettings
from itinera.channels.messages import feedback
from itinera.channels.messages import repository as messages
from itinera.channels.reports import arf, dsn, repository
from itinera.channels.reports.twilio import Outcome, Report, outcome
from itinera.channels.suppression import bounces
from itinera.channels.suppression import repository as suppression

CHANNEL = "sms"
COMPLAINT = "complaint"
"""The status a complaint is kept under (``delivery_reports``), whatever its type."""
UNCLASSIFIED = "unclassified"
"""The status a bounce without a code is kept under."""


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


async def notified(
    conn: asyncpg.Connection,
    settings: ChannelsSettings,
    message_id: uuid.UUID,
    status: dsn.RecipientStatus,
    now: datetime,
) -> bool:
    """Take a final delivery status notification of an email (delivered or bounced);
    False when there is no such email sent, or the same status of it came before."""
    outcome_of = status.outcome
    if outcome_of is None:
        return False
    message = await messages.email_by_id(conn, message_id)
    if message is None:
        return False
    label = f"{status.action} {status.status}"
    if not await _kept_once(conn, message["sandbox"], message_id, label, now):
        return False
    result = Outcome(outcome_of, status.bounce, None if outcome_of == "delivered" else status.reason)
    await _applied(conn, settings, message, result, label, now)
    return True


async def complained(
    conn: asyncpg.Connection, candidates: Sequence[uuid.UUID], report: arf.FeedbackReport, now: datetime
) -> bool | None:
    """Take a complaint about the first of ``candidates`` that is an email sent: its
    address suppressed, reason ``complaint``, and the feedback ``complained``. False
    when a complaint about that email came before (it changes nothing); None when none of
    them is an email sent."""
    for message_id in candidates:
        message = await messages.email_by_id(conn, message_id)
        if message is not None:
            break
    else:
        return None
    if not await _kept_once(conn, message["sandbox"], message_id, COMPLAINT, now):
        return False
    sandbox, address = message["sandbox"], message["address"] or ""
    by = f", reported by {report.user_agent[:200]}" if report.user_agent else ""
    await suppression.add(
        conn,
        "addresses",
        sandbox,
        "client",
        [
            {
                "value": bounces.value_of("email", address),
                "entity_type": suppression.ENTITY_TYPES["email"],
                "reason": "complaint",
                "user": "itinera-channels",
                "comment": f"{report.feedback_type} complaint about message {message_id}{by}",
            }
        ],
    )
    envelope = feedback.envelope(
        sandbox,
        message,
        "complained",
        reason=report.feedback_type,
        address=message["address"],
        at=now,
    )
    await feedback.publish(conn, [envelope])
    return True


async def unclassified(conn: asyncpg.Connection, message_id: uuid.UUID, now: datetime) -> bool:
    """Keep a bounce of the email whose kind is unknown (a plain-text one without a code),
    once; it does nothing else. False when there is no such email sent, or one came
    before."""
    message = await messages.email_by_id(conn, message_id)
    if message is None:
        return False
    return await _kept_once(conn, message["sandbox"], message_id, UNCLASSIFIED, now)


async def _kept_once(
    conn: asyncpg.Connection, sandbox: str, message_id: uuid.UUID, status: str, now: datetime
) -> bool:
    """Keep an email's report of ``status``, applied to it, under the lock on the email;
    False when one of that status was kept before (it changes nothing then)."""
    await repository.lock(conn, "email", str(message_id))
    if not await repository.add(conn, "email", str(message_id), status, None, now):
        return False
    await repository.applied(conn, "email", str(message_id), status, sandbox, message_id, now)
    return True


async def apply(
    conn: asyncpg.Connection,
    settings: ChannelsSettings,
    message: Mapping[str, Any],
    report: Report,
    now: datetime,
) -> None:
    """``message`` holds the message's ``sandbox``, ``message_id``, ``profile_id``,
    ``channel``, ``address`` and ``origin``."""
    await _applied(conn, settings, message, outcome(report), report.status, now)


async def _applied(
    conn: asyncpg.Connection,
    settings: ChannelsSettings,
    message: Mapping[str, Any],
    result: Outcome,
    label: str,
    now: datetime,
) -> None:
    """What a final report of the message says, kept, acted on and published."""
    sandbox, address, channel = message["sandbox"], message["address"] or "", message["channel"]
    message_id: uuid.UUID = message["message_id"]
    await messages.reported(conn, sandbox, message_id, label, now)
    if result.status == "delivered":
        await bounces.delivered(conn, sandbox, channel, address)
    elif result.bounce is not None:
        event = bounces.event(str(message_id), now, result.reason, result.bounce)
        if result.bounce == "hard":
            await bounces.hard(conn, settings, sandbox, channel, address, event, now)
        else:
            await bounces.soft(conn, settings, sandbox, channel, address, event, now)
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
