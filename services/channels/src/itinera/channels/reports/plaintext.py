"""Bounces that are not RFC 3464 notifications: the plain-text messages many MTAs (qmail,
older Exchange, some Postfix and Exim set-ups) still mail to the envelope sender.

The bounce address they come to (VERP) already names the email; what is left to learn
is whether the failure is permanent. :func:`classify` looks, in the message's own text
(its ``text/plain`` parts, or its ``text/html`` ones stripped of tags, never a returned
copy of the original), for the codes an MTA quotes, and takes the first it finds, in
this order of trust:

1. an SMTP reply code followed by an enhanced status code: ``550 5.1.1``,
   ``552-5.2.2`` (a line of a multi-line reply), ``#550 5.1.1``;
2. an enhanced status code alone: ``5.1.1``, ``(#5.1.1)`` (qmail), ``4.2.2``, its
   subject one digit (0 to 7: ``4.94.2``, a version number, is none);
3. an SMTP reply code alone, where MTAs put one: at the start of a line, or right after
   a colon or semicolon (``Remote host said: 550 No such user``, ``smtp;550 ...``), but
   not on a ``Subject:`` line (the original's, recalled): ``550`` -> ``5.0.0``.

A 5 is permanent (a hard bounce), a 4 transient (a soft one); with both codes, the
enhanced one tells. Where the text reaches the copy of the original message (a line
such as ``--- Below this line is a copy of the message.``, or the original's
``Received:``/``Return-Path:`` headers), reading stops: the email's own words must not
be taken for the MTA's. Without any code the bounce is unclassified, and nothing is
guessed from its words.

An automatic reply (``Auto-Submitted: auto-replied``, RFC 3834, or ``X-Autoreply``) is no
bounce at all, whatever figures its text holds.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from email.message import Message
from typing import Literal

TEXT_LIMIT = 64 * 1024
"""The characters of text read: bounces say what they have to say at the start."""

_PAIR = re.compile(r"(?<![\w.])(?P<reply>[45][0-5]\d)[ -]#?(?P<status>[45]\.[0-7]\.\d{1,3})(?!\w|\.\d)")
_STATUS = re.compile(r"(?<![\w.#-])#?(?P<status>[45]\.[0-7]\.\d{1,3})(?!\w|\.\d)")
_REPLY = re.compile(r"(?:^|(?<=[:;]))[ \t>#]*(?P<reply>[45][0-5]\d)(?=[ -][^\s\d])", re.MULTILINE)
_ORIGINAL = re.compile(
    r"^(?:\s*-{2,}.*\b(?:copy of (?:the|your) message|original message)\b"
    r"|(?:return-path|received|dkim-signature|arc-seal):)",
    re.IGNORECASE | re.MULTILINE,
)
_TAG = re.compile(r"<[^>]*>")
_LINE_BREAKS = re.compile(r"<\s*(?:br|/p|/div|/tr|/li)\b[^>]*>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TextBounce:
    status: str | None
    """The enhanced status code (``5.1.1``), or ``5.0.0``/``4.0.0`` from a reply code
    alone; ``None``: no code found."""
    diagnostic: str | None
    """The line the code was found on, as the MTA wrote it (spaces collapsed)."""

    @property
    def bounce(self) -> Literal["hard", "soft"] | None:
        if self.status is None:
            return None
        return "hard" if self.status.startswith("5") else "soft"


def is_auto_reply(message: Message) -> bool:
    """Whether it is an automatic reply (out of office, vacation), not a bounce."""
    submitted = str(message.get("Auto-Submitted", "")).strip().lower()
    return submitted.startswith("auto-replied") or message.get("X-Autoreply") is not None


def text_of(message: Message) -> str:
    """The message's own text, up to where it quotes the original: its ``text/plain``
    parts (or, when it has none, its ``text/html`` ones without their tags), not those of
    a message it attaches."""
    plain: list[str] = []
    marked: list[str] = []
    for part in _own_parts(message):
        kind = part.get_content_type()
        if kind == "text/plain":
            plain.append(_decoded(part))
        elif kind == "text/html":
            marked.append(_LINE_BREAKS.sub("\n", _decoded(part)))
    text = "\n".join(plain) if plain else html.unescape(_TAG.sub(" ", "\n".join(marked)))
    text = text.replace("\r\n", "\n")[:TEXT_LIMIT]
    cut = _ORIGINAL.search(text)
    return text[: cut.start()] if cut else text


def classify(message: Message) -> TextBounce:
    """What the bounce's text says of the failure (see the module's docstring)."""
    text = text_of(message)
    pair = _PAIR.search(text)
    if pair is not None:
        return TextBounce(pair["status"], _line(text, pair.start()))
    status = _STATUS.search(text)
    if status is not None:
        return TextBounce(status["status"], _line(text, status.start()))
    for reply in _REPLY.finditer(text):
        line = _line(text, reply.start("reply"))
        if not line.lower().startswith("subject:"):  # the original's subject, recalled
            return TextBounce(f"{reply['reply'][0]}.0.0", line)
    return TextBounce(None, None)


def _own_parts(message: Message) -> list[Message]:
    """The leaf parts of the message, not descending into attached messages."""
    if message.is_multipart():
        if message.get_content_maintype() == "message":
            return []
        found: list[Message] = []
        for part in message.get_payload():
            if isinstance(part, Message):
                found += _own_parts(part)
        return found
    return [message]


def _decoded(part: Message) -> str:
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return raw.decode(charset, "replace")
    except LookupError:  # a charset Python does not know
        return raw.decode("latin-1")


def _line(text: str, at: int) -> str:
    start = text.rfind("\n", 0, at) + 1
    end = text.find("\n", at)
    return " ".join(text[start : end if end >= 0 else len(text)].split())[:300]
