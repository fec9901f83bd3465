"""Email delivery status notifications (RFC 3464), and the addresses they come back to.

A relay that accepted an email and could not deliver it later (or was asked to confirm
delivery) mails a notification to the email's envelope sender. Every email leaves with
an envelope sender of its own (VERP): ``<local>+<token>@<domain>`` of
``ITINERA_CHANNELS_BOUNCE_ADDRESS``, where the token is the message id and a MAC of it,
so a notification names its message by the address it is sent to, whatever the relay
quotes of the original, and one that was not caused by a message of ours cannot name one.
When the address says nothing (a relay that answers the From instead), the original
``Message-ID`` quoted in the notification names it.

:func:`parse` reads a ``multipart/report; report-type=delivery-status`` message: each
recipient's ``Action`` (``failed``, ``delayed``, ``delivered``, ``relayed``,
``expanded``), ``Status`` (``5.1.1``) and ``Diagnostic-Code``. ``failed`` with a 5.x.x
status is a hard bounce, with a 4.x.x status a soft one; ``delivered`` (and ``relayed``
to a system that gives no further notice) is a delivery; ``delayed`` is not final and
changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from typing import Literal

Outcome = Literal["delivered", "bounced"]

_TOKEN = re.compile(r"(?P<id>[0-9a-f]{32})(?P<mac>[0-9a-f]{16})")
_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_MESSAGE_ID = re.compile(r"<(?P<id>[0-9a-fA-F-]{36})@")
ORIGINALS = frozenset({"message/rfc822", "text/rfc822-headers", "message/rfc822-headers"})
"""The content types of a report's copy of the original message (or of its headers)."""


def _mac(key: bytes, message_id: uuid.UUID) -> str:
    return hmac.new(key, b"dsn|" + message_id.bytes, hashlib.sha256).hexdigest()[:16]


def return_path(bounce_address: str, key: bytes, message_id: uuid.UUID) -> str:
    """The envelope sender of a message: the bounce address with the message's token."""
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+{message_id.hex}{_mac(key, message_id)}@{domain}"


def message_of(address: str, bounce_address: str, key: bytes) -> uuid.UUID | None:
    """The message whose envelope sender ``address`` is; ``None`` for any other address
    (another local part or domain, no token, a token whose MAC does not hold)."""
    local, _, domain = bounce_address.rpartition("@")
    got_local, _, got_domain = address.strip().strip("<>").rpartition("@")
    base, plus, token = got_local.partition("+")
    if not plus or base.lower() != local.lower() or got_domain.lower() != domain.lower():
        return None
    found = _TOKEN.fullmatch(token.lower())
    if found is None:
        return None
    message_id = uuid.UUID(found["id"])
    return message_id if hmac.compare_digest(found["mac"], _mac(key, message_id)) else None


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    recipient: str | None
    """The ``Final-Recipient``'s address (or the ``Original-Recipient``'s)."""
    action: str
    status: str
    diagnostic: str | None

    @property
    def outcome(self) -> Outcome | None:
        """What it says of the message: delivered, bounced, or nothing final yet."""
        if self.action in ("delivered", "relayed", "expanded"):
            return "delivered"
        if self.action == "failed":
            return "bounced"
        return None

    @property
    def bounce(self) -> Literal["hard", "soft"] | None:
        """A failure's kind: hard for a permanent status (5.x.x), soft otherwise."""
        if self.outcome != "bounced":
            return None
        return "hard" if self.status.startswith("5") else "soft"

    @property
    def reason(self) -> str:
        return f"{self.status} {self.diagnostic}" if self.diagnostic else self.status


@dataclass(frozen=True, slots=True)
class Notification:
    recipients: tuple[RecipientStatus, ...]
    message_ids: tuple[uuid.UUID, ...]
    """The ids of the original ``Message-ID`` headers quoted (``<uuid@domain>``)."""


def read(raw: bytes) -> Message:
    """A received message, parsed once for each of the readers here (``compat32``: the
    headers as they came, nothing decoded that is not needed)."""
    return message_from_bytes(raw, policy=policy.compat32)


def parse(raw: bytes | Message) -> Notification | None:
    """The notification in ``raw``; ``None`` when it is not a delivery status
    notification (an auto-reply, a plain-text bounce, anything else)."""
    message = read(raw) if isinstance(raw, bytes) else raw
    if message.get_content_type() != "multipart/report":
        return None
    if (message.get_param("report-type") or "").lower() != "delivery-status":  # type: ignore[union-attr]
        return None
    recipients: list[RecipientStatus] = []
    message_ids: list[uuid.UUID] = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            recipients += _statuses(part)
        elif kind in ORIGINALS:
            message_ids += quoted_ids(part)
    if not recipients:
        return None
    return Notification(tuple(recipients), tuple(dict.fromkeys(message_ids)))


def _statuses(part: Message) -> list[RecipientStatus]:
    """The per-recipient blocks of a ``message/delivery-status`` part (the first block
    is the per-message one)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = [
            {k.lower(): str(v) for k, v in block.items()} for block in payload if isinstance(block, Message)
        ]
    else:  # a parser that kept the part as text
        text = str(payload).replace("\r\n", "\n")
        blocks = [header_fields(chunk) for chunk in re.split(r"\n\s*\n", text) if chunk.strip()]
    found = []
    for block in blocks:
        action = block.get("action", "").strip().lower()
        if not action:
            continue  # the per-message fields
        status = _STATUS.search(block.get("status", ""))
        found.append(
            RecipientStatus(
                recipient=_address(block.get("final-recipient") or block.get("original-recipient")),
                action=action,
                status=status.group(0) if status else ("5.0.0" if action == "failed" else "2.0.0"),
                diagnostic=_diagnostic(block.get("diagnostic-code")),
            )
        )
    return found


def header_fields(text: str) -> dict[str, str]:
    """Header fields written as text (``Name: value``, folded lines joined), by lower-case
    name; a name given twice keeps its last value."""
    return {name: values[-1] for name, values in header_field_values(text).items()}


def header_field_values(text: str) -> dict[str, list[str]]:
    """Header fields written as text, by lower-case name, each with every value it was
    given, in order (folded lines joined)."""
    fields: dict[str, list[str]] = {}
    name = None
    for line in text.replace("\r\n", "\n").split("\n"):
        if line[:1] in (" ", "\t") and name is not None:
            fields[name][-1] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            name = key.strip().lower()
            fields.setdefault(name, []).append(value.strip())
    return fields


def _address(value: str | None) -> str | None:
    """``rfc822; jane@example.com`` -> ``jane@example.com``."""
    if not value:
        return None
    _, _, address = value.partition(";")
    return (address or value).strip().strip("<>") or None


def _diagnostic(value: str | None) -> str | None:
    """``smtp; 550 5.1.1 no such user`` -> ``550 5.1.1 no such user``."""
    if not value:
        return None
    kind, semicolon, text = value.partition(";")
    return " ".join((text if semicolon else kind).split()) or None


def original_headers(part: Message) -> list[dict[str, str]]:
    """The header fields of the original messages a report's part quotes, by lower-case
    name: a ``message/rfc822`` part holds a message, a ``text/rfc822-headers`` one
    its headers as text."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [
            {k.lower(): str(v) for k, v in inner.items()} for inner in payload if isinstance(inner, Message)
        ]
    return [header_fields(str(payload).replace("\r\n", "\n").split("\n\n")[0])]


def message_id_in(value: str) -> uuid.UUID | None:
    """The message id of a ``Message-ID`` these emails carry (``<uuid@domain>``)."""
    match = _MESSAGE_ID.search(value)
    if match is None:
        return None
    try:
        return uuid.UUID(match["id"])
    except ValueError:
        return None


def quoted_ids(part: Message) -> list[uuid.UUID]:
    """The ids of the ``Message-ID`` headers of the originals a report's part quotes."""
    found = (message_id_in(headers.get("message-id", "")) for headers in original_headers(part))
    return [message_id for message_id in found if message_id is not None]
