"""``ITINERA_OTEL_EXPORTER=otlp`` sends a service's spans to the collector named by
``ITINERA_OTEL_ENDPOINT`` (OTLP over HTTP): a request that arrives with a
``traceparent`` yields spans of that trace at the collector."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from itinera.common.auth import mint_token
from itinera.common.devstack import free_port
from itinera.common.settings import CommonSettings
from itinera.common.testing import StackInfo, environment_for


class Collector:
    """An OTLP/HTTP receiver on loopback that keeps the raw export requests."""

    def __init__(self) -> None:
        self.exports: list[bytes] = []
        self.port = free_port()

        async def traces(request: Request) -> Response:
            self.exports.append(await request.body())
            return Response(status_code=200, media_type="application/x-protobuf")

        self.app = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])

    def saw(self, trace_id: str) -> bool:
        wanted = bytes.fromhex(trace_id)  # protobuf carries the trace id as raw bytes
        return any(wanted in export for export in self.exports)


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    found = Collector()
    server = uvicorn.Server(uvicorn.Config(found.app, port=found.port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn exposes a flag, not an event)
        await asyncio.sleep(0.05)
    yield found
    server.should_exit = True
    await task


async def test_spans_of_a_request_reach_the_otlp_collector(
    topics_created: StackInfo, collector: Collector
) -> None:
    port = free_port()
    env = environment_for(
        topics_created,
        ITINERA_OTEL_EXPORTER="otlp",
        ITINERA_OTEL_ENDPOINT=f"http://127.0.0.1:{collector.port}",
        ITINERA_LOG_LEVEL="WARNING",
    )
    server = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "itinera.common.cli", "serve", "ingestion", "--role", "api"),
        *("--port", str(port)),
        env=env,
    )
    trace_id = uuid.uuid4().hex
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(300):
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.2)
            token = mint_token(CommonSettings(), scopes=["catalog:read"])
            response = await http.get(
                "/v1/datasets",
                headers={"authorization": f"Bearer {token}", "traceparent": f"00-{trace_id}-{'ab' * 8}-01"},
            )
            assert response.status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)  # the exporter flushes on shutdown
        await asyncio.wait_for(server.wait(), 60)
    assert collector.saw(trace_id), [len(e) for e in collector.exports]
