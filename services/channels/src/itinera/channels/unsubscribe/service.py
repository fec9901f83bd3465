"""Unsubscribing a recipient, however they asked (the one-click link, a mail to the
unsubscribe mailbox): the address goes on the suppression list with the reason
``unsubscribe`` and the feedback ``unsubscribed`` is published, in the caller's
transaction. Asking again changes nothing more."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from itinera.channels.messages import feedback
from itinera.channels.suppression import repository as suppression


async def unsubscribe(
    conn: asyncpg.Connection,
    sandbox: str,
    channel: str,
    address: str,
    message_id: str,
    profile_id: str,
    how: str,
) -> bool:
    """Suppress ``address`` for the message's recipient; False when it already was, for
    this reason. ``how`` goes into the entry's comment (``one-click``, ``mailto``). An
    address suppressed after a spam complaint stays so, for that reason (the stronger):
    the unsubscribe is only reported."""
    entity_type = suppression.ENTITY_TYPES[channel]
    value = suppression.normal(address, entity_type)
    listed = await suppression.one(conn, "addresses", sandbox, "client", value)
    if listed is not None and listed["reason"] == "unsubscribe":
        return False
    if listed is None or listed["reason"] != "complaint":
        await suppression.add(
            conn,
            "addresses",
            sandbox,
            "client",
            [
                {
                    "value": value,
                    "entity_type": entity_type,
                    "reason": "unsubscribe",
                    "user": "recipient",
                    "comment": f"{how} unsubscribe from message {message_id}",
                }
            ],
        )
    message = {"message_id": message_id, "profile_id": profile_id, "channel": channel, "origin": {}}
    await feedback.publish(
        conn, [feedback.envelope(sandbox, message, "unsubscribed", address=address, at=datetime.now(UTC))]
    )
    return True
