"""CloudEvents 1.0 Kafka protocol binding, binary mode.

The record value is the JSON data; the event attributes travel as ``ce_*`` headers,
with ``content-type``, W3C trace context and ``itinera_sandbox`` beside them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from itinera.common.errors import FieldError
from itinera.common.telemetry import inject_headers

SPEC_VERSION = "1.0"
JSON = "application/json"
SANDBOX_HEADER = "itinera_sandbox"
REQUIRED = ("ce_specversion", "ce_id", "ce_source", "ce_type")

RawHeaders = Sequence[tuple[str, bytes]]


@dataclass(slots=True)
class Envelope:
    """One event on the wire: its attributes, its data and the record key."""

    type: str
    source: str
    data: Any
    sandbox: str
    key: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    extensions: dict[str, str] = field(default_factory=dict)
    """Extra headers such as ``itinera_dataset``. The current trace context is added on
    send unless ``traceparent`` is given here (a record derived from another record
    in a batch keeps its source's trace)."""

    def headers(self, trace: Mapping[str, str] | None = None) -> list[tuple[str, bytes]]:
        """The record headers. ``trace`` is the current trace context when the caller
        has already taken it (one injection for a whole batch)."""
        return [(k, v.encode()) for k, v in self.header_text(trace).items()]

    def header_text(self, trace: Mapping[str, str] | None = None) -> dict[str, str]:
        """The record headers as text (see :meth:`headers`)."""
        return {
            "ce_specversion": SPEC_VERSION,
            "ce_id": self.id,
            "ce_source": self.source,
            "ce_type": self.type,
            "ce_time": self.time.isoformat().replace("+00:00", "Z"),
            "content-type": JSON,
            SANDBOX_HEADER: self.sandbox,
            **(inject_headers() if trace is None else trace),
            **self.extensions,  # an explicit traceparent (the source record's) wins
        }

    def value(self) -> bytes:
        return self.data if isinstance(self.data, bytes) else orjson.dumps(self.data)


def header_map(headers: RawHeaders | None) -> dict[str, str]:
    """Record headers as text; undecodable bytes are replaced, never raised on."""
    return {k: v.decode("utf-8", "replace") for k, v in headers or ()}


def problems(headers: Mapping[str, str]) -> list[FieldError]:
    """What makes the headers fall short of a binary-mode CloudEvent."""
    found = [
        FieldError(f"/headers/{name}", "missing CloudEvents attribute", "required")
        for name in REQUIRED
        if not headers.get(name)
    ]
    if headers.get("ce_specversion", SPEC_VERSION) != SPEC_VERSION:
        found.append(FieldError("/headers/ce_specversion", f"expected {SPEC_VERSION}", "specversion"))
    return found
