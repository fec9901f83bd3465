"""A service: its FastAPI app, the resources its lifespan owns, and its workers.

Every service declares one :class:`Service` (found by the ``itinera`` CLI through the
``itinera.services`` entry point group). ``create_app(role)`` builds the app:

- ``api``: HTTP endpoints only;
- ``worker``: Kafka consumers and the outbox relay, plus health, readiness and metrics;
- ``all``: both (local runs and small deployments);
- ``relay``: the outbox relay alone. With ``ITINERA_OUTBOX_RELAY_IN_WORKERS=false`` the
  ``worker`` and ``all`` processes leave publishing the outbox to such a process, so
  the consumers' process spends its core on consuming. (Any number of relays may run:
  one publishes at a time.)

The lifespan builds resources in order (pool and migrations, producer, service state,
workers), yields, and tears them down in reverse.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from itinera.common.auth import Verifier
from itinera.common.db.migrations import migrate
from itinera.common.db.outbox import OutboxRelay
from itinera.common.db.pool import create_pool
from itinera.common.kafka.producer import Producer
from itinera.common.logging import configure_logging
from itinera.common.settings import CommonSettings
from itinera.common.telemetry import configure_tracing, flush_tracing
from itinera.common.web import problems
from itinera.common.web.middleware import RequestContext
from itinera.common.web.responses import Json

log = logging.getLogger(__name__)

Role = Literal["api", "worker", "all", "relay"]


class Worker(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@runtime_checkable
class Stalls(Protocol):
    """A worker that can tell how long it has not come back (a consumer loop)."""

    def stalled_s(self) -> float: ...


@dataclass
class Runtime:
    """What a running service owns; endpoints reach it through ``request.app.state``."""

    service: Service
    settings: CommonSettings
    role: Role
    pool: asyncpg.Pool
    producer: Producer
    workers: list[Worker] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Teardown of what ``setup`` built, run in reverse after the workers stop."""


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    schema: str
    migrations: str
    """Package holding ``NNNN_name.sql`` files."""
    settings: Callable[[], CommonSettings]
    routers: Callable[[], Sequence[APIRouter]]
    setup: Callable[[Runtime], Awaitable[None]] | None = None
    """Builds service state (caches, repositories) before requests are served."""
    workers: Callable[[Runtime], Sequence[Worker]] | None = None
    """Consumers of this service; the outbox relay is added by the runtime."""
    title: str = ""
    description: str = ""
    version: str = "0.1.0"

    def create_app(self, role: Role = "all", settings: CommonSettings | None = None) -> FastAPI:
        settings = settings or self.settings()
        configure_logging(self.name, settings.log_level, settings.log_format)
        configure_tracing(self.name, settings)
        app = FastAPI(
            title=self.title or f"Itinera {self.name}",
            description=self.description,
            version=self.version,
            lifespan=self._lifespan(role, settings),
            # RequestContext makes the request's server span (continuing an incoming
            # traceparent, passed on in Kafka headers, even when no exporter is set):
            # FastAPI's own telemetry would add spans for every dependency too.
            telemetry={"tracing": False, "metrics": False, "logs": False},
        )
        app.state.verifier = Verifier(settings)
        app.state.settings = settings
        problems.install(app)
        app.include_router(_health_router())
        if role in ("api", "all"):
            for router in self.routers():
                app.include_router(router)
        app.add_middleware(RequestContext, service=self.name)
        return app

    def _lifespan(self, role: Role, settings: CommonSettings) -> Callable[[FastAPI], Any]:
        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            pool = await create_pool(settings, self.schema)
            try:
                async with pool.acquire() as conn:
                    await migrate(conn, self.schema, self.migrations)
                producer = Producer(settings, client_id=f"itinera-{self.name}")
                await producer.start()
            except BaseException:
                await pool.close()
                raise
            runtime = Runtime(self, settings, role, pool, producer)
            app.state.runtime = runtime
            started: list[Worker] = []
            try:
                if self.setup is not None:
                    await self.setup(runtime)
                if role == "relay" or (role in ("worker", "all") and settings.outbox_relay_in_workers):
                    runtime.workers.append(
                        OutboxRelay(
                            pool,
                            producer,
                            self.schema,
                            batch_max=settings.outbox_batch_max,
                            poll_interval_s=settings.outbox_poll_interval_ms / 1000,
                        )
                    )
                if role in ("worker", "all") and self.workers is not None:
                    runtime.workers.extend(self.workers(runtime))
                for worker in runtime.workers:
                    await worker.start()
                    started.append(worker)
                # What start-up built lives as long as the process: keep it out of
                # the collector's generations, and collect young objects less often
                # (a request parses thousands of small containers).
                gc.collect()
                gc.freeze()
                gc.set_threshold(20_000, 20, 10)
                log.info("service started", extra={"role": role})
                yield
            finally:
                for stop in [*(w.stop for w in reversed(started)), *reversed(runtime.on_stop)]:
                    try:
                        await stop()
                    except Exception:
                        log.exception("failed to stop cleanly")
                await producer.stop()
                await pool.close()
                await asyncio.to_thread(flush_tracing)
                log.info("service stopped")

        return lifespan


async def runtime_of(request: Request) -> Runtime:
    """A coroutine, not a plain function: FastAPI runs a synchronous dependency in a
    worker thread, a hand-off that costs more than the whole look-up it serves."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    runtime: Runtime = request.app.state.runtime
    async with runtime.pool.acquire() as conn:
        yield conn


Db = Annotated[asyncpg.Connection, Depends(connection)]
CurrentRuntime = Annotated[Runtime, Depends(runtime_of)]


def _health_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get(
        "/healthz",
        summary="Liveness: the process answers and no consumer loop is stuck",
        responses={503: {"description": "a consumer loop has not come back for too long"}},
    )
    async def healthz(request: Request) -> Response:
        runtime: Runtime | None = getattr(request.app.state, "runtime", None)
        if runtime is None:  # still starting
            return Json({"status": "ok"})
        limit = runtime.settings.consumer_stall_limit_s
        stalled = {
            str(getattr(worker, "group", type(worker).__name__)): round(seconds)
            for worker in runtime.workers
            if isinstance(worker, Stalls) and (seconds := worker.stalled_s()) > limit
        }
        if stalled:
            return Json({"status": "stalled", "stalledSeconds": stalled}, status_code=503)
        return Json({"status": "ok"})

    @router.get(
        "/readyz",
        summary="Readiness: the database and the broker are reachable",
        responses={503: {"description": "a dependency is unreachable"}},
    )
    async def readyz(runtime: CurrentRuntime) -> Response:
        checks: dict[str, str] = {}
        try:
            async with runtime.pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1")
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["broker"] = "ok" if await runtime.producer.reachable() else "unreachable"
        ready = all(v == "ok" for v in checks.values())
        return Json(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
