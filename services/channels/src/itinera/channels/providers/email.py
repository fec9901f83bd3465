"""Email over SMTP (aiosmtplib).

Each message gets ``Message-ID: <{messageId}@{ITINERA_CHANNELS_DOMAIN}>``, so a copy sent
twice (see the README's "Exactly once") is recognisable as the same message. Marketing
messages carry ``List-Unsubscribe`` (a ``mailto:`` and an HTTPS one-click link) and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058); transactional ones do
not. The server's answer decides: a 5xx refusal of the recipient is a hard bounce
(the address is suppressed), a 4xx one a soft bounce (tried again); a connection
failure or a time-out is tried again; another 5xx (to the sender or the data) fails
the message without suppressing the address.

Connections are kept and reused, ``ITINERA_CHANNELS_SMTP_CONNECTIONS`` of them at most
per worker, one message at a time on each: a connection, its greeting, TLS and login
cost more than a message. A connection that fails in any way is closed, never reused.

The message's bytes are written by :mod:`itinera.channels.providers.mime` (a few dozen
microseconds, against about 6 ms through ``EmailMessage`` and its generator); a message
that module does not take on (an address that is not plain ASCII ``dot-atom@dot-atom``,
a sender header without an address) is built and sent with the standard library, as
:meth:`EmailProvider.build` shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, formatdate
from typing import Any

import aiosmtplib

from itinera.channels.config import ChannelsSettings
from itinera.channels.providers import Outgoing, SendFailed, mime
from itinera.channels.reports import dsn
from itinera.channels.unsubscribe.tokens import sign


def _sender(value: Any, default: str) -> str:
    if isinstance(value, dict) and isinstance(value.get("address"), str) and value["address"]:
        return formataddr((str(value.get("name") or ""), value["address"]))
    if isinstance(value, str) and value:
        return value
    return default


class Connections:
    """Open SMTP connections, reused; at most ``size`` at a time."""

    def __init__(self, settings: ChannelsSettings) -> None:
        self.settings = settings
        self.idle: list[aiosmtplib.SMTP] = []
        self.slots = asyncio.Semaphore(settings.channels_smtp_connections)

    def _new(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.channels_smtp_host,
            port=s.channels_smtp_port,
            username=s.channels_smtp_username,
            password=s.channels_smtp_password.get_secret_value() if s.channels_smtp_password else None,
            use_tls=s.channels_smtp_security == "tls",
            start_tls=True if s.channels_smtp_security == "starttls" else False,
            validate_certs=s.channels_smtp_validate_certs,
            timeout=s.channels_smtp_timeout_s,
            local_hostname=s.channels_domain,  # not looked up at every connection
        )

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[aiosmtplib.SMTP]:
        async with self.slots:
            client = self.idle.pop() if self.idle else None
            if client is None or not client.is_connected:
                client = self._new()
                await client.connect()
            reusable = False
            try:
                yield client
                reusable = True
            finally:
                if reusable and client.is_connected:
                    self.idle.append(client)
                else:
                    client.close()

    async def close(self) -> None:
        """Drop the idle connections (without a QUIT: stopping never waits on a server)."""
        while self.idle:
            self.idle.pop().close()


class EmailProvider:
    def __init__(self, settings: ChannelsSettings) -> None:
        self.settings = settings
        self.connections = Connections(settings)
        # What every message shares must be plain ASCII for the direct build.
        self._direct = bool(
            mime.DOT_ATOM_ADDRESS.fullmatch(f"x@{settings.channels_domain}")
            and mime.DOT_ATOM_ADDRESS.fullmatch(settings.unsubscribe_mailbox)
            and mime.URL.fullmatch(settings.channels_public_url)
        )

    def unsubscribe_url(self, message: Outgoing) -> str:
        token = sign(
            self.settings.link_secret,
            message.sandbox,
            message.message_id,
            message.profile_id,
            message.channel,
            message.address,
        )
        return f"{self.settings.channels_public_url.rstrip('/')}/v1/unsubscribe/{token}"

    def build(self, message: Outgoing) -> EmailMessage:
        content = message.content
        email = EmailMessage()
        email["From"] = _sender(content.get("sender"), self.settings.channels_default_sender)
        email["To"] = message.address
        if content.get("replyTo"):
            email["Reply-To"] = _sender(content.get("replyTo"), "")
        email["Subject"] = str(content.get("subject") or "").replace("\r", " ").replace("\n", " ")
        email["Date"] = formatdate(localtime=False, usegmt=True)
        email["Message-ID"] = f"<{message.message_id}@{self.settings.channels_domain}>"
        if message.category == "marketing":
            mailto = f"mailto:{self.settings.unsubscribe_mailbox}?subject=unsubscribe%20{message.message_id}"
            email["List-Unsubscribe"] = f"<{mailto}>, <{self.unsubscribe_url(message)}>"
            email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        text, html = content.get("text"), content.get("html")
        if text:
            email.set_content(str(text))
            if html:
                email.add_alternative(str(html), subtype="html")
        else:
            email.set_content(str(html or ""), subtype="html")
        return email

    def message_id(self, message: Outgoing) -> str:
        return f"<{message.message_id}@{self.settings.channels_domain}>"

    def direct(self, message: Outgoing) -> tuple[str, bytes] | None:
        """The envelope sender and the message's bytes, written directly
        (:mod:`~itinera.channels.providers.mime`); None when the message is one for
        :meth:`build` (see the module's docstring)."""
        if not self._direct or not mime.DOT_ATOM_ADDRESS.fullmatch(message.address):
            return None
        content = message.content
        sender = mime.address_header(
            "From", _sender(content.get("sender"), self.settings.channels_default_sender)
        )
        if sender is None:
            return None
        headers = [sender.text, f"To: {message.address}\r\n"]
        if content.get("replyTo"):
            reply_to = mime.address_header("Reply-To", _sender(content.get("replyTo"), ""))
            if reply_to is None:
                return None
            headers.append(reply_to.text)
        subject = str(content.get("subject") or "").replace("\r", " ").replace("\n", " ")
        headers.append(mime.unstructured("Subject", subject))
        headers.append(f"Date: {format_datetime(datetime.now(UTC))}\r\n")
        headers.append(f"Message-ID: {self.message_id(message)}\r\n")
        if message.category == "marketing":
            mailto = f"mailto:{self.settings.unsubscribe_mailbox}?subject=unsubscribe%20{message.message_id}"
            # One URL a line, as they are: RFC 2369 has no room for encoded words.
            headers.append(f"List-Unsubscribe: <{mailto}>,\r\n <{self.unsubscribe_url(message)}>\r\n")
            headers.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
        if any(len(line) > mime.HARD_LINE for header in headers for line in header.split("\r\n")):
            return None
        text, html = content.get("text"), content.get("html")
        try:
            raw = mime.build(
                headers=headers, text=str(text) if text else None, html=str(html) if html else None
            )
        except UnicodeEncodeError:
            return None
        return sender.address, raw

    def return_path(self, message: Outgoing, sender: str) -> str:
        """The envelope sender: the message's own bounce address when notifications are
        read (:mod:`~itinera.channels.reports.dsn`), else the From address."""
        bounces = self.settings.channels_bounce_address
        if bounces is None:
            return sender
        return dsn.return_path(bounces, self.settings.link_secret.encode(), uuid.UUID(message.message_id))

    async def send(self, message: Outgoing) -> str:
        direct = self.direct(message)
        email: EmailMessage | None = None
        if direct is None:
            try:
                Address(addr_spec=message.address)
            except (ValueError, IndexError) as exc:
                raise SendFailed(f"not an email address: {exc}", retry=False) from None
            email = self.build(message)
        try:
            async with self.connections.connection() as client:
                if email is not None:
                    sender = email["From"].addresses[0].addr_spec if email["From"].addresses else ""
                    await client.send_message(email, sender=self.return_path(message, sender))
                elif direct is not None:
                    await client.sendmail(self.return_path(message, direct[0]), [message.address], direct[1])
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refusal = exc.recipients[0] if exc.recipients else None
            code = refusal.code if refusal is not None else 550
            text = refusal.message if refusal is not None else str(exc)
            hard = code >= 500
            raise SendFailed(
                f"{code} {text}", retry=not hard, bounce="hard" if hard else "soft", suppress=hard
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise SendFailed(f"{exc.code} {exc.message}", retry=exc.code < 500) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise SendFailed(f"{type(exc).__name__}: {exc}", retry=True) from None
        return self.message_id(message)
