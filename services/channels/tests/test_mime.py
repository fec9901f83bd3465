"""Emails written directly (:mod:`itinera.channels.providers.mime`) read back as the same
message as the standard library's ``EmailMessage`` build of it: same headers, same
texts, whatever the text (any Unicode, long lines, control characters, text that looks
like MIME), in 7-bit ASCII lines no longer than RFC 5322 allows; and they reach a real
SMTP server as such."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import uuid
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtplib.email import flatten_message
from hypothesis import example, given, settings
from hypothesis import strategies as st

from itinera.channels.config import ChannelsSettings
from itinera.channels.providers import Outgoing, mime
from itinera.channels.providers.email import EmailProvider
from itinera.common.sinks import LocalDelivery

SETTINGS = ChannelsSettings(
    channels_domain="mail.example.com",
    channels_public_url="https://channels.example.com",
    auth_secret="test-secret",
)
HEADERS = ("From", "To", "Reply-To", "Subject", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post")


def outgoing(
    content: dict[str, Any], address: str = "ada@example.com", category: str = "marketing"
) -> Outgoing:
    return Outgoing(
        sandbox="prod",
        message_id=str(uuid.uuid4()),
        profile_id=str(uuid.uuid4()),
        channel="email",
        category=category,
        address=address,
        content=content,
    )


def read(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> dict[str, str | None]:
    """The text and HTML as read, line ends as ``\\n``."""
    found: dict[str, str | None] = {}
    for kind in ("plain", "html"):
        part = message.get_body((kind,))
        found[kind] = part.get_content().replace("\r\n", "\n") if isinstance(part, EmailMessage) else None
    return found


def as_read(text: str) -> str:
    """A part's text as a reader gets it: its lines (as the standard library splits the
    bytes), each ending in ``\\n``."""
    return "".join(line.decode() + "\n" for line in text.encode().splitlines())


def assert_same_message(content: dict[str, Any], category: str = "marketing") -> bytes:
    """The message written directly reads back with the subject and texts as given, the
    other headers as the standard library's build has them, and no defect."""
    provider = EmailProvider(SETTINGS)
    message = outgoing(content, category=category)
    direct = provider.direct(message)
    assert direct is not None
    sender, raw = direct
    ours = read(raw)
    try:
        theirs = read(flatten_message(provider.build(message)))
    except ValueError:
        # The standard library refuses a subject with a line break other than CR and
        # LF (U+2028, U+0085, ...): written directly, it is encoded like any other.
        assert len(str(content.get("subject")).splitlines()) > 1
        plain_subject = dataclasses.replace(message, content={**content, "subject": "x"})
        theirs = read(flatten_message(provider.build(plain_subject)))
    for name in HEADERS:
        if name != "Subject":
            assert ours[name] == theirs[name], name
    assert ours["Subject"] == str(content.get("subject") or "").replace("\r", " ").replace("\n", " ")
    text, html = content.get("text"), content.get("html")
    expected = {"plain": as_read(text) if text else None, "html": as_read(html) if html else None}
    if not text:
        expected["plain"] = None
    assert parts(ours) == expected
    assert ours.get_content_type() == theirs.get_content_type()
    assert sender == theirs["From"].addresses[0].addr_spec
    for part in ours.walk():
        assert not part.defects
    assert raw.isascii()
    assert all(len(line) <= mime.HARD_LINE for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    return raw


TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)
ONE_LINE = TEXT.filter(lambda t: "".join(t.splitlines()) == t)
WORDS = st.lists(
    st.sampled_from(["a", "hello", "Zoé", "x" * 90, "=?utf-8?q?x?=", "日本語", "", " "]), max_size=30
).map(" ".join)


class TestSameMessageAsTheStandardLibrary:
    @settings(max_examples=300, deadline=None)
    @given(subject=st.one_of(TEXT, WORDS), text=st.one_of(TEXT, WORDS), html=st.one_of(TEXT, WORDS))
    @example(subject="Chloé, this week's picks for Lyon", text="Hello", html="<p>Hi é</p>\n" + "x" * 200)
    @example(subject="plain " * 40, text="line\r\nends\rof\nall kinds\n", html="")
    @example(subject=" leading and trailing ", text="trailing space \nand tab\t\n", html="=3D\n.\n.. dots")
    @example(subject="", text="", html="<p>only html</p>")
    @example(subject="x", text="--=_ not a boundary", html="<p>--=_</p>")
    @example(subject="日本語の件名" * 10, text="日本語の本文" * 50, html="<p>日本語</p>")
    def test_any_subject_and_texts(self, subject: str, text: str, html: str) -> None:
        if not text and not html:
            html = "<p></p>"
        assert_same_message({"subject": subject, "text": text, "html": html})

    @settings(max_examples=100, deadline=None)
    @given(
        name=ONE_LINE,
        reply=ONE_LINE,
    )
    @example(name='Shop "the best", Inc.', reply="Zoé")
    def test_any_sender_name(self, name: str, reply: str) -> None:
        assert_same_message(
            {
                "subject": "Hi",
                "text": "t",
                "sender": {"name": name, "address": "news@shop.example.com"},
                "replyTo": {"name": reply, "address": "help@shop.example.com"},
            }
        )

    def test_a_sender_given_as_one_text_and_transactional_mail(self) -> None:
        raw = assert_same_message(
            {"subject": "Receipt", "html": "<p>Paid</p>", "sender": "Café Shop <cafe@shop.example.com>"},
            category="transactional",
        )
        assert b"List-Unsubscribe" not in raw

    def test_list_unsubscribe_keeps_its_urls_as_they_are(self) -> None:
        provider = EmailProvider(SETTINGS)
        message = outgoing({"subject": "Hi", "text": "t"})
        direct = provider.direct(message)
        assert direct is not None
        value = read(direct[1])["List-Unsubscribe"]
        assert value == (
            f"<mailto:unsubscribe@mail.example.com?subject=unsubscribe%20{message.message_id}>, "
            f"<{provider.unsubscribe_url(message)}>"
        )
        assert b"=?" not in direct[1].split(b"List-Unsubscribe:")[1].split(b"List-Unsubscribe-Post")[0]


class TestWhatGoesTheStandardLibrarysWay:
    @pytest.mark.parametrize(
        "address", ['"ada lovelace"@example.com', "zoé@example.com", "ada@[127.0.0.1]", "not an address"]
    )
    def test_addresses_that_are_not_plain_ascii_dot_atoms(self, address: str) -> None:
        assert EmailProvider(SETTINGS).direct(outgoing({"subject": "x", "text": "t"}, address)) is None

    def test_a_sender_without_an_address(self) -> None:
        assert (
            EmailProvider(SETTINGS).direct(outgoing({"subject": "x", "text": "t", "sender": "Nobody:;"}))
            is None
        )

    def test_a_sender_name_with_a_line_break(self) -> None:
        content = {"subject": "x", "text": "t", "sender": {"name": "a\r\nBcc: x@y.z", "address": "a@b.c"}}
        assert EmailProvider(SETTINGS).direct(outgoing(content)) is None

    def test_settings_that_are_not_plain_ascii(self) -> None:
        odd = ChannelsSettings(channels_domain="mail.exämple.com", auth_secret="test-secret")
        assert EmailProvider(odd).direct(outgoing({"subject": "x", "text": "t"})) is None


class TestOverSmtp:
    @pytest.mark.parametrize("address", ["Ada.Lovelace+news@example.com", '"ada lovelace"@example.com'])
    async def test_the_server_receives_the_message_either_way(
        self, delivery: LocalDelivery, address: str
    ) -> None:
        settings = SETTINGS.model_copy(
            update={"channels_smtp_host": delivery.smtp_host, "channels_smtp_port": delivery.smtp_port}
        )
        provider = EmailProvider(settings)
        message = outgoing(
            {
                "subject": "Zoé, «your» picks " + "and more " * 10,
                "text": "Bonjour Zoé\n" + "é" * 300,
                "html": "<p>Bonjour Zoé</p>\n.\n" + "<b>x</b>" * 100,
                "sender": {"name": "Café Shop", "address": "cafe@shop.example.com"},
            },
            address=address,
        )
        try:
            message_id = await provider.send(message)
        finally:
            await provider.connections.close()
        mail = await delivery.mail.wait_for(lambda m: m.message_id == message_id)
        assert mail.subject == "Zoé, «your» picks " + "and more " * 9 + "and more"
        assert mail.text == "Bonjour Zoé\n" + "é" * 300 + "\n"
        assert mail.html == "<p>Bonjour Zoé</p>\n.\n" + "<b>x</b>" * 100 + "\n"
        assert mail.from_ == "Café Shop <cafe@shop.example.com>"
        assert mail.envelope_from == "cafe@shop.example.com"
        assert mail.sent_to(address)
