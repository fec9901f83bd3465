"""Open-loop load on a Kafka topic, shared by the benchmarks that time a stream: records
are due on a fixed schedule whatever the stack answers, and each one's latency counts
from when it was due."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from itinera.common.kafka.producer import Producer, choose

Record = tuple[bytes, bytes, list[tuple[str, bytes]]]  # key, value, headers


@dataclass
class Sent:
    sent: int = 0
    not_sent: int = 0  # skipped: more than max_in_flight records unacknowledged


async def open_loop(
    producer: Producer,
    topic: str,
    records: Sequence[Record],
    rate: float,
    max_in_flight: int,
    on_due: Callable[[int, float], None],
    tick_s: float = 0.005,
) -> Sent:
    """Send ``records`` open-loop: record i is due at ``start + i / rate`` whatever was
    acknowledged, and ``on_due(i, due)`` is called as it goes out (its latency counts
    from ``due``). Whatever is due when the loop wakes (at most once a ``tick_s``) goes
    out together, one record batch per partition (the partition Kafka's partitioner
    picks for its key). Waking later than a record was due only adds to the latency
    measured, never takes from it. A record is skipped (``not_sent``) while
    ``max_in_flight`` are unacknowledged. Returns once every batch sent is acknowledged
    (or refused)."""
    kafka = producer.client
    partitions = await producer.partitions(topic)
    outcome = Sent()
    in_flight = 0
    futures: set[asyncio.Future[Any]] = set()

    def acknowledged(count: int) -> Callable[[asyncio.Future[Any]], None]:
        def done(future: asyncio.Future[Any]) -> None:
            nonlocal in_flight
            in_flight -= count
            futures.discard(future)

        return done

    started = time.perf_counter() + 0.01
    following = 0
    while following < len(records):
        now = time.perf_counter()
        last = min(len(records), int((now - started) * rate) + 1)  # those due by now
        if last <= following:
            await asyncio.sleep(max(started + following / rate - now, tick_s))
            continue
        groups: dict[int, list[int]] = {}
        for i in range(following, last):
            if in_flight >= max_in_flight:
                outcome.not_sent += 1
                continue
            in_flight += 1
            groups.setdefault(choose(partitions, records[i][0]), []).append(i)
        following = last
        for partition, indexes in groups.items():
            batch = kafka.create_batch()
            members = 0
            for i in indexes:
                key, value, headers = records[i]
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    await _send(kafka, batch, topic, partition, members, futures, acknowledged)
                    batch, members = kafka.create_batch(), 0
                    batch.append(key=key, value=value, timestamp=None, headers=headers)
                on_due(i, started + i / rate)
                members += 1
            await _send(kafka, batch, topic, partition, members, futures, acknowledged)
            outcome.sent += members
        await asyncio.sleep(tick_s)
    if futures:
        await asyncio.gather(*futures, return_exceptions=True)
    return outcome


async def _send(
    kafka: Any,
    batch: Any,
    topic: str,
    partition: int,
    members: int,
    futures: set[asyncio.Future[Any]],
    acknowledged: Callable[[int], Callable[[asyncio.Future[Any]], None]],
) -> None:
    future: asyncio.Future[Any] = await kafka.send_batch(batch, topic, partition=partition)
    futures.add(future)
    future.add_done_callback(acknowledged(members))
