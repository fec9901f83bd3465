"""SMS delivery reports. Every SMS is sent with a ``StatusCallback`` naming the service;
the SMS simulator calls it back as Twilio does (``sent``, then ``delivered``, or
``undelivered`` / ``failed`` with an error code for the numbers its rules say), signed
with the auth token. Each final report becomes feedback of the message once, acts on the
number's suppression, and shows on the message; a callback that is not signed with the
configured token, or is malformed, is refused and changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from itinera.channels.config import ChannelsSettings
from itinera.channels.messages import repository as messages
from itinera.channels.messages.delivery import DeliveryRunner
from itinera.common.kafka import topics
from itinera.common.kafka.consumer import Record
from itinera.common.sinks import LocalDelivery, twilio_signature
from itinera.common.testing import StackInfo, client_for, topic_reader

from .conftest import Content, Requests, feedback_of, state

STATUS = "/v1/providers/sms/status"


def number(prefix: str = "+4420") -> str:
    return f"{prefix}{uuid.uuid4().int % 10**7:07d}"


def sid() -> str:
    return "SM" + uuid.uuid4().hex


def report(message_sid: str, status: str, **more: str) -> dict[str, str]:
    """A callback's fields, as Twilio posts them."""
    return {
        "MessageSid": message_sid,
        "SmsSid": message_sid,
        "AccountSid": "AC00000000000000000000000000000000",
        "MessageStatus": status,
        "SmsStatus": status,
        "To": "+442000000000",
        "From": "+15005550006",
        "ApiVersion": "2010-04-01",
        **more,
    }


def signature(settings: ChannelsSettings, fields: dict[str, str], token: str | None = None) -> str:
    return twilio_signature(
        token if token is not None else settings.channels_sms_token.get_secret_value(),
        settings.sms_status_callback,
        {name: [value] for name, value in fields.items()},
    )


async def post_signed(
    provider: httpx.AsyncClient, settings: ChannelsSettings, fields: dict[str, str]
) -> httpx.Response:
    """The callback, signed with the configured auth token as Twilio signs it."""
    signed = {"X-Twilio-Signature": signature(settings, fields)}
    return await provider.post(STATUS, data=fields, headers=signed)


async def reports_kept(pool: asyncpg.Pool, message_sid: str) -> int:
    async with pool.acquire() as conn:
        found: int = await conn.fetchval(
            "SELECT count(*) FROM delivery_reports WHERE provider_id = $1", message_sid
        )
    return found


def statuses(records: list[Record], message_id: str) -> list[str]:
    return [f["status"] for f in feedback_of(records, message_id)]


@pytest.fixture
async def provider(channels_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client without a bearer token, as Twilio calls."""
    async with client_for(channels_app) as client:
        yield client


@pytest.fixture
async def texting(content: Content) -> None:
    await content.publish("code", {"en": {"text": "Your code is {{context.code}}"}}, channel="sms")


def text(requests: Requests, phone: str) -> dict[str, Any]:
    return requests.body("code", {"mobilePhone": {"number": phone}}, channel="sms", context={"code": "42"})


@pytest.mark.usefixtures("texting")
class TestReportsFromTheProvider:
    async def test_a_delivered_sms_is_reported_delivered(
        self,
        topics_created: StackInfo,
        api: httpx.AsyncClient,
        requests: Requests,
        delivery: LocalDelivery,
        channels_settings: ChannelsSettings,
    ) -> None:
        phone = number()
        async with topic_reader(topics_created, topics.FEEDBACK.name) as feedback:
            (message_id,) = await requests.send(text(requests, phone))
            found = await feedback.wait_for(lambda r: "delivered" in statuses(r, message_id))
        assert statuses(found, message_id) == ["sent", "delivered"]
        sent, delivered = feedback_of(found, message_id)
        assert (delivered["address"], delivered["channel"], delivered["reason"]) == (phone, "sms", None)
        assert delivered["origin"] == sent["origin"]
        shown = await state(api, message_id, "sent")
        assert shown["deliveryStatus"] == "delivered"
        assert shown["deliveryReportedAt"] is not None
        sms = await delivery.sms.wait_for(lambda s: s.to == phone)
        assert sms.status_callback == channels_settings.sms_status_callback
        callbacks = await delivery.sms_reports.wait_count(2, lambda r: r.sid == sms.id)
        assert sorted((r.status, r.answer) for r in callbacks) == [("delivered", 204), ("sent", 204)]

    async def test_undelivered_and_failed_reports_become_bounces_and_failures(
        self, topics_created: StackInfo, api: httpx.AsyncClient, requests: Requests
    ) -> None:
        unreachable, unknown, failing = number("+1555003"), number("+1555004"), number("+1555005")
        async with topic_reader(topics_created, topics.FEEDBACK.name) as feedback:
            ids = await requests.send(*(text(requests, phone) for phone in (unreachable, unknown, failing)))
            found = await feedback.wait_for(lambda r: all(len(feedback_of(r, i)) == 2 for i in ids))
        outcomes = [feedback_of(found, i)[1] for i in ids]
        assert [(f["status"], f["bounce"], f["reason"]) for f in outcomes] == [
            ("bounced", "soft", "undelivered 30003 Unreachable destination handset"),
            ("bounced", "hard", "undelivered 30005 Unknown destination handset"),
            ("failed", None, "failed 30008 Unknown error"),
        ]
        assert [(await state(api, i, "sent"))["deliveryStatus"] for i in ids] == [
            "undelivered",
            "undelivered",
            "failed",
        ]
        # Only the unknown handset is suppressed; the unreachable one's bounce is counted.
        entry = (await api.get(f"/ajo/config/suppression/addresses/{unknown}")).json()
        assert (entry["entity"]["type"], entry["suppressed"]["type"]) == ("phone", "HARD")
        assert entry["bounceState"]["bounceEvents"][-1]["messageId"] == ids[1]
        for phone in (unreachable, failing):
            assert (await api.get(f"/ajo/config/suppression/addresses/{phone}")).status_code == 404

    async def test_a_report_that_overtakes_the_providers_answer_waits_for_it(
        self,
        topics_created: StackInfo,
        api: httpx.AsyncClient,
        provider: httpx.AsyncClient,
        channels_settings: ChannelsSettings,
        pool: asyncpg.Pool,
        sandbox: str,
    ) -> None:
        """Twilio may call back before the worker has recorded its answer (the sid): the
        report waits, and the worker applies it as it records the message sent."""
        message_sid, message_id, phone = sid(), uuid.uuid4(), number()
        fields = report(message_sid, "delivered")
        assert (await post_signed(provider, channels_settings, fields)).status_code == 204
        async with pool.acquire() as conn:
            # A message claimed for sending (attempt 0): the provider has answered, the
            # worker has not yet recorded it.
            await messages.insert(
                conn,
                [
                    {
                        "sandbox": sandbox,
                        "message_id": message_id,
                        "profile_id": uuid.uuid4(),
                        "channel": "sms",
                        "category": "transactional",
                        "state": "sending",
                        "address": phone,
                        "content": {"text": "Your code is 42"},
                        "created_at": datetime.now(UTC),
                    }
                ],
            )
            claimed = await messages.one(conn, sandbox, message_id)
        worker = DeliveryRunner(pool, channels_settings)
        async with topic_reader(topics_created, topics.FEEDBACK.name) as feedback:
            try:
                await worker.record(claimed, "sent", provider_id=message_sid)
            finally:
                await worker.stop()
            found = await feedback.wait_for(lambda r: len(feedback_of(r, str(message_id))) == 2)
        assert statuses(found, str(message_id)) == ["sent", "delivered"]
        assert (await state(api, str(message_id), "sent"))["deliveryStatus"] == "delivered"


@pytest.mark.usefixtures("texting")
class TestCallbackChecks:
    async def test_a_repeated_report_publishes_nothing_new(
        self,
        topics_created: StackInfo,
        requests: Requests,
        provider: httpx.AsyncClient,
        channels_settings: ChannelsSettings,
        delivery: LocalDelivery,
    ) -> None:
        async with topic_reader(topics_created, topics.FEEDBACK.name) as feedback:
            phone = number()
            (message_id,) = await requests.send(text(requests, phone))
            await feedback.wait_for(lambda r: "delivered" in statuses(r, message_id))
            sms = await delivery.sms.wait_for(lambda s: s.to == phone)
            fields = report(sms.id, "delivered", To=phone)
            assert (await post_signed(provider, channels_settings, fields)).status_code == 204
            # Feedback leaves in the order it was written: once a later message's has come,
            # a second "delivered" of the first would have come before it.
            (later,) = await requests.send(text(requests, number()))
            found = await feedback.wait_for(lambda r: "delivered" in statuses(r, later))
        assert statuses(found, message_id) == ["sent", "delivered"]

    async def test_an_unsigned_or_forged_callback_is_refused_and_changes_nothing(
        self, provider: httpx.AsyncClient, channels_settings: ChannelsSettings, pool: asyncpg.Pool
    ) -> None:
        message_sid = sid()
        fields = report(message_sid, "undelivered", ErrorCode="30005")
        good = signature(channels_settings, fields)
        attempts = {
            "unsigned": {},
            "another token": {"X-Twilio-Signature": signature(channels_settings, fields, token="guess")},
            "not base64": {"X-Twilio-Signature": "%%%"},
        }
        for why, headers in attempts.items():
            refused = await provider.post(STATUS, data=fields, headers=headers)
            assert refused.status_code == 403, why
            assert refused.headers["content-type"] == "application/problem+json"
        tampered = fields | {"ErrorCode": "30003"}
        refused = await provider.post(STATUS, data=tampered, headers={"X-Twilio-Signature": good})
        assert refused.status_code == 403
        elsewhere = await provider.post(
            STATUS + "?sandbox=other", data=fields, headers={"X-Twilio-Signature": good}
        )
        assert elsewhere.status_code == 403  # the signature covers the URL
        assert await reports_kept(pool, message_sid) == 0

    @pytest.mark.parametrize(
        ("fields", "path"),
        [
            ({"MessageStatus": "delivered"}, "/body/MessageSid"),
            ({"MessageSid": "SM1", "MessageStatus": "vanished"}, "/body/MessageStatus"),
            ({"MessageSid": "SM1"}, "/body/MessageStatus"),
            ({"MessageSid": "SM1", "MessageStatus": "failed", "ErrorCode": "x1"}, "/body/ErrorCode"),
            ({"MessageSid": "SM 1", "MessageStatus": "failed"}, "/body/MessageSid"),
        ],
    )
    async def test_a_malformed_callback_is_a_400_naming_the_field(
        self,
        provider: httpx.AsyncClient,
        channels_settings: ChannelsSettings,
        fields: dict[str, str],
        path: str,
    ) -> None:
        refused = await post_signed(provider, channels_settings, fields)
        assert refused.status_code == 400
        assert [e["path"] for e in refused.json()["errors"]] == [path]

    async def test_a_body_that_is_not_a_form_is_refused(
        self, provider: httpx.AsyncClient, channels_settings: ChannelsSettings
    ) -> None:
        signed = {"X-Twilio-Signature": "x"}
        as_json = await provider.post(STATUS, json=report(sid(), "delivered"), headers=signed)
        assert as_json.status_code == 415
        not_utf8 = await provider.post(
            STATUS,
            content=b"MessageSid=\xff",
            headers={"content-type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"},
        )
        assert not_utf8.status_code == 400
        assert not_utf8.json()["errors"][0]["path"] == "/body"

    async def test_an_interim_status_changes_nothing(
        self, provider: httpx.AsyncClient, channels_settings: ChannelsSettings, pool: asyncpg.Pool
    ) -> None:
        fields = report(sid(), "sent")
        assert (await post_signed(provider, channels_settings, fields)).status_code == 204
        assert await reports_kept(pool, fields["MessageSid"]) == 0
