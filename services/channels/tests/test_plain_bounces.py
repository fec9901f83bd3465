"""Plain-text bounces (no RFC 3464 report), as older MTAs mail them to an email's envelope
sender: classified by the SMTP reply and enhanced status codes their text quotes
(``itinera.channels.reports.plaintext``), and, end to end over SMTP to the email's bounce
address, reported as a notification with that status would be; one without a code is
kept unclassified and suppresses nothing. The bodies below are written for these tests
in the manner of each kind of MTA."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from itinera.channels.config import ChannelsSettings
from itinera.channels.reports.dsn import read
from itinera.channels.reports.plaintext import classify, is_auto_reply
from itinera.common.kafka import topics
from itinera.common.sinks import LocalDelivery
from itinera.common.testing import StackInfo, topic_reader

from .conftest import Content, Requests, feedback_of, state, to_mailbox
from .test_bounces import address, soft_bounces_counted
from .test_complaints import listed, outcomes
from .test_notifications import sent_note


def bounce(body: str, *, subject: str = "failure notice", headers: str = "") -> bytes:
    """A plain-text bounce: a few headers and ``body``."""
    return (
        "From: MAILER-DAEMON@mx.example.net\r\n"
        f"Subject: {subject}\r\n"
        "Date: Sun, 29 Nov 2026 10:02:11 +0000\r\n"
        f"{headers}"
        "\r\n" + body.replace("\n", "\r\n")
    ).encode()


QMAIL = """Hi. This is the qmail-send program at mx.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<jane@example.net>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

Return-Path: <bounces+token@mail.example.com>
Received: (qmail 4242 invoked from network); 29 Nov 2026 10:02:10 -0000
Subject: A note

Hello Ada
"""
QMAIL_REMOTE = """Hi. This is the qmail-send program at relay.example.org.
I'm afraid I wasn't able to deliver your message to the following addresses.

<jo@example.org>:
198.51.100.45 does not like recipient.
Remote host said: 550 Requested action not taken: mailbox unavailable
Giving up on 198.51.100.45.
"""
EXCHANGE = """Your message did not reach some or all of the intended recipients.

      Subject:  A note
      Sent:     29/11/2026 10:01

The following recipient(s) cannot be reached:

      jane@example.net on 29/11/2026 10:02
            The e-mail account does not exist at the organization this message was sent to.
            <mx.example.net #550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##>
"""
EXIM_DEFERRED = """This message was created automatically by mail delivery software (Exim 4.96.2).

A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on mx.example.net.

  jo@example.org
    host mx1.example.org [203.0.113.40]: 452-4.2.2 The recipient's mailbox is full
    452 4.2.2 and cannot take this message now.

No action is required on your part. Delivery attempts will continue.
"""
FULL_MAILBOX = """The message to <jo@example.org> was refused:
  mx1.example.org said: 552-5.2.2 Mailbox over quota
"""
NO_CODE = """Your message could not be delivered to one or more recipients.
The mailbox you tried to reach does not seem to exist any more.
"""
CODE_IN_THE_COPY_ONLY = """Delivery to the following recipient failed.

------ This is a copy of the message, including all the headers. ------

Subject: Order 550 5.1.1 shipped
"""
HTML_ONLY = (
    "<html><body><p>Delivery has failed to these recipients:</p><p><b>jane@example.net</b></p>"
    "<p>Remote server returned &#39;550 5.1.1 User unknown&#39;</p></body></html>"
)


WORDS = st.text(alphabet=st.characters(categories=["L", "P", "Zs"], exclude_characters="-:") | st.just("\n"))
"""Text without figures, and without what marks the copy of the original (a line of
dashes, a header's colon)."""
REPLIES = ["421", "450", "451", "452", "550", "551", "552", "553", "554"]


class TestClassifying:
    @pytest.mark.parametrize(
        ("body", "status", "kind"),
        [
            (QMAIL, "5.1.1", "hard"),
            (QMAIL_REMOTE, "5.0.0", "hard"),
            (EXCHANGE, "5.1.1", "hard"),
            (EXIM_DEFERRED, "4.2.2", "soft"),
            (FULL_MAILBOX, "5.2.2", "hard"),
        ],
        ids=["qmail", "qmail quoting the remote host", "exchange", "exim deferral", "a multi-line reply"],
    )
    def test_the_first_code_the_mta_quotes_tells_the_kind(self, body: str, status: str, kind: str) -> None:
        found = classify(read(bounce(body)))

        assert (found.status, found.bounce) == (status, kind)

    def test_the_line_of_the_code_is_kept_as_the_diagnostic(self) -> None:
        assert classify(read(bounce(QMAIL_REMOTE))).diagnostic == (
            "Remote host said: 550 Requested action not taken: mailbox unavailable"
        )

    def test_an_html_bounce_is_read_without_its_markup(self) -> None:
        raw = bounce(HTML_ONLY, headers="Content-Type: text/html; charset=utf-8\r\n")

        found = classify(read(raw))

        assert (found.status, found.diagnostic) == (
            "5.1.1",
            "Remote server returned '550 5.1.1 User unknown'",
        )

    @pytest.mark.parametrize(
        "body",
        [NO_CODE, CODE_IN_THE_COPY_ONLY, "Relayed by Exim 4.96.2 on 192.0.2.45 (build 5.1.12a).\n"],
        ids=["words only", "a code in the returned copy", "version numbers and addresses"],
    )
    def test_without_a_code_of_its_own_it_is_unclassified(self, body: str) -> None:
        found = classify(read(bounce(body)))

        assert (found.status, found.bounce) == (None, None)

    def test_the_original_attached_as_a_message_is_not_read(self) -> None:
        raw = (
            b"From: MAILER-DAEMON@mx.example.net\r\n"
            b'Content-Type: multipart/mixed; boundary="M"\r\n\r\n'
            b"--M\r\nContent-Type: text/plain\r\n\r\nThe message could not be delivered.\r\n"
            b"--M\r\nContent-Type: message/rfc822\r\n\r\n"
            b"Subject: A note\r\n\r\n550 5.1.1 in our own words\r\n"
            b"--M--\r\n"
        )

        assert classify(read(raw)).status is None

    @pytest.mark.parametrize(
        "headers",
        [
            "Auto-Submitted: auto-replied\r\n",
            "Auto-Submitted: auto-replied (vacation)\r\n",
            "X-Autoreply: yes\r\n",
        ],
    )
    def test_an_automatic_reply_is_no_bounce(self, headers: str) -> None:
        assert is_auto_reply(read(bounce("Back on 4.2.22.\n", headers=headers)))

    def test_a_bounce_marked_auto_generated_is_no_automatic_reply(self) -> None:
        assert not is_auto_reply(read(bounce(QMAIL, headers="Auto-Submitted: auto-generated\r\n")))

    @given(before=WORDS, after=WORDS, reply=st.sampled_from(REPLIES), detail=st.integers(0, 999))
    def test_words_never_decide_and_never_hide_a_code(
        self, before: str, after: str, reply: str, detail: int
    ) -> None:
        status = f"{reply[0]}.{detail % 8}.{detail}"

        assert classify(read(bounce(f"{before}\n{after}"))).status is None
        assert classify(read(bounce(f"{before}\n{reply} {status} refused\n{after}"))).status == status


class TestOverSmtp:
    async def test_a_permanent_failure_reports_a_hard_bounce_and_suppresses_the_address(
        self,
        topics_created: StackInfo,
        api: httpx.AsyncClient,
        content: Content,
        requests: Requests,
        delivery: LocalDelivery,
        channels_settings: ChannelsSettings,
    ) -> None:
        to = address("p")
        async with topic_reader(topics_created, topics.FEEDBACK.name) as feedback:
            message_id, mail = await sent_note(content, requests, delivery, api, to)
            await to_mailbox(
                channels_settings, mail.envelope_from, bounce(QMAIL.replace("jane@example.net", to))
            )
            found = await feedback.wait_for(lambda r: len(feedback_of(r, message_id)) >= 2)

        sent, bounced = feedback_of(found, message_id)
        assert sent["status"] == "sent"
        assert (bounced["status"], bounced["bounce"]) == ("bounced", "hard")
        assert bounced["reason"] == "5.1.1 Sorry, no mailbox here by that name. (#5.1.1)"
        assert (await state(api, message_id, "sent"))["deliveryStatus"] == "failed 5.1.1"
        entry = await listed(api, to)
        assert entry is not None
        assert entry["suppressed"]["type"] == "HARD"

    async def test_a_transient_failure_counts_a_soft_bounce(
        self,
        api: httpx.AsyncClient,
        content: Content,
        requests: Requests,
        delivery: LocalDelivery,
        pool: asyncpg.Pool,
        channels_settings: ChannelsSettings,
        sandbox: str,
    ) -> None:
        to = address("p")
        message_id, mail = await sent_note(content, requests, delivery, api, to)

        await to_mailbox(channels_settings, mail.envelope_from, bounce(EXIM_DEFERRED))

        assert (await state(api, message_id, "sent"))["deliveryStatus"] == "failed 4.2.2"
        assert await soft_bounces_counted(pool, sandbox, to) == 1
        assert await listed(api, to) is None

    async def test_a_bounce_without_a_code_is_kept_unclassified_and_suppresses_nothing(
        self,
        topics_created: StackInfo,
        api: httpx.AsyncClient,
        content: Content,
        requests: Requests,
        delivery: LocalDelivery,
        pool: asyncpg.Pool,
        channels_settings: ChannelsSettings,
    ) -> None:
        to = address("p")
        message_id, mail = await sent_note(content, requests, delivery, api, to)
        unclassified, repeated = outcomes("unclassified"), outcomes("repeated")

        await to_mailbox(channels_settings, mail.envelope_from, bounce(NO_CODE))
        await to_mailbox(channels_settings, mail.envelope_from, bounce(NO_CODE))

        assert (outcomes("unclassified"), outcomes("repeated")) == (unclassified + 1, repeated + 1)
        async with pool.acquire() as conn:
            kept = await conn.fetch("SELECT status FROM delivery_reports WHERE provider_id = $1", message_id)
        assert [row["status"] for row in kept] == ["unclassified"]
        assert (await state(api, message_id, "sent"))["deliveryStatus"] is None
        assert await listed(api, to) is None

    async def test_an_automatic_reply_to_the_bounce_address_is_left(
        self,
        api: httpx.AsyncClient,
        content: Content,
        requests: Requests,
        delivery: LocalDelivery,
        channels_settings: ChannelsSettings,
    ) -> None:
        to = address("p")
        _, mail = await sent_note(content, requests, delivery, api, to)
        reply = bounce(
            "I am away until 4.2.22 and will answer then.\n", headers="Auto-Submitted: auto-replied\r\n"
        )

        answer = await to_mailbox(channels_settings, mail.envelope_from, reply)

        assert "automatic reply" in answer
        assert await listed(api, to) is None
