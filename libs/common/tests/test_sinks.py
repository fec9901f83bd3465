"""Specification of local delivery (``itinera.common.sinks``): the SMTP sink keeps what
a real SMTP client sends and the inbox shows it; the SMS and push simulators answer as
Twilio and FCM do, failures included; the stores are bounded; the inbox escapes what it
received. Everything listens on loopback, on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import re
import smtplib
import socket
import uuid
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid, parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from itinera.common.devstack import free_port, port_open
from itinera.common.sinks import FailureRules, LocalDelivery, SmsMessage, Store, smtp, twilio_signature

TWILIO = "/2010-04-01/Accounts/AC0123/Messages.json"
FCM = "/v1/projects/itinera-demo/messages:send"


@pytest.fixture
async def delivery() -> AsyncIterator[LocalDelivery]:
    async with LocalDelivery(smtp_port=0, web_port=0) as started:
        yield started


@pytest.fixture
async def http(delivery: LocalDelivery) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=delivery.web_url) as client:
        yield client


def newsletter(subject: str = "Your November picks", html: str = "<p>Hello <b>Ada</b></p>") -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = "Itinera News <news@itinera.test>"
    message["To"] = "Ada Lovelace <ada@example.com>"
    message["Message-ID"] = make_msgid(domain="itinera.test")
    message["List-Unsubscribe"] = "<https://itinera.test/u/abc>, <mailto:unsub@itinera.test?subject=abc>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["X-Itinera-Message"] = "msg-42"
    message.set_content("Hello Ada\n")
    message.add_alternative(html, subtype="html")
    return message


async def send(delivery: LocalDelivery, message: EmailMessage, to: list[str], login: bool = False) -> None:
    """Sends over a real SMTP connection, from a thread: the sink runs on this loop."""

    def blocking() -> None:
        with smtplib.SMTP(delivery.smtp_host, delivery.smtp_port, timeout=10) as client:
            if login:
                client.login("any-user", "any-password")
            client.send_message(message, from_addr="bounces@itinera.test", to_addrs=to)

    await asyncio.to_thread(blocking)


@dataclass(frozen=True)
class Callback:
    """One request the callback receiver got."""

    id: str
    url: str
    form: dict[str, list[str]]
    signature: str | None


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, Store[Callback]]]:
    """An HTTP server on loopback standing in for the sender's status callback endpoint:
    its URL, and the store of what it received (it answers 204; ``/down`` answers 503)."""
    received: Store[Callback] = Store()

    async def status(request: Request) -> Response:
        form = parse_qs((await request.body()).decode(), keep_blank_values=True)
        received.add(
            Callback(uuid.uuid4().hex, str(request.url), form, request.headers.get("x-twilio-signature"))
        )
        return Response(status_code=503 if request.url.path == "/down" else 204)

    app = Starlette(
        routes=[Route("/status", status, methods=["POST"]), Route("/down", status, methods=["POST"])]
    )
    port = free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "the receiver did not start"
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}", received
    server.should_exit = True
    await serving


def sms(to: str, **fields: str) -> dict[str, str]:
    return {"To": to, "From": "+15557654321", "Body": "Your code is 1234", **fields}


def push(token: str, **message: Any) -> dict[str, Any]:
    return {
        "message": {
            "token": token,
            "notification": {"title": "Back in stock", "body": "The blue one is back"},
            "data": {"sku": "B-42"},
            **message,
        }
    }


class TestTheSmtpSink:
    async def test_a_multipart_message_shows_in_the_json_api_with_its_headers_and_both_bodies(
        self, delivery: LocalDelivery, http: httpx.AsyncClient
    ) -> None:
        message = newsletter(subject="Vos sélections de novembre")
        await send(delivery, message, ["ada@example.com", "audit@itinera.test"])
        received = await delivery.mail.wait_for(lambda m: m.message_id == message["Message-ID"])

        listing = (await http.get("/api/messages", params={"to": "ADA@example.com"})).json()
        assert listing["count"] == 1
        (shown,) = listing["messages"]
        assert shown == (await http.get(f"/api/messages/{received.id}")).json()
        assert shown["subject"] == "Vos sélections de novembre"
        assert shown["from"] == "Itinera News <news@itinera.test>"
        assert shown["to"] == "Ada Lovelace <ada@example.com>"
        assert shown["messageId"] == message["Message-ID"]
        assert shown["listUnsubscribe"] == message["List-Unsubscribe"]
        assert shown["listUnsubscribePost"] == "List-Unsubscribe=One-Click"
        assert ["X-Itinera-Message", "msg-42"] in shown["headers"]
        assert shown["envelopeFrom"] == "bounces@itinera.test"
        assert shown["envelopeTo"] == ["ada@example.com", "audit@itinera.test"]
        assert shown["text"] == "Hello Ada\n"
        assert shown["html"] == "<p>Hello <b>Ada</b></p>\n"
        assert shown["size"] == len(message.as_bytes(policy=message.policy.clone(linesep="\r\n")))
        assert datetime.fromisoformat(shown["receivedAt"]).tzinfo is not None

    async def test_to_matches_envelope_recipients_and_to_and_cc_headers_only(
        self, delivery: LocalDelivery, http: httpx.AsyncClient
    ) -> None:
        message = newsletter()
        message["Cc"] = "Charles <charles@example.com>"
        await send(delivery, message, ["ada@example.com", "charles@example.com", "hidden@example.com"])
        await delivery.mail.wait_count(1)
        for address in ("ada@example.com", "charles@example.com", "hidden@example.com"):
            assert (await http.get("/api/messages", params={"to": address})).json()["count"] == 1
        for address in ("nobody@example.com", "news@itinera.test", "example.com"):
            assert (await http.get("/api/messages", params={"to": address})).json()["count"] == 0

    async def test_any_credentials_are_accepted(self, delivery: LocalDelivery) -> None:
        await send(delivery, newsletter(), ["ada@example.com"], login=True)
        assert (await delivery.mail.wait_count(1))[0].envelope_to == ("ada@example.com",)

    async def test_messages_are_listed_newest_first_up_to_the_limit_and_can_be_cleared(
        self, delivery: LocalDelivery, http: httpx.AsyncClient
    ) -> None:
        for n in range(3):
            await send(delivery, newsletter(subject=f"number {n}"), ["ada@example.com"])
        await delivery.mail.wait_count(3)
        listing = (await http.get("/api/messages", params={"limit": 2})).json()
        assert [m["subject"] for m in listing["messages"]] == ["number 2", "number 1"]
        assert listing["stored"] == 3
        assert (await http.delete("/api/messages")).status_code == 204
        assert (await http.get("/api/messages")).json() == {"messages": [], "count": 0, "stored": 0}

    async def test_an_unknown_message_is_a_404_problem(self, http: httpx.AsyncClient) -> None:
        response = await http.get("/api/messages/nope")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


class TestTheSmtpSinkRefusals:
    @pytest.mark.parametrize(
        ("recipient", "code", "enhanced"),
        [("bounce-ada@example.com", 550, b"5.1.1"), ("SoftBounce-ada@example.com", 452, b"4.2.2")],
    )
    async def test_recipients_with_a_failure_prefix_are_refused_every_time(
        self, delivery: LocalDelivery, recipient: str, code: int, enhanced: bytes
    ) -> None:
        for _ in range(2):
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                await send(delivery, newsletter(), [recipient])
            answer = refused.value.recipients[recipient]
            assert answer[0] == code
            assert answer[1].startswith(enhanced)
        assert len(delivery.mail) == 0

    async def test_a_greylisted_recipient_is_refused_once_per_sender_then_accepted(
        self, delivery: LocalDelivery
    ) -> None:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            await send(delivery, newsletter(), ["greylist-ada@example.com"])
        assert refused.value.recipients["greylist-ada@example.com"][0] == 451
        await send(delivery, newsletter(), ["greylist-ada@example.com"])
        assert (await delivery.mail.wait_count(1))[0].envelope_to == ("greylist-ada@example.com",)

    async def test_the_other_recipients_of_a_message_still_get_it(self, delivery: LocalDelivery) -> None:
        await send(delivery, newsletter(), ["ada@example.com", "bounce-charles@example.com"])
        (kept,) = await delivery.mail.wait_count(1)
        assert kept.envelope_to == ("ada@example.com",)

    async def test_a_late_bounce_is_accepted_then_notified_to_the_sender(
        self, delivery: LocalDelivery
    ) -> None:
        await send(delivery, newsletter(), ["latebounce-ada@example.com", "ada@example.com"])

        received = await delivery.mail.wait_count(2)

        (kept,) = [m for m in received if m.envelope_from]
        (notice,) = [m for m in received if not m.envelope_from]  # from the null sender
        assert kept.envelope_to == ("ada@example.com",)  # the late bounce is not delivered
        assert (notice.envelope_from, notice.envelope_to) == ("", (kept.envelope_from,))
        assert notice.subject == "Undelivered Mail Returned to Sender"
        assert (notice.header("Content-Type") or "").startswith(
            "multipart/report; report-type=delivery-status"
        )


class TestTheQuickReader:
    """The sink reads messages with the ``compat32`` parser and decodes them itself; what
    it reads is what the standard library's modern policy reads."""

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        subject=st.text(max_size=120).map(lambda t: " ".join(t.split())),
        name=st.text(max_size=30).map(lambda t: " ".join(t.split())),
        text=st.text(max_size=300),
        html=st.text(max_size=300),
    )
    def test_reads_what_the_modern_policy_reads(self, subject: str, name: str, text: str, html: str) -> None:
        message = EmailMessage()
        message["From"] = Address(display_name=name, addr_spec="shop@example.com")
        message["To"] = "Ada <ada@example.com>, bob@example.com"
        message["Subject"] = subject
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        message.add_attachment(b"\x00data", maintype="application", subtype="octet-stream", filename="a.bin")
        raw = message.as_bytes(policy=email.policy.SMTP)

        quick = smtp._read(raw, "shop@example.com", ["ada@example.com"])
        modern = smtp._read_modern(raw, "shop@example.com", ["ada@example.com"])

        assert (quick.headers, quick.text, quick.html) == (modern.headers, modern.text, modern.html)
        assert (quick.attachments, quick.recipients) == (modern.attachments, modern.recipients)


class TestTheSmsSimulator:
    async def test_answers_201_with_a_twilio_message_resource_and_records_it(
        self, delivery: LocalDelivery, http: httpx.AsyncClient
    ) -> None:
        response = await http.post(TWILIO, data=sms("+15551230001"), auth=("AC0123", "secret"))
        assert response.status_code == 201
        body = response.json()
        assert re.fullmatch(r"SM[0-9a-f]{32}", body["sid"])
        assert body["status"] == "queued"
        assert (body["to"], body["from"], body["body"]) == (
            "+15551230001",
            "+15557654321",
            "Your code is 1234",
        )
        assert parsedate_to_datetime(body["date_created"]).tzinfo is not None
        assert body["account_sid"] == "AC0123"

        recorded = delivery.sms.get(body["sid"])
        assert recorded is not None
        assert (recorded.to, recorded.body, recorded.status) == (
            "+15551230001",
            "Your code is 1234",
            "queued",
        )
        listing = (await http.get("/api/sms", params={"to": "+15551230001"})).json()
        assert [m["id"] for m in listing["messages"]] == [body["sid"]]

    async def test_a_messaging_service_may_stand_in_for_the_sender(self, http: httpx.AsyncClient) -> None:
        fields = {"To": "+15551230002", "MessagingServiceSid": "MG1", "Body": "hi"}
        response = await http.post(TWILIO, data=fields)
        assert response.status_code == 201
        assert response.json()["from"] is None
        assert response.json()["messaging_service_sid"] == "MG1"

    @pytest.mark.parametrize(
        ("to", "status", "code"),
        [("+15550001234", 400, 21211), ("+15550011234", 400, 21610), ("+15550021234", 429, 20429)],
    )
    async def test_numbers_with_a_failure_prefix_get_twilio_errors(
        self, delivery: LocalDelivery, http: httpx.AsyncClient, to: str, status: int, code: int
    ) -> None:
        response = await http.post(TWILIO, data=sms(to))
        assert response.status_code == status
        body = response.json()
        assert (body["code"], body["status"]) == (code, status)
        assert body["message"]
        recorded = await delivery.sms.wait_for(lambda s: s.to == to)
        assert (recorded.status, recorded.error_code) == ("failed", code)

    @pytest.mark.parametrize(
        ("fields", "code"),
        [
            ({"From": "+15557654321", "Body": "hi"}, 21604),
            ({"To": "+15551230003", "Body": "hi"}, 21603),
            ({"To": "+15551230003", "From": "+15557654321"}, 21602),
        ],
    )
    async def test_a_request_missing_a_field_is_refused_and_not_recorded(
        self, delivery: LocalDelivery, http: httpx.AsyncClient, fields: dict[str, str], code: int
    ) -> None:
        response = await http.post(TWILIO, data=fields)
        assert response.status_code == 400
        assert response.json()["code"] == code
        assert len(delivery.sms) == 0

    async def test_the_failure_prefixes_are_configurable(self) -> None:
        rules = FailureRules(sms_invalid_number="+4470", push_unregistered=None)
        async with (
            LocalDelivery(smtp_port=0, web_port=0, rules=rules) as delivery,
            httpx.AsyncClient(base_url=delivery.web_url) as http,
        ):
            assert (await http.post(TWILIO, data=sms("+447000000001"))).json()["code"] == 21211
            assert (await http.post(TWILIO, data=sms("+15550001234"))).status_code == 201
            assert (await http.post(FCM, json=push("fail-1"))).status_code == 200


class TestTheSmsStatusCallbacks:
    async def test_an_accepted_message_is_reported_sent_then_delivered_signed_with_the_auth_token(
        self, delivery: LocalDelivery, http: httpx.AsyncClient, receiver: tuple[str, Store[Callback]]
    ) -> None:
        base, received = receiver
        url = f"{base}/status"
        response = await http.post(
            TWILIO, data=sms("+15551230010", StatusCallback=url), auth=("AC0123", "the-auth-token")
        )
        sid = response.json()["sid"]
        sent, delivered = reversed(await received.wait_count(2))
        assert (sent.form["MessageStatus"], delivered.form["MessageStatus"]) == (["sent"], ["delivered"])
        for callback in (sent, delivered):
            assert callback.form["MessageSid"] == [sid]
            assert callback.form["AccountSid"] == ["AC0123"]
            assert callback.form["To"] == ["+15551230010"]
            assert "ErrorCode" not in callback.form
            assert callback.signature == twilio_signature("the-auth-token", url, callback.form)
        reports = await delivery.sms_reports.wait_count(2, lambda r: r.sid == sid)
        assert sorted((r.status, r.answer) for r in reports) == [("delivered", 204), ("sent", 204)]
        listing = (await http.get("/api/sms-reports", params={"sid": sid})).json()
        assert [m["status"] for m in listing["messages"]] == ["delivered", "sent"]

    @pytest.mark.parametrize(
        ("to", "status", "code"),
        [
            ("+15550031234", "undelivered", "30003"),
            ("+15550041234", "undelivered", "30005"),
            ("+15550051234", "failed", "30008"),
        ],
    )
    async def test_numbers_with_a_failure_prefix_are_accepted_then_reported_failed(
        self,
        http: httpx.AsyncClient,
        receiver: tuple[str, Store[Callback]],
        to: str,
        status: str,
        code: str,
    ) -> None:
        base, received = receiver
        response = await http.post(TWILIO, data=sms(to, StatusCallback=f"{base}/status"))
        assert response.status_code == 201
        final = (await received.wait_count(2))[0]
        assert (final.form["MessageStatus"], final.form["ErrorCode"]) == ([status], [code])

    async def test_a_callback_is_made_once_whatever_it_is_answered(
        self, delivery: LocalDelivery, http: httpx.AsyncClient, receiver: tuple[str, Store[Callback]]
    ) -> None:
        base, received = receiver
        dead = f"http://127.0.0.1:{free_port()}/status"
        down = await http.post(TWILIO, data=sms("+15551230011", StatusCallback=f"{base}/down"))
        unreachable = await http.post(TWILIO, data=sms("+15551230012", StatusCallback=dead))
        answered = await delivery.sms_reports.wait_count(2, lambda r: r.sid == down.json()["sid"])
        assert {r.answer for r in answered} == {503}
        failed = await delivery.sms_reports.wait_count(2, lambda r: r.sid == unreachable.json()["sid"])
        assert {r.answer for r in failed} == {None}
        assert all(r.error for r in failed)
        assert len(received) == 2

    async def test_a_status_callback_that_is_not_a_url_is_refused(
        self, delivery: LocalDelivery, http: httpx.AsyncClient
    ) -> None:
        response = await http.post(TWILIO, data=sms("+15551230013", StatusCallback="not a url"))
        assert response.status_code == 400
        assert response.json()["code"] == 21609
        assert len(delivery.sms) == 0


class TestThePushSimulator:
    async def test_answers_with_the_message_name_and_records_it(
        self, delivery: LocalDelivery, http: httpx.AsyncClient
    ) -> None:
        response = await http.post(FCM, json=push("device-1"), headers={"authorization": "Bearer x"})
        assert response.status_code == 200
        name = response.json()["name"]
        assert re.fullmatch(r"projects/itinera-demo/messages/\w+", name)
        recorded = await delivery.push.wait_for(lambda p: p.token == "device-1")
        assert recorded.name == name
        assert (recorded.title, recorded.body, recorded.data) == (
            "Back in stock",
            "The blue one is back",
            {"sku": "B-42"},
        )
        listing = (await http.get("/api/push", params={"token": "device-1"})).json()
        assert [p["name"] for p in listing["messages"]] == [name]

    async def test_validate_only_answers_a_fake_name_and_is_recorded_as_validated(
        self, delivery: LocalDelivery, http: httpx.AsyncClient
    ) -> None:
        response = await http.post(FCM, json={**push("device-5"), "validate_only": True})
        assert response.json() == {"name": "projects/itinera-demo/messages/fake_message_id"}
        assert (await delivery.push.wait_for(lambda p: p.token == "device-5")).status == "validated"

    async def test_a_token_with_the_failure_prefix_is_unregistered(
        self, delivery: LocalDelivery, http: httpx.AsyncClient
    ) -> None:
        response = await http.post(FCM, json=push("fail-device-2"))
        assert response.status_code == 404
        error = response.json()["error"]
        assert (error["code"], error["status"]) == (404, "NOT_FOUND")
        assert error["details"][0]["errorCode"] == "UNREGISTERED"
        recorded = await delivery.push.wait_for(lambda p: p.token == "fail-device-2")
        assert (recorded.status, recorded.error_code) == ("failed", "UNREGISTERED")

    async def test_a_token_with_the_unavailable_prefix_is_a_transient_error(
        self, http: httpx.AsyncClient
    ) -> None:
        response = await http.post(FCM, json=push("unavailable-device-3"))
        assert response.status_code == 503
        assert response.json()["error"]["status"] == "UNAVAILABLE"

    @pytest.mark.parametrize(
        "payload",
        [
            {"message": {"notification": {"title": "no target"}}},
            {"message": {"token": "a", "topic": "b"}},
            push("device-4", data={"count": 3}),
            {"notMessage": {}},
        ],
    )
    async def test_an_invalid_message_is_an_invalid_argument(
        self, delivery: LocalDelivery, http: httpx.AsyncClient, payload: dict[str, Any]
    ) -> None:
        response = await http.post(FCM, json=payload)
        assert response.status_code == 400
        assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert len(delivery.push) == 0

    async def test_a_body_that_is_not_json_is_an_invalid_argument(self, http: httpx.AsyncClient) -> None:
        response = await http.post(FCM, content=b"token=a")
        assert response.status_code == 400
        assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


def _sms(n: int) -> SmsMessage:
    return SmsMessage(
        id=f"SM{n}",
        account_sid="AC",
        to=f"+1555123{n:04}",
        from_="+15557654321",
        messaging_service_sid=None,
        body="hi",
        media_urls=(),
        status_callback=None,
        status="queued",
        error_code=None,
        received_at=datetime.now(UTC),
    )


class TestTheStores:
    def test_hold_at_most_their_cap_newest_first(self) -> None:
        store: Store[SmsMessage] = Store(cap=3)
        for n in range(5):
            store.add(_sms(n))
        assert [s.id for s in store] == ["SM4", "SM3", "SM2"]
        assert len(store) == 3
        assert store.get("SM1") is None

    async def test_behind_the_api_are_bounded_too(self) -> None:
        async with (
            LocalDelivery(smtp_port=0, web_port=0, cap=2) as delivery,
            httpx.AsyncClient(base_url=delivery.web_url) as http,
        ):
            for n in range(4):
                await http.post(TWILIO, data=sms(f"+1555123{n:04}"))
            listing = (await http.get("/api/sms")).json()
        assert listing["stored"] == 2
        assert [m["to"] for m in listing["messages"]] == ["+15551230003", "+15551230002"]

    async def test_wait_for_returns_once_a_matching_item_arrives(self) -> None:
        store: Store[SmsMessage] = Store()
        waiting = asyncio.create_task(store.wait_for(lambda s: s.id == "SM2"))
        for n in range(3):
            await asyncio.sleep(0)
            store.add(_sms(n))
        assert (await waiting).id == "SM2"

    async def test_wait_for_gives_up_after_its_timeout(self) -> None:
        store: Store[SmsMessage] = Store()
        store.add(_sms(1))
        with pytest.raises(TimeoutError, match="the store holds 1"):
            await store.wait_for(lambda s: s.id == "SM2", timeout_s=0.05)


class TestTheInboxPages:
    async def test_escape_what_was_received(self, delivery: LocalDelivery, http: httpx.AsyncClient) -> None:
        subject = "<script>alert('subject')</script> & more"
        html = '<p onclick="alert(1)">Hi</p><script>alert("body")</script>'
        await send(delivery, newsletter(subject=subject, html=html), ["ada@example.com"])
        received = await delivery.mail.wait_for(lambda m: m.subject == subject)

        index = await http.get("/")
        assert index.status_code == 200
        assert "&lt;script&gt;alert(&#x27;subject&#x27;)&lt;/script&gt; &amp; more" in index.text
        assert "<script" not in index.text
        assert f'href="/messages/{received.id}"' in index.text

        page = await http.get(f"/messages/{received.id}")
        assert page.status_code == 200
        assert "<script" not in page.text
        assert "onclick=" not in page.text.replace("onclick=&quot;", "")
        (frame,) = re.findall(r"<iframe [^>]*>", page.text)
        assert 'sandbox="' in frame
        assert "allow-scripts" not in frame
        assert "allow-same-origin" not in frame
        assert 'srcdoc="&lt;base target=&quot;_blank&quot;&gt;&lt;p onclick=&quot;alert(1)&quot;&gt;' in frame
        assert "<pre>Hello Ada\n</pre>" in page.text
        assert "script-src 'none'" in page.headers["content-security-policy"]

    async def test_list_sms_and_push_requests_too(self, http: httpx.AsyncClient) -> None:
        await http.post(TWILIO, data=sms("+15551230009", Body="<b>code</b> 9"))
        await http.post(FCM, json=push("fail-device-9"))
        index = (await http.get("/")).text
        assert "&lt;b&gt;code&lt;/b&gt; 9" in index
        assert "fail-device-9" in index
        assert "failed (UNREGISTERED)" in index

    async def test_an_unknown_message_page_is_a_404(self, http: httpx.AsyncClient) -> None:
        assert (await http.get("/messages/nope")).status_code == 404


class TestLocalDelivery:
    async def test_its_environment_points_the_channels_service_at_it(self, delivery: LocalDelivery) -> None:
        assert delivery.environment() == {
            "ITINERA_CHANNELS_SMTP_HOST": "127.0.0.1",
            "ITINERA_CHANNELS_SMTP_PORT": str(delivery.smtp_port),
            "ITINERA_CHANNELS_SMS_BASE_URL": delivery.web_url,
            "ITINERA_CHANNELS_PUSH_BASE_URL": delivery.web_url,
        }
        assert delivery.web_url == f"http://127.0.0.1:{delivery.web_port}"

    async def test_stops_both_servers_even_with_a_client_connected(self) -> None:
        delivery = LocalDelivery(smtp_port=0, web_port=0)
        await delivery.start()
        idle = await asyncio.to_thread(smtplib.SMTP, "127.0.0.1", delivery.smtp_port, timeout=10)
        try:
            await asyncio.wait_for(delivery.stop(), timeout=20)
        finally:
            await asyncio.to_thread(idle.close)
        assert not port_open("127.0.0.1", delivery.smtp_port)
        assert not port_open("127.0.0.1", delivery.web_port)

    async def test_a_taken_port_is_refused_and_says_so(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(RuntimeError, match=f"port {port} for the SMTP sink is taken"):
                await LocalDelivery(smtp_port=port, web_port=0).start()
            with pytest.raises(RuntimeError, match=f"port {port} for the local inbox is taken"):
                await LocalDelivery(smtp_port=0, web_port=port).start()
