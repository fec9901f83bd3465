"""Webhooks: the rendered payload posted as JSON to the template's URL, once per message
id, with the template's headers; retried on the answers that say "later", failed on the
others, and never sent to a private or loopback address that is not allowed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from .conftest import Content, Requests, state


@dataclass
class Receiver:
    """A webhook endpoint on loopback that records what it is sent and answers each path
    with the statuses queued for it (then 200)."""

    url: str
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)

    def at(self, path: str) -> list[tuple[dict[str, str], Any]]:
        return [(headers, orjson.loads(body)) for p, headers, body in self.received if p == path]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    app = FastAPI()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        found = Receiver(f"http://127.0.0.1:{sock.getsockname()[1]}")

        @app.post("/{path:path}")
        async def hook(path: str, request: Request) -> Response:
            found.received.append((f"/{path}", dict(request.headers), await request.body()))
            queued = found.answers.get(f"/{path}")
            return Response(status_code=queued.pop(0) if queued else 200)

        server = _Server(uvicorn.Config(app, lifespan="off", log_config=None, access_log=False))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            assert not serving.done(), "the webhook receiver did not start"
            await asyncio.sleep(0.01)
        yield found
        server.should_exit = True
        await serving


def hook_id() -> str:
    return f"hook-{uuid.uuid4().hex[:8]}"


async def test_a_text_payload_keeps_values_with_quotes_valid_json(
    api: httpx.AsyncClient, content: Content, requests: Requests, receiver: Receiver
) -> None:
    template = hook_id()
    await content.publish(
        template,
        {
            "en": {
                "url": receiver.url + "/orders",
                "payload": '{"name": "{{profile.person.name.lastName}}", "count": {{{context.count}}}, '
                '"note": "{{context.note}}"}',
                "headers": {"X-Shop": "{{context.shop}}"},
            }
        },
        channel="webhook",
    )
    profile = {"person": {"name": {"lastName": 'O"Brien \\ <Jr>'}}}
    context = {"count": 3, "note": "two\nlines", "shop": "north"}
    (message_id,) = await requests.send(requests.body(template, profile, channel="webhook", context=context))

    sent = await state(api, message_id, "sent", "failed", "excluded")

    assert sent["state"] == "sent"
    ((headers, payload),) = receiver.at("/orders")
    assert payload == {"name": 'O"Brien \\ <Jr>', "count": 3, "note": "two\nlines"}
    assert headers["idempotency-key"] == message_id
    assert headers["x-shop"] == "north"
    assert headers["content-type"] == "application/json"


async def test_an_object_payload_has_each_text_rendered(
    api: httpx.AsyncClient, content: Content, requests: Requests, receiver: Receiver
) -> None:
    template = hook_id()
    payload = {"customer": {"name": "{{profile.person.name.lastName}}"}, "tags": ["{{context.tag}}", 7]}
    await content.publish(
        template, {"en": {"url": receiver.url + "/crm", "payload": payload}}, channel="webhook"
    )
    profile = {"person": {"name": {"lastName": 'Say "hi"'}}}
    (message_id,) = await requests.send(
        requests.body(template, profile, channel="webhook", context={"tag": "vip"})
    )

    await state(api, message_id, "sent")

    assert [body for _, body in receiver.at("/crm")] == [
        {"customer": {"name": 'Say "hi"'}, "tags": ["vip", 7]}
    ]


async def test_an_answer_meaning_later_is_tried_again_and_a_refusal_fails(
    api: httpx.AsyncClient, content: Content, requests: Requests, receiver: Receiver
) -> None:
    template = hook_id()
    await content.publish(
        template, {"en": {"url": receiver.url + "/{{context.path}}", "payload": "{}"}}, channel="webhook"
    )
    receiver.answers["/busy"] = [503, 429]
    receiver.answers["/gone"] = [410]
    busy, gone = await requests.send(
        requests.body(template, {}, channel="webhook", context={"path": "busy"}),
        requests.body(template, {}, channel="webhook", context={"path": "gone"}),
    )

    sent = await state(api, busy, "sent", "failed")
    failed = await state(api, gone, "sent", "failed")

    assert (sent["state"], sent["attempts"], len(receiver.at("/busy"))) == ("sent", 3, 3)
    assert {headers["idempotency-key"] for headers, _ in receiver.at("/busy")} == {busy}
    assert (failed["state"], failed["attempts"], len(receiver.at("/gone"))) == ("failed", 1, 1)


async def test_a_loopback_address_not_allowed_is_never_called(
    api: httpx.AsyncClient, content: Content, requests: Requests, receiver: Receiver
) -> None:
    # The tests allow 127.0.0.1 by name; "localhost" is the same machine, not allowed.
    template = hook_id()
    elsewhere = receiver.url.replace("127.0.0.1", "localhost") + "/inside"
    await content.publish(template, {"en": {"url": elsewhere, "payload": "{}"}}, channel="webhook")
    (message_id,) = await requests.send(requests.body(template, {}, channel="webhook"))

    failed = await state(api, message_id, "sent", "failed")

    assert failed["state"] == "failed"
    assert failed["attempts"] == 1
    await asyncio.sleep(0.2)  # nothing arrives later either
    assert receiver.received == []


async def test_a_redelivered_request_posts_once(
    api: httpx.AsyncClient, content: Content, requests: Requests, receiver: Receiver
) -> None:
    template = hook_id()
    await content.publish(
        template, {"en": {"url": receiver.url + "/{{context.path}}", "payload": "{}"}}, channel="webhook"
    )
    body = requests.body(template, {}, channel="webhook", context={"path": "once"})
    await requests.send(body)
    await state(api, body["messageId"], "sent")

    # The same message id again, as after a journeys crash; then another request for the
    # same profile (the same partition, so consumed after it).
    after = requests.body(template, {}, channel="webhook", context={"path": "after"})
    await requests.send(body, after)
    await state(api, after["messageId"], "sent")

    assert len(receiver.at("/once")) == 1
    assert len(receiver.at("/after")) == 1
