"""The least a consumer of events can cost on this machine: the parts every service's
hot path is built of (Kafka in, PostgreSQL, an outbox, Kafka out) with nothing of the
services' own work between them.

Events like the profile benchmark's (about 0.75 KB of XDM each, one ECID, some with an
Email) are produced to a topic of their own first, untimed. Then ``--consumers``
processes of a consumer group read them in batches of up to 500 and, per batch, in one
transaction: insert the events, de-duplicated by ``_id`` (the profile service's
``events`` table and statement), and one outbox row each carrying the record as it came
(``COPY``, the cheapest insert there is); then commit the batch's offsets. One relay
process moves the outbox to a second topic (record batches it builds, as
``itinera.common.db.outbox`` does) and deletes what the broker acknowledged.

No identity resolution, no view, no snapshot, no change detection, no validation:
any service that stores and republishes each event does at least this, so its
events/s here is a ceiling for the profile service's on the same machine. It prints
events/s and the CPU each part spent per event.

    .venv/bin/python benchmarks/floor.py                   # one consumer, then two
    .venv/bin/python benchmarks/floor.py --consumers 2 --events 100000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from machine import CpuUse, cpu_sample, cpu_use, machine_line, num, say
from shop import PAGES, PRODUCTS, USER_AGENTS
from stack import drop_database_files, run_bounded

from itinera.common.devstack import Infrastructure, free_port

PARTITIONS = 8
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    sandbox text NOT NULL,
    event_id text NOT NULL,
    dataset_id text NOT NULL,
    namespace text NOT NULL,
    value text NOT NULL,
    occurred_at timestamptz NOT NULL,
    body jsonb NOT NULL,
    PRIMARY KEY (sandbox, event_id)
);
CREATE INDEX IF NOT EXISTS events_by_identity ON events (sandbox, namespace, value, occurred_at DESC);
CREATE TABLE IF NOT EXISTS outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic text NOT NULL,
    key bytea,
    value bytea NOT NULL,
    headers text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""


def events(count: int, devices: int, seed: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of ``count`` events over ``devices`` ECIDs, three in ten with an Email."""
    rng = random.Random(seed)
    ecids = ["".join(rng.choices("0123456789", k=38)) for _ in range(devices)]
    clock = datetime.now(UTC) - timedelta(hours=1)
    found = []
    for _ in range(count):
        device = rng.randrange(devices)
        identity_map: dict[str, list[dict[str, Any]]] = {"ECID": [{"id": ecids[device], "primary": True}]}
        if rng.random() < 0.3:
            identity_map["Email"] = [{"id": f"customer.{device:06d}@example.com"}]
        page, url = rng.choice(PAGES)
        sku, product, price = rng.choice(PRODUCTS)
        clock += timedelta(milliseconds=rng.randint(1, 40))
        event = {
            "_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "timestamp": clock.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "eventType": "commerce.productViews",
            "identityMap": identity_map,
            "web": {"webPageDetails": {"name": page, "URL": url}},
            "commerce": {"productViews": {"value": 1}},
            "productListItems": [{"SKU": sku, "name": product, "quantity": 1, "priceTotal": price}],
            "environment": {"browserDetails": {"userAgent": rng.choice(USER_AGENTS)}},
        }
        found.append((f"ECID:{ecids[device]}".encode(), orjson.dumps(event)))
    return found


# -- the two roles, each a process of its own ------------------------------------------


def wait_for_start(ready: Path) -> None:
    """Say this process is ready (a file ``ready``), then wait for the file ``go`` beside
    it (in a thread: it blocks)."""
    ready.touch()
    go = ready.parent / "go"
    while not go.exists():
        time.sleep(0.02)


def files(state: Path, pattern: str) -> list[Path]:
    return list(state.glob(pattern))


class Assigned(ConsumerRebalanceListener):  # type: ignore[misc]
    """Set once the group has given the consumer its partitions."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def on_partitions_revoked(self, revoked: object) -> None:
        pass

    async def on_partitions_assigned(self, assigned: object) -> None:
        self.event.set()


async def consume(bootstrap: str, database_url: str, source: str, sink: str, ready: Path, batch: int) -> None:
    """Read, store each event and an outbox row, commit; until stopped. ``ready`` is
    written once the group has given this process its partitions."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id="floor",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    assigned = Assigned()
    consumer.subscribe([source], listener=assigned)
    await consumer.start()
    try:
        await assigned.event.wait()
        await asyncio.to_thread(wait_for_start, ready)
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=batch)
            records = [record for batch in batches.values() for record in batch]
            if not records:
                continue
            rows = []
            outbox = []
            for record in records:
                assert record.value is not None
                event = orjson.loads(record.value)
                ecid = event["identityMap"]["ECID"][0]["id"]
                rows.append({"id": event["_id"], "v": ecid, "t": event["timestamp"], "b": event})
                outbox.append((sink, record.key, record.value, '{"ce_type": "event"}'))
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    """INSERT INTO events (sandbox, event_id, dataset_id, namespace, value, occurred_at, body)
                       SELECT 'floor', e.id, 'events', 'ECID', e.v, e.t, e.b
                       FROM jsonb_to_recordset($1::jsonb) AS e(id text, v text, t timestamptz, b jsonb)
                       ON CONFLICT (sandbox, event_id) DO NOTHING""",
                    orjson.dumps(rows).decode(),
                )
                await conn.copy_records_to_table(
                    "outbox", records=outbox, columns=["topic", "key", "value", "headers"]
                )
            await consumer.commit()
    finally:
        await consumer.stop()
        await pool.close()


async def relay(bootstrap: str, database_url: str, source: str, sink: str, ready: Path, batch: int) -> None:
    """Send the outbox in record batches per partition, delete what was acknowledged."""
    conn = await asyncpg.connect(database_url)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    partitions = sorted(await producer.partitions_for(sink))
    await asyncio.to_thread(wait_for_start, ready)
    try:
        while True:
            async with conn.transaction():
                rows = await conn.fetch(
                    "SELECT id, key, value FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", 4 * batch
                )
                if not rows:
                    await asyncio.sleep(0.02)
                    continue
                groups: dict[int, list[asyncpg.Record]] = {}
                for row in rows:
                    groups.setdefault(partitions[hash(row["key"]) % len(partitions)], []).append(row)
                sent = []
                for partition, members in groups.items():
                    builder = producer.create_batch()
                    for row in members:
                        if builder.append(key=row["key"], value=row["value"], timestamp=None) is None:
                            sent.append(await producer.send_batch(builder, sink, partition=partition))
                            builder = producer.create_batch()
                            builder.append(key=row["key"], value=row["value"], timestamp=None)
                    sent.append(await producer.send_batch(builder, sink, partition=partition))
                await asyncio.gather(*sent)
                await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
    finally:
        await producer.stop()
        await conn.close()


# -- the run ---------------------------------------------------------------------------


@dataclass
class Round:
    consumers: int
    events: int
    seconds: float
    cpu: CpuUse


@dataclass
class Topics:
    """A round's own topics: each round starts from an empty one and a new group."""

    source: str
    sink: str

    @classmethod
    def new(cls) -> Topics:
        tag = uuid.uuid4().hex[:8]
        return cls(f"itinera.bench.floor.in.{tag}.v1", f"itinera.bench.floor.out.{tag}.v1")


async def create(infra: Infrastructure, names: Topics) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in (names.source, names.sink)])
    finally:
        await admin.close()
    conn = await asyncpg.connect(infra.database_url)
    try:
        await conn.execute(SCHEMA)
        await conn.execute("TRUNCATE events, outbox")
    finally:
        await conn.close()


async def produce(bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for start in range(0, len(records), 2000):
            futures = [
                await producer.send(topic, value, key=key) for key, value in records[start : start + 2000]
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def counts(database_url: str) -> tuple[int, int]:
    """(events stored, outbox rows waiting)."""
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM outbox)")
        assert row is not None
        return int(row[0]), int(row[1])
    finally:
        await conn.close()


def spawn(
    role: str, infra: Infrastructure, names: Topics, state: Path, n: int, batch: int
) -> subprocess.Popen[bytes]:
    with open(state / f"{role}-{n}.log", "ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--role",
                role,
                "--bootstrap",
                infra.kafka_bootstrap,
                "--database-url",
                infra.database_url,
                "--source",
                names.source,
                "--sink",
                names.sink,
                "--ready",
                str(state / f"ready-{role}-{n}"),
                "--batch",
                str(batch),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def one_round(
    infra: Infrastructure,
    state: Path,
    consumers: int,
    records: Sequence[tuple[bytes, bytes]],
    batch: int,
    limit_s: float,
) -> Round:
    """The events produced first (untimed) and the processes settled in their group; then
    timed from the word go until every event is stored and the outbox is empty."""
    names = Topics.new()
    await create(infra, names)
    await produce(infra.kafka_bootstrap, names.source, records)
    for signal_file in [*await asyncio.to_thread(files, state, "ready-*"), state / "go"]:
        signal_file.unlink(missing_ok=True)
    assert infra.broker is not None
    assert infra.broker.process is not None
    assert infra.database is not None
    assert infra.database.process is not None
    watched = {"broker": infra.broker.process.pid, "postgres": infra.database.process.pid}
    processes = {"relay": spawn("relay", infra, names, state, 0, batch)}
    for n in range(consumers):
        processes[f"consumer {n + 1}"] = spawn("consume", infra, names, state, n, batch)
    watched.update({name: process.pid for name, process in processes.items()})
    try:
        deadline = time.monotonic() + 60
        while len(await asyncio.to_thread(files, state, "ready-*")) < len(processes):
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes.values()):
                raise RuntimeError(f"the round's processes did not start; see the logs in {state}")
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)  # the group settles (a second member makes it rebalance)
        before = cpu_sample(watched)
        started = time.perf_counter()
        (state / "go").touch()
        stored = 0
        while time.perf_counter() < started + limit_s:
            stored, waiting = await counts(infra.database_url)
            if stored >= len(records) and waiting == 0:
                break
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - started
        return Round(consumers, stored, seconds, cpu_use(before, cpu_sample(watched)))
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=10)


def report(rounds: Sequence[Round]) -> str:
    lines = [
        f"{'consumers':>9} {'events':>8} {'s':>6} {'events/s':>9}  {'machine':>7}   CPU per event, us",
    ]
    for r in rounds:
        per_event = {k: v for k, v in r.cpu.processes.items() if v is not None}
        parts = ", ".join(
            f"{name} {cores * r.seconds / max(r.events, 1) * 1e6:,.0f}" for name, cores in per_event.items()
        )
        lines.append(
            f"{r.consumers:>9} {r.events:>8,} {r.seconds:>6.1f} {num(r.events / r.seconds):>9}  "
            f"{r.cpu.machine:>7.2f}   {parts}"
        )
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> list[Round]:
    state = Path(tempfile.mkdtemp(prefix="itinera-floor-"))
    infra = Infrastructure.start(state, kafka_port=free_port(), pg_port=free_port())
    rounds: list[Round] = []
    try:
        records = events(args.events, args.devices, args.seed)
        for consumers in args.consumers:
            say(f"round: {consumers} consumer process(es) and one relay, {len(records):,} events")
            rounds.append(await one_round(infra, state, consumers, records, args.batch, args.round_limit))
            say(report(rounds[-1:]).splitlines()[-1])
    finally:
        infra.stop()
        drop_database_files(state)
    return rounds


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument(
        "--consumers",
        type=int,
        action="append",
        help="consumer processes of a round; repeat it for rounds (1, 2)",
    )
    parser.add_argument("--round-limit", type=float, default=120, help="seconds a round may take at most")
    parser.add_argument("--time-limit", type=float, default=600, help="seconds for the whole run at most")
    parser.add_argument(
        "--batch", type=int, default=500, help="records a consumer takes at once (the services' default: 500)"
    )
    parser.add_argument("--seed", type=int, default=7)
    for hidden in ("--role", "--bootstrap", "--database-url", "--source", "--sink", "--ready"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.consumers = args.consumers or [1, 2]
    if args.events < 1 or args.devices < 1 or min(args.consumers) < 1:
        parser.error("--events, --devices and --consumers must be positive")
    return args


if __name__ == "__main__":
    arguments = parse_args(None)
    if arguments.role is not None:  # one of the round's processes
        role = consume if arguments.role == "consume" else relay
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                role(
                    arguments.bootstrap,
                    arguments.database_url,
                    arguments.source,
                    arguments.sink,
                    Path(arguments.ready),
                    int(arguments.batch),
                )
            )
        sys.exit(0)
    say(machine_line())
    result = run_bounded(lambda: main(arguments), arguments.time_limit, lambda: None)
    if result:
        print(machine_line())
        print(report(result))
