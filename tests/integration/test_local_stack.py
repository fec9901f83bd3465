"""``itinera run`` end to end: the command ``make run`` calls starts every service as its
own process, seeds the demo and prints what a newcomer needs; an event sent with the
printed token and connection reaches Kafka over HTTP and over Kafka, one trace follows
it, and Ctrl-C stops everything cleanly.

The stack runs on the session's broker and database (``ITINERA_KAFKA_BOOTSTRAP`` /
``ITINERA_DATABASE_URL``, as a platform team would point it at theirs) and on shifted
ports, so a developer's own ``make run`` does not collide with it."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from itinera.common.kafka import topics
from itinera.common.testing import StackInfo, environment_for, topic_reader

PORT_OFFSET = 20_000


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

    async def test_ctrl_c_stops_every_process_cleanly(self, stack: RunningStack) -> None:
        stack.process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(stack.process.wait(), timeout=60) == 0
        assert stack.process.stdout is not None
        rest = (await stack.process.stdout.read()).decode()
        assert "itinera | stopped" in rest
        async with httpx.AsyncClient() as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(f"{stack.url}/healthz")
