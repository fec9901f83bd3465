"""Delivery status notifications, end to end: every email leaves from a bounce address
of its own; the SMTP sink accepts ``latebounce-...`` and then mails a notification of the
failure back to it, as a relay does when the next hop refuses; the service's bounce
mailbox takes it and the email is reported bounced, its address suppressed. A success
notification reports the email delivered."""

from __future__ import annotations

from typing import Any

import aiosmtplib
import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from itinera.channels.config import ChannelsSettings
from itinera.common.kafka import topics
from itinera.common.sinks import LocalDelivery, ReceivedMail
from itinera.common.sinks.local import BOUNCE_ADDRESS
from itinera.common.testing import StackInfo, eventually, topic_reader

from .conftest import Content, Requests, feedback_of, state, to_mailbox, unsubscribe_by_mail
from .test_bounces import NOTE, address, person


def success_notice(message_id: str, recipient: str) -> bytes:
    return (
        "From: MAILER-DAEMON@relay.example.net\r\n"
        "Subject: Successful Mail Delivery Report\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nDelivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; relay.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{message_id}@mail.example.com>\r\n\r\n"
        "--B--\r\n"
    ).encode()


async def sent_note(
    content: Content, requests: Requests, delivery: LocalDelivery, api: httpx.AsyncClient, to: str
) -> tuple[str, ReceivedMail]:
    """A note to ``to``, sent and received by the SMTP sink: its message id and the email."""
    await content.publish("note", NOTE)
    (message_id,) = await requests.send(requests.body("note", person(to)))
    mail = await delivery.mail.wait_for(lambda m: m.sent_to(to))
    await state(api, message_id, "sent")
    return message_id, mail


async def test_a_bounce_after_the_relay_took_the_email_reports_it_bounced_and_suppresses_the_address(
    topics_created: StackInfo,
    api: httpx.AsyncClient,
    content: Content,
    requests: Requests,
    delivery: LocalDelivery,
) -> None:
    await content.publish("note", NOTE)
    to = address("latebounce-")
    async with topic_reader(topics_created, topics.FEEDBACK.name) as feedback:
        (message_id,) = await requests.send(requests.body("note", person(to)))
        found = await feedback.wait_for(lambda r: len(feedback_of(r, message_id)) >= 2, timeout_s=30)

    sent, bounced = feedback_of(found, message_id)
    assert sent["status"] == "sent"
    assert (bounced["status"], bounced["bounce"]) == ("bounced", "hard")
    assert bounced["reason"].startswith("5.1.1 550 5.1.1")
    message = await state(api, message_id, "sent")
    assert message["deliveryStatus"] == "failed 5.1.1"
    entry = (await api.get(f"/ajo/config/suppression/addresses/{to}")).json()
    assert entry["suppressed"]["type"] == "HARD"
    assert not delivery.mail.find(lambda m: m.sent_to(to))  # the relay did not deliver it


async def test_a_success_notification_reports_the_email_delivered_once(
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
        message_id, mail = await sent_note(content, requests, delivery, api, to)
        notice = success_notice(message_id, to)
        await to_mailbox(channels_settings, mail.envelope_from, notice)
        await to_mailbox(channels_settings, mail.envelope_from, notice)  # a relay's retry
        found = await feedback.wait_for(lambda r: len(feedback_of(r, message_id)) >= 2, timeout_s=30)

    assert mail.envelope_from.startswith("bounces+")
    assert [f["status"] for f in feedback_of(found, message_id)] == ["sent", "delivered"]

    async def reported_once() -> bool:
        async with pool.acquire() as conn:
            count = await conn.fetchval(
                "SELECT count(*) FROM delivery_reports WHERE channel = 'email' AND provider_id = $1",
                message_id,
            )
        return bool(count == 1)

    await eventually(reported_once)
    assert (await state(api, message_id, "sent"))["deliveryStatus"] == "delivered 2.0.0"


@pytest.mark.parametrize("recipient", ["postmaster@itinera.local", "bounces+0123@itinera.local"])
async def test_the_mailbox_takes_nothing_for_another_address(
    channels_settings: ChannelsSettings, recipient: str
) -> None:
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await to_mailbox(channels_settings, recipient, b"Subject: hi\r\n\r\nhello\r\n")


async def test_the_mailbox_takes_and_leaves_what_is_not_a_notification(
    channels_settings: ChannelsSettings, channels_app: Any
) -> None:
    def ignored() -> float:
        return (
            REGISTRY.get_sample_value("itinera_channels_bounce_notifications_total", {"outcome": "ignored"})
            or 0
        )

    before = ignored()

    await to_mailbox(channels_settings, BOUNCE_ADDRESS, b"Subject: Out of office\r\n\r\nAway.\r\n")

    assert ignored() == before + 1


async def test_a_mail_to_the_unsubscribe_mailbox_unsubscribes_the_recipient(
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
        subject = await unsubscribe_by_mail(channels_settings, mail, to)
        assert subject == f"unsubscribe {message_id}"
        found = await feedback.wait_for(
            lambda r: "unsubscribed" in [f["status"] for f in feedback_of(r, message_id)]
        )

    assert [f["status"] for f in feedback_of(found, message_id)] == ["sent", "unsubscribed"]
    entry = (await api.get(f"/ajo/config/suppression/addresses/{to}")).json()
    assert entry["suppressed"]["reason"] == "unsubscribe"
    assert entry["suppressed"]["comment"] == f"mailto unsubscribe from message {message_id}"
