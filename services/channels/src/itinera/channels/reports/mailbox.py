"""The bounce mailbox: an SMTP server that takes the delivery status notifications relays
mail to the emails' envelope senders (see :mod:`itinera.channels.reports.dsn`), and the
mail recipients send to the unsubscribe mailbox of ``List-Unsubscribe``.

It listens on ``ITINERA_CHANNELS_BOUNCE_HOST``/``_PORT`` in the worker (the MX of the
bounce address's domain, or a relay, forwards to it). ``RCPT TO`` takes the bounce
address and its per-message forms (a token whose MAC holds) and refuses anything else
(``550 5.1.1``): it relays nothing. A message is answered ``250`` once it is applied: a
notification whose message is found, with a final status (delivered or failed), becomes
that email's report (:func:`~itinera.channels.reports.service.notified`: feedback,
suppression on a hard bounce, soft bounces counted); anything else (an auto-reply, a
delay notice, a notification of a message unknown here) is taken and left. A failure to
apply answers ``451``, and the relay tries again later.

Mail to the unsubscribe mailbox (``ITINERA_CHANNELS_UNSUBSCRIBE_MAILBOX``, routed to the
same server) whose subject is ``unsubscribe <message id>``, as the ``mailto:`` link of
``List-Unsubscribe`` writes it, unsubscribes that email's recipient as the one-click link
does (:func:`~itinera.channels.unsubscribe.service.unsubscribe`); knowing the message id,
which only the email carries, is the credential, as it is for any ``mailto:`` unsubscribe.
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

import asyncpg
from aiosmtpd.smtp import SMTP, Envelope, Session
from prometheus_client import Counter

from itinera.channels.config import ChannelsSettings
from itinera.channels.messages import repository as messages
from itinera.channels.reports import dsn, service
from itinera.channels.unsubscribe import service as unsubscribing

log = logging.getLogger(__name__)

NOTIFICATIONS = Counter(
    "itinera_channels_bounce_notifications",
    "Messages taken by the bounce mailbox, by outcome (applied, repeated, unsubscribed, ignored, failed)",
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

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        plain = address.strip("<>").lower()
        mine = plain in (self.bounces.lower(), self.settings.unsubscribe_mailbox.lower())
        if not mine and dsn.message_of(address, self.bounces, self.key) is None:
            return f"550 5.1.1 <{address}>: no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        unsubscribe = self.settings.unsubscribe_mailbox.lower()
        if any(r.strip("<>").lower() == unsubscribe for r in envelope.rcpt_tos):
            return await self._unsubscribe(envelope.original_content or b"")
        notification = dsn.parse(envelope.original_content or b"")
        if notification is None:
            NOTIFICATIONS.labels("ignored").inc()
            return "250 OK: not a delivery status notification; nothing done"
        named = [dsn.message_of(r, self.bounces, self.key) for r in envelope.rcpt_tos]
        candidates = [m for m in named if m is not None] or list(notification.message_ids)
        final = [status for status in notification.recipients if status.outcome is not None]
        if not candidates or not final:
            NOTIFICATIONS.labels("ignored").inc()
            return "250 OK: nothing final about a message of ours; nothing done"
        try:
            applied = await self._apply(candidates[0], final)
        except Exception as exc:  # the database is away: the relay will try again
            log.warning("a delivery status notification could not be applied", extra={"error": repr(exc)})
            NOTIFICATIONS.labels("failed").inc()
            return "451 4.3.0 cannot take it now; try again later"
        NOTIFICATIONS.labels("applied" if applied else "repeated").inc()
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
            log.warning("an unsubscribe mail could not be applied", extra={"error": repr(exc)})
            NOTIFICATIONS.labels("failed").inc()
            return "451 4.3.0 cannot take it now; try again later"
        NOTIFICATIONS.labels("unsubscribed" if done else "ignored").inc()
        return "250 OK"

    async def _apply(self, message_id: uuid.UUID, statuses: list[dsn.RecipientStatus]) -> bool:
        """The message's final statuses, in one transaction; whether any was new."""
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            taken = [await service.notified(conn, self.settings, message_id, s, now) for s in statuses]
        return any(taken)


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
