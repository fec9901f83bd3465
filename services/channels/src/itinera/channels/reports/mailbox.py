"""The bounce mailbox: an SMTP server that takes what comes back about the emails sent:
delivery status notifications and plain-text bounces mailed to their envelope senders,
abuse reports of mailbox providers' feedback loops, and the mail recipients send to the
unsubscribe mailbox of ``List-Unsubscribe``.

It listens on ``ITINERA_CHANNELS_BOUNCE_HOST``/``_PORT`` in the worker (the MX of the
bounce address's domain, or a relay, forwards to it). ``RCPT TO`` takes the bounce
address and its per-message forms (a token whose MAC holds), the unsubscribe mailbox and
the complaint address (``ITINERA_CHANNELS_COMPLAINT_ADDRESS``), and refuses anything else
(``550 5.1.1``): it relays nothing. A message is read as the first of these it is, and
answered ``250`` once applied (a failure to apply answers ``451``, and the sender tries
again later):

1. mail to the unsubscribe mailbox whose subject is ``unsubscribe <message id>``, as the
   ``mailto:`` link of ``List-Unsubscribe`` writes it, unsubscribes that email's
   recipient as the one-click link does
   (:func:`~itinera.channels.unsubscribe.service.unsubscribe`); knowing the message id,
   which only the email carries, is the credential, as it is for any ``mailto:``
   unsubscribe;
2. an abuse feedback report (:mod:`~itinera.channels.reports.arf`): an ``abuse`` or
   ``fraud`` complaint about an email of ours suppresses its recipient
   (:func:`~itinera.channels.reports.service.complained`); other feedback types are left;
3. a delivery status notification (:mod:`~itinera.channels.reports.dsn`) whose message
   is found, with a final status (delivered or failed), becomes that email's report
   (:func:`~itinera.channels.reports.service.notified`: feedback, suppression on a hard
   bounce, soft bounces counted);
4. anything else sent to an email's own bounce address is a plain-text bounce
   (:mod:`~itinera.channels.reports.plaintext`), unless it is an automatic reply: with a
   status code in its text, it is reported as a notification with that status would
   be; without one, it is kept unclassified, logged, and does nothing else.

The rest (an auto-reply, a delay notice, a notification or a complaint about a message
unknown here, a plain message to the bare bounce address) is taken and left.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import errno
import logging
import re
import uuid
from datetime import UTC, datetime
from email.message import Message

import asyncpg
from aiosmtpd.smtp import SMTP, Envelope, Session
from prometheus_client import Counter

from itinera.channels.config import ChannelsSettings
from itinera.channels.messages import repository as messages
from itinera.channels.reports import arf, dsn, plaintext, service
from itinera.channels.unsubscribe import service as unsubscribing

log = logging.getLogger(__name__)

NOTIFICATIONS = Counter(
    "itinera_channels_bounce_notifications",
    "Messages taken by the bounce mailbox, by outcome (applied, repeated, unsubscribed, complained, "
    "unclassified, ignored, failed)",
    ["outcome"],
)
MAX_BYTES = 10 * 1024 * 1024
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_UNSUBSCRIBE = re.compile(rf"unsubscribe\s+(?P<id>{_UUID})", re.IGNORECASE)


class _Handler:
    def __init__(self, pool: asyncpg.Pool, settings: ChannelsSettings, bounces: str) -> None:
        self.pool = pool
        self.settings = settings
        self.bounces = bounces
        self.key = settings.link_secret.encode()
        self.mailboxes = {
            a.lower()
            for a in (bounces, settings.unsubscribe_mailbox, settings.channels_complaint_address)
            if a is not None
        }

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        plain = address.strip("<>").lower()
        if plain not in self.mailboxes and dsn.message_of(address, self.bounces, self.key) is None:
            return f"550 5.1.1 <{address}>: no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        unsubscribe = self.settings.unsubscribe_mailbox.lower()
        if any(r.strip("<>").lower() == unsubscribe for r in envelope.rcpt_tos):
            return await self._unsubscribe(raw)
        message = dsn.read(raw)
        named = [m for m in (dsn.message_of(r, self.bounces, self.key) for r in envelope.rcpt_tos) if m]
        report = arf.parse(message)
        if report is not None:
            return await self._complaint(report, named)
        notification = dsn.parse(message)
        if notification is not None:
            return await self._notification(notification, named)
        if named:
            return await self._text_bounce(message, named[0])
        NOTIFICATIONS.labels("ignored").inc()
        return "250 OK: not a delivery status notification; nothing done"

    async def _notification(self, notification: dsn.Notification, named: list[uuid.UUID]) -> str:
        candidates = named or list(notification.message_ids)
        final = [status for status in notification.recipients if status.outcome is not None]
        if not candidates or not final:
            NOTIFICATIONS.labels("ignored").inc()
            return "250 OK: nothing final about a message of ours; nothing done"
        return await self._final(candidates[0], final)

    async def _text_bounce(self, message: Message, message_id: uuid.UUID) -> str:
        """A message to an email's bounce address that is no notification: a plain-text
        bounce, classified by the codes its text quotes (:mod:`.plaintext`)."""
        if plaintext.is_auto_reply(message):
            NOTIFICATIONS.labels("ignored").inc()
            return "250 OK: an automatic reply; nothing done"
        found = plaintext.classify(message)
        if found.status is not None:
            status = dsn.RecipientStatus(None, "failed", found.status, found.diagnostic)
            return await self._final(message_id, [status])
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                kept = await service.unclassified(conn, message_id, datetime.now(UTC))
        except Exception as exc:
            return self._failed("a plain-text bounce", exc)
        log.warning(
            "a bounce without a status code was kept unclassified; the address is not suppressed",
            extra={
                "message_id": str(message_id),
                "subject": " ".join(str(message.get("Subject", "")).split())[:200],
                "text": " ".join(plaintext.text_of(message).split())[:300],
            },
        )
        NOTIFICATIONS.labels("unclassified" if kept else "repeated").inc()
        return "250 OK"

    async def _complaint(self, report: arf.FeedbackReport, named: list[uuid.UUID]) -> str:
        """A feedback report (:mod:`.arf`): an abuse or fraud complaint suppresses the
        recipient of the email it names; any other report is left."""
        if not report.complaint:
            NOTIFICATIONS.labels("ignored").inc()
            return "250 OK: a feedback report that is no complaint; nothing done"
        senders = [dsn.message_of(s, self.bounces, self.key) for s in report.senders]
        candidates = list(dict.fromkeys([*named, *report.message_ids, *(m for m in senders if m)]))
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                taken = await service.complained(conn, candidates, report, datetime.now(UTC))
        except Exception as exc:
            return self._failed("a complaint", exc)
        if taken is None:
            NOTIFICATIONS.labels("ignored").inc()
            return "250 OK: a complaint about no email of ours; nothing done"
        NOTIFICATIONS.labels("complained" if taken else "repeated").inc()
        return "250 OK"

    async def _unsubscribe(self, raw: bytes) -> str:
        subject = str(email.message_from_bytes(raw, policy=email.policy.compat32).get("Subject", ""))
        found = _UNSUBSCRIBE.search(" ".join(subject.split()))
        if found is None:
            NOTIFICATIONS.labels("ignored").inc()
            return "250 OK: no 'unsubscribe <message id>' subject; nothing done"
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                message = await messages.email_by_id(conn, uuid.UUID(found["id"]))
                done = message is not None and await unsubscribing.unsubscribe(
                    conn,
                    message["sandbox"],
                    "email",
                    message["address"],
                    str(message["message_id"]),
                    str(message["profile_id"]),
                    "mailto",
                )
        except Exception as exc:
            return self._failed("an unsubscribe mail", exc)
        NOTIFICATIONS.labels("unsubscribed" if done else "ignored").inc()
        return "250 OK"

    async def _final(self, message_id: uuid.UUID, statuses: list[dsn.RecipientStatus]) -> str:
        """The email's final statuses, in one transaction."""
        now = datetime.now(UTC)
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                taken = [await service.notified(conn, self.settings, message_id, s, now) for s in statuses]
        except Exception as exc:
            return self._failed("a delivery status notification", exc)
        NOTIFICATIONS.labels("applied" if any(taken) else "repeated").inc()
        return "250 OK"

    @staticmethod
    def _failed(what: str, exc: Exception) -> str:
        """The answer when the database is away: the sender tries again later."""
        log.warning("a mail to the mailbox could not be applied", extra={"what": what, "error": repr(exc)})
        NOTIFICATIONS.labels("failed").inc()
        return "451 4.3.0 cannot take it now; try again later"


class BounceMailbox:
    """The bounce mailbox's SMTP server, on the running event loop (a worker of the
    service: ``start`` and ``stop``)."""

    def __init__(self, pool: asyncpg.Pool, settings: ChannelsSettings) -> None:
        assert settings.channels_bounce_address is not None
        self.pool = pool
        self.settings = settings
        self.bounces = settings.channels_bounce_address
        self.port = settings.channels_bounce_port
        self._server: asyncio.Server | None = None

    def _protocol(self) -> SMTP:
        return SMTP(
            _Handler(self.pool, self.settings, self.bounces),
            data_size_limit=MAX_BYTES,
            enable_SMTPUTF8=True,
            hostname=self.settings.channels_domain,
            ident="Itinera bounce mailbox",
            loop=asyncio.get_running_loop(),
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                self._protocol, self.settings.channels_bounce_host, self.settings.channels_bounce_port
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise RuntimeError(f"port {self.port} for the bounce mailbox is taken") from exc
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("bounce mailbox listening", extra={"port": self.port, "address": self.bounces})

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
