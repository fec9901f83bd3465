"""The SMTP sink: an aiosmtpd server that accepts every message and keeps it.

Any sender, any recipient, any size up to 32 MiB: each message is answered ``250``,
parsed with the standard library's ``email`` package and added to a
:class:`~itinera.common.sinks.store.Store` of :class:`ReceivedMail`. Nothing is relayed.

Recipients matching a :class:`~itinera.common.sinks.rules.FailureRules` prefix are
refused at ``RCPT TO`` as a receiving server refuses them: ``bounce-...`` with
``550 5.1.1`` (unknown user: a hard bounce), ``softbounce-...`` with ``452 4.2.2``
(mailbox full: a soft bounce, every time), ``greylist-...`` with ``451 4.7.1`` the
first time a sender tries the recipient and accepted after that. A message all of
whose recipients were refused is not kept. ``latebounce-...`` is accepted and then not
delivered: a delivery status notification (RFC 3464: ``multipart/report``, ``Action:
failed``, ``Status: 5.1.1``, the original's headers) is mailed from the null sender to
the envelope sender, through ``bounce_relay`` (host and port of an SMTP server: the
channels service's bounce mailbox) or, without one, into this sink's own store, as a
relay does when the next hop refuses what it accepted.

It speaks plain SMTP (EHLO, 8BITMIME, SMTPUTF8, PIPELINING). STARTTLS is not offered,
so a client that insists on TLS must be told not to (aiosmtplib upgrades only when
offered). AUTH PLAIN and LOGIN are offered without TLS and accept any credentials, so
a client configured with a username and password works unchanged.
"""

from __future__ import annotations

import asyncio
import email
import email.header
import email.policy
import email.utils
import errno
import logging
import smtplib
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.utils import getaddresses
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from itinera.common.sinks.rules import FailureRules
from itinera.common.sinks.store import DEFAULT_CAP, Store

log = logging.getLogger(__name__)

DEFAULT_SMTP_PORT = 1025
SINK_HOST = "itinera-smtp-sink"
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
GREYLIST_MEMORY = 100_000
"""Sender and recipient pairs the greylisting remembers before it starts afresh."""


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str | None
    content_type: str
    size: int

    def as_json(self) -> dict[str, Any]:
        return {"filename": self.filename, "contentType": self.content_type, "size": self.size}


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """One message as the sink received it.

    ``headers`` holds every header in order (values decoded from RFC 2047), repeated
    ones included; :meth:`header` reads one by name, ignoring case.
    """

    id: str
    received_at: datetime
    envelope_from: str
    envelope_to: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]
    text: str | None
    html: str | None
    size: int
    attachments: tuple[Attachment, ...] = ()
    recipients: frozenset[str] = field(default=frozenset(), repr=False)
    """Lower-cased addresses of the envelope recipients and of the To and Cc headers."""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    @property
    def subject(self) -> str | None:
        return self.header("Subject")

    @property
    def message_id(self) -> str | None:
        return self.header("Message-ID")

    @property
    def from_(self) -> str | None:
        return self.header("From")

    @property
    def to(self) -> str | None:
        return self.header("To")

    @property
    def list_unsubscribe(self) -> str | None:
        return self.header("List-Unsubscribe")

    @property
    def list_unsubscribe_post(self) -> str | None:
        return self.header("List-Unsubscribe-Post")

    def sent_to(self, address: str) -> bool:
        """Whether ``address`` (any case) is an envelope recipient or in To or Cc."""
        return address.strip().lower() in self.recipients

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "receivedAt": self.received_at.isoformat(),
            "envelopeFrom": self.envelope_from,
            "envelopeTo": list(self.envelope_to),
            "messageId": self.message_id,
            "subject": self.subject,
            "from": self.from_,
            "to": self.to,
            "cc": self.header("Cc"),
            "listUnsubscribe": self.list_unsubscribe,
            "listUnsubscribePost": self.list_unsubscribe_post,
            "headers": [[name, value] for name, value in self.headers],
            "text": self.text,
            "html": self.html,
            "attachments": [a.as_json() for a in self.attachments],
            "size": self.size,
        }


def parse_mail(raw: bytes, envelope_from: str, envelope_to: list[str]) -> ReceivedMail:
    """A :class:`ReceivedMail` from the bytes of a message; never raises (a message
    the parser cannot read is kept with what could be read).

    The message is read with the standard library's ``compat32`` parser, headers decoded
    from RFC 2047 and bodies from their transfer encoding and charset here: the same
    result as its modern ``email.policy.default`` for what senders write (address headers
    are read by it), at a fifth of the CPU (about 1 ms rather than 5 ms an email, which
    made the sink the slowest part of a local run). A message that way cannot read goes
    the modern way."""
    try:
        return _read(raw, envelope_from, envelope_to)
    except Exception:
        return _read_modern(raw, envelope_from, envelope_to)


def _read(raw: bytes, envelope_from: str, envelope_to: list[str]) -> ReceivedMail:
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    headers = tuple((name, _decoded(name, value)) for name, value in message.raw_items())
    text = html = None
    attachments: list[Attachment] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        filename = part.get_filename()
        if filename is not None or disposition == "attachment":
            attachments.append(Attachment(filename, part.get_content_type(), len(_payload(part))))
            continue
        kind = part.get_content_type()
        if kind == "text/plain" and text is None:
            text = _text_of(part)
        elif kind == "text/html" and html is None:
            html = _text_of(part)
    return _mail(raw, envelope_from, envelope_to, headers, text, html, attachments)


_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "bcc", "reply-to", "sender"})
"""Headers the modern policy reads as addresses (and writes back quoted as needed): read
by it here too."""


def _decoded(name: str, value: str) -> str:
    """A raw header value unfolded, its RFC 2047 encoded words decoded."""
    unfolded = value.replace("\r\n", "").replace("\n", "").strip()
    if name.lower() in _ADDRESS_HEADERS:
        return str(email.policy.default.header_factory(name, unfolded)).strip()
    if "=?" not in unfolded:
        return unfolded
    return str(email.header.make_header(email.header.decode_header(unfolded))).strip()


def _text_of(part: Message) -> str:
    """A text part's text, its transfer encoding and charset undone, lines ending in ``\n``."""
    charset = part.get_content_charset() or "us-ascii"
    payload = _payload(part)
    try:
        text = payload.decode(charset, "replace")
    except LookupError:  # an unknown charset
        text = payload.decode("utf-8", "replace")
    return text.replace("\r\n", "\n")


def _mail(
    raw: bytes,
    envelope_from: str,
    envelope_to: list[str],
    headers: tuple[tuple[str, str], ...],
    text: str | None,
    html: str | None,
    attachments: list[Attachment],
) -> ReceivedMail:
    addresses = {a.lower() for a in envelope_to}
    for name in ("To", "Cc"):
        values = [value for key, value in headers if key.lower() == name.lower()]
        addresses.update(address.lower() for _, address in getaddresses(values) if address)
    return ReceivedMail(
        id=uuid.uuid4().hex,
        received_at=datetime.now(UTC),
        envelope_from=envelope_from,
        envelope_to=tuple(envelope_to),
        headers=headers,
        text=text,
        html=html,
        size=len(raw),
        attachments=tuple(attachments),
        recipients=frozenset(addresses),
    )


def _read_modern(raw: bytes, envelope_from: str, envelope_to: list[str]) -> ReceivedMail:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    headers = tuple((name, _header_text(message, name, value)) for name, value in message.raw_items())
    text = html = None
    attachments: list[Attachment] = []
    if isinstance(message, EmailMessage):
        text = _content(message.get_body(preferencelist=("plain",)))
        html = _content(message.get_body(preferencelist=("html",)))
        attachments = [
            Attachment(part.get_filename(), part.get_content_type(), len(_payload(part)))
            for part in message.walk()
            if not part.is_multipart() and (part.get_filename() is not None or part.is_attachment())
        ]
    return _mail(raw, envelope_from, envelope_to, headers, text, html, attachments)


def _header_text(message: Message, name: str, raw_value: str) -> str:
    try:
        return str(message.policy.header_fetch_parse(name, raw_value)).strip()
    except Exception:  # a header too broken to decode is shown as sent
        return raw_value.strip()


def _payload(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _content(part: Message | None) -> str | None:
    """A body part's text with its charset and transfer encoding undone, lines ending
    in ``\n`` (SMTP carries CRLF)."""
    if part is None:
        return None
    text: str | None = None
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            text = content
    except Exception:  # an unknown charset or a broken transfer encoding
        pass
    if text is None:
        text = _payload(part).decode("utf-8", "replace")
    return text.replace("\r\n", "\n")


def notification(raw: bytes, envelope_from: str, recipient: str, reply: str) -> bytes:
    """The delivery status notification of ``recipient`` failing with the SMTP ``reply``
    (``550 5.1.1 ...``), to ``envelope_from``, quoting the original's headers."""
    head, _, _ = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    boundary = f"=_dsn_{uuid.uuid4().hex}"
    status = reply.split(" ")[1]
    now = email.utils.format_datetime(datetime.now(UTC))
    lines = [
        f"From: Mail Delivery System <MAILER-DAEMON@{SINK_HOST}>",
        f"To: <{envelope_from}>",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {now}",
        f"Message-ID: <{uuid.uuid4()}@{SINK_HOST}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        f"Your message could not be delivered to <{recipient}>: {reply}",
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        f"Reporting-MTA: dns; {SINK_HOST}",
        f"Arrival-Date: {now}",
        "",
        f"Final-Recipient: rfc822; {recipient}",
        "Action: failed",
        f"Status: {status}",
        f"Diagnostic-Code: smtp; {reply}",
        "",
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "",
        head.decode("ascii", "replace"),
        f"--{boundary}--",
        "",
    ]
    return "\r\n".join(lines).encode()


class _Handler:
    def __init__(
        self,
        store: Store[ReceivedMail],
        rules: FailureRules,
        tried: set[tuple[str, str]],
        bounce: Callable[[bytes, str], Awaitable[None]],
    ) -> None:
        self.store = store
        self.rules = rules
        self.tried = tried
        self.bounce = bounce

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        pair = ((envelope.mail_from or "").lower(), address.lower())
        refusal = self.rules.mail_refusal(address, first_from_sender=pair not in self.tried)
        if len(self.tried) >= GREYLIST_MEMORY:
            self.tried.clear()
        self.tried.add(pair)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        sender = envelope.mail_from or ""
        late = [r for r in envelope.rcpt_tos if self.rules.mail_bounces_later(r)]
        kept = [r for r in envelope.rcpt_tos if r not in late]
        if kept:
            self.store.add(parse_mail(raw, sender, kept))
        for recipient in late if sender and sender != "<>" else ():  # never a bounce of a bounce
            reply = f"550 5.1.1 <{recipient}>: Recipient address rejected: User unknown"
            await self.bounce(notification(raw, sender, recipient, reply), sender)
        return "250 Message accepted for delivery"


def _send(host: str, port: int, to: str, message: bytes) -> None:
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.sendmail("", [to], message)


def _accept_any_credentials(*_: object) -> AuthResult:
    return AuthResult(success=True)


def _not_the_login_data_notice(record: logging.LogRecord) -> bool:
    # aiosmtpd 1.4 warns on every successful AUTH that a field it sets itself is
    # deprecated; nothing a client or this module can change.
    return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_not_the_login_data_notice)


class SmtpSink:
    """The SMTP server on the running event loop (no thread of its own).

    ``port=0`` takes a free port; :attr:`port` is the one bound once started; ``rules``
    say which recipients are refused (see the module's docstring)."""

    def __init__(
        self,
        store: Store[ReceivedMail] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_SMTP_PORT,
        cap: int = DEFAULT_CAP,
        rules: FailureRules | None = None,
        bounce_relay: tuple[str, int] | None = None,
    ) -> None:
        self.store: Store[ReceivedMail] = store if store is not None else Store(cap)
        self.host = host
        self.port = port
        self.rules = rules or FailureRules()
        self.bounce_relay = bounce_relay
        self._tried: set[tuple[str, str]] = set()
        self._bounces: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._connections: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def _protocol(self) -> SMTP:
        smtp = SMTP(
            _Handler(self.store, self.rules, self._tried, self._bounce),
            data_size_limit=MAX_MESSAGE_BYTES,
            enable_SMTPUTF8=True,
            # A fixed name: the default looks up the machine's FQDN, which can take
            # seconds where DNS is slow.
            hostname=SINK_HOST,
            ident="Itinera SMTP sink",
            auth_require_tls=False,
            authenticator=_accept_any_credentials,
            loop=asyncio.get_running_loop(),
        )
        self._connections.add(smtp)
        return smtp

    async def _bounce(self, message: bytes, to: str) -> None:
        """Send a notification to ``to`` after the reply to the original (as a relay
        does, later), through the bounce relay; without one, keep it here."""
        if self.bounce_relay is None:
            self.store.add(parse_mail(message, "", [to]))
            return
        task = asyncio.create_task(self._relay(message, to))
        self._bounces.add(task)
        task.add_done_callback(self._bounces.discard)

    async def _relay(self, message: bytes, to: str) -> None:
        assert self.bounce_relay is not None
        host, port = self.bounce_relay
        for attempt in range(5):  # a mailbox that answers 4xx or is away: again, a little later
            await asyncio.sleep(0.2 * 2**attempt)
            try:
                await asyncio.to_thread(_send, host, port, to, message)
                return
            except (OSError, smtplib.SMTPException) as exc:
                log.warning("a bounce could not be relayed", extra={"to": to, "error": repr(exc)})

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(self._protocol, self.host, self.port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise RuntimeError(f"port {self.port} for the SMTP sink is taken") from exc
            raise
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for task in list(self._bounces):
            task.cancel()
        if self._server is None:
            return
        self._server.close()
        # A client may hold its connection open between messages (a pooled sender):
        # close those too, so stopping does not wait for the client.
        for smtp in list(self._connections):
            if smtp.transport is not None:
                smtp.transport.close()
        await self._server.wait_closed()
        self._server = None
