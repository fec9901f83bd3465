"""Custom actions called by journeys, against a real HTTP endpoint on a loopback address
(allowed by the session's ITINERA_JOURNEYS_ACTION_ALLOW_HOSTS): the call renders the
action's templates with the node's inputs, carries an idempotency key, and its response
fields are read downstream; a failing call is tried again, then takes the node's error
branch, or fails the instance when it has none."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from itinera.common.devstack import free_port
from itinera.common.kafka import topics
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.testing import StackInfo, eventually, topic_reader
from itinera.journeys.runtime.actions import RateCaps

HOST = "127.0.0.9"
JOURNEYS = "/v1/journeys"


@dataclass
class Crm:
    """An outside system: records what it is sent; ``/fail`` always answers 500."""

    url: str
    calls: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def crm() -> AsyncIterator[Crm]:
    app = FastAPI()
    port = free_port()
    found = Crm(f"http://{HOST}:{port}")

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def anything(path: str, request: Request) -> Response:
        body = await request.body()
        found.calls.append(
            {"path": path, "query": str(request.query_params), "headers": dict(request.headers), "body": body}
        )
        if path == "fail":
            return Response(status_code=500)
        return Response(
            orjson.dumps({"profile": {"tier": "gold", "points": 1200}}), media_type="application/json"
        )

    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, log_level="error", lifespan="off"))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await eventually(started, timeout_s=10)
    yield found
    server.should_exit = True
    await task


async def action(api: httpx.AsyncClient, url: str, **config: Any) -> str:
    body = {"name": f"crm {uuid.uuid4().hex[:6]}", "method": "POST", "url": url, **config}
    response = await api.post("/v1/actions", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def live(api: httpx.AsyncClient, nodes: list[dict[str, Any]]) -> str:
    created = await api.post(JOURNEYS, json={"name": f"j {uuid.uuid4().hex[:6]}", "nodes": nodes})
    assert created.status_code == 201, created.text
    journey_id = str(created.json()["id"])
    published = await api.post(f"{JOURNEYS}/{journey_id}/versions/1/publish")
    assert published.status_code == 200, published.text
    return journey_id


async def enter(producer: Producer, sandbox: str, profile: str) -> None:
    event = {"_id": str(uuid.uuid4()), "timestamp": datetime.now(UTC).isoformat(), "eventType": "signup"}
    data = {
        "sandbox": sandbox,
        "profileId": profile,
        "event": event,
        "profile": {"personalEmail": {"address": "j@x.io"}},
    }
    await producer.publish(
        topics.PROFILE_EVENTS.name,
        [Envelope(type="com.itinera.profile.event.v1", source="/t", data=data, sandbox=sandbox, key=profile)],
    )


async def ended(api: httpx.AsyncClient, journey_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def done() -> bool:
        items = (await api.get(f"{JOURNEYS}/{journey_id}/instances")).json()["items"]
        if items and items[0]["status"] != "waiting":
            found.update(items[0])
            return True
        return False

    await eventually(done, timeout_s=30)
    history = (await api.get(f"{JOURNEYS}/{journey_id}/instances/{found['instanceId']}")).json()["history"]
    return found | {"history": [(s["kind"], s["nodeId"], s["reason"]) for s in history]}


class TestActionCalls:
    async def test_the_call_renders_its_templates_and_its_answer_is_read_downstream(
        self, api: httpx.AsyncClient, producer: Producer, crm: Crm, infrastructure: StackInfo, sandbox: str
    ) -> None:
        action_id = await action(
            api,
            f"{crm.url}/crm/{{{{email}}}}?source=journey",
            headers={"X-Tenant": "{{tenant}}"},
            body='{"email": {{email}}, "points": {{points}}}',
            auth={"type": "bearer", "token": "s3cret"},
            responseFields=[
                {"name": "tier", "path": "profile.tier"},
                {"name": "points", "path": "profile.points", "type": "integer"},
            ],
        )
        nodes: list[dict[str, Any]] = [
            {"id": "start", "type": "event", "eventType": "signup", "next": "lookup"},
            {
                "id": "lookup",
                "type": "action",
                "actionId": action_id,
                "inputs": {"email": "personalEmail.address", "tenant": '"acme"', "points": "1 + 1"},
                "next": "gold",
            },
            {
                "id": "gold",
                "type": "condition",
                "branches": [
                    {"name": "gold", "condition": '_journey.actions.lookup.tier = "gold"', "next": "hello"}
                ],
            },
            {
                "id": "hello",
                "type": "message",
                "channel": "email",
                "templateId": "gold",
                "context": {"points": "_journey.actions.lookup.points"},
            },
        ]
        journey_id = await live(api, nodes)
        profile = str(uuid.uuid4())
        async with topic_reader(infrastructure, topics.MESSAGES.name) as messages:
            await enter(producer, sandbox, profile)
            found = await messages.wait_for(
                lambda r: any(orjson.loads(x.value or b"")["profileId"] == profile for x in r), timeout_s=30
            )
        message = next(
            orjson.loads(x.value or b"")
            for x in found
            if orjson.loads(x.value or b"")["profileId"] == profile
        )
        assert message["context"] == {"points": 1200}
        (sent,) = crm.calls
        assert sent["path"] == "crm/j@x.io"
        assert sent["query"] == "source=journey"
        assert sent["headers"]["x-tenant"] == "acme"
        assert sent["headers"]["authorization"] == "Bearer s3cret"
        assert sent["headers"]["idempotency-key"]
        assert orjson.loads(sent["body"]) == {"email": "j@x.io", "points": 2}
        instance = await ended(api, journey_id)
        assert ("finished", "lookup", "called") in instance["history"]

    async def test_a_failing_call_is_tried_again_then_takes_the_error_branch_or_fails_the_instance(
        self, api: httpx.AsyncClient, producer: Producer, crm: Crm, sandbox: str
    ) -> None:
        failing = await action(api, f"{crm.url}/fail", retries=1)
        with_branch = await live(
            api,
            [
                {"id": "start", "type": "event", "eventType": "signup", "next": "call"},
                {
                    "id": "call",
                    "type": "action",
                    "actionId": failing,
                    "errorPath": True,
                    "errorNext": "sorry",
                },
                {"id": "sorry", "type": "end"},
            ],
        )
        without = await live(
            api,
            [
                {"id": "start", "type": "event", "eventType": "signup", "next": "call"},
                {"id": "call", "type": "action", "actionId": failing},
            ],
        )
        await enter(producer, sandbox, str(uuid.uuid4()))
        handled = await ended(api, with_branch)
        failed = await ended(api, without)
        assert handled["status"] == "completed"
        assert ("failed", "call", "the endpoint answered 500 (tried 2 times)") in handled["history"]
        assert ("finished", "sorry", "end") in handled["history"]
        assert (failed["status"], failed["endReason"]) == (
            "failed",
            "failed: the endpoint answered 500 (tried 2 times)",
        )
        assert len(crm.calls) == 4  # two calls, each tried twice
        keys = [c["headers"]["idempotency-key"] for c in crm.calls]
        assert len(set(keys)) == 2  # a retry carries its call's key


class TestRateCaps:
    async def test_workers_keep_an_endpoint_s_cap_together(self, pool: asyncpg.Pool) -> None:
        """Two workers each make 15 calls to one endpoint capped at 10 a second: apart
        they would be done at once; together they wait for the cap, the 30 calls taking
        at least what the first 10 (the bucket) and 10 a second after allow, less the one
        call each worker may hold. A slow machine only makes it slower."""
        endpoint = f"https://crm-{uuid.uuid4().hex[:8]}.example.com:443"
        workers = [RateCaps(pool), RateCaps(pool)]

        async def calls(caps: RateCaps) -> None:
            for _ in range(15):
                await caps.wait(endpoint, 10, 1)

        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(calls(w) for w in workers)), timeout=60)
        assert time.monotonic() - started >= (30 - 10 - 2) / 10
