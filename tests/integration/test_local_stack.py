"""``itinera run`` end to end: the command ``make run`` calls starts every service as its
own process, seeds the demo and prints what a newcomer needs; an event sent with the
printed token and connection reaches Kafka over HTTP and over Kafka, one trace follows
it; local delivery (SMTP sink, inbox, SMS and push simulators) answers and the services
are pointed at it; and Ctrl-C stops everything cleanly.

The stack runs on the session's broker and database (``ITINERA_KAFKA_BOOTSTRAP`` /
``ITINERA_DATABASE_URL``, as a platform team would point it at theirs) and on shifted
ports, so a developer's own ``make run`` does not collide with it."""

from __future__ import annotations

import asyncio
import re
import signal
import smtplib
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from itinera.common.kafka import topics
from itinera.common.testing import StackInfo, environment_for, topic_reader

PORT_OFFSET = 20_000
SMTP_PORT = 1025 + PORT_OFFSET
INBOX = f"http://127.0.0.1:{8025 + PORT_OFFSET}"


@dataclass
class RunningStack:
    process: asyncio.subprocess.Process
    output: list[str]
    token: str
    connection: str
    url: str


async def _read_until(process: asyncio.subprocess.Process, marker: str, output: list[str]) -> None:
    assert process.stdout is not None
    while True:
        line = await process.stdout.readline()
        if not line:
            raise RuntimeError("itinera run exited early:\n" + "".join(output))
        output.append(line.decode())
        if marker in output[-1]:
            return


@pytest.fixture(scope="module")
async def stack(topics_created: StackInfo) -> AsyncIterator[RunningStack]:
    env = environment_for(topics_created)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "itinera.common.cli",
        "run",
        "--port-offset",
        str(PORT_OFFSET),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    output: list[str] = []
    try:
        await asyncio.wait_for(_read_until(process, "Stop with Ctrl-C", output), timeout=120)
        text = "".join(output)
        token = re.search(r"export TOKEN=(\S+)", text)
        connection = re.search(r"Demo web events: +dataset \w+, connection (\w+)", text)
        assert token, text
        assert connection, text
        yield RunningStack(process, output, token[1], connection[1], f"http://127.0.0.1:{8001 + PORT_OFFSET}")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            await asyncio.wait_for(process.wait(), timeout=60)


def _children_environments(pid: int) -> list[dict[str, str]] | None:
    """The environment of each child process of ``pid`` (Linux), or None if unknown."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if not children.exists():
        return None
    environments = []
    for child in children.read_text().split():
        raw = Path(f"/proc/{child}/environ").read_bytes().decode(errors="replace")
        environments.append(dict(v.split("=", 1) for v in raw.split("\0") if "=" in v))
    return environments


def event() -> dict[str, object]:
    return {
        "_id": str(uuid.uuid4()),
        "timestamp": "2026-11-28T13:00:00Z",
        "eventType": "commerce.productViews",
        "identityMap": {"Email": [{"id": "ada@example.com", "primary": True}]},
    }


class TestLocalStack:
    async def test_prints_urls_token_and_a_working_curl_command(self, stack: RunningStack) -> None:
        text = "".join(stack.output)
        assert f"ingestion     {stack.url}" in text
        assert f"curl -s -X POST {stack.url}/collection/{stack.connection}" in text
        async with httpx.AsyncClient() as http:
            ready = await http.get(f"{stack.url}/readyz")
        assert ready.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}

    async def test_the_demo_journey_and_campaign_are_live(self, stack: RunningStack) -> None:
        text = "".join(stack.output)
        assert "Demo journey:  'Demo: welcome'" in text
        journeys = f"http://127.0.0.1:{8004 + PORT_OFFSET}"
        headers = {"authorization": f"Bearer {stack.token}"}
        async with httpx.AsyncClient(base_url=journeys, headers=headers) as http:
            listed = (await http.get("/v1/journeys")).json()["items"]
            campaigns = (await http.get("/v1/campaigns")).json()["items"]
        (welcome,) = [j for j in listed if j["name"] == "Demo: welcome"]
        assert welcome["status"] == "live"
        assert [c["status"] for c in campaigns if c["name"] == "Demo: order confirmation"] == ["live"]

    async def test_one_trace_follows_an_event_from_the_http_request_onto_kafka(
        self, stack: RunningStack, infrastructure: StackInfo
    ) -> None:
        trace_id = uuid.uuid4().hex
        traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
        async with topic_reader(infrastructure, topics.EVENTS.name) as reader, httpx.AsyncClient() as http:
            response = await http.post(
                f"{stack.url}/collection/{stack.connection}",
                json=event(),
                headers={"authorization": f"Bearer {stack.token}", "traceparent": traceparent},
            )
            assert response.status_code == 200, response.text
            xaction = response.json()["xactionId"]
            records = await reader.wait_for(lambda rs: any(r.ce_id == xaction for r in rs))
        (record,) = [r for r in records if r.ce_id == xaction]
        assert record.headers["traceparent"].split("-")[1] == trace_id

    async def test_an_event_published_on_the_inbound_topic_is_ingested_by_the_worker(
        self, stack: RunningStack, infrastructure: StackInfo
    ) -> None:
        sent = event()
        trace_id = uuid.uuid4().hex
        producer = AIOKafkaProducer(bootstrap_servers=infrastructure.kafka_bootstrap)
        await producer.start()
        async with topic_reader(infrastructure, topics.EVENTS.name) as reader:
            try:
                await producer.send_and_wait(
                    topics.INBOUND.name,
                    value=orjson.dumps(sent),
                    headers=[
                        ("itinera_connection", stack.connection.encode()),
                        ("traceparent", f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01".encode()),
                    ],
                )
            finally:
                await producer.stop()
            records = await reader.wait_for(
                lambda rs: any(orjson.loads(r.value or b"{}").get("_id") == sent["_id"] for r in rs),
                timeout_s=60,
            )
        (record,) = [r for r in records if orjson.loads(r.value or b"{}").get("_id") == sent["_id"]]
        assert record.headers["traceparent"].split("-")[1] == trace_id

    async def test_mail_sent_to_the_smtp_sink_shows_in_the_inbox_json_api(self, stack: RunningStack) -> None:
        assert f"inbox         {INBOX}" in "".join(stack.output)
        message = EmailMessage()
        message["Subject"] = f"Local stack {uuid.uuid4().hex}"
        message["From"] = "news@itinera.test"
        message["To"] = "ada@example.com"
        message["List-Unsubscribe"] = "<https://itinera.test/u/1>"
        message.set_content("Hello Ada")
        message.add_alternative("<p>Hello Ada</p>", subtype="html")

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", SMTP_PORT, timeout=10) as client:
                client.send_message(message)

        await asyncio.to_thread(send)
        async with httpx.AsyncClient(base_url=INBOX) as http:
            listing = (await http.get("/api/messages", params={"to": "ada@example.com"})).json()
            (shown,) = [m for m in listing["messages"] if m["subject"] == message["Subject"]]
            assert shown["listUnsubscribe"] == "<https://itinera.test/u/1>"
            assert shown["text"] == "Hello Ada\n"
            assert shown["html"] == "<p>Hello Ada</p>\n"
            assert (await http.get("/")).status_code == 200
            sms = await http.post(
                "/2010-04-01/Accounts/AC1/Messages.json",
                data={"To": "+15551230000", "From": "+15557654321", "Body": "hi"},
            )
            assert sms.status_code == 201
            assert (await http.get("/api/sms")).json()["messages"][0]["id"] == sms.json()["sid"]
            push = await http.post("/v1/projects/demo/messages:send", json={"message": {"token": "t-1"}})
            assert push.status_code == 200
            assert (await http.get("/api/push")).json()["messages"][0]["name"] == push.json()["name"]

    async def test_the_services_are_pointed_at_local_delivery(self, stack: RunningStack) -> None:
        environments = await asyncio.to_thread(_children_environments, stack.process.pid)
        if environments is None:
            pytest.skip("this kernel does not list a process's children in /proc")
        assert environments
        for environment in environments:
            assert environment["ITINERA_CHANNELS_SMTP_HOST"] == "127.0.0.1"
            assert environment["ITINERA_CHANNELS_SMTP_PORT"] == str(SMTP_PORT)
            assert environment["ITINERA_CHANNELS_SMS_BASE_URL"] == INBOX
            assert environment["ITINERA_CHANNELS_PUSH_BASE_URL"] == INBOX

    async def test_ctrl_c_stops_every_process_cleanly(self, stack: RunningStack) -> None:
        stack.process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(stack.process.wait(), timeout=60) == 0
        assert stack.process.stdout is not None
        rest = (await stack.process.stdout.read()).decode()
        assert "itinera | stopped" in rest
        async with httpx.AsyncClient() as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(f"{stack.url}/healthz")
            with pytest.raises(httpx.ConnectError):
                await http.get(f"{INBOX}/healthz")
        with pytest.raises(ConnectionRefusedError):
            await asyncio.to_thread(smtplib.SMTP, "127.0.0.1", SMTP_PORT, timeout=10)
