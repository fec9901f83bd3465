"""Specification of the transactional outbox and its relay (``itinera.common.db.outbox``).

Each test gets a schema of its own (migrated like a service's) and reads a topic of
its own from its end, so what it sees is what its relay published.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY

from itinera.common.db.outbox import OutboxRelay, enqueue
from itinera.common.db.pool import create_pool
from itinera.common.devstack import Broker, free_port
from itinera.common.kafka.admin import create_topics
from itinera.common.kafka.consumer import Record
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.kafka.topics import Topic
from itinera.common.settings import CommonSettings
from itinera.common.testing import StackInfo, TopicReader, topic_reader


def envelope(n: int, key: str = "k") -> Envelope:
    return Envelope(
        type="com.itinera.test.v1", source="/itinera/tests", data={"n": n}, sandbox="prod", key=key
    )


@dataclass
class Outbox:
    schema: str
    pool: asyncpg.Pool
    topic: str

    async def pending(self) -> int:
        async with self.pool.acquire() as conn:
            count: int = await conn.fetchval("SELECT count(*) FROM outbox")
            return count

    async def commit(self, envelopes: list[Envelope]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await enqueue(conn, self.topic, envelopes)


@pytest.fixture(scope="module")
async def topic(new_topic: Any) -> str:
    name: str = await new_topic("outbox")
    return name


@pytest.fixture
async def outbox(settings: CommonSettings, topic: str, migrated_schema: str) -> AsyncIterator[Outbox]:
    pool = await create_pool(settings, migrated_schema)
    try:
        yield Outbox(migrated_schema, pool, topic)
    finally:
        await pool.close()


async def read(reader: TopicReader, envelopes: list[Envelope]) -> list[Record]:
    """The records of ``envelopes`` (every copy, in order) once all have arrived.

    Records are picked by ``ce_id``: on Tansu a reader may start inside the last batch
    already on the topic (its ListOffsets answers the batch's base offset + 1)."""
    wanted = {e.id for e in envelopes}
    records = await reader.wait_for(lambda rs: wanted <= {r.ce_id for r in rs})
    return [r for r in records if r.ce_id in wanted]


class ObservedRelay(OutboxRelay):
    """A relay that says when a pass is over."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.passed = asyncio.Event()

    async def relay_once(self) -> int:
        try:
            return await super().relay_once()
        finally:
            self.passed.set()


class TestEnqueue:
    async def test_inside_a_transaction_that_rolls_back_publishes_nothing(
        self, outbox: Outbox, producer: Producer, infrastructure: StackInfo
    ) -> None:
        relay = OutboxRelay(outbox.pool, producer, outbox.schema)
        rolled_back = envelope(1)

        async def change_state_then_fail() -> None:
            async with outbox.pool.acquire() as conn, conn.transaction():
                await conn.execute("INSERT INTO notes (body) VALUES ('lost')")
                await enqueue(conn, outbox.topic, [rolled_back])
                raise RuntimeError("the state change failed")

        async with topic_reader(infrastructure, outbox.topic) as reader:
            with pytest.raises(RuntimeError, match="the state change failed"):
                await change_state_then_fail()
            assert await outbox.pending() == 0
            assert await relay.relay_once() == 0

            marker = envelope(2)
            await outbox.commit([marker])
            assert await relay.relay_once() == 1
            await read(reader, [marker])

        assert [r.ce_id for r in reader.records].count(marker.id) == 1
        assert rolled_back.id not in {r.ce_id for r in reader.records}

    async def test_of_nothing_writes_nothing(self, outbox: Outbox) -> None:
        async with outbox.pool.acquire() as conn:
            await enqueue(conn, outbox.topic, [])
        assert await outbox.pending() == 0


class TestTheRelay:
    async def test_publishes_committed_rows_in_order_with_their_headers_then_deletes_them(
        self, outbox: Outbox, producer: Producer, infrastructure: StackInfo
    ) -> None:
        tracer = TracerProvider(shutdown_on_exit=False).get_tracer("test")
        with tracer.start_as_current_span("request") as span:
            envelopes = [envelope(n) for n in range(10)]
            await outbox.commit(envelopes[:5])
            await outbox.commit(envelopes[5:])
        context = span.get_span_context()

        async with topic_reader(infrastructure, outbox.topic) as reader:
            assert await OutboxRelay(outbox.pool, producer, outbox.schema).relay_once() == 10
            records = await read(reader, envelopes)

        assert [r.ce_id for r in records] == [e.id for e in envelopes]
        assert [r.value for r in records] == [e.value() for e in envelopes]
        assert all(r.key == "k" for r in records)
        first = records[0].headers
        assert first["ce_type"] == "com.itinera.test.v1"
        assert first["ce_specversion"] == "1.0"
        assert first["itinera_sandbox"] == "prod"
        assert first["traceparent"].split("-")[1:3] == [f"{context.trace_id:032x}", f"{context.span_id:016x}"]
        assert await outbox.pending() == 0

    async def test_times_each_record_from_its_transaction_to_the_acknowledgement(
        self, outbox: Outbox, producer: Producer
    ) -> None:
        def observed() -> tuple[float, float]:
            count = REGISTRY.get_sample_value("itinera_outbox_delay_seconds_count", {"schema": outbox.schema})
            total = REGISTRY.get_sample_value("itinera_outbox_delay_seconds_sum", {"schema": outbox.schema})
            return count or 0.0, total or 0.0

        before = observed()
        async with outbox.pool.acquire() as conn, conn.transaction():
            await enqueue(conn, outbox.topic, [envelope(n) for n in range(3)])
            await asyncio.sleep(0.2)  # the record's time starts with its transaction
        assert await OutboxRelay(outbox.pool, producer, outbox.schema).relay_once() == 3

        count, total = observed()
        assert count - before[0] == 3
        assert (total - before[1]) / 3 >= 0.2

    async def test_publishes_no_trace_header_for_rows_written_outside_a_trace(
        self, outbox: Outbox, producer: Producer, infrastructure: StackInfo
    ) -> None:
        untraced = envelope(1)
        await outbox.commit([untraced])
        async with topic_reader(infrastructure, outbox.topic) as reader:
            await OutboxRelay(outbox.pool, producer, outbox.schema).relay_once()
            records = await read(reader, [untraced])
        assert "traceparent" not in records[0].headers

    async def test_puts_each_key_on_the_partition_the_producer_chooses_in_order(
        self, outbox: Outbox, producer: Producer, infrastructure: StackInfo, new_topic: Any
    ) -> None:
        topic = await new_topic("outbox.partitioned", partitions=4)
        keyed = [envelope(n, key=f"profile-{n % 5}") for n in range(40)]
        async with outbox.pool.acquire() as conn, conn.transaction():
            await enqueue(conn, topic, keyed)

        async with topic_reader(infrastructure, topic) as reader:
            assert await OutboxRelay(outbox.pool, producer, outbox.schema).relay_once() == 40
            records = await read(reader, keyed)

        for key in {e.key for e in keyed}:
            mine = [r for r in records if r.key == key]
            assert [r.json()["n"] for r in mine] == [e.data["n"] for e in keyed if e.key == key]
            assert {r.partition for r in mine} == {await producer.partition(topic, str(key).encode())}
        assert len({r.partition for r in records}) > 1

    async def test_fills_batch_after_batch_in_order_and_sets_aside_a_record_too_large(
        self, outbox: Outbox, producer: Producer, infrastructure: StackInfo
    ) -> None:
        big = [
            Envelope(type="t.v1", source="/t", data={"n": n, "pad": "x" * 100_000}, sandbox="prod", key="k")
            for n in range(8)  # about 800 KB: several batches of one partition
        ]
        huge = Envelope(type="t.v1", source="/t", data={"pad": "x" * 3_000_000}, sandbox="prod", key="k")
        await outbox.commit([*big[:4], huge, *big[4:]])

        async with topic_reader(infrastructure, outbox.topic) as reader:
            assert await OutboxRelay(outbox.pool, producer, outbox.schema).relay_once() == 9
            records = await read(reader, big)

        assert [r.json()["n"] for r in records] == list(range(8))
        assert await outbox.pending() == 0
        async with outbox.pool.acquire() as conn:
            failed = await conn.fetch("SELECT error FROM outbox_failed")
        assert len(failed) == 1
        assert "MessageSizeTooLarge" in failed[0]["error"]

    async def test_publishes_in_batches_of_batch_max(
        self, outbox: Outbox, producer: Producer, infrastructure: StackInfo
    ) -> None:
        envelopes = [envelope(n) for n in range(7)]
        await outbox.commit(envelopes)
        relay = OutboxRelay(outbox.pool, producer, outbox.schema, batch_max=3)
        async with topic_reader(infrastructure, outbox.topic) as reader:
            assert [await relay.relay_once() for _ in range(4)] == [3, 3, 1, 0]
            records = await read(reader, envelopes)
        assert [r.json()["n"] for r in records] == list(range(7))

    async def test_that_is_running_is_woken_by_the_commit_rather_than_its_poll(
        self, outbox: Outbox, producer: Producer, infrastructure: StackInfo
    ) -> None:
        # The poll interval is far longer than the wait: only the NOTIFY can wake it.
        relay = ObservedRelay(outbox.pool, producer, outbox.schema, poll_interval_s=600)
        await relay.start()
        try:
            async with topic_reader(infrastructure, outbox.topic) as reader:
                await relay.passed.wait()  # its first pass is over: it now waits to be woken
                await outbox.commit([woken := envelope(1)])
                await read(reader, [woken])
        finally:
            await relay.stop()
        assert await outbox.pending() == 0

    async def test_does_not_lose_a_notification_that_arrives_during_a_pass(
        self, outbox: Outbox, producer: Producer, infrastructure: StackInfo
    ) -> None:
        commits_during_first_pass = outbox.commit

        class CommitDuringFirstPass(OutboxRelay):
            passes = 0

            async def relay_once(self) -> int:
                sent = await super().relay_once()
                self.passes += 1
                if self.passes == 1:
                    await commits_during_first_pass([late])
                    # Hold the pass open until the notification has been delivered.
                    await asyncio.wait_for(self._wake.wait(), 10)
                return sent

        late = envelope(1)
        relay = CommitDuringFirstPass(outbox.pool, producer, outbox.schema, poll_interval_s=600)
        async with topic_reader(infrastructure, outbox.topic) as reader:
            await relay.start()
            try:
                await reader.wait_for(lambda rs: late.id in {r.ce_id for r in rs}, timeout_s=3)
            finally:
                await relay.stop()


class TestTwoRelaysOnOneSchema:
    async def test_never_publish_the_same_row_twice(
        self, outbox: Outbox, producer: Producer, settings: CommonSettings, infrastructure: StackInfo
    ) -> None:
        envelopes = [envelope(n) for n in range(200)]
        for start in range(0, 200, 20):
            await outbox.commit(envelopes[start : start + 20])
        other_pool = await create_pool(settings, outbox.schema)
        relays = [
            OutboxRelay(outbox.pool, producer, outbox.schema, batch_max=15),
            OutboxRelay(other_pool, producer, outbox.schema, batch_max=15),
        ]
        try:
            async with topic_reader(infrastructure, outbox.topic) as reader:
                sent = 0
                while await outbox.pending():
                    passes = await asyncio.gather(*(r.relay_once() for r in relays * 3))
                    sent += sum(passes)
                # Everything the relays published lies before this marker (one partition).
                marker = envelope(-1)
                await producer.publish(outbox.topic, [marker])
                records = await read(reader, [*envelopes, marker])
        finally:
            await other_pool.close()

        assert sent == 200
        assert [r.ce_id for r in records] == [e.id for e in [*envelopes, marker]]

    async def test_the_one_without_the_lock_publishes_nothing(
        self, outbox: Outbox, producer: Producer, settings: CommonSettings
    ) -> None:
        await outbox.commit([envelope(1)])
        relay = OutboxRelay(outbox.pool, producer, outbox.schema)
        holder = await asyncpg.connect(settings.database_url)
        try:
            async with holder.transaction():
                await holder.execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1))", f"itinera.outbox.{outbox.schema}"
                )
                assert await relay.relay_once() == 0
                assert await outbox.pending() == 1
        finally:
            await holder.close()
        assert await relay.relay_once() == 1


class TestAnUnreachableBroker:
    async def test_leaves_the_rows_in_the_table_until_it_is_back(
        self, outbox: Outbox, settings: CommonSettings, tmp_path: Path
    ) -> None:
        broker = Broker(port=free_port(), log_path=tmp_path / "tansu.log")
        broker.start()
        private = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
        topic = Topic(name=outbox.topic, description="", key="", payload_schema="", partitions=1)
        await create_topics(private, [topic])
        producer = Producer(private)
        await producer.start()
        try:
            await producer.client.send_and_wait(outbox.topic, value=b"{}")  # metadata now known
            envelopes = [envelope(n) for n in range(3)]
            await outbox.commit(envelopes)
            relay = OutboxRelay(outbox.pool, producer, outbox.schema, poll_interval_s=0.05)

            assert broker.process is not None
            broker.process.kill()  # a crash (a clean stop lingers 5 s over open connections)
            broker.process.wait()
            with pytest.raises(TimeoutError):  # a pass cannot finish while the broker is away
                await asyncio.wait_for(relay.relay_once(), 1)
            assert await outbox.pending() == 3

            broker.start()  # in memory: a fresh, empty broker on the same address
            await create_topics(private, [topic])
            async with TopicReader(broker.bootstrap, outbox.topic) as reader:
                await relay.start()  # its passes fail until the producer has reconnected
                try:
                    # The interrupted pass may deliver its records too: at least once.
                    records = await read(reader, envelopes)
                finally:
                    await relay.stop()
            assert {r.ce_id for r in records} == {e.id for e in envelopes}
            assert await outbox.pending() == 0
        finally:
            await producer.stop()
            broker.stop()
