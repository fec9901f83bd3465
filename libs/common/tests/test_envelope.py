"""Specification of the CloudEvents binary-mode envelope (``itinera.common.kafka.envelope``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import orjson
from opentelemetry.sdk.trace import TracerProvider

from itinera.common.errors import FieldError
from itinera.common.kafka.envelope import Envelope, header_map, problems

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def event(**changes: object) -> Envelope:
    fields: dict[str, object] = {
        "type": "com.itinera.test.v1",
        "source": "/itinera/tests",
        "data": {"a": 1},
        "sandbox": "prod",
    }
    fields.update(changes)
    return Envelope(**fields)  # type: ignore[arg-type]


class TestTheHeaders:
    def test_carry_the_cloudevents_attributes_the_content_type_and_the_sandbox(self) -> None:
        envelope = event(id="e-1", time=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC))

        headers = dict(envelope.headers())

        assert headers == {
            "ce_specversion": b"1.0",
            "ce_id": b"e-1",
            "ce_source": b"/itinera/tests",
            "ce_type": b"com.itinera.test.v1",
            "ce_time": b"2024-05-06T07:08:09Z",
            "content-type": b"application/json",
            "itinera_sandbox": b"prod",
        }

    def test_carry_a_fresh_id_and_the_current_time_by_default(self) -> None:
        first, second = dict(event().headers()), dict(event().headers())

        assert first["ce_id"] != second["ce_id"]
        assert RFC3339_UTC.match(first["ce_time"].decode())
        written = datetime.fromisoformat(first["ce_time"].decode().replace("Z", "+00:00"))
        assert abs((datetime.now(UTC) - written).total_seconds()) < 60

    def test_carry_the_trace_context_when_a_span_is_active(self) -> None:
        tracer = TracerProvider(shutdown_on_exit=False).get_tracer("test")
        with tracer.start_as_current_span("request") as span:
            headers = header_map(event().headers())
        context = span.get_span_context()

        version, trace_id, span_id, _flags = headers["traceparent"].split("-")
        assert (version, trace_id, span_id) == ("00", f"{context.trace_id:032x}", f"{context.span_id:016x}")

    def test_carry_no_trace_context_outside_a_span(self) -> None:
        assert "traceparent" not in header_map(event().headers())

    def test_carry_extensions_beside_the_attributes(self) -> None:
        headers = header_map(event(extensions={"itinera_dataset": "ds-1"}).headers())
        assert headers["itinera_dataset"] == "ds-1"
        assert headers["ce_type"] == "com.itinera.test.v1"


class TestTheValue:
    def test_is_the_data_as_json(self) -> None:
        assert orjson.loads(event(data={"x": [1, "two"]}).value()) == {"x": [1, "two"]}

    def test_is_bytes_as_they_are(self) -> None:
        assert event(data=b"\x00raw").value() == b"\x00raw"


class TestHeaderMap:
    def test_decodes_headers_and_replaces_undecodable_bytes(self) -> None:
        assert header_map([("a", b"x"), ("b", b"\xff")]) == {"a": "x", "b": "\ufffd"}

    def test_of_no_headers_is_empty(self) -> None:
        assert header_map(None) == {}


class TestProblems:
    def test_of_a_complete_envelope_are_none(self) -> None:
        assert problems(header_map(event().headers())) == []

    def test_list_every_missing_attribute_with_its_path(self) -> None:
        found = problems({"ce_specversion": "1.0", "ce_type": ""})
        assert found == [
            FieldError("/headers/ce_id", "missing CloudEvents attribute", "required"),
            FieldError("/headers/ce_source", "missing CloudEvents attribute", "required"),
            FieldError("/headers/ce_type", "missing CloudEvents attribute", "required"),
        ]

    def test_refuse_another_spec_version(self) -> None:
        headers = {**header_map(event().headers()), "ce_specversion": "0.3"}
        assert [(p.path, p.code) for p in problems(headers)] == [("/headers/ce_specversion", "specversion")]
