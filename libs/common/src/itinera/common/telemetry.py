"""OpenTelemetry set-up and the helpers that carry a trace across Kafka.

HTTP requests are traced by ``web.middleware.RequestContext``; Kafka records carry W3C
``traceparent``/``tracestate`` headers, injected by the producer and extracted by the
consumer loop, so one trace follows an event from the ingest request to its effects.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import Span, SpanKind

from itinera.common.settings import CommonSettings

_configured = False


def configure_tracing(service: str, settings: CommonSettings) -> None:
    """Install a tracer provider once per process; exporter chosen by settings."""
    global _configured
    if _configured:
        return
    _configured = True
    provider = TracerProvider(resource=Resource.create({"service.name": f"itinera-{service}"}))
    if settings.otel_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    elif settings.otel_exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)


def flush_tracing(timeout_ms: int = 5_000) -> None:
    """Export the spans still buffered. Called when a service stops: uvicorn re-raises
    the stopping signal after shutdown, so the SDK's own exit hook never runs."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush(timeout_ms)


def tracer(name: str = "itinera") -> trace.Tracer:
    return trace.get_tracer(name)


def inject_headers() -> dict[str, str]:
    """The current trace context as ``traceparent``/``tracestate`` entries."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def consumer_span(
    name: str, headers: Mapping[str, str], attributes: Mapping[str, str | int]
) -> Iterator[Span]:
    """A CONSUMER span whose parent is the trace carried in the record's headers."""
    parent = propagate.extract(dict(headers))
    token = otel_context.attach(parent)
    try:
        with tracer().start_as_current_span(
            name, kind=SpanKind.CONSUMER, attributes=dict(attributes)
        ) as span:
            yield span
    finally:
        otel_context.detach(token)
