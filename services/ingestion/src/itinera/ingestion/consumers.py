"""Kafka input: ``itinera.inbound.v1``, the same messages as the HTTP API, and
``itinera.feedback.v1``, message feedback from the channels (see :mod:`feedback`).

A record names where it goes with the ``itinera_connection`` header (a streaming
connection id) or ``itinera_dataset`` (a dataset id), or, in the AEP shape, with
``header.datasetId``. The sandbox is the ``itinera_sandbox`` header (default: the
configured default sandbox). Transaction ids are derived from the record's position,
so a redelivered record yields the same event id and the same dead letter, and
downstream de-duplication by ``ce_id`` holds.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

import orjson

from itinera.common.errors import FieldError, NotFound
from itinera.common.kafka.consumer import Record
from itinera.ingestion.catalog.service import Catalog, Connection
from itinera.ingestion.collection.service import Ingestor, Submission
from itinera.ingestion.feedback import FeedbackIngestor

_NAMESPACE = uuid.UUID("1f6b3c64-58a1-4c1e-9f57-7d1a0a5b3c21")


def xaction_id(record: Record) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{record.topic}:{record.partition}:{record.offset}"))


class InboundHandler:
    def __init__(self, catalog: Catalog, ingestor: Ingestor, default_sandbox: str) -> None:
        self.catalog = catalog
        self.ingestor = ingestor
        self.default_sandbox = default_sandbox

    async def __call__(self, batch: list[Record]) -> None:
        groups: dict[Connection, list[Submission]] = defaultdict(list)
        for record in batch:
            connection, submission = await self._route(record)
            groups[connection].append(submission)
        for connection, submissions in groups.items():
            await self.ingestor.ingest(connection, submissions, "kafka")

    async def _route(self, record: Record) -> tuple[Connection, Submission]:
        sandbox = record.sandbox or self.default_sandbox
        message: Any = None
        refusal: FieldError | None = None
        if record.value is None or not record.value.strip():
            refusal = FieldError("", "the record has no value", "empty")
        else:
            try:
                message = orjson.loads(record.value)
            except orjson.JSONDecodeError as exc:
                refusal = FieldError("", f"not valid JSON: {exc.msg}", "json")
        connection_id = record.headers.get("itinera_connection")
        dataset_id = record.headers.get("itinera_dataset")
        if connection_id:
            try:
                connection = await self.catalog.connection(connection_id, sandbox)
            except NotFound as exc:
                connection = Connection(sandbox, connection_id, "unknown", "", "kafka")
                refusal = refusal or FieldError("/headers/itinera_connection", exc.detail, "connection")
        else:
            if not dataset_id and isinstance(message, dict):
                header = message.get("header")
                if isinstance(header, dict) and isinstance(header.get("datasetId"), str):
                    dataset_id = header["datasetId"]
            connection = Connection(sandbox, "", "kafka", dataset_id or "", "kafka")
            if not dataset_id:
                refusal = refusal or FieldError(
                    "/headers",
                    "name the destination with the itinera_connection or itinera_dataset header, "
                    "or header.datasetId in the message",
                    "destination",
                )
        return connection, Submission(
            message,
            raw=record.value,
            xaction_id=xaction_id(record),
            refusal=refusal,
            origin_topic=record.topic,
            origin_partition=record.partition,
            origin_offset=record.offset,
            origin_key=record.key,
            trace={k: v for k, v in record.headers.items() if k in ("traceparent", "tracestate")},
        )


class FeedbackHandler:
    """``itinera.feedback.v1``: each record becomes an experience event, published
    before the loop commits the offset; a record that cannot become one is dead-lettered."""

    def __init__(self, ingestor: FeedbackIngestor) -> None:
        self.ingestor = ingestor

    async def __call__(self, batch: list[Record]) -> None:
        await self.ingestor.ingest(batch)
