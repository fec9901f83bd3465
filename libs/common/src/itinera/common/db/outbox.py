"""Transactional outbox and its relay.

``enqueue`` writes records into the service's ``outbox`` table inside the caller's
transaction, so an event exists if and only if the state change that caused it was
committed. The relay publishes them in insertion order and deletes them once the
broker has acknowledged, so a crash can only cause a redelivery (consumers
de-duplicate by ``ce_id``), never a loss.

Only one relay per schema publishes at a time (a transaction-level advisory lock),
which keeps per-key order while any number of replicas stand by.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from prometheus_client import Counter, Gauge, Histogram

from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer, choose
from itinera.common.telemetry import inject_headers

log = logging.getLogger(__name__)

ALONE_BYTES = 128 * 1024
"""Records larger than this are sent on their own, through the producer's checks (a
record over its largest request is refused there, for good)."""
RELAYED = Counter("itinera_outbox_relayed_records", "Outbox records published", ["schema"])
PENDING = Gauge("itinera_outbox_pending_records", "Outbox records waiting after a pass", ["schema"])
DELAY = Histogram(
    "itinera_outbox_delay_seconds",
    "From a record's enqueue (the start of the transaction that wrote it) to the broker's "
    "acknowledgement of it",
    ["schema"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
FAILED = Counter("itinera_outbox_failed_records", "Outbox records the broker refused for good", ["schema"])


def _permanent(error: BaseException) -> bool:
    """Errors no retry will cure: the record itself, or its topic, is unacceptable.
    Anything else (time-outs, an unreachable broker, leadership moves) is retried."""
    from aiokafka.errors import (
        CorruptRecordException,
        InvalidTopicError,
        MessageSizeTooLargeError,
        RecordTooLargeError,
        TopicAuthorizationFailedError,
    )

    return isinstance(
        error,
        MessageSizeTooLargeError
        | RecordTooLargeError
        | InvalidTopicError
        | TopicAuthorizationFailedError
        | CorruptRecordException,
    )


def _headers(row: asyncpg.Record) -> list[tuple[str, bytes]]:
    """A row's Kafka headers, from the JSON text ``enqueue`` stored."""
    return [(k, v.encode()) for k, v in orjson.loads(row["headers"])]


def _append(batch: Any, row: asyncpg.Record) -> bool:
    """Add a row's record to an aiokafka batch; False when it does not fit."""
    return batch.append(key=row["key"], value=row["value"], timestamp=None, headers=_headers(row)) is not None


def _channel(schema: str) -> str:  # as enqueue names it in SQL
    return f"{schema}_outbox"


async def enqueue(conn: asyncpg.Connection, topic: str, envelopes: Sequence[Envelope]) -> None:
    """Add records to the outbox; call inside the transaction of the state change.
    One statement, whatever the number of records, and it wakes the relay."""
    if not envelopes:
        return
    keys, values, headers = [], [], []
    trace = inject_headers()  # the caller's trace context, taken once for the batch
    for e in envelopes:
        keys.append(e.key.encode() if e.key is not None else None)
        values.append(e.value())
        # As JSON text: a list of pairs would be read as a second array dimension.
        headers.append(orjson.dumps(list(e.header_text(trace).items())).decode())
    await conn.execute(
        """WITH added AS (
               INSERT INTO outbox (topic, key, value, headers)
               SELECT $1, r.key, r.value, r.headers
               FROM unnest($2::bytea[], $3::bytea[], $4::text[]) WITH ORDINALITY AS r(key, value, headers, n)
               ORDER BY r.n
           )
           SELECT pg_notify(current_schema() || '_outbox', '')""",
        topic,
        keys,
        values,
        headers,
    )


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: Producer,
        schema: str,
        *,
        batch_max: int = 500,
        poll_interval_s: float = 0.5,
    ) -> None:
        self.pool = pool
        self.producer = producer
        self.schema = schema
        self.batch_max = batch_max
        self.poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None

    async def start(self) -> None:
        self._listener = await self.pool.acquire()
        await self._listener.add_listener(_channel(self.schema), self._notified)
        self._task = asyncio.create_task(self._run(), name=f"outbox:{self.schema}")

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.remove_listener(_channel(self.schema), self._notified)
            await self.pool.release(self._listener)

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            # Cleared before the pass: a NOTIFY that arrives during it wakes the next one.
            self._wake.clear()
            try:
                sent = await self.relay_once()
            except Exception:
                log.exception("outbox relay pass failed", extra={"schema": self.schema})
                sent = 0
            if sent >= self.batch_max:
                continue  # more waiting: go again at once
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)

    async def relay_once(self) -> int:
        """Publish one batch; return how many records were sent."""
        async with self.pool.acquire() as conn, conn.transaction():
            locked = await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtext($1))", f"itinera.outbox.{self.schema}"
            )
            if not locked:
                return 0
            rows = await conn.fetch(
                "SELECT id, topic, key, value, headers, created_at FROM outbox ORDER BY id LIMIT $1",
                self.batch_max,
            )
            if not rows:
                PENDING.labels(self.schema).set(0)
                return 0
            outcomes = await self._send_all(rows)
            done: list[int] = []
            sent_at: list[datetime] = []  # when each record sent was enqueued
            failed: list[tuple[asyncpg.Record, BaseException]] = []
            for row, outcome in zip(rows, outcomes, strict=True):
                if outcome is None:
                    done.append(row["id"])
                    sent_at.append(row["created_at"])
                elif _permanent(outcome):
                    failed.append((row, outcome))
                else:
                    # Retry from here on the next pass; records after it that were
                    # sent will be sent again (consumers de-duplicate by ce_id).
                    log.warning("outbox send failed; will retry", extra={"error": repr(outcome)})
                    break
            if failed:
                await conn.executemany(
                    """INSERT INTO outbox_failed (id, topic, key, value, headers, created_at, error)
                       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING""",
                    [
                        (r["id"], r["topic"], r["key"], r["value"], r["headers"], r["created_at"], repr(e))
                        for r, e in failed
                    ],
                )
                FAILED.labels(self.schema).inc(len(failed))
                log.error(
                    "outbox records refused by the broker moved to outbox_failed",
                    extra={"schema": self.schema, "ids": [r["id"] for r, _ in failed]},
                )
            # By id list, not "id <= last": a transaction that took a lower id may
            # commit after this SELECT, and its rows must stay for the next pass.
            finished = done + [r["id"] for r, _ in failed]
            await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", finished)
        RELAYED.labels(self.schema).inc(len(done))
        delay, now = DELAY.labels(self.schema), datetime.now(UTC)
        for created in sent_at:
            delay.observe(max(0.0, (now - created).total_seconds()))
        return len(finished)

    async def _send_all(self, rows: Sequence[asyncpg.Record]) -> list[BaseException | None]:
        """Each row's outcome: None once the broker acknowledged it. The rows go out as
        record batches built here, one per partition (more when one fills up), in the
        rows' order, the partition chosen as :class:`Producer` chooses it: no future or
        accumulator entry per record. A batch the broker refuses for good is sent again
        record by record, so that only the records at fault are set aside."""
        kafka = self.producer.client
        outcomes: list[BaseException | None] = [None] * len(rows)
        groups: dict[tuple[str, int], list[int]] = {}
        partitions: dict[str, list[int]] = {}  # each topic's, looked up once a pass
        for index, row in enumerate(rows):
            topic = row["topic"]
            if topic not in partitions:
                partitions[topic] = await self.producer.partitions(topic)
            groups.setdefault((topic, choose(partitions[topic], row["key"])), []).append(index)
        sent: list[tuple[asyncio.Future[Any], list[int]]] = []
        for (topic, partition), indexes in groups.items():
            batch = kafka.create_batch()
            members: list[int] = []
            for index in indexes:
                row = rows[index]
                if len(row["value"] or b"") > ALONE_BYTES:  # the producer's checks, on its own
                    outcomes[index] = await self._send_one(row)
                    continue
                if not _append(batch, row):
                    if members:  # full: send it, go on in a new one
                        sent.append((await kafka.send_batch(batch, topic, partition=partition), members))
                        batch, members = kafka.create_batch(), []
                    if not _append(batch, row):
                        outcomes[index] = await self._send_one(row)
                        continue
                members.append(index)
            if members:
                sent.append((await kafka.send_batch(batch, topic, partition=partition), members))
        acknowledged = await asyncio.gather(*(future for future, _ in sent), return_exceptions=True)
        for (_, members), result in zip(sent, acknowledged, strict=True):
            if isinstance(result, BaseException):
                for index in members:
                    outcomes[index] = await self._send_one(rows[index]) if _permanent(result) else result
        return outcomes

    async def _send_one(self, row: asyncpg.Record) -> BaseException | None:
        try:
            future = await self.producer.send(row["topic"], row["value"], row["key"], _headers(row))
            await future
        except Exception as exc:
            return exc
        return None
