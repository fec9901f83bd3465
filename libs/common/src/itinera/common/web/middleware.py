"""Pure ASGI middleware: request ids, HTTP metrics and the request's server span, in one
layer (no per-request task overhead).

The span continues the caller's trace (``traceparent``), so what the request publishes
on Kafka carries it on; it is named ``METHOD /route/template`` once routing has chosen
the route. Liveness, readiness and metrics requests are not traced.
"""

from __future__ import annotations

import time
import uuid
from contextvars import ContextVar

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})
_tracer = trace.get_tracer(__name__)  # follows the provider configured later

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="")

REQUESTS = Counter("itinera_http_requests", "HTTP requests served", ["service", "method", "route", "status"])
LATENCY = Histogram(
    "itinera_http_request_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class RequestContext:
    """Gives every request an id (``x-request-id``, kept if the client sent one) and
    counts it by route template, method and status."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")[:128]
                break
        request_id = request_id or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        method = scope["method"]
        template = "unmatched"
        span = None
        if scope["path"] not in UNTRACED:
            carrier = {
                name.decode("latin-1"): value.decode("latin-1")
                for name, value in scope["headers"]
                if name in (b"traceparent", b"tracestate")
            }
            span = _tracer.start_span(method, context=propagate.extract(carrier), kind=SpanKind.SERVER)
        try:
            if span is None:
                await self.app(scope, receive, send_with_id)
            else:
                with trace.use_span(
                    span, end_on_exit=False, record_exception=True, set_status_on_exception=True
                ):
                    await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
            route = scope.get("route")
            template = getattr(route, "path", None) or template
            REQUESTS.labels(self.service, method, template, str(status)).inc()
            LATENCY.labels(self.service, method, template).observe(time.perf_counter() - started)
            if span is not None:
                span.update_name(f"{method} {template}")
                span.set_attributes(
                    {
                        "http.request.method": method,
                        "http.route": template,
                        "http.response.status_code": status,
                    }
                )
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
                span.end()
