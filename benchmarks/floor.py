"""The least the parts of the platform's hot paths cost on this machine, with nothing of
the services' own work between them: what a speed target leaves for the service.

Three kinds of round (``--kind``, repeatable; all three by default):

events
    Events like the profile benchmark's (about 0.75 KB of XDM, one ECID, some with an
    Email) are produced to a topic of the round's own first, untimed. ``--consumers``
    processes of one consumer group read them ``--batch`` at a time and, per batch, in
    one transaction, insert the events (the profile service's ``events`` table, made by
    its migrations, and its statement, de-duplicated by ``_id``) and one outbox row each
    (its ``outbox``; ``COPY``, the cheapest
    insert there is), then commit the offsets. One relay process, the services' own
    (``itinera.common.db.outbox.OutboxRelay``), sends the outbox to a second topic and
    deletes what the broker acknowledged. Whatever stores each event and publishes it
    through an outbox does at least this.
timers
    ``--timers`` timers (the journeys service's ``timers`` table, with an instance each)
    all due at once; each
    of ``--workers`` processes takes ``--batch`` due ones at a time (``FOR UPDATE SKIP
    LOCKED``), deletes them and writes one outbox row each (a message request's size)
    in one transaction; the same relay sends them. Firing a wait does at least this
    (the runtime also moves the instance on and records its steps).
smtp
    ``--emails`` emails (about 6 KB, text and HTML) sent with aiosmtplib over
    ``--connections`` connections to an aiosmtpd server in a process of its own that
    counts them and keeps nothing: the least an email costs its sender and the local
    sink, rendering and everything else aside.

Each round is timed from the word go (every process started, the data in place) until
the last item is through; it prints items/s, the machine's busy cores and each part's
CPU per item. Nothing is asserted.

    .venv/bin/python benchmarks/floor.py
    .venv/bin/python benchmarks/floor.py --kind events --consumers 1 --batch 2000
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
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from machine import CpuUse, cpu_sample, cpu_use, machine_line, num, say
from shop import PAGES, PRODUCTS, USER_AGENTS
from stack import drop_database_files, run_bounded

from itinera.common.db.migrations import migrate
from itinera.common.db.outbox import OutboxRelay
from itinera.common.devstack import Infrastructure, free_port
from itinera.common.kafka.producer import Producer
from itinera.common.settings import CommonSettings

PARTITIONS = 8
PROFILE = "profile"
"""The events round's schema: the profile service's own tables (its migrations)."""
JOURNEYS = "journeys"
"""The timers round's schema: the journeys service's own tables (its migrations)."""
REQUEST = orjson.dumps(  # about the size of a message request on itinera.messages.v1
    {
        "messageId": str(uuid.UUID(int=1)),
        "channel": "email",
        "templateId": "welcome",
        "category": "marketing",
        "journey": {"id": str(uuid.UUID(int=2)), "version": 1, "node": "send-welcome"},
        "profile": {"person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}}, "x": "y" * 300},
        "context": {"coupon": "WELCOME10"},
    }
)


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


def email() -> bytes:
    """A welcome email of about 6 KB: text and HTML alternatives."""
    message = EmailMessage()
    message["From"] = "Itinera Shop <shop@example.com>"
    message["To"] = "ada.lovelace@example.com"
    message["Subject"] = "Welcome, Ada!"
    message["Message-ID"] = f"<{uuid.uuid4()}@example.com>"
    lines = [f"Line {n}: hiking boots, tents and stoves, 10% off with WELCOME10." for n in range(40)]
    message.set_content("\n".join(lines))
    message.add_alternative("".join(f"<p>{line}</p>\n" for line in lines), subtype="html")
    return message.as_bytes()


# -- the roles, each a process of its own ----------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where a role's process finds its data and how it says it is ready."""

    bootstrap: str
    database_url: str
    source: str
    sink: str
    ready: Path
    batch: int
    schema: str = ""


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


async def consume(place: Place) -> None:
    """Read, store each event and an outbox row, commit; until stopped."""
    pool = await asyncpg.create_pool(
        place.database_url, min_size=1, max_size=1, server_settings={"search_path": place.schema}
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=place.bootstrap,
        group_id="floor",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    assigned = Assigned()
    consumer.subscribe([place.source], listener=assigned)
    await consumer.start()
    try:
        await assigned.event.wait()
        await asyncio.to_thread(wait_for_start, place.ready)
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=place.batch)
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
                outbox.append((place.sink, record.key, record.value, '[["ce_type", "event"]]'))
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


async def fire(place: Place) -> None:
    """Take due timers, delete them and write a message request for each; until stopped."""
    conn = await asyncpg.connect(place.database_url, server_settings={"search_path": place.schema})
    await asyncio.to_thread(wait_for_start, place.ready)
    try:
        while True:
            async with conn.transaction():
                fired = await conn.fetch(
                    """DELETE FROM timers t USING (
                           SELECT sandbox, instance_id, kind FROM timers WHERE due_at <= now()
                           ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED
                       ) due
                       WHERE (t.sandbox, t.instance_id, t.kind) = (due.sandbox, due.instance_id, due.kind)
                       RETURNING t.instance_id""",
                    place.batch,
                )
                if fired:
                    await conn.copy_records_to_table(
                        "outbox",
                        records=[(place.sink, r["instance_id"].bytes, REQUEST, "[]") for r in fired],
                        columns=["topic", "key", "value", "headers"],
                    )
            if not fired:
                await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def relay(place: Place) -> None:
    """The services' own outbox relay (:class:`OutboxRelay`) on the round's schema, in
    batches of four times ``place.batch``; it looks for rows every 20 ms (the rows are
    copied in, so no ``NOTIFY`` wakes it)."""
    settings = CommonSettings(kafka_bootstrap=place.bootstrap, database_url=place.database_url)
    pool = await asyncpg.create_pool(
        place.database_url, min_size=2, max_size=2, server_settings={"search_path": place.schema}
    )
    producer = Producer(settings, client_id="itinera-floor-relay")
    await producer.start()
    outbox = OutboxRelay(pool, producer, place.schema, batch_max=4 * place.batch, poll_interval_s=0.02)
    await asyncio.to_thread(wait_for_start, place.ready)
    await outbox.start()
    try:
        await asyncio.Event().wait()  # until the round stops this process
    finally:
        await outbox.stop()
        await producer.stop()
        await pool.close()


async def sink(place: Place) -> None:
    """An SMTP server that accepts and counts every email (the count in the file ``sink``
    as it grows); ``place.batch`` is its port."""
    from aiosmtpd.smtp import SMTP

    count = place.ready.parent / "sink"

    class Counting:
        received = 0

        async def handle_DATA(self, server: SMTP, session: object, envelope: object) -> str:
            self.received += 1
            if self.received % 100 == 0:
                await asyncio.to_thread(count.write_text, str(self.received))
            return "250 Message accepted for delivery"

    loop = asyncio.get_running_loop()
    handler = Counting()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="floor-sink", loop=loop), "127.0.0.1", place.batch
    )
    await asyncio.to_thread(wait_for_start, place.ready)
    async with server:
        await server.serve_forever()


ROLES = {"consume": consume, "fire": fire, "relay": relay, "sink": sink}


# -- the run ---------------------------------------------------------------------------


@dataclass
class Round:
    kind: str
    parallel: int
    items: int
    seconds: float
    cpu: CpuUse


class Processes:
    """A round's processes: started, waited for until ready, stopped whatever happened."""

    def __init__(self, state: Path, place: Place) -> None:
        self.state = state
        self.place = place
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, role: str, name: str) -> int:
        place = asdict(replace(self.place, ready=self.state / f"ready-{name}"))
        with open(self.state / f"{name}.log", "ab") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--role",
                    role,
                    "--place",
                    orjson.dumps(place, default=str).decode(),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.running[name.replace("-", " ")] = process
        return process.pid

    async def ready(self) -> None:
        deadline = time.monotonic() + 60
        while len(await asyncio.to_thread(files, self.state, "ready-*")) < len(self.running):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.running.values()):
                raise RuntimeError(f"the round's processes did not start; see the logs in {self.state}")
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        for process in self.running.values():
            process.terminate()
        for process in self.running.values():
            process.wait(timeout=10)
        for name in ["go", "sink"]:
            (self.state / name).unlink(missing_ok=True)
        for ready in files(self.state, "ready-*"):
            ready.unlink()


async def prepare(infra: Infrastructure, topics: Sequence[str], schema: str, tables: str) -> None:
    """The round's topics; the service's schema as its migrations make it, ``tables``
    emptied."""
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in topics])
    finally:
        await admin.close()
    conn = await asyncpg.connect(infra.database_url)
    try:
        await migrate(conn, schema, f"itinera.{schema}.migrations")
        await conn.execute(f"SET search_path = {schema}; TRUNCATE {tables} CASCADE")
    finally:
        await conn.close()


async def produce(bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for start in range(0, len(records), 2000):
            window = records[start : start + 2000]
            await asyncio.gather(*[await producer.send(topic, value, key=key) for key, value in window])
    finally:
        await producer.stop()


async def left(database_url: str, schema: str, table: str) -> tuple[int, int]:
    """(rows in ``table``, outbox rows waiting)."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": schema})
    try:
        row = await conn.fetchrow(f"SELECT (SELECT count(*) FROM {table}), (SELECT count(*) FROM outbox)")
        assert row is not None
        return int(row[0]), int(row[1])
    finally:
        await conn.close()


def infrastructure_pids(infra: Infrastructure) -> dict[str, int]:
    assert infra.broker is not None
    assert infra.broker.process is not None
    assert infra.database is not None
    assert infra.database.process is not None
    return {"broker": infra.broker.process.pid, "postgres": infra.database.process.pid}


async def events_round(
    infra: Infrastructure, state: Path, consumers: int, records: Sequence[tuple[bytes, bytes]], args: Any
) -> Round:
    tag = uuid.uuid4().hex[:8]
    source, target = f"itinera.bench.floor.in.{tag}.v1", f"itinera.bench.floor.out.{tag}.v1"
    await prepare(infra, [source, target], PROFILE, "events, outbox")
    await produce(infra.kafka_bootstrap, source, records)
    processes = Processes(
        state, Place(infra.kafka_bootstrap, infra.database_url, source, target, state, args.batch, PROFILE)
    )
    watched = infrastructure_pids(infra)
    try:
        watched["relay"] = processes.start("relay", "relay")
        for n in range(1, consumers + 1):
            watched[f"consumer {n}"] = processes.start("consume", f"consumer-{n}")
        await processes.ready()
        await asyncio.sleep(3)  # the group settles (a second member makes it rebalance)
        return await timed(state, "events", consumers, len(records), watched, infra.database_url, args)
    finally:
        processes.stop()


async def timers_round(infra: Infrastructure, state: Path, workers: int, args: Any) -> Round:
    target = f"itinera.bench.floor.out.{uuid.uuid4().hex[:8]}.v1"
    await prepare(infra, [target], JOURNEYS, "instances, timers, outbox")
    conn = await asyncpg.connect(infra.database_url, server_settings={"search_path": JOURNEYS})
    try:
        await conn.execute(
            """WITH i AS (
                   INSERT INTO instances (sandbox, id, journey_id, version, profile_id, status, node,
                                          trigger_id, entered_at)
                   SELECT 'floor', gen_random_uuid(), $2, 1, gen_random_uuid(), 'waiting', 'after-wait',
                          'event-' || n, now()
                   FROM generate_series(1, $1) AS n
                   RETURNING id
               )
               INSERT INTO timers (sandbox, instance_id, kind, node, due_at)
               SELECT 'floor', id, 'resume', 'after-wait', now() FROM i""",
            args.timers,
            uuid.uuid4(),
        )
        await conn.execute("VACUUM ANALYZE instances, timers")
    finally:
        await conn.close()
    processes = Processes(
        state, Place(infra.kafka_bootstrap, infra.database_url, "", target, state, args.batch, JOURNEYS)
    )
    watched = infrastructure_pids(infra)
    try:
        watched["relay"] = processes.start("relay", "relay")
        for n in range(1, workers + 1):
            watched[f"worker {n}"] = processes.start("fire", f"worker-{n}")
        await processes.ready()  # the workers take the timers, all due, at the word go
        return await timed(state, "timers", workers, args.timers, watched, infra.database_url, args)
    finally:
        processes.stop()


async def timed(
    state: Path,
    kind: str,
    parallel: int,
    items: int,
    watched: dict[str, int],
    url: str,
    args: Any,
) -> Round:
    """Go, then wait until the ``items`` events are stored (or the timers gone) and the
    outbox is empty."""
    before = cpu_sample(watched)
    started = time.perf_counter()
    (state / "go").touch()
    done = 0
    while time.perf_counter() < started + args.round_limit:
        if kind == "events":
            done, waiting = await left(url, PROFILE, "events")
        else:
            rows, waiting = await left(url, JOURNEYS, "timers")
            done = items - rows
        if done >= items and waiting == 0:
            break
        await asyncio.sleep(0.05)
    seconds = time.perf_counter() - started
    return Round(kind, parallel, done, seconds, cpu_use(before, cpu_sample(watched)))


async def smtp_round(state: Path, connections: int, args: Any) -> Round:
    port = free_port()
    processes = Processes(state, Place("", "", "", "", state, port))
    try:
        watched = {"sink": processes.start("sink", "sink")}
        await processes.ready()
        message = email()
        queue = iter(range(args.emails))
        sent = 0

        async def sender() -> None:
            nonlocal sent
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="floor.example.com")
            await client.connect()
            try:
                for _ in queue:
                    await client.sendmail("shop@example.com", ["ada.lovelace@example.com"], message)
                    sent += 1
            finally:
                client.close()

        before = cpu_sample(watched)
        started = time.perf_counter()
        (state / "go").touch()
        async with asyncio.timeout(args.round_limit):
            await asyncio.gather(*(sender() for _ in range(connections)))
        seconds = time.perf_counter() - started
        cpu = cpu_use(before, cpu_sample(watched))
        return Round("smtp", connections, sent, seconds, cpu)
    finally:
        processes.stop()


UNITS = {
    "events": ("consumers", "events"),
    "timers": ("workers", "timers"),
    "smtp": ("connections", "emails"),
}


def report(rounds: Sequence[Round]) -> list[str]:
    lines = []
    for kind in UNITS:
        mine = [r for r in rounds if r.kind == kind]
        if not mine:
            continue
        parallel, unit = UNITS[kind]
        lines += [
            "",
            f"{kind}: {parallel:>11} {unit:>8} {'s':>6} {unit + '/s':>9}  {'machine':>7}   CPU per item, us",
        ]
        lines += [line(r) for r in mine]
    return lines


def line(r: Round) -> str:
    per_item = {"client": r.cpu.client} if r.kind == "smtp" else {}
    per_item.update({k: v for k, v in r.cpu.processes.items() if v is not None})
    parts = ", ".join(
        f"{name} {cores * r.seconds / max(r.items, 1) * 1e6:,.0f}" for name, cores in per_item.items()
    )
    return (
        f"{'':<{len(r.kind) + 1}} {r.parallel:>11} {r.items:>8,} {r.seconds:>6.1f} "
        f"{num(r.items / r.seconds):>9}  {r.cpu.machine:>7.2f}   {parts}"
    )


async def main(args: argparse.Namespace) -> list[Round]:
    state = Path(tempfile.mkdtemp(prefix="itinera-floor-"))
    rounds: list[Round] = []
    infra = None
    try:
        if {"events", "timers"} & set(args.kind):
            infra = Infrastructure.start(state, kafka_port=free_port(), pg_port=free_port())
        if "events" in args.kind:
            records = events(args.events, args.devices, args.seed)
            for consumers in args.consumers:
                say(f"events: {consumers} consumer process(es) and a relay, {len(records):,} events")
                assert infra is not None
                rounds.append(await events_round(infra, state, consumers, records, args))
                say(report(rounds[-1:])[-1])
        if "timers" in args.kind:
            for workers in args.workers:
                say(f"timers: {workers} worker process(es) and a relay, {args.timers:,} timers")
                assert infra is not None
                rounds.append(await timers_round(infra, state, workers, args))
                say(report(rounds[-1:])[-1])
        if "smtp" in args.kind:
            for connections in args.connections:
                say(f"smtp: {connections} connections, {args.emails:,} emails")
                rounds.append(await smtp_round(state, connections, args))
                say(report(rounds[-1:])[-1])
    finally:
        if infra is not None:
            infra.stop()
        drop_database_files(state)
    return rounds


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    repeat = "; repeat it for rounds"
    parser.add_argument("--kind", action="append", choices=list(UNITS), help="kind of round" + repeat)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--consumers", type=int, action="append", help="consumer processes (1, 2)" + repeat)
    parser.add_argument("--timers", type=int, default=100_000)
    parser.add_argument("--workers", type=int, action="append", help="timer processes (1, 2)" + repeat)
    parser.add_argument(
        "--batch", type=int, default=500, help="records or timers taken at once (the services' default: 500)"
    )
    parser.add_argument("--emails", type=int, default=5_000)
    parser.add_argument("--connections", type=int, action="append", help="SMTP connections (4, 16)" + repeat)
    parser.add_argument("--round-limit", type=float, default=120, help="seconds a round may take at most")
    parser.add_argument("--time-limit", type=float, default=900, help="seconds for the whole run at most")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--role", choices=list(ROLES), help=argparse.SUPPRESS)
    parser.add_argument("--place", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.kind = args.kind or list(UNITS)
    args.consumers = args.consumers or [1, 2]
    args.workers = args.workers or [1, 2]
    args.connections = args.connections or [4, 16]
    counts = [args.events, args.devices, args.timers, args.batch, args.emails]
    if min(counts + args.consumers + args.workers + args.connections) < 1:
        parser.error("counts must be positive")
    return args


def run_role(role: str, place: str) -> None:
    fields = orjson.loads(place)
    fields["ready"] = Path(fields["ready"])
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(ROLES[role](Place(**fields)))


if __name__ == "__main__":
    arguments = parse_args(None)
    if arguments.role is not None:  # one of a round's processes
        run_role(arguments.role, arguments.place)
        sys.exit(0)
    say(machine_line())
    result = run_bounded(lambda: main(arguments), arguments.time_limit, lambda: None)
    if result:
        print(machine_line())
        print("\n".join(report(result)))
