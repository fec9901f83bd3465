"""Journeys: the runtime's speed targets, from profile events on
``itinera.profile.events.v1`` to message requests on ``itinera.messages.v1``, and
timers firing.

The journeys service runs in its own process (``itinera serve journeys --role all``:
the API, the consumer, the timer runner and the outbox relay in one process) on a
broker and PostgreSQL this run starts. Events are produced as the profile service
publishes them (``{sandbox, profileId, event, profile}``, keyed by profile id), one per
new profile, so each enters the journey once and asks for exactly one message; a
consumer of ``itinera.messages.v1`` in this process matches each request to its profile
by the record's key.

(a) Latency: a journey ``event -> message -> end`` is published over HTTP, then events
    are produced open-loop at ``--rate`` per second for ``--duration`` seconds (after
    ``--warmup`` events not counted); each is timed from when it was due to be sent (the
    schedule never waits for answers) to its message request's arrival.
(b) Throughput: ``--burst`` events are produced as fast as the producer goes; entries
    per second are the message requests received over the time from the first send to
    the last request. Every second the service's ``/metrics`` (records consumed, consumer
    lag) and its outbox backlog are sampled.
(c) Timers: a journey ``event -> wait -> message -> end`` is published, and ``--timers``
    instances waiting at its wait are written straight into the service's tables
    (``instances``, ``timers``, ``profiles``; a benchmark may write a service's tables,
    and going through Kafka would measure (b) again), every resume timer due at one time
    T a few seconds after the insert. Each timer's lag is its ``waited`` step's ``at``
    (the time of the runner's pass that fired it) minus T; the runner's commits are
    followed by counting the resume timers left, four times a second, and the message
    requests the instances then ask for are timed from T too.

Between phases the run waits (``--settle``) until the consumer has no lag and the
outbox is empty, so one phase's backlog is not measured in the next. The benchmark
reports; it never asserts. Every phase is bounded in time, and whatever it started is
stopped.

    .venv/bin/python benchmarks/journeys.py [--rate 1000] [--duration 20] [--burst 50000] [--timers 100000]
    .venv/bin/python benchmarks/journeys.py --only c --timers 20000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import statements
from aiokafka import AIOKafkaConsumer, TopicPartition
from load import Record, open_loop
from machine import CpuUse, cpu_sample, cpu_use, machine_line, num, percentile_ms, say
from prometheus_client.parser import text_string_to_metric_families
from stack import Stack, run_bounded

from itinera.common.auth import mint_token
from itinera.common.devstack import Infrastructure, free_port
from itinera.common.kafka import topics
from itinera.common.kafka.admin import create_topics
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.settings import CommonSettings

TARGET_P99_MS = 200.0
TARGET_RATE = 1_000
TARGET_ENTRIES_S = 5_000
TARGET_TIMERS = 100_000
TARGET_TIMER_LAG_S = 1.0
SCHEMA = "journeys"
GROUP = "itinera-journeys"
JOURNEYS = "/v1/journeys"
SIGNUP = "bench.account.created"
CART = "bench.cart.abandoned"
WELCOME: list[dict[str, Any]] = [
    {"id": "signup", "type": "event", "eventType": SIGNUP, "next": "hello"},
    {
        "id": "hello",
        "type": "message",
        "channel": "email",
        "templateId": "welcome",
        "context": {"name": "person.name.firstName"},
        "next": "done",
    },
    {"id": "done", "type": "end"},
]
REMINDER: list[dict[str, Any]] = [
    {"id": "cart", "type": "event", "eventType": CART, "next": "pause"},
    {"id": "pause", "type": "wait", "duration": "P1D", "next": "nudge"},
    {
        "id": "nudge",
        "type": "message",
        "channel": "email",
        "templateId": "cart-reminder",
        "context": {"name": "person.name.firstName"},
        "next": "done",
    },
    {"id": "done", "type": "end"},
]
PHASES = ("a", "b", "c")


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def snapshot(profile_id: str) -> dict[str, Any]:
    return {
        "person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}},
        "identityMap": {"ECID": [{"id": profile_id.replace("-", ""), "primary": True}]},
    }


def event_record(sandbox: str, profile_id: str, event_type: str, n: int) -> tuple[bytes, bytes, list[Any]]:
    """A profile event as the profile service publishes it: key, value, headers."""
    now = datetime.now(UTC)
    event = {"_id": f"bench-journeys-{n}-{profile_id}", "timestamp": _iso(now), "eventType": event_type}
    envelope = Envelope(
        type="com.itinera.profile.event.v1",
        source="/itinera/profile",
        data={"sandbox": sandbox, "profileId": profile_id, "event": event, "profile": snapshot(profile_id)},
        sandbox=sandbox,
        key=profile_id,
        time=now,
    )
    return profile_id.encode(), envelope.value(), envelope.headers(trace={})


def new_profiles(rng: random.Random, count: int) -> list[str]:
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


@dataclass
class Arrivals:
    """Message requests a phase waits for, by profile id, each with the time (perf
    counter) its latency counts from."""

    wanted: dict[str, float] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)
    first_at: float | None = None
    last_at: float | None = None
    others: int = 0
    """Records of no profile still wanted: another phase's, or a redelivery."""
    closed: bool = False
    """Nothing more will be wanted: once ``wanted`` is empty, the phase has it all."""
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    def close(self) -> None:
        self.closed = True
        if not self.wanted:
            self.complete.set()


@dataclass
class Collector:
    """The consumer of ``itinera.messages.v1``, for the whole run; each phase puts its
    :class:`Arrivals` in ``current``."""

    consumer: AIOKafkaConsumer
    current: Arrivals = field(default_factory=Arrivals)
    received: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=100, max_records=10_000)
            now = time.perf_counter()
            arrivals = self.current
            for records in batch.values():
                for record in records:
                    self.received += 1
                    # Requests are keyed by profile id: no need to parse the value.
                    due = arrivals.wanted.pop(record.key.decode() if record.key else "", None)
                    if due is None:
                        arrivals.others += 1
                        continue
                    arrivals.latencies_s.append(now - due)
                    arrivals.first_at = arrivals.first_at or now
                    arrivals.last_at = now
            if arrivals.closed and not arrivals.wanted:
                arrivals.complete.set()


@dataclass(frozen=True)
class Counters:
    """The service's own figures at ``/metrics``."""

    consumed: float = 0
    lag: float = 0
    relayed: float = 0


@dataclass(frozen=True)
class Tick:
    at_s: float
    produced: int
    consumed: float
    lag: float
    outbox: int
    requests: int


@dataclass
class Context:
    """What every phase uses."""

    args: argparse.Namespace
    stack: Stack
    api: httpx.AsyncClient
    url: str
    settings: CommonSettings
    sandbox: str
    producer: Producer
    collector: Collector
    db: asyncpg.Connection
    rng: random.Random

    async def counters(self) -> Counters:
        response = await self.api.get(f"{self.url}/metrics", timeout=5)
        response.raise_for_status()
        consumed = lag = relayed = 0.0
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                labels = sample.labels
                if sample.name == "itinera_outbox_relayed_records_total" and labels.get("schema") == SCHEMA:
                    relayed += sample.value
                elif labels.get("group") != GROUP:
                    continue
                elif sample.name == "itinera_consumer_records_total" and labels.get("outcome") in (
                    "processed",
                    "dead_lettered",
                ):
                    consumed += sample.value
                elif sample.name == "itinera_consumer_lag":
                    lag += sample.value
        return Counters(consumed, lag, relayed)

    async def outbox(self) -> int:
        count: int = await self.db.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox")
        return count

    async def publish(self, nodes: list[dict[str, Any]], name: str) -> str:
        """Announce the journey's templates as the content service does when it publishes
        them (publishing checks them), then create and publish the journey."""
        templates = [
            Envelope(
                type="com.itinera.content.version.v1",
                source="/bench",
                sandbox=self.sandbox,
                key=f"template:{node['templateId']}",
                data={
                    "sandbox": self.sandbox,
                    "kind": "template",
                    "id": node["templateId"],
                    "version": 1,
                    "deleted": False,
                    "channel": node["channel"],
                },
            )
            for node in nodes
            if node["type"] == "message"
        ]
        await self.producer.publish(topics.CONTENT.name, templates)
        created = await self.api.post(f"{self.url}{JOURNEYS}", json={"name": name, "nodes": nodes})
        created.raise_for_status()
        journey_id = str(created.json()["id"])
        deadline = time.monotonic() + 30
        while True:  # until the service has heard of the templates
            published = await self.api.post(f"{self.url}{JOURNEYS}/{journey_id}/versions/1/publish")
            if published.status_code != 400 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        published.raise_for_status()
        return journey_id

    async def settle(self) -> float | None:
        """Wait until the consumer has no lag and the outbox is empty; the seconds it
        took, or None when ``--settle`` ran out first."""
        started = time.perf_counter()
        while time.perf_counter() - started < self.args.settle:
            if (await self.counters()).lag == 0 and await self.outbox() == 0:
                return time.perf_counter() - started
            await asyncio.sleep(0.5)
        return None


@dataclass
class Latency:
    planned: int
    sent: int = 0
    not_sent: int = 0
    arrivals: Arrivals = field(default_factory=Arrivals)
    cpu: CpuUse | None = None


@dataclass
class Burst:
    planned: int
    produced: int = 0
    produce_s: float = math.nan
    arrivals: Arrivals = field(default_factory=Arrivals)
    ticks: list[Tick] = field(default_factory=list)
    consumed: float = 0
    consumed_s: float = math.nan
    """Seconds until the service had consumed every event (nan: not within the limit)."""
    seconds: float = math.nan
    """Seconds from the first send to the end of the phase."""
    cpu: CpuUse | None = None
    statements: list[str] = field(default_factory=list)  # --statements


@dataclass
class Timers:
    planned: int
    insert_s: float = math.nan
    margin_s: float = math.nan
    """Seconds from the end of the insert to T (negative: T had passed)."""
    lags_s: list[float] = field(default_factory=list)
    committed: list[tuple[float, int]] = field(default_factory=list)
    """(seconds after T, resume timers fired and committed) four times a second."""
    arrivals: Arrivals = field(default_factory=Arrivals)
    cpu: CpuUse | None = None
    statements: list[str] = field(default_factory=list)  # --statements


@dataclass
class Results:
    latency: Latency | None = None
    burst: Burst | None = None
    timers: Timers | None = None
    settled: dict[str, float | None] = field(default_factory=dict)
    busy_before: float = math.nan
    """Cores busy on the machine in the 2 s before anything was started."""
    notes: list[str] = field(default_factory=list)


async def ready(client: httpx.AsyncClient, url: str, stack: Stack, deadline: float) -> None:
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in stack.servers.values()):
            raise RuntimeError("the service exited; see its log in the run's folder")
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(f"{url}/readyz", timeout=2)).status_code == 200:
                return
        await asyncio.sleep(0.25)
    raise TimeoutError(f"{url} was not ready in time")


async def bench(args: argparse.Namespace, stack: Stack, results: Results) -> Results:
    quiet = cpu_sample({})
    await asyncio.sleep(2)
    results.busy_before = cpu_use(quiet, cpu_sample({})).machine
    stack.state_dir = Path(tempfile.mkdtemp(prefix="itinera-bench-journeys-"))
    say(f"starting the broker and PostgreSQL (logs in {stack.state_dir})")
    stack.infra = Infrastructure.start(
        stack.state_dir, kafka_port=free_port(), pg_port=free_port(), statement_stats=args.statements > 0
    )
    settings = CommonSettings(
        kafka_bootstrap=stack.infra.kafka_bootstrap, database_url=stack.infra.database_url
    )  # other settings (ITINERA_CONSUMER_*, ITINERA_JOURNEYS_*): from the environment, as the service
    await create_topics(settings)
    env = {
        **os.environ,
        "ITINERA_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ITINERA_DATABASE_URL": settings.database_url,
        "ITINERA_LOG_LEVEL": "WARNING",
    }
    url = stack.start("journeys", env)
    sandbox = f"bench-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    headers = {"authorization": f"Bearer {mint_token(settings, sandbox=sandbox)}"}
    producer = Producer(settings, client_id="itinera-bench-journeys")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    async with httpx.AsyncClient(headers=headers) as api:
        await ready(api, url, stack, time.monotonic() + 120)
        say(f"journeys at {url}; sandbox {sandbox}")
        db = await asyncpg.connect(settings.database_url)
        await producer.start()
        await consumer.start()
        stop = asyncio.Event()
        collecting: asyncio.Task[None] | None = None
        try:
            assigned = [TopicPartition(topics.MESSAGES.name, p) for p in range(topics.MESSAGES.partitions)]
            consumer.assign(assigned)
            await consumer.seek_to_end(*assigned)
            collector = Collector(consumer)
            collecting = asyncio.create_task(collector.run(stop))
            ctx = Context(
                args, stack, api, url, settings, sandbox, producer, collector, db, random.Random(args.seed)
            )
            welcome = await ctx.publish(WELCOME, "bench welcome") if {"a", "b"} & args.phases else None
            if "a" in args.phases:
                say(f"(a) journey {welcome}: event -> message -> end")
                results.latency = await latency_phase(ctx)
                results.settled["a"] = await ctx.settle()
            if "b" in args.phases:
                results.burst = await burst_phase(ctx)
                results.settled["b"] = await ctx.settle()
            if "c" in args.phases:
                results.timers = await timer_phase(ctx, results)
        finally:
            stop.set()
            if collecting is not None:
                with contextlib.suppress(Exception):
                    await collecting
            await consumer.stop()
            await producer.stop()
            await db.close()
    return results


async def send(
    ctx: Context,
    records: list[tuple[str, Record]],
    arrivals: Arrivals,
    counts: Latency,
) -> None:
    """Open loop on ``itinera.profile.events.v1``; each profile's request is wanted from
    when its event was due."""

    def due(i: int, at: float) -> None:
        arrivals.wanted[records[i][0]] = at

    outcome = await open_loop(
        ctx.producer,
        topics.PROFILE_EVENTS.name,
        [r for _, r in records],
        ctx.args.rate,
        ctx.args.max_in_flight,
        due,
    )
    counts.sent += outcome.sent
    counts.not_sent += outcome.not_sent


async def latency_phase(ctx: Context) -> Latency:
    """(a): new profiles' events at ``--rate``, each timed to its message request."""
    args = ctx.args
    planned = int(args.rate * args.duration)
    profiles = new_profiles(ctx.rng, args.warmup + planned)
    records = [(p, event_record(ctx.sandbox, p, SIGNUP, n)) for n, p in enumerate(profiles)]
    say(
        f"(a) warm-up: {args.warmup} events, then {planned:,} at {args.rate:,.0f}/s for {args.duration:.0f} s"
    )
    warm = Arrivals()
    ctx.collector.current = warm
    await send(ctx, records[: args.warmup], warm, Latency(args.warmup))
    warm.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(warm.complete.wait(), args.drain)
    result = Latency(planned)
    ctx.collector.current = result.arrivals
    before = cpu_sample(ctx.stack.watched())
    await send(ctx, records[args.warmup :], result.arrivals, result)
    result.arrivals.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(result.arrivals.complete.wait(), args.drain)
    result.cpu = cpu_use(before, cpu_sample(ctx.stack.watched()))
    ctx.collector.current = Arrivals()  # what comes later is not this phase's
    return result


async def burst_phase(ctx: Context) -> Burst:
    """(b): ``--burst`` new profiles' events as fast as they can be produced; entries
    per second to their message requests, and the service's figures every second."""
    args = ctx.args
    result = Burst(args.burst)
    profiles = new_profiles(ctx.rng, args.burst)
    records = [event_record(ctx.sandbox, p, SIGNUP, n) for n, p in enumerate(profiles)]
    say(f"(b) {args.burst:,} events as fast as they go (limit {args.burst_limit:.0f} s)")
    arrivals = result.arrivals
    ctx.collector.current = arrivals
    base = await ctx.counters()
    if args.statements:
        await statements.reset(ctx.settings.database_url)
    before = cpu_sample(ctx.stack.watched())
    started = time.perf_counter()
    result.ticks.append(Tick(0, 0, 0, base.lag, await ctx.outbox(), 0))
    sampling = asyncio.create_task(sample(ctx, result, base, started))
    try:
        pending: list[asyncio.Future[Any]] = []
        for pid, (key, value, headers) in zip(profiles, records, strict=True):
            arrivals.wanted[pid] = started
            pending.append(
                await ctx.producer.client.send(
                    topics.PROFILE_EVENTS.name, value=value, key=key, headers=headers
                )
            )
            result.produced += 1
            if time.perf_counter() - started > args.burst_limit:
                break
        await asyncio.gather(*pending, return_exceptions=True)
        result.produce_s = time.perf_counter() - started
        arrivals.close()
        remaining = args.burst_limit - (time.perf_counter() - started)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrivals.complete.wait(), max(0.0, remaining))
        result.cpu = cpu_use(before, cpu_sample(ctx.stack.watched()))
        if args.statements:
            result.statements = await statements.top(ctx.settings.database_url, args.statements)
        ctx.collector.current = Arrivals()
    finally:
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
    end = await ctx.counters()
    result.consumed = end.consumed - base.consumed
    result.seconds = time.perf_counter() - started
    return result


async def sample(ctx: Context, result: Burst, base: Counters, started: float) -> None:
    """Every second: produced, consumed (the service's counter), its lag, the outbox."""
    tick = 1.0
    while True:
        await asyncio.sleep(max(0.0, started + tick - time.perf_counter()))
        tick += 1.0
        try:
            counters = await ctx.counters()
        except httpx.HTTPError:  # a service too busy to answer within 5 s: no tick
            continue
        consumed = counters.consumed - base.consumed
        now = time.perf_counter() - started
        result.ticks.append(
            Tick(
                now,
                result.produced,
                consumed,
                counters.lag,
                await ctx.outbox(),
                len(result.arrivals.latencies_s),
            )
        )
        if consumed >= result.planned and math.isnan(result.consumed_s):
            result.consumed_s = now


async def timer_phase(ctx: Context, results: Results) -> Timers:
    """(c): ``--timers`` instances waiting at a wait, written into the tables, every
    resume timer due at T; how late each fires, and when its message comes out."""
    args = ctx.args
    result = Timers(args.timers)
    journey_id = uuid.UUID(await ctx.publish(REMINDER, "bench reminder"))
    say(f"(c) journey {journey_id}: event -> wait -> message -> end; {args.timers:,} waiting instances")
    now = datetime.now(UTC)
    instances, profiles, ids = [], [], []
    for n, pid in enumerate(new_profiles(ctx.rng, args.timers)):
        instance_id = uuid.UUID(int=ctx.rng.getrandbits(128), version=4)
        event = {"_id": f"bench-timer-{n}", "timestamp": _iso(now), "eventType": CART}
        context = orjson.dumps({"event": event, "messages": {}}).decode()
        trigger = f"event:{event['_id']}"
        row = (ctx.sandbox, instance_id, journey_id, 1, uuid.UUID(pid), "waiting", "pause", context, 2)
        instances.append((*row, trigger, False, now))
        profiles.append((ctx.sandbox, uuid.UUID(pid), orjson.dumps(snapshot(pid)).decode()))
        ids.append((pid, instance_id))
    started = time.perf_counter()
    await ctx.db.copy_records_to_table(
        "instances",
        schema_name=SCHEMA,
        records=instances,
        columns=[
            "sandbox",
            "id",
            "journey_id",
            "version",
            "profile_id",
            "status",
            "node",
            "context",
            "steps",
            "trigger_id",
            "test_mode",
            "entered_at",
        ],
    )
    await ctx.db.copy_records_to_table(
        "profiles", schema_name=SCHEMA, records=profiles, columns=["sandbox", "profile_id", "attributes"]
    )
    # Written far in the future, then all moved to T in one statement once everything
    # is in: however long the insert takes, the lead before T is ``--timer-lead``.
    later = datetime.now(UTC) + timedelta(days=30)
    timers: list[tuple[str, uuid.UUID, str, str | None, datetime]] = [
        (ctx.sandbox, i, "resume", "pause", later) for _, i in ids
    ]
    timers += [(ctx.sandbox, i, "timeout", None, later + timedelta(days=61)) for _, i in ids]
    await ctx.db.copy_records_to_table(
        "timers",
        schema_name=SCHEMA,
        records=timers,
        columns=["sandbox", "instance_id", "kind", "node", "due_at"],
    )
    # Fresh planner statistics, as autovacuum would give them in a while.
    await ctx.db.execute(f"ANALYZE {SCHEMA}.instances; ANALYZE {SCHEMA}.timers; ANALYZE {SCHEMA}.profiles")
    due = datetime.now(UTC) + timedelta(seconds=args.timer_lead)
    due_perf = time.perf_counter() + args.timer_lead
    await ctx.db.execute(
        f"UPDATE {SCHEMA}.timers SET due_at = $2 WHERE sandbox = $1 AND kind = 'resume'", ctx.sandbox, due
    )
    result.insert_s = time.perf_counter() - started
    result.margin_s = due_perf - time.perf_counter()
    if result.margin_s < 0:
        results.notes.append(f"(c) the insert ended {-result.margin_s:.2f} s after T: raise --timer-lead")
    say(f"(c) written in {result.insert_s:.1f} s; all resume timers due in {result.margin_s:.1f} s")
    arrivals = result.arrivals
    ctx.collector.current = arrivals
    arrivals.wanted = dict.fromkeys((p for p, _ in ids), due_perf)
    arrivals.close()
    if args.statements:
        await statements.reset(ctx.settings.database_url)
    before = cpu_sample(ctx.stack.watched())
    await asyncio.sleep(max(0.0, due_perf - time.perf_counter()))
    fired = 0
    while time.perf_counter() - due_perf < args.timer_limit:
        left: int = await ctx.db.fetchval(
            f"SELECT count(*) FROM {SCHEMA}.timers WHERE due_at <= $2 AND sandbox = $1 AND kind = 'resume'",
            ctx.sandbox,
            due,
        )
        fired = args.timers - left
        result.committed.append((time.perf_counter() - due_perf, fired))
        if left == 0:
            break
        await asyncio.sleep(args.poll)
    result.cpu = cpu_use(before, cpu_sample(ctx.stack.watched()))
    if args.statements:
        result.statements = await statements.top(ctx.settings.database_url, args.statements)
    say(f"(c) {fired:,} of {args.timers:,} fired; waiting for their message requests")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            arrivals.complete.wait(), max(0.0, args.timer_limit - (time.perf_counter() - due_perf))
        )
    rows = await ctx.db.fetch(
        f"""SELECT extract(epoch FROM (x.step ->> 'a')::timestamptz - $2::timestamptz)::float8 AS lag
              FROM {SCHEMA}.instance_step_runs r CROSS JOIN LATERAL jsonb_array_elements(r.steps) AS x(step)
             WHERE r.sandbox = $1 AND x.step ->> 'r' = 'waited'""",
        ctx.sandbox,
        due,
    )
    result.lags_s = [r["lag"] for r in rows]
    ctx.collector.current = Arrivals()
    return result


def cpu_lines(cpu: CpuUse, count: int, unit: str) -> list[str]:
    """Cores busy per process; ``others`` is the machine's busy cores that none of
    them (nor this process) account for: anything else running at the time."""
    names = sorted(cpu.processes)
    ours = cpu.client + sum(v for v in cpu.processes.values() if v is not None)
    lines = [
        f"CPU, cores busy (CPU s / wall s) / CPU us per {unit}:",
        f"{'wall s':>8}{'machine':>9}{'others':>8}{'client':>15}" + "".join(f"{n:>15}" for n in names),
    ]
    cells = ""
    for name in names:
        value = cpu.processes.get(name)
        per = value * cpu.wall_s / max(1, count) * 1e6 if value is not None else math.nan
        cells += f"{'n/a' if value is None else f'{value:.2f} / {num(per)}':>15}"
    client = cpu.client * cpu.wall_s / max(1, count) * 1e6
    lines.append(
        f"{cpu.wall_s:>8.2f}{num(cpu.machine, 2):>9}{num(max(0.0, cpu.machine - ours), 2):>8}"
        f"{f'{cpu.client:.2f} / {num(client)}':>15}" + cells
    )
    if cpu.steal >= 0.05:
        lines.append(f"steal: {cpu.steal:.2f} cores")
    return lines


def percentiles(values: list[float]) -> str:
    return "".join(f"{percentile_ms(values, q):>9.1f}" for q in (50, 90, 99, 100))


def percentiles_of(values: list[float], total: int) -> str:
    """Nearest-rank percentiles over ``total`` items of which only ``values`` happened:
    ``-`` where the rank falls among those that did not."""
    ordered = sorted(values)
    cells = ""
    for q in (50, 90, 99, 100):
        rank = max(1, math.ceil(q / 100 * total))
        cells += f"{ordered[rank - 1] * 1000:>9.1f}" if rank <= len(ordered) else f"{'-':>9}"
    return cells


def latency_report(run: Latency, args: argparse.Namespace) -> list[str]:
    got = len(run.arrivals.latencies_s)
    p99 = percentile_ms(run.arrivals.latencies_s, 99)
    verdict = "meets" if got == run.sent and p99 < TARGET_P99_MS else "BELOW"
    if args.rate < TARGET_RATE:
        verdict = "not judged (slower than the target's rate)"
    lines = [
        f"(a) event -> message request at {args.rate:,.0f} events/s for {args.duration:.0f} s "
        f"(one new profile each, on {topics.PROFILE_EVENTS.name}; requests on {topics.MESSAGES.name})",
        f"{'':<28}{'sent':>8}{'answered':>10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}   target",
        f"{'event -> message request':<28}{run.sent:>8,}{got:>10,}"
        + percentiles(run.arrivals.latencies_s)
        + f"   p99 < {TARGET_P99_MS:.0f} ms at {TARGET_RATE:,}/s: {verdict}",
    ]
    if run.not_sent:
        lines.append(f"not sent (more than {args.max_in_flight} unacknowledged): {run.not_sent:,}")
    if run.arrivals.wanted:
        lines.append(
            f"no message request within {args.drain:.0f} s of the last send: {len(run.arrivals.wanted):,}"
        )
    if run.cpu is not None:
        lines += cpu_lines(run.cpu, run.sent, "event")
    return lines


def burst_report(run: Burst, args: argparse.Namespace) -> list[str]:
    a = run.arrivals
    got = len(a.latencies_s)
    span = max(a.latencies_s) if a.latencies_s else math.nan  # each counted from the first send
    rate = got / span if span > 0 else math.nan
    verdict = "meets" if got == run.planned and rate >= TARGET_ENTRIES_S else "BELOW"
    consumed_rate = run.consumed / (run.seconds if math.isnan(run.consumed_s) else run.consumed_s)
    lines = [
        f"(b) burst: {run.produced:,} events produced in {run.produce_s:.2f} s "
        f"({num(run.produced / run.produce_s if run.produce_s else math.nan)}/s), one new profile each",
        f"{'message requests received':<34}{got:>10,}  of {run.planned:,}",
        f"{'first send -> last request':<34}{span:>10.2f} s",
        f"{'entries/s (requests / that time)':<34}{num(rate):>10}   "
        f"target >= {TARGET_ENTRIES_S:,}/s sustained: {verdict}",
        f"{'events consumed/s (service)':<34}{num(consumed_rate):>10}   "
        + (
            f"all {run.planned:,} consumed by {run.consumed_s:.0f} s"
            if not math.isnan(run.consumed_s)
            else f"{run.consumed:,.0f} consumed in {run.seconds:.0f} s"
        ),
    ]
    if a.wanted:
        lines.append(
            f"no message request within {args.burst_limit:.0f} s of the first send: {len(a.wanted):,}"
        )
    if run.ticks:
        step = max(1, math.ceil(len(run.ticks) / 30))
        lines.append(
            "every second (shown every "
            + (f"{step} s" if step > 1 else "s")
            + "): consumed/s is the lag drained per second; outbox = rows waiting in journeys.outbox"
        )
        lines.append(
            f"{'t s':>6}{'produced':>10}{'consumed':>10}{'consumed/s':>12}{'lag':>9}{'outbox':>9}"
            f"{'requests':>10}{'requests/s':>12}"
        )
        previous = run.ticks[0]
        for i, tick in enumerate(run.ticks[1:], start=1):
            if i % step and i != len(run.ticks) - 1:
                continue
            dt = max(tick.at_s - previous.at_s, 1e-9)
            lines.append(
                f"{tick.at_s:>6.0f}{tick.produced:>10,}{tick.consumed:>10,.0f}"
                f"{(tick.consumed - previous.consumed) / dt:>12,.0f}{tick.lag:>9,.0f}{tick.outbox:>9,}"
                f"{tick.requests:>10,}{(tick.requests - previous.requests) / dt:>12,.0f}"
            )
            previous = tick
    if run.cpu is not None:
        lines += cpu_lines(run.cpu, got, "entry")
    return lines + run.statements


def timer_report(run: Timers, args: argparse.Namespace) -> list[str]:
    lags = run.lags_s
    within = sum(1 for lag in lags if lag <= TARGET_TIMER_LAG_S)
    done_at = next((t for t, fired in run.committed if fired >= run.planned), math.nan)
    last_t, last_fired = run.committed[-1] if run.committed else (math.nan, 0)
    if not math.isnan(done_at) and done_at > 0:
        rate = run.planned / done_at
    else:
        rate = last_fired / last_t if last_t > 0 else math.nan
    verdict = "meets" if run.planned >= TARGET_TIMERS and within == run.planned else "BELOW"

    def committed_by(share: float) -> str:
        wanted = math.ceil(share * run.planned)
        found = next((t for t, fired in run.committed if fired >= wanted), math.nan)
        return f"{'-' if math.isnan(found) else f'{found * 1000:.0f}':>9}"

    lines = [
        f"(c) timers: {run.planned:,} instances waiting at a wait, their resume timers all due at T "
        f"(written in {run.insert_s:.1f} s, T {run.margin_s:.1f} s after that); "
        f"limit {args.timer_limit:.0f} s",
        "lag after T, percentiles over all the timers (-: the rank was not reached by the limit)",
        f"{'':<40}{'count':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}   target",
        f"{'waited step at (pass that fired it)':<40}{len(lags):>9,}"
        + percentiles_of(lags, run.planned)
        + f"   all {TARGET_TIMERS:,} within {TARGET_TIMER_LAG_S:.0f} s: {verdict}",
        f"{'fired and committed (polled)':<40}{last_fired:>9,}"
        + committed_by(0.5)
        + committed_by(0.9)
        + committed_by(0.99)
        + committed_by(1.0),
        f"{'message request received':<40}{len(run.arrivals.latencies_s):>9,}"
        + percentiles_of(run.arrivals.latencies_s, run.planned),
        f"fired within {TARGET_TIMER_LAG_S:.0f} s of T: {within:,} of {run.planned:,}; "
        f"fired/s: {num(rate)} ({'all' if not math.isnan(done_at) else f'{last_fired:,}'} committed "
        f"{num(done_at if not math.isnan(done_at) else last_t, 1)} s after T)",
    ]
    if run.cpu is not None:
        lines += cpu_lines(
            run.cpu, max(1, last_fired), "timer fired (from the insert's end to the last fired)"
        )
    return lines + run.statements


def report(results: Results, args: argparse.Namespace) -> str:
    lines = [
        "",
        machine_line(),
        f"cores busy before the run started anything: {num(results.busy_before, 2)}",
        "",
    ]
    if results.latency is not None:
        lines += [*latency_report(results.latency, args), ""]
    if results.burst is not None:
        lines += [*burst_report(results.burst, args), ""]
    if results.timers is not None:
        lines += [*timer_report(results.timers, args), ""]
    for phase, seconds in results.settled.items():
        if seconds is None:
            lines.append(
                f"after ({phase}): the consumer lag or the outbox was not empty within {args.settle:.0f} s"
            )
    lines += results.notes
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="(a) events per second, open loop")
    parser.add_argument("--duration", type=float, default=20, help="(a) seconds of timed sending")
    parser.add_argument("--warmup", type=int, default=500, help="(a) events before timing")
    parser.add_argument("--drain", type=float, default=30, help="(a) seconds to wait for the last requests")
    parser.add_argument("--max-in-flight", type=int, default=5_000, help="(a) unacknowledged sends at most")
    parser.add_argument("--burst", type=int, default=50_000, help="(b) events produced at once")
    parser.add_argument("--burst-limit", type=float, default=240, help="(b) seconds it may take at most")
    parser.add_argument("--timers", type=int, default=TARGET_TIMERS, help="(c) waiting instances")
    parser.add_argument("--timer-lead", type=float, default=5, help="(c) seconds from the insert to T")
    parser.add_argument("--timer-limit", type=float, default=300, help="(c) seconds after T to wait at most")
    parser.add_argument("--poll", type=float, default=0.25, help="(c) seconds between counts of timers left")
    parser.add_argument(
        "--settle", type=float, default=120, help="seconds to wait for an idle service between phases"
    )
    parser.add_argument("--only", choices=PHASES, action="append", help="run only these phases (repeatable)")
    for phase in PHASES:
        parser.add_argument(f"--skip-{phase}", action="store_true", help=f"do not run ({phase})")
    parser.add_argument("--time-limit", type=float, default=1_200, help="seconds for the whole run at most")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--statements",
        type=int,
        default=0,
        help="print the N PostgreSQL statements with the most execution time in (b) and (c)",
    )
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.burst <= 0 or args.timers <= 0:
        parser.error("--rate, --duration, --burst and --timers must be positive")
    args.phases = {p for p in (args.only or PHASES) if not getattr(args, f"skip_{p}")}
    if not args.phases:
        parser.error("every phase is skipped")
    stack = Stack()
    results = Results()

    finished = run_bounded(lambda: bench(args, stack, results), args.time_limit, stack.stop)
    print(report(results, args))
    return 0 if finished is not None else 3


if __name__ == "__main__":
    sys.exit(main())
