"""The consumer loop: batches, manual commits after processing, retries, dead letters.

How one batch goes:

1. ``getmany`` returns records of the partitions we own (no lock is held around it).
2. Under the processing lock the handler gets the whole batch. If it succeeds, the
   next offsets are committed and we poll again.
3. If it fails, each record is handled on its own, with exponential backoff between
   attempts. A record that still fails after ``max_attempts`` (or at once, if it
   raised :class:`PermanentError`) is published to the dead-letter topic with the
   error attached (its ``attempts`` counts the tries on its own, not the batch try,
   which may have failed because of another record), and the loop moves on: one
   bad record never blocks a partition.
4. On a rebalance the revoke callback waits for the lock, so an in-flight batch is
   finished and committed before the partition moves; records of partitions lost
   meanwhile are dropped unprocessed (their new owner gets them).

Handlers must be idempotent (record what they applied, e.g. the ``ce_id``, in the
same transaction as the effect): delivery is at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from prometheus_client import Counter, Gauge, Histogram

from itinera.common.errors import FieldError, ItineraError
from itinera.common.kafka import topics
from itinera.common.kafka.deadletter import DeadLetter, Origin, Reason
from itinera.common.kafka.envelope import SANDBOX_HEADER, Envelope, header_map
from itinera.common.kafka.producer import Producer
from itinera.common.settings import CommonSettings
from itinera.common.telemetry import consumer_span

log = logging.getLogger(__name__)

RECORDS = Counter(
    "itinera_consumer_records",
    "Records consumed, by outcome (processed, dead_lettered, skipped)",
    ["group", "topic", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "itinera_consumer_handler_seconds",
    "Time spent in the handler per batch",
    ["group", "topic"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECORD_AGE = Histogram(
    "itinera_consumer_record_age_seconds",
    "From a record's timestamp (set by its producer) to the start of its batch's handling: "
    "how stale what the handler sees is",
    ["group", "topic"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
COMMIT_SECONDS = Histogram(
    "itinera_consumer_commit_seconds",
    "Time to commit a batch's offsets (a round trip to the group coordinator)",
    ["group"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
RETRIES = Counter("itinera_consumer_retries", "Handler attempts that failed", ["group", "topic"])
LAG = Gauge("itinera_consumer_lag", "High watermark minus position", ["group", "topic", "partition"])


@dataclass(slots=True)
class Record:
    """One consumed record with its headers decoded."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes | None
    headers: dict[str, str]
    timestamp_ms: int

    @property
    def sandbox(self) -> str | None:
        return self.headers.get(SANDBOX_HEADER)

    @property
    def ce_id(self) -> str | None:
        return self.headers.get("ce_id")

    @property
    def ce_type(self) -> str | None:
        return self.headers.get("ce_type")

    def json(self) -> Any:
        """The value parsed as JSON; raises :class:`PermanentError` if it is not JSON."""
        if self.value is None:
            raise PermanentError([FieldError("", "record has no value", "empty")])
        try:
            return orjson.loads(self.value)
        except orjson.JSONDecodeError as exc:
            raise PermanentError([FieldError("", f"value is not JSON: {exc}", "json")]) from exc


BatchHandler = Callable[[list[Record]], Awaitable[None]]


class PermanentError(Exception):
    """A record that can never succeed: dead-letter it without retrying."""

    def __init__(self, reasons: Sequence[FieldError]) -> None:
        super().__init__("; ".join(f"{r.path}: {r.message}" for r in reasons))
        self.reasons = list(reasons)


def _reasons(exc: BaseException) -> tuple[list[Reason], bool]:
    """The reasons to attach to a dead letter, and whether retrying is pointless."""
    if isinstance(exc, PermanentError):
        return [Reason.of(r) for r in exc.reasons], True
    if isinstance(exc, ItineraError) and exc.status < 500:
        found = [Reason.of(r) for r in exc.errors] or [Reason(message=exc.detail, code=exc.slug)]
        return found, True
    return [Reason(message=f"{type(exc).__name__}: {exc}", code="processing")], False


@dataclass
class ConsumerLoop:
    """Runs ``handler`` over batches of ``topic_names`` in consumer group ``group``."""

    settings: CommonSettings
    group: str
    topic_names: Sequence[str]
    handler: BatchHandler
    dead_letters: Producer
    service: str
    max_attempts: int | None = None
    dlq_topic: str = topics.DLQ.name
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None
    _turn: float = field(default_factory=time.monotonic)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the group has given this member its first assignment."""

    @property
    def attempts(self) -> int:
        return self.max_attempts or self.settings.consumer_max_attempts

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=self.group,
            client_id=f"{self.settings.kafka_client_id}-{self.group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.consumer_batch_max,
            fetch_max_wait_ms=self.settings.consumer_fetch_max_wait_ms,
            isolation_level="read_uncommitted",
        )
        self._consumer.subscribe(list(self.topic_names), listener=_Listener(self))
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"consumer:{self.group}")

    async def stop(self) -> None:
        """Finish the batch in hand, commit it, leave the group; each step waits at most
        ``consumer_stop_timeout_s`` (then the batch is cancelled, uncommitted, and done
        again by whoever takes the partitions)."""
        self._stopping.set()
        limit = self.settings.consumer_stop_timeout_s
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=limit)
            if done:
                await self._task  # its failure, if it failed
            else:
                log.warning(
                    "consumer loop did not stop in time; cancelled",
                    extra={"group": self.group, "waiting_at": _awaiting(self._task)},
                )
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._consumer is not None:
            try:
                await asyncio.wait_for(self._consumer.stop(), limit)
            except TimeoutError:
                log.warning("consumer did not leave its group in time", extra={"group": self.group})

    def stalled_s(self) -> float:
        """Seconds since the loop last came back from the broker or its handler (0 when
        it is not running)."""
        if self._task is None or self._task.done():
            return 0.0
        return time.monotonic() - self._turn

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while not self._stopping.is_set():
            self._turn = time.monotonic()
            try:
                fetched = await consumer.getmany(timeout_ms=500, max_records=self.settings.consumer_batch_max)
            except IllegalStateError:
                await asyncio.sleep(0.1)
                continue
            if not fetched:
                await self._record_lag(consumer)
                continue
            async with self._lock:
                owned = consumer.assignment()
                batch = [_record(msg) for tp, messages in fetched.items() if tp in owned for msg in messages]
                if batch:
                    await self._process(batch)
                    await self._commit(consumer, batch)
            await self._record_lag(consumer)

    async def _process(self, batch: list[Record]) -> None:
        topic = batch[0].topic
        started = time.perf_counter()
        self._observe_age(batch)
        try:
            with consumer_span(
                f"{self.group} process",
                batch[0].headers,
                {"messaging.batch.message_count": len(batch)},
            ):
                await self.handler(batch)
        except Exception as exc:  # a bad record must not stop the loop
            RETRIES.labels(self.group, topic).inc()
            log.warning(
                "batch failed, handling records one by one",
                extra={"group": self.group, "records": len(batch), "error": repr(exc)},
            )
            for record in batch:
                if self._stopping.is_set() and record is not batch[0]:
                    # Shutting down: leave the rest uncommitted for redelivery.
                    del batch[batch.index(record) :]
                    break
                await self._process_one(record)
        else:
            RECORDS.labels(self.group, topic, "processed").inc(len(batch))
        finally:
            HANDLER_SECONDS.labels(self.group, topic).observe(time.perf_counter() - started)

    def _observe_age(self, batch: list[Record]) -> None:
        now_ms = time.time() * 1000
        ages: dict[str, Any] = {}
        for record in batch:
            if record.timestamp_ms > 0:
                if record.topic not in ages:
                    ages[record.topic] = RECORD_AGE.labels(self.group, record.topic)
                ages[record.topic].observe(max(0.0, now_ms - record.timestamp_ms) / 1000)

    async def _process_one(self, record: Record) -> None:
        delay = self.settings.consumer_backoff_initial_ms / 1000
        for attempt in range(1, self.attempts + 1):
            try:
                with consumer_span(
                    f"{record.topic} process",
                    record.headers,
                    {
                        "messaging.kafka.offset": record.offset,
                        "messaging.kafka.partition": record.partition,
                    },
                ):
                    await self.handler([record])
            except Exception as exc:
                reasons, permanent = _reasons(exc)
                RETRIES.labels(self.group, record.topic).inc()
                if permanent or attempt == self.attempts:
                    await self._dead_letter(record, reasons, attempt)
                    return
                log.info(
                    "record failed, retrying",
                    extra={
                        "group": self.group,
                        "offset": record.offset,
                        "attempt": attempt,
                        "error": repr(exc),
                    },
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.consumer_backoff_max_ms / 1000)
            else:
                RECORDS.labels(self.group, record.topic, "processed").inc()
                return

    async def _dead_letter(self, record: Record, reasons: list[Reason], attempts: int) -> None:
        letter = DeadLetter(
            id=str(uuid.uuid4()),
            sandbox=record.sandbox or self.settings.default_sandbox,
            kind="processing",
            received_at=datetime.now(UTC),
            origin=Origin(
                service=self.service,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                dataset_id=record.headers.get("itinera_dataset"),
            ),
            reasons=reasons,
            attempts=attempts,
            **DeadLetter.payload_fields(record.value),
        )
        await self.dead_letters.publish(
            self.dlq_topic,
            [
                Envelope(
                    type="com.itinera.deadletter.v1",
                    source=f"/itinera/{self.service}",
                    data=letter.model_dump(mode="json", by_alias=True, exclude_none=True),
                    sandbox=letter.sandbox,
                    key=record.key,
                    id=letter.id,
                )
            ],
        )
        RECORDS.labels(self.group, record.topic, "dead_lettered").inc()
        log.warning(
            "record dead-lettered",
            extra={
                "group": self.group,
                "topic": record.topic,
                "offset": record.offset,
                "reasons": [r.message for r in reasons],
            },
        )

    async def _commit(self, consumer: AIOKafkaConsumer, batch: list[Record]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for record in batch:
            tp = TopicPartition(record.topic, record.partition)
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        started = time.perf_counter()
        try:
            await consumer.commit(offsets)
            COMMIT_SECONDS.labels(self.group).observe(time.perf_counter() - started)
        except (CommitFailedError, IllegalStateError) as exc:
            # The partition moved during processing; its new owner re-reads from the
            # last commit and our idempotent effects make the replay harmless.
            log.warning("commit refused after rebalance", extra={"error": repr(exc)})

    async def _record_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = await consumer.position(tp)
            except IllegalStateError:
                continue
            LAG.labels(self.group, tp.topic, str(tp.partition)).set(max(0, high - position))


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ConsumerLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Wait for the batch in hand to be processed and committed.
        async with self.loop._lock:
            pass

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info(
            "partitions assigned",
            extra={
                "group": self.loop.group,
                "partitions": sorted(f"{t.topic}:{t.partition}" for t in assigned),
            },
        )
        self.loop.started.set()


def _record(msg: Any) -> Record:
    return Record(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        key=msg.key.decode("utf-8", "replace") if msg.key is not None else None,
        value=msg.value,
        headers=header_map(msg.headers),
        timestamp_ms=msg.timestamp,
    )


def _awaiting(task: asyncio.Task[Any]) -> list[str]:
    """Where a task waits: its chain of awaited coroutines, outermost first."""
    found: list[str] = []
    step: Any = task.get_coro()
    while step is not None and len(found) < 50:
        frame = getattr(step, "cr_frame", None) or getattr(step, "gi_frame", None)
        if frame is not None:
            found.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        step = getattr(step, "cr_await", None) or getattr(step, "gi_yieldfrom", None)
    return found
