"""Specification of the consumer loop (``itinera.common.kafka.consumer``) on the real broker.

Joining a consumer group is slow on Tansu (about 5 s), so one loop serves every
retry and dead-letter behaviour, and one scenario (two loops in turn in a second
group) serves the commit and shutdown behaviours. Every test publishes records with
keys of its own and looks only at those.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import REGISTRY

from itinera.common.errors import FieldError
from itinera.common.kafka import topics
from itinera.common.kafka.consumer import ConsumerLoop, PermanentError, Record
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.settings import CommonSettings
from itinera.common.testing import StackInfo, eventually, topic_reader

MAX_ATTEMPTS = 3
SERVICE = "common-tests"


def _dlq_schema() -> dict[str, Any]:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "schemas" / "topics" / "dlq.v1.schema.json"
        if candidate.is_file():
            loaded: dict[str, Any] = json.loads(candidate.read_text())
            return loaded
    raise RuntimeError("no schemas/topics/dlq.v1.schema.json above the tests")


DLQ_VALIDATOR = jsonschema.Draft202012Validator(_dlq_schema())


def envelope(key: str, data: Any) -> Envelope:
    return Envelope(type="com.itinera.test.v1", source="/itinera/tests", data=data, sandbox="prod", key=key)


def key(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


@dataclass
class TransactionalHandler:
    """Handles a batch as a service does: all of its effects land, or none.

    A record's JSON says how to behave: ``{"fail": "always"}`` raises a transient
    error, ``{"fail": "permanent"}`` a :class:`PermanentError`; a non-JSON value
    makes ``record.json()`` raise one.
    """

    applied: list[str] = field(default_factory=list)
    calls: list[list[str | None]] = field(default_factory=list)

    async def __call__(self, batch: list[Record]) -> None:
        self.calls.append([r.key for r in batch])
        effects = []
        for record in batch:
            command = record.json()
            if command.get("fail") == "always":
                raise RuntimeError(f"cannot handle {record.key}")
            if command.get("fail") == "permanent":
                raise PermanentError([FieldError("/fail", "refused for good", "refused")])
            effects.append(record.key)
        self.applied.extend(k for k in effects if k is not None)

    def calls_with(self, record_key: str) -> int:
        return sum(record_key in keys for keys in self.calls)


@dataclass
class Lane:
    """A running loop, its source topic and its dead-letter topic."""

    loop: ConsumerLoop
    handler: TransactionalHandler
    source: str
    dlq: str


@pytest.fixture(scope="module")
async def lane(settings: CommonSettings, producer: Producer, new_topic: Any) -> AsyncIterator[Lane]:
    source = await new_topic("consumer.source")
    dlq = await new_topic("consumer.dlq")
    handler = TransactionalHandler()
    loop = ConsumerLoop(
        settings,
        group=f"test-common-retries-{uuid.uuid4().hex[:8]}",
        topic_names=[source],
        handler=handler,
        dead_letters=producer,
        service=SERVICE,
        max_attempts=MAX_ATTEMPTS,
        dlq_topic=dlq,
    )
    await loop.start()
    yield Lane(loop, handler, source, dlq)
    await loop.stop()


async def dead_letters_for(
    infrastructure: StackInfo, lane: Lane, producer: Producer, envelopes: Sequence[Envelope], *dead: str
) -> tuple[dict[str, Record], dict[str, Record]]:
    """Publish ``envelopes``; return the source records and the dead letters of ``dead``, by key."""
    async with (
        topic_reader(infrastructure, lane.source) as sent,
        topic_reader(infrastructure, lane.dlq) as letters,
    ):
        await producer.publish(lane.source, envelopes)
        # By key, not by count: on Tansu a reader may start inside the last batch
        # already on the topic (its ListOffsets answers the batch's base offset + 1).
        await sent.wait_for(lambda records: {r.key for r in records} >= {e.key for e in envelopes})
        await letters.wait_for(lambda records: {r.key for r in records} >= set(dead), timeout_s=30)
    return {r.key or "": r for r in sent.records}, {r.key or "": r for r in letters.records}


def letter_of(record: Record) -> dict[str, Any]:
    letter: dict[str, Any] = orjson.loads(record.value or b"")
    DLQ_VALIDATOR.validate(letter)
    return letter


class TestRecordsThatKeepFailing:
    async def test_are_tried_max_attempts_times_alone_then_dead_lettered_with_the_error(
        self, infrastructure: StackInfo, lane: Lane, producer: Producer
    ) -> None:
        good_before, bad, good_after = key("good"), key("bad"), key("good")
        sent, letters = await dead_letters_for(
            infrastructure,
            lane,
            producer,
            [
                envelope(good_before, {"n": 1}),
                envelope(bad, {"fail": "always"}),
                envelope(good_after, {"n": 2}),
            ],
            bad,
        )

        letter = letter_of(letters[bad])
        assert letter["kind"] == "processing"
        assert letter["attempts"] == MAX_ATTEMPTS
        assert letter["reasons"] == [
            {"path": "", "message": f"RuntimeError: cannot handle {bad}", "code": "processing"}
        ]
        assert letter["origin"] == {
            "service": SERVICE,
            "topic": lane.source,
            "partition": sent[bad].partition,
            "offset": sent[bad].offset,
            "key": bad,
        }
        assert letter["payload"] == {"fail": "always"}
        assert letter["sandbox"] == "prod"
        # Once in its batch, then max_attempts times on its own.
        assert lane.handler.calls_with(bad) == 1 + MAX_ATTEMPTS

    async def test_do_not_keep_the_other_records_of_their_batch_from_being_processed(
        self, infrastructure: StackInfo, lane: Lane, producer: Producer
    ) -> None:
        good_before, bad, good_after = key("good"), key("bad"), key("good")
        await dead_letters_for(
            infrastructure,
            lane,
            producer,
            [
                envelope(good_before, {"n": 1}),
                envelope(bad, {"fail": "always"}),
                envelope(good_after, {"n": 2}),
            ],
            bad,
        )

        await until(lambda: {good_before, good_after} <= set(lane.handler.applied))
        assert bad not in lane.handler.applied
        assert lane.handler.applied.count(good_before) == 1

    async def test_are_dead_lettered_as_cloudevents_keyed_like_the_original(
        self, infrastructure: StackInfo, lane: Lane, producer: Producer
    ) -> None:
        bad = key("bad")
        _, letters = await dead_letters_for(
            infrastructure, lane, producer, [envelope(bad, {"fail": "always"})], bad
        )

        headers = letters[bad].headers
        assert headers["ce_type"] == "com.itinera.deadletter.v1"
        assert headers["ce_source"] == f"/itinera/{SERVICE}"
        assert headers["ce_id"] == letter_of(letters[bad])["id"]
        assert headers["itinera_sandbox"] == "prod"


class TestPermanentErrors:
    async def test_are_dead_lettered_at_once_without_retries(
        self, infrastructure: StackInfo, lane: Lane, producer: Producer
    ) -> None:
        bad = key("permanent")
        _, letters = await dead_letters_for(
            infrastructure, lane, producer, [envelope(bad, {"fail": "permanent"})], bad
        )

        letter = letter_of(letters[bad])
        assert letter["attempts"] == 1
        assert letter["reasons"] == [{"path": "/fail", "message": "refused for good", "code": "refused"}]
        # Once in its batch, once alone to tell it from its neighbours: never retried.
        assert lane.handler.calls_with(bad) <= 2

    async def test_a_value_that_is_not_json_is_dead_lettered_in_base64(
        self, infrastructure: StackInfo, lane: Lane, producer: Producer
    ) -> None:
        bad = key("garbage")
        raw = b"\xff\xfe not json at all"
        _, letters = await dead_letters_for(infrastructure, lane, producer, [envelope(bad, raw)], bad)

        letter = letter_of(letters[bad])
        assert base64.b64decode(letter["payloadBase64"]) == raw
        assert "payload" not in letter
        assert letter["attempts"] == 1
        assert [r["code"] for r in letter["reasons"]] == ["json"]


class TestTheLoopAfterADeadLetter:
    async def test_keeps_processing_the_records_that_follow(
        self, infrastructure: StackInfo, lane: Lane, producer: Producer
    ) -> None:
        bad, good = key("bad"), key("good")
        await dead_letters_for(infrastructure, lane, producer, [envelope(bad, {"fail": "permanent"})], bad)

        await producer.publish(lane.source, [envelope(good, {"n": 3})])

        await until(lambda: good in lane.handler.applied)

    async def test_tells_how_old_each_record_was_and_how_long_its_commit_took(
        self, lane: Lane, producer: Producer
    ) -> None:
        def aged() -> float:
            labels = {"group": lane.loop.group, "topic": lane.source}
            return REGISTRY.get_sample_value("itinera_consumer_record_age_seconds_count", labels) or 0.0

        def commits() -> float:
            labels = {"group": lane.loop.group}
            return REGISTRY.get_sample_value("itinera_consumer_commit_seconds_count", labels) or 0.0

        before, committed, fresh = aged(), commits(), key("fresh")
        await producer.publish(lane.source, [envelope(fresh, {"n": 4})])

        await until(lambda: fresh in lane.handler.applied)
        assert aged() - before >= 1
        await until(lambda: commits() > committed)

    def test_dead_letters_go_to_the_catalogue_topic_by_default(
        self, settings: CommonSettings, producer: Producer
    ) -> None:
        loop = ConsumerLoop(settings, "g", ["t"], TransactionalHandler(), producer, SERVICE)
        assert loop.dlq_topic == topics.DLQ.name == "itinera.dlq.v1"
        assert loop.attempts == settings.consumer_max_attempts


@dataclass
class Handover:
    """What happened when a loop was stopped with a batch in hand and a second loop of
    the same group took over."""

    published: list[str]
    first_handled: list[str]
    stop_returned_before_the_batch_was_done: bool
    committed: int | None
    second_saw: list[str]
    marker: str


async def hand_over(
    settings: CommonSettings, producer: Producer, new_topic: Any, infrastructure: StackInfo
) -> Handover:
    """Stop a loop with a batch in hand, then let a new loop of the same group take over."""
    source = await new_topic("consumer.handover")
    group = f"test-common-handover-{uuid.uuid4().hex[:8]}"
    published = [key("batch") for _ in range(5)]
    await producer.publish(source, [envelope(k, {"n": i}) for i, k in enumerate(published)])

    entered, release = asyncio.Event(), asyncio.Event()
    first_handled: list[str] = []
    stopping: list[asyncio.Task[None]] = []
    stop_done_early: list[bool] = []

    async def slow(batch: list[Record]) -> None:
        entered.set()
        await release.wait()
        stop_done_early.append(stopping[0].done())
        first_handled.extend(r.key or "" for r in batch)

    first = ConsumerLoop(settings, group, [source], slow, producer, SERVICE)
    await first.start()
    try:
        await asyncio.wait_for(entered.wait(), 30)
    finally:
        stopping.append(asyncio.create_task(first.stop()))
        await asyncio.sleep(0)  # let stop() begin: it now waits for the batch in hand
        release.set()
        await stopping[0]

    # A member that never subscribes joins nothing; it only asks the coordinator.
    # (Tansu cannot decode the admin client's OffsetFetch; the consumer's works.)
    reader = AIOKafkaConsumer(
        bootstrap_servers=infrastructure.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await reader.start()
    try:
        committed = await reader.committed(TopicPartition(source, 0))
    finally:
        await reader.stop()

    second_saw: list[str] = []

    async def record(batch: list[Record]) -> None:
        second_saw.extend(r.key or "" for r in batch)

    marker = key("marker")
    second = ConsumerLoop(settings, group, [source], record, producer, SERVICE)
    await second.start()
    try:
        await producer.publish(source, [envelope(marker, {"marker": True})])
        await until(lambda: marker in second_saw, timeout_s=40)
    finally:
        await second.stop()
    return Handover(published, first_handled, stop_done_early[0], committed, second_saw, marker)


@pytest.fixture(scope="module", autouse=True)
async def handing_over(
    settings: CommonSettings, producer: Producer, new_topic: Any, infrastructure: StackInfo
) -> AsyncIterator[asyncio.Task[Handover]]:
    """Runs the hand-over in the background from the module's first test on: a group's
    second join waits out the first member's session (about 18 s on Tansu), time the
    other tests use."""
    task = asyncio.create_task(hand_over(settings, producer, new_topic, infrastructure))
    yield task
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture
async def handover(handing_over: asyncio.Task[Handover]) -> Handover:
    return await asyncio.wait_for(asyncio.shield(handing_over), 90)


class TestCommits:
    def test_a_handled_batch_is_not_delivered_again_to_a_new_loop_of_the_group(
        self, handover: Handover
    ) -> None:
        assert handover.first_handled, "the first loop handled nothing"
        assert not set(handover.first_handled) & set(handover.second_saw)
        assert handover.first_handled + handover.second_saw == [*handover.published, handover.marker]

    def test_the_committed_offset_is_the_one_after_the_last_handled_record(self, handover: Handover) -> None:
        assert handover.committed == len(handover.first_handled)


class TestStop:
    def test_waits_for_the_batch_in_hand_and_commits_it(self, handover: Handover) -> None:
        assert not handover.stop_returned_before_the_batch_was_done
        assert handover.committed == len(handover.first_handled) > 0


async def until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    async def check() -> bool:
        return condition()

    await eventually(check, timeout_s)


async def test_a_batch_that_never_ends_does_not_hang_the_stop(
    settings: CommonSettings, producer: Producer, new_topic: Any, caplog: pytest.LogCaptureFixture
) -> None:
    source = await new_topic("consumer.stuck")
    await producer.publish(source, [envelope(key("stuck"), {"n": 1})])
    entered = asyncio.Event()

    async def stuck(batch: list[Record]) -> None:
        entered.set()
        await asyncio.Event().wait()  # a handler waiting on something that never comes

    bounded = settings.model_copy(update={"consumer_stop_timeout_s": 3})
    loop = ConsumerLoop(
        bounded, f"test-common-stuck-{uuid.uuid4().hex[:8]}", [source], stuck, producer, SERVICE
    )
    await loop.start()
    await asyncio.wait_for(entered.wait(), 30)
    await until(lambda: loop.stalled_s() > 0.3)  # what /healthz reads: it grows while stuck

    with caplog.at_level(logging.WARNING, logger="itinera.common.kafka.consumer"):
        await asyncio.wait_for(loop.stop(), 30)  # a guard: without the bound it never returns

    assert loop.stalled_s() == 0.0  # stopped
    (warned,) = [r for r in caplog.records if "did not stop in time" in r.getMessage()]
    assert any(line.endswith(" stuck") for line in warned.__dict__["waiting_at"])  # where it hung
