"""From validated messages to topics: accepted ones onto events/records, refused ones
into the dead-letter store and ``itinera.dlq.v1``.

Accepted messages are published and acknowledged by the broker before the caller
answers, so a 200 means the event is durable in Kafka. Refused messages are written
to the ``dead_letters`` table and the outbox in one transaction: they can be listed
at once (``GET /v1/dlq``) and reach the topic even if the broker is down right now.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from prometheus_client import Counter

from itinera.common.db.outbox import enqueue
from itinera.common.errors import FieldError
from itinera.common.kafka import topics
from itinera.common.kafka.deadletter import DeadLetter, Origin, Reason
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.ingestion.catalog.service import Catalog, Connection
from itinera.ingestion.collection.validation import Accepted, Rejected, validate
from itinera.ingestion.deadletters import repository as dead_letters

EVENT_TYPE = "com.itinera.ingestion.event.v1"
RECORD_TYPE = "com.itinera.ingestion.record.v1"
DEAD_LETTER_TYPE = "com.itinera.deadletter.v1"

MESSAGES = Counter("itinera_ingestion_messages", "Messages handled by ingestion", ["outcome", "channel"])


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one message: its transaction id, and reasons if refused."""

    xaction_id: str
    reasons: tuple[FieldError, ...] = ()
    dataset_id: str | None = None

    @property
    def accepted(self) -> bool:
        return not self.reasons


@dataclass(frozen=True, slots=True)
class Submission:
    """One message to ingest, as parsed (or the raw bytes if it did not parse)."""

    message: Any
    raw: bytes | None = None
    xaction_id: str | None = None
    refusal: FieldError | None = None
    origin_topic: str | None = None
    origin_partition: int | None = None
    origin_offset: int | None = None
    origin_key: str | None = None
    trace: dict[str, str] = field(default_factory=dict)
    """The source record's ``traceparent``/``tracestate``, continued on the output."""


class Ingestor:
    def __init__(self, catalog: Catalog, producer: Producer, pool: asyncpg.Pool, max_depth: int) -> None:
        self.catalog = catalog
        self.producer = producer
        self.pool = pool
        self.max_depth = max_depth

    async def ingest(
        self,
        connection: Connection,
        submissions: Sequence[Submission],
        channel: str,
        *,
        bare_only: bool = False,
    ) -> list[Outcome]:
        """Validate and route every submission; the outcomes are in the same order."""
        outcomes: list[Outcome] = []
        events: list[Envelope] = []
        records: list[Envelope] = []
        refused: list[DeadLetter] = []
        received = datetime.now(UTC)
        if connection.id:
            source = f"/itinera/ingestion/connections/{connection.id}"
            via = {"itinera_connection": connection.id}
        else:
            source = f"/itinera/ingestion/datasets/{connection.dataset_id}"
            via = {}
        # One random prefix per call and the message's position: unique, and far
        # cheaper than a UUID per message on the hot path.
        prefix = uuid.uuid4().hex
        for index, submission in enumerate(submissions):
            xaction_id = submission.xaction_id or f"{prefix}-{index}"
            if submission.refusal is not None:
                result: Accepted | Rejected = Rejected([submission.refusal], None)
            else:
                result = await validate(
                    submission.message, connection, self.catalog, self.max_depth, bare_only
                )
            if isinstance(result, Accepted):
                dataset = result.dataset
                envelope = Envelope(
                    type=EVENT_TYPE if dataset.is_event else RECORD_TYPE,
                    source=source,
                    data=result.entity,
                    sandbox=connection.sandbox,
                    key=result.primary.key if result.primary else None,
                    id=xaction_id,
                    time=received,
                    extensions={
                        "itinera_dataset": dataset.id,
                        "itinera_schema": dataset.schema_id,
                        **via,
                        **_identities_header(result),
                        **submission.trace,
                    },
                )
                (events if dataset.is_event else records).append(envelope)
                outcomes.append(Outcome(xaction_id, dataset_id=dataset.id))
            else:
                refused.append(_dead_letter(xaction_id, connection, submission, result, received))
                outcomes.append(Outcome(xaction_id, tuple(result.reasons), result.dataset_id))
        if refused:
            await self._refuse(refused)
        if events:
            await self.producer.publish(topics.EVENTS.name, events)
        if records:
            await self.producer.publish(topics.RECORDS.name, records)
        accepted = len(events) + len(records)
        if accepted:
            MESSAGES.labels("accepted", channel).inc(accepted)
        if refused:
            MESSAGES.labels("refused", channel).inc(len(refused))
        return outcomes

    async def _refuse(self, letters: list[DeadLetter]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await dead_letters.insert(conn, letters)
            await enqueue(
                conn,
                topics.DLQ.name,
                [
                    Envelope(
                        type=DEAD_LETTER_TYPE,
                        source="/itinera/ingestion",
                        data=letter.model_dump(mode="json", by_alias=True, exclude_none=True),
                        sandbox=letter.sandbox,
                        key=letter.origin.key or letter.origin.connection_id,
                        id=letter.id,
                        extensions={"itinera_dataset": letter.origin.dataset_id or ""},
                    )
                    for letter in letters
                ],
            )


def _identities_header(accepted: Accepted) -> dict[str, str]:
    """Identities found through the schema's identity descriptors live in tenant fields
    that consumers cannot interpret; when there are any, every identity of the record
    travels in ``itinera_identities`` as ``[[namespace, id], ...]`` (primary first)."""
    if not any(not i.path.startswith("/identityMap/") for i in accepted.identities):
        return {}
    ordered = sorted(accepted.identities, key=lambda i: not i.primary)
    return {"itinera_identities": orjson.dumps([[i.namespace, i.id] for i in ordered]).decode()}


def _dead_letter(
    xaction_id: str,
    connection: Connection,
    submission: Submission,
    rejected: Rejected,
    received: datetime,
) -> DeadLetter:
    payload: dict[str, Any]
    if submission.refusal is not None:
        payload = DeadLetter.payload_fields(submission.raw)
    else:
        payload = {"payload": submission.message}
    return DeadLetter(
        id=xaction_id,
        sandbox=connection.sandbox,
        kind="validation",
        received_at=received,
        origin=Origin(
            service="ingestion",
            topic=submission.origin_topic,
            partition=submission.origin_partition,
            offset=submission.origin_offset,
            key=submission.origin_key,
            connection_id=connection.id or None,
            dataset_id=rejected.dataset_id,
        ),
        reasons=[Reason.of(r) for r in rejected.reasons],
        **payload,
    )
