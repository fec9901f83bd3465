"""Abuse feedback reports (ARF, RFC 5965): what mailbox providers' feedback loops send
when a recipient marks an email as spam.

A report is a ``multipart/report; report-type=feedback-report``: a part for people, a
``message/feedback-report`` part of fields (``Feedback-Type``, ``User-Agent``,
``Version``, ``Original-Mail-From``, ``Original-Rcpt-To``, ...), and the reported email
as the third part, whole (``message/rfc822``) or its headers only
(``text/rfc822-headers``), often with the recipient's address redacted.

Only ``abuse`` (the recipient called it spam) and ``fraud`` (phishing, forgery) are
complaints. ``not-spam``, ``virus``, ``auth-failure`` (RFC 6591), ``other`` and anything
unknown are read and left: they say nothing about the recipient's wish.

What names the email, for :func:`parse`'s caller to try in this order: the address the
report was sent to when it is an email's own bounce address (VERP, with its MAC); the
``Message-ID`` of the returned original (the message id the email carried); the
``Original-Mail-From`` or the original's ``Return-Path``, when either is an email's
bounce address. ``Original-Rcpt-To`` alone names no email: it is an address, not a
message, feedback loops often redact it, and taking it at its word would let anyone who
can mail the mailbox suppress any address.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from email.message import Message

from itinera.channels.reports import dsn

COMPLAINTS = frozenset({"abuse", "fraud"})
"""The feedback types that are complaints about an email."""


@dataclass(frozen=True, slots=True)
class FeedbackReport:
    feedback_type: str
    """``Feedback-Type``, in lower case (``abuse``, ``fraud``, ``not-spam``, ...)."""
    user_agent: str | None
    """The ``User-Agent`` of the feedback loop that reports (``SomeISP-FBL/2.1``)."""
    message_ids: tuple[uuid.UUID, ...]
    """The ids of the returned original's ``Message-ID`` (``<uuid@domain>``)."""
    senders: tuple[str, ...]
    """The original's envelope sender as reported: ``Original-Mail-From``, then the
    original's ``Return-Path``."""
    recipients: tuple[str, ...]
    """``Original-Rcpt-To``: where the original went, as reported (perhaps redacted)."""

    @property
    def complaint(self) -> bool:
        """Whether it complains about the email (abuse or fraud)."""
        return self.feedback_type in COMPLAINTS


def parse(message: Message) -> FeedbackReport | None:
    """The feedback report ``message`` is; ``None`` when it is none (a delivery status
    notification, a plain message, a report without its ``message/feedback-report``
    part or without a ``Feedback-Type``)."""
    if message.get_content_type() != "multipart/report":
        return None
    if (message.get_param("report-type") or "").lower() != "feedback-report":  # type: ignore[union-attr]
        return None
    fields: dict[str, list[str]] | None = None
    message_ids: list[uuid.UUID] = []
    returned: list[str] = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/feedback-report" and fields is None:
            fields = _report_fields(part)
        elif kind in dsn.ORIGINALS:
            for headers in dsn.original_headers(part):
                found = dsn.message_id_in(headers.get("message-id", ""))
                if found is not None:
                    message_ids.append(found)
                if headers.get("return-path"):
                    returned.append(_bare(headers["return-path"]))
    if fields is None or not fields.get("feedback-type"):
        return None
    senders = [_bare(v) for v in fields.get("original-mail-from", [])] + returned
    return FeedbackReport(
        feedback_type=fields["feedback-type"][0].strip().lower(),
        user_agent=next(iter(fields.get("user-agent", [])), None),
        message_ids=tuple(dict.fromkeys(message_ids)),
        senders=tuple(s for s in dict.fromkeys(senders) if s),
        recipients=tuple(r for r in (_bare(v) for v in fields.get("original-rcpt-to", [])) if r),
    )


def _report_fields(part: Message) -> dict[str, list[str]]:
    """The fields of a ``message/feedback-report`` part, by lower-case name, each with
    every value it was given (``Original-Rcpt-To`` may come several times)."""
    payload = part.get_payload()
    fields: dict[str, list[str]] = {}
    if isinstance(payload, list):  # the parser read the fields as a message's headers
        for inner in payload:
            if isinstance(inner, Message):
                for key, value in inner.items():
                    fields.setdefault(key.lower(), []).append(" ".join(str(value).split()))
        return fields
    return dsn.header_field_values(str(payload))


def _bare(value: str) -> str:
    """``<jane@example.com>`` -> ``jane@example.com``."""
    return value.strip().strip("<>").strip()
