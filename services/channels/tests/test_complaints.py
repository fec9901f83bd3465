"""Spam complaints: abuse reports (ARF, RFC 5965) that mailbox providers' feedback loops
mail when a recipient marks an email as spam. Read by ``itinera.channels.reports.arf``;
end to end, sent over SMTP to the service's bounce mailbox, an abuse or fraud complaint
suppresses the recipient (reason ``complaint``) and is reported once, as ``complained``
feedback with the report's type as the reason."""

from __future__ import annotations

import email.message
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from itinera.channels.config import ChannelsSettings
from itinera.channels.reports.arf import parse
from itinera.channels.reports.dsn import read
from itinera.common.kafka import topics
from itinera.common.sinks import LocalDelivery
from itinera.common.testing import StackInfo, topic_reader

from .conftest import COMPLAINT_ADDRESS, Content, Requests, feedback_of, to_mailbox, unsubscribe_by_mail
from .test_bounces import address
from .test_notifications import sent_note

MESSAGE = uuid.UUID("0b7e6a52-2f3c-4d1e-9a8b-5c4d3e2f1a00")
FBL = "ExampleMail-FBL/1.0"


def original(message_id: uuid.UUID | None, *, return_path: str | None = None) -> str:
    """The reported email as feedback loops return it: its headers (the recipient's
    address redacted) and its text."""
    lines = [f"Return-Path: <{return_path}>"] if return_path else []
    lines += [
        "Received: from mail.example.com (mail.example.com [192.0.2.25])",
        "\tby mx.example.net with ESMTP id 7F3A2; Sun, 29 Nov 2026 09:14:02 +0000",
        "From: Shop <hello@shop.example>",
        "To: [redacted]@example.net",
        "Subject: A note",
        "Date: Sun, 29 Nov 2026 09:14:01 +0000",
    ]
    if message_id is not None:
        lines.append(f"Message-ID: <{message_id}@mail.example.com>")
    return "\r\n".join(lines) + "\r\n\r\nHello Ada\r\n"


def feedback_report(
    feedback_type: str = "abuse",
    *,
    returned: str = "",
    returned_as: str = "message/rfc822",
    mail_from: str | None = None,
    rcpt_to: tuple[str, ...] = (),
) -> bytes:
    """An abuse report as a feedback loop writes one: a part for people, the report's
    fields, and the reported email (or its headers)."""
    fields = [f"Feedback-Type: {feedback_type}", f"User-Agent: {FBL}", "Version: 1"]
    if mail_from is not None:
        fields.append(f"Original-Mail-From: <{mail_from}>")
    fields += [f"Original-Rcpt-To: <{r}>" for r in rcpt_to]
    fields += ["Arrival-Date: Sun, 29 Nov 2026 09:14:02 +0000", "Source-IP: 192.0.2.25"]
    text = (
        "From: Feedback Loop <fbl@mx.example.net>\r\n"
        f"To: {COMPLAINT_ADDRESS}\r\n"
        "Subject: Complaint about a message from 192.0.2.25\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="FBL-1"\r\n'
        "\r\n"
        "--FBL-1\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
        "A user of example.net marked the attached message as spam.\r\n"
        "--FBL-1\r\n"
        "Content-Type: message/feedback-report\r\n"
        "\r\n" + "\r\n".join(fields) + "\r\n\r\n"
    )
    if returned:
        text += f"--FBL-1\r\nContent-Type: {returned_as}\r\n\r\n{returned}"
    return (text + "--FBL-1--\r\n").encode()


class TestParsing:
    def test_an_abuse_report_names_the_email_by_its_message_id_and_its_envelope_sender(self) -> None:
        raw = feedback_report(
            returned=original(MESSAGE, return_path="bounces+abc@mail.example.com"),
            mail_from="bounces+abc@mail.example.com",
            rcpt_to=("jane@example.net",),
        )

        report = parse(read(raw))

        assert report is not None
        assert (report.feedback_type, report.complaint, report.user_agent) == ("abuse", True, FBL)
        assert report.message_ids == (MESSAGE,)
        assert report.senders == ("bounces+abc@mail.example.com",)
        assert report.recipients == ("jane@example.net",)

    def test_the_returned_headers_alone_name_the_email_too(self) -> None:
        headers = original(MESSAGE).split("\r\n\r\n")[0] + "\r\n\r\n"

        report = parse(read(feedback_report(returned=headers, returned_as="text/rfc822-headers")))

        assert report is not None
        assert report.message_ids == (MESSAGE,)

    @pytest.mark.parametrize(
        ("feedback_type", "complaint"),
        [
            ("abuse", True),
            ("fraud", True),
            ("Abuse", True),
            ("not-spam", False),
            ("virus", False),
            ("other", False),
            ("auth-failure", False),
        ],
    )
    def test_only_abuse_and_fraud_are_complaints(self, feedback_type: str, complaint: bool) -> None:
        report = parse(read(feedback_report(feedback_type)))

        assert report is not None
        assert report.complaint is complaint

    def test_the_report_fields_are_read_when_a_parser_kept_them_as_text(self) -> None:
        message = read(feedback_report(returned=original(MESSAGE)))
        part = next(p for p in message.walk() if p.get_content_type() == "message/feedback-report")
        part.set_payload(
            "Feedback-Type: fraud\r\n"
            "Original-Rcpt-To: <a@example.net>\r\n"
            "Original-Rcpt-To:\r\n <b@example.net>\r\n"
        )

        report = parse(message)

        assert report is not None
        assert (report.feedback_type, report.recipients) == ("fraud", ("a@example.net", "b@example.net"))

    @pytest.mark.parametrize(
        "raw",
        [
            b"Subject: A complaint\r\n\r\nThis is spam!\r\n",
            b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n--B--\r\n',
            feedback_report().replace(b"Feedback-Type: abuse\r\n", b""),
        ],
        ids=["a plain mail", "a delivery status notification", "no feedback type"],
    )
    def test_what_is_no_feedback_report_is_none(self, raw: bytes) -> None:
        assert parse(read(raw)) is None

    def test_a_message_that_is_not_a_report_is_none_whatever_it_holds(self) -> None:
        message = email.message.Message()
        message["Content-Type"] = "message/feedback-report"
        message.set_payload("Feedback-Type: abuse\r\n")

        assert parse(message) is None


def outcomes(name: str) -> float:
    sample = REGISTRY.get_sample_value("itinera_channels_bounce_notifications_total", {"outcome": name})
    return sample or 0.0


async def listed(api: httpx.AsyncClient, to: str) -> dict[str, Any] | None:
    answer = await api.get(f"/ajo/config/suppression/addresses/{to}")
    return answer.json() if answer.status_code == 200 else None


class TestComplaints:
    async def test_an_abuse_report_suppresses_the_recipient_and_is_reported_once(
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
        async with topic_reader(topics_created, topics.FEEDBACK.name) as feedback:
            message_id, _ = await sent_note(content, requests, delivery, api, to)
            report = feedback_report(returned=original(uuid.UUID(message_id)))
            complained, repeated = outcomes("complained"), outcomes("repeated")
            await to_mailbox(channels_settings, COMPLAINT_ADDRESS, report)
            await to_mailbox(channels_settings, COMPLAINT_ADDRESS, report)  # the loop sends it again
            found = await feedback.wait_for(lambda r: len(feedback_of(r, message_id)) >= 2)

        sent, complaint = feedback_of(found, message_id)
        assert sent["status"] == "sent"
        assert (complaint["status"], complaint["reason"], complaint["address"]) == (
            "complained",
            "abuse",
            to,
        )
        entry = await listed(api, to)
        assert entry is not None
        assert (entry["suppressed"]["type"], entry["suppressed"]["reason"]) == ("MANUAL", "complaint")
        assert (
            entry["suppressed"]["comment"] == f"abuse complaint about message {message_id}, reported by {FBL}"
        )
        assert (outcomes("complained"), outcomes("repeated")) == (complained + 1, repeated + 1)
        async with pool.acquire() as conn:
            kept = await conn.fetch("SELECT status FROM delivery_reports WHERE provider_id = $1", message_id)
        assert [row["status"] for row in kept] == ["complaint"]

    async def test_an_unsubscribe_after_a_complaint_leaves_the_complaint_as_the_reason(
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
                channels_settings,
                COMPLAINT_ADDRESS,
                feedback_report(returned=original(uuid.UUID(message_id))),
            )
            await unsubscribe_by_mail(channels_settings, mail, to)
            found = await feedback.wait_for(lambda r: len(feedback_of(r, message_id)) >= 3)

        assert [f["status"] for f in feedback_of(found, message_id)] == ["sent", "complained", "unsubscribed"]
        entry = await listed(api, to)
        assert entry is not None
        assert entry["suppressed"]["reason"] == "complaint"

    async def test_a_report_sent_to_the_emails_bounce_address_names_it_without_a_message_id(
        self,
        api: httpx.AsyncClient,
        content: Content,
        requests: Requests,
        delivery: LocalDelivery,
        channels_settings: ChannelsSettings,
    ) -> None:
        to = address("p")
        _, mail = await sent_note(content, requests, delivery, api, to)
        headers = original(None).split("\r\n\r\n")[0] + "\r\n\r\n"
        report = feedback_report(returned=headers, returned_as="text/rfc822-headers")

        await to_mailbox(channels_settings, mail.envelope_from, report)

        entry = await listed(api, to)
        assert entry is not None
        assert entry["suppressed"]["reason"] == "complaint"

    @pytest.mark.parametrize("where", ["Original-Mail-From", "Return-Path"])
    async def test_the_reported_envelope_sender_names_the_email(
        self,
        api: httpx.AsyncClient,
        content: Content,
        requests: Requests,
        delivery: LocalDelivery,
        channels_settings: ChannelsSettings,
        where: str,
    ) -> None:
        to = address("p")
        _, mail = await sent_note(content, requests, delivery, api, to)
        if where == "Original-Mail-From":
            report = feedback_report("fraud", returned=original(None), mail_from=mail.envelope_from)
        else:
            report = feedback_report("fraud", returned=original(None, return_path=mail.envelope_from))

        await to_mailbox(channels_settings, COMPLAINT_ADDRESS, report)

        entry = await listed(api, to)
        assert entry is not None
        assert entry["suppressed"]["comment"].startswith("fraud complaint about message")

    @pytest.mark.parametrize("feedback_type", ["not-spam", "virus", "other"])
    async def test_a_report_that_is_no_complaint_changes_nothing(
        self,
        api: httpx.AsyncClient,
        content: Content,
        requests: Requests,
        delivery: LocalDelivery,
        channels_settings: ChannelsSettings,
        feedback_type: str,
    ) -> None:
        to = address("p")
        message_id, _ = await sent_note(content, requests, delivery, api, to)
        report = feedback_report(feedback_type, returned=original(uuid.UUID(message_id)))
        ignored = outcomes("ignored")

        answer = await to_mailbox(channels_settings, COMPLAINT_ADDRESS, report)

        assert "nothing done" in answer
        assert outcomes("ignored") == ignored + 1
        assert await listed(api, to) is None

    async def test_the_recipient_named_alone_is_not_taken_at_its_word(
        self,
        api: httpx.AsyncClient,
        content: Content,
        requests: Requests,
        delivery: LocalDelivery,
        channels_settings: ChannelsSettings,
    ) -> None:
        to = address("p")
        await sent_note(content, requests, delivery, api, to)  # an address that did get an email
        report = feedback_report(returned=original(uuid.uuid4()), rcpt_to=(to,))

        answer = await to_mailbox(channels_settings, COMPLAINT_ADDRESS, report)

        assert "no email of ours" in answer
        assert await listed(api, to) is None
