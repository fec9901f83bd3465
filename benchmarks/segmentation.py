"""Segmentation: streaming qualification latency, from an event on ``itinera.events.v1``
to its profile's entry on ``itinera.audiences.v1``, through the profile service.

The profile and segmentation services run in their own processes (``itinera serve X
--role all``) on a broker and PostgreSQL this run starts. One streaming audience is
created over HTTP (``xEvent[eventType = "commerce.purchases" and timestamp occurs <= 24
hours before now]``), then experience events of new devices (ECIDs), one per device,
are produced open-loop at ``--rate`` per second, keyed and with the headers ingestion
sets: each event makes a new profile, which qualifies, so each has exactly one
``realized`` record on ``itinera.audiences.v1``. Its latency is counted from when the
event was due to be sent (open loop: the schedule does not wait for answers) to the
record's own time on that topic, its timestamp, stamped by the segmentation service's
outbox relay as it sends it to the broker (one clock: everything runs on this machine);
the time until a consumer of ``itinera.audiences.v1`` in this process reads it is shown
too, which adds that consumer's fetch wait.

Then (b), batch: ``--batch-profiles`` (100,000) profiles with three events each are
written straight into the segmentation service's projection tables (a benchmark may
touch a service's tables; going through Kafka would measure the stream again), an
audience with one attribute test and one event count is created batch-only (which
starts a job over it, the first evaluation: waited for, its time reported too), and a
segment job is asked for over HTTP once that one's announcements have left the
outbox; the report gives the job's own ``profileSegmentationTime`` and the wall time
from the request to ``SUCCEEDED``.

"Accepted by ingestion" is, here, the record on ``itinera.events.v1``: what ingestion
publishes once it has accepted an event, produced by this process the same way (the
HTTP hop in front of it is measured by ``benchmarks/ingest.py``). The benchmark reports;
it never asserts. Every phase is bounded in time, and whatever it started is stopped.

    .venv/bin/python benchmarks/segmentation.py [--rate 1000] [--duration 20] [--batch-profiles 100000]
    .venv/bin/python benchmarks/segmentation.py --skip-streaming   # (b) only
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
from machine import (
    CpuUse,
    Spread,
    cpu_sample,
    cpu_use,
    histogram_sums,
    machine_line,
    num,
    percentile_ms,
    say,
    spread,
)
from stack import Stack, run_bounded

from itinera.common.auth import mint_token
from itinera.common.devstack import Infrastructure, free_port
from itinera.common.kafka import topics
from itinera.common.kafka.admin import create_topics
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.settings import CommonSettings

TARGET_P99_MS = 500.0
TARGET_RATE = 1_000
RULE = 'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 24 hours before now]'
BATCH_RULE = 'homeAddress.countryCode = "FR" and xEvent[eventType = "commerce.purchases"].count() >= 2'
TARGET_BATCH_S = 5.0
PROFILE_NAMESPACE = uuid.UUID("6b1e5d0a-3c0f-4c52-9a43-1f0e2b7d9c11")  # the profile service's


def profile_id(sandbox: str, ecid: str) -> str:
    """The id the profile service gives a graph anchored on this ECID."""
    return str(uuid.uuid5(PROFILE_NAMESPACE, f"{sandbox}|ECID|{ecid}"))


def event_record(sandbox: str, ecid: str, n: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    entity = {
        "_id": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventType": "commerce.purchases",
        "identityMap": {"ECID": [{"id": ecid, "primary": True}]},
        "commerce": {"purchases": {"value": 1}, "order": {"priceTotal": 42.5, "currencyCode": "EUR"}},
        "productListItems": [{"SKU": "TRS-1042-BLU-44", "quantity": 1, "priceTotal": 42.5}],
    }
    envelope = Envelope(
        type="com.itinera.ingestion.event.v1",
        source="/itinera/ingestion/connections/bench",
        data=entity,
        sandbox=sandbox,
        key=f"ECID:{ecid}",
        id=f"bench-seg-{n}",
        extensions={"itinera_dataset": "bench-events", "itinera_connection": "bench"},
    )
    return envelope.key.encode() if envelope.key else b"", envelope.value(), envelope.headers(trace={})


@dataclass
class Run:
    planned: int
    sent: int = 0
    not_sent: int = 0
    due: dict[str, float] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)  # to the record's own time
    received_s: list[float] = field(default_factory=list)  # to a consumer here reading it
    evaluated_s: list[float] = field(default_factory=list)  # to the evaluation (the record's "at")
    cpu: CpuUse | None = None
    stages: dict[str, Spread] = field(default_factory=dict)
    batch: dict[str, Any] = field(default_factory=dict)
    statements: list[str] = field(default_factory=list)  # where PostgreSQL's time went (--statements)
    sent_all: asyncio.Event = field(default_factory=asyncio.Event)
    answered_all: asyncio.Event = field(default_factory=asyncio.Event)


async def ready(client: httpx.AsyncClient, url: str, stack: Stack, deadline: float) -> None:
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in stack.servers.values()):
            raise RuntimeError("a service exited; see its log in the run's folder")
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(f"{url}/readyz", timeout=2)).status_code == 200:
                return
        await asyncio.sleep(0.25)
    raise TimeoutError(f"{url} was not ready in time")


async def collect(consumer: AIOKafkaConsumer, run: Run, stop: asyncio.Event) -> None:
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=100)
        now = time.perf_counter()
        wall = time.time() - now  # the wall clock at perf_counter 0, for record timestamps
        for messages in batch.values():
            for message in messages:
                data = orjson.loads(message.value)
                due = run.due.pop(data.get("profileId"), None)
                if due is not None and data.get("status") == "realized":
                    run.latencies_s.append(message.timestamp / 1000 - wall - due)
                    run.evaluated_s.append(datetime.fromisoformat(data["at"]).timestamp() - wall - due)
                    run.received_s.append(now - due)
        if run.sent_all.is_set() and not run.due:
            run.answered_all.set()


async def bench(args: argparse.Namespace, stack: Stack) -> Run:
    stack.state_dir = Path(tempfile.mkdtemp(prefix="itinera-bench-seg-"))
    say("starting the broker and PostgreSQL")
    stack.infra = Infrastructure.start(
        stack.state_dir, kafka_port=free_port(), pg_port=free_port(), statement_stats=args.statements > 0
    )
    settings = CommonSettings(
        kafka_bootstrap=stack.infra.kafka_bootstrap, database_url=stack.infra.database_url
    )  # other settings (ITINERA_CONSUMER_*) from the environment, as the services take them
    await create_topics(settings)
    env = {
        **os.environ,
        "ITINERA_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ITINERA_DATABASE_URL": settings.database_url,
        "ITINERA_LOG_LEVEL": "WARNING",
    }
    if args.relay_processes:  # each service's outbox relay in a process of its own
        env["ITINERA_OUTBOX_RELAY_IN_WORKERS"] = "false"
    urls = {name: stack.start(name, env) for name in ("profile", "segmentation")}
    if args.relay_processes:
        for name in ("profile", "segmentation"):
            urls[f"{name}-relay"] = stack.start(name, env, role="relay", label=f"{name}-relay")
    sandbox = f"bench-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    token = mint_token(settings, sandbox=sandbox)
    headers = {"authorization": f"Bearer {token}"}
    run = Run(planned=0 if args.skip_streaming else int(args.rate * args.duration))
    async with httpx.AsyncClient(headers=headers) as client:
        deadline = time.monotonic() + 120
        for url in urls.values():
            await ready(client, url, stack, deadline)
        if not args.skip_streaming:
            await streaming_phase(args, stack, client, urls, settings, sandbox, run)
        if args.batch_profiles:
            run.batch = await batch_phase(args, stack, client, urls["segmentation"], settings, sandbox)
    return run


async def streaming_phase(
    args: argparse.Namespace,
    stack: Stack,
    client: httpx.AsyncClient,
    urls: dict[str, str],
    settings: CommonSettings,
    sandbox: str,
    run: Run,
) -> None:
    """(a): one streaming audience, then new profiles' events at ``--rate``, each
    event's latency to its profile's entry."""
    producer = Producer(settings, client_id="itinera-bench-segmentation")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
    )
    created = await client.post(
        f"{urls['segmentation']}/data/core/ups/segment/definitions",
        json={
            "name": "bench purchasers",
            "expression": {"type": "PQL", "format": "pql/text", "value": RULE},
            "schema": {"name": "_xdm.context.profile"},
            "evaluationInfo": {"batch": {"enabled": False}, "continuous": {"enabled": True}},
        },
    )
    created.raise_for_status()
    say(f"streaming audience {created.json()['id']}; sandbox {sandbox}")
    await producer.start()
    await consumer.start()
    try:
        assigned = [TopicPartition(topics.AUDIENCES.name, p) for p in range(topics.AUDIENCES.partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        stop = asyncio.Event()
        collecting = asyncio.create_task(collect(consumer, run, stop))
        rng = random.Random(args.seed)
        records = []
        for n in range(args.warmup + run.planned):
            ecid = "".join(rng.choices("0123456789", k=38))
            records.append((profile_id(sandbox, ecid), event_record(sandbox, ecid, n)))
        say(f"warm-up: {args.warmup} events, then {run.planned:,} at {args.rate:,.0f}/s")
        await send(producer, records[: args.warmup], args.rate, Run(args.warmup), args.max_in_flight)
        await asyncio.sleep(3)
        run.latencies_s.clear()
        run.received_s.clear()
        run.evaluated_s.clear()
        if args.statements:
            await statements.reset(settings.database_url)
        before = cpu_sample(stack.watched())
        stages = await read_stages(client, urls)
        await send(producer, records[args.warmup :], args.rate, run, args.max_in_flight)
        run.sent_all.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.answered_all.wait(), args.drain)
        run.cpu = cpu_use(before, cpu_sample(stack.watched()))
        after = await read_stages(client, urls)
        run.stages = {name: spread(stages[name], after[name]) for name in after}
        if args.statements:
            run.statements = await statements.top(settings.database_url, args.statements)
        stop.set()
        await collecting
    finally:
        await consumer.stop()
        await producer.stop()


STAGES = (  # (service, what, histogram, labels)
    (
        "profile",
        "event's age when its batch starts",
        "itinera_consumer_record_age_seconds",
        {"group": "itinera-profile", "topic": topics.EVENTS.name},
    ),
    (
        "profile",
        "batch handled (per batch)",
        "itinera_consumer_handler_seconds",
        {"group": "itinera-profile", "topic": topics.EVENTS.name},
    ),
    (
        "profile",
        "offsets committed (per batch)",
        "itinera_consumer_commit_seconds",
        {"group": "itinera-profile"},
    ),
    ("profile", "outbox: enqueued -> acknowledged", "itinera_outbox_delay_seconds", {"schema": "profile"}),
    (
        "segmentation",
        "profile event's age when its batch starts",
        "itinera_consumer_record_age_seconds",
        {"group": "itinera-segmentation", "topic": topics.PROFILE_EVENTS.name},
    ),
    (
        "segmentation",
        "batch handled (per batch)",
        "itinera_consumer_handler_seconds",
        {"group": "itinera-segmentation"},
    ),
    (
        "segmentation",
        "offsets committed (per batch)",
        "itinera_consumer_commit_seconds",
        {"group": "itinera-segmentation"},
    ),
    (
        "segmentation",
        "outbox: enqueued -> acknowledged",
        "itinera_outbox_delay_seconds",
        {"schema": "segmentation"},
    ),
)


async def read_stages(client: httpx.AsyncClient, urls: dict[str, str]) -> dict[str, dict[str, float]]:
    """The services' own histograms of each stage (see :data:`STAGES`), as they stand."""
    texts = {name: (await client.get(f"{urls[name]}/metrics", timeout=10)).text for name in urls}
    return {  # the outbox's in the relay's process when it has one
        f"{service}: {what}": histogram_sums(
            texts[f"{service}-relay" if "outbox" in metric and f"{service}-relay" in texts else service],
            metric,
            **labels,
        )
        for service, what, metric, labels in STAGES
    }


async def batch_phase(
    args: argparse.Namespace,
    stack: Stack,
    client: httpx.AsyncClient,
    url: str,
    settings: CommonSettings,
    sandbox: str,
) -> dict[str, Any]:
    count = args.batch_profiles
    say(f"(b) writing {count:,} profiles with 3 events each into the projection")
    conn = await asyncpg.connect(settings.database_url)
    try:
        rng = random.Random(args.seed)
        now = datetime.now(UTC)
        profiles, events = [], []
        for n in range(count):
            pid = uuid.UUID(int=rng.getrandbits(128), version=4)
            country = "FR" if n % 3 == 0 else "DE"
            profiles.append((sandbox, pid, orjson.dumps({"homeAddress": {"countryCode": country}}).decode()))
            for k in range(3):
                kind = "commerce.purchases" if (n + k) % 2 == 0 else "web.webpagedetails.pageViews"
                at = now - timedelta(hours=k + 1)
                body = {"_id": f"{pid}-{k}", "timestamp": at.isoformat(), "eventType": kind}
                events.append((sandbox, f"{pid}-{k}", pid, at, orjson.dumps(body).decode()))
        await conn.copy_records_to_table(
            "profiles",
            schema_name="segmentation",
            records=profiles,
            columns=["sandbox", "profile_id", "attributes"],
        )
        await conn.copy_records_to_table(
            "profile_events",
            schema_name="segmentation",
            records=events,
            columns=["sandbox", "event_id", "profile_id", "occurred_at", "body"],
        )
        await conn.execute("ANALYZE segmentation.profiles; ANALYZE segmentation.profile_events")
    finally:
        await conn.close()
    created = await client.post(
        f"{url}/data/core/ups/segment/definitions",
        json={
            "name": "bench french buyers",
            "expression": {"type": "PQL", "format": "pql/text", "value": BATCH_RULE},
            "schema": {"name": "_xdm.context.profile"},
        },
    )
    created.raise_for_status()
    audience = created.json()["id"]
    # Saving the rule started a job over it (the first evaluation: every member enters
    # and is announced); the measured job starts once that one has ended and its
    # announcements have left the outbox, so that neither competes with it.
    deadline = time.perf_counter() + args.batch_limit
    listed = f"{url}/data/core/ups/segment/jobs?property=segments~segmentId=={audience}"
    saved: dict[str, Any] = {}
    while time.perf_counter() < deadline:
        found = (await client.get(listed)).json()["children"]
        saved = found[0] if found else {}
        if saved.get("status") in ("SUCCEEDED", "FAILED", "CANCELLED"):
            break
        await asyncio.sleep(0.1)
    conn = await asyncpg.connect(settings.database_url)
    try:
        while time.perf_counter() < deadline:
            if not await conn.fetchval("SELECT count(*) FROM segmentation.outbox"):
                break
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    saved_timing: dict[str, Any] = (saved.get("metrics") or {}).get("profileSegmentationTime") or {}
    before = cpu_sample(stack.watched())
    started = time.perf_counter()
    job = await client.post(f"{url}/data/core/ups/segment/jobs", json=[{"segmentId": audience}])
    job.raise_for_status()
    job_id = job.json()["id"]
    say(f"(b) segment job {job_id} over {count:,} profiles")
    answer: dict[str, Any] = {}
    while time.perf_counter() - started < args.batch_limit:
        answer = (await client.get(f"{url}/data/core/ups/segment/jobs/{job_id}")).json()
        if answer["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            break
        await asyncio.sleep(0.1)
    wall = time.perf_counter() - started
    cpu = cpu_use(before, cpu_sample(stack.watched()))
    metrics: dict[str, Any] = answer.get("metrics") or {}
    timing: dict[str, Any] = metrics.get("profileSegmentationTime") or {}
    counters: dict[str, Any] = metrics.get("segmentedProfileCounter") or {}
    return {
        "profiles": count,
        "status": answer.get("status"),
        "wall_s": wall,
        "segmentation_s": timing.get("totalTimeInMs", math.nan) / 1000,
        "saved_status": saved.get("status"),
        "saved_s": (saved_timing.get("totalTimeInMs") or math.nan) / 1000,
        "members": counters.get(audience),
        "cpu": cpu,
    }


async def send(
    producer: Producer, records: list[tuple[str, Record]], rate: float, run: Run, max_in_flight: int
) -> None:
    """Open loop on ``itinera.events.v1``; each profile's entry is wanted from when its
    event was due."""

    def due(i: int, at: float) -> None:
        run.due[records[i][0]] = at

    outcome = await open_loop(producer, topics.EVENTS.name, [r for _, r in records], rate, max_in_flight, due)
    run.sent += outcome.sent
    run.not_sent += outcome.not_sent


def streaming_report(run: Run, args: argparse.Namespace) -> list[str]:
    got = len(run.latencies_s)
    p99 = percentile_ms(run.latencies_s, 99)
    verdict = "meets" if got == run.sent and p99 < TARGET_P99_MS else "BELOW"
    if args.rate < TARGET_RATE:
        verdict = "not judged (slower than the target's rate)"
    lines = [
        f"streaming qualification at {args.rate:,.0f} events/s for {args.duration:.0f} s "
        f"(events produced to {topics.EVENTS.name}, one new profile each, each qualifying)",
        f"{'':<26}{'sent':>8}{'answered':>10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}   target",
        f"{'event -> audience record':<26}{run.sent:>8,}{got:>10,}"
        + "".join(f"{percentile_ms(run.latencies_s, q):>9.1f}" for q in (50, 90, 99, 100))
        + f"   p99 < {TARGET_P99_MS:.0f} ms at {TARGET_RATE:,}/s: {verdict}",
        f"{'  ... evaluated':<26}{'':>8}{len(run.evaluated_s):>10,}"
        + "".join(f"{percentile_ms(run.evaluated_s, q):>9.1f}" for q in (50, 90, 99, 100)),
        f"{'  ... read by a consumer':<26}{'':>8}{len(run.received_s):>10,}"
        + "".join(f"{percentile_ms(run.received_s, q):>9.1f}" for q in (50, 90, 99, 100)),
        "(the record's time is its timestamp, stamped by the segmentation service's relay as it"
        " sends it; 'evaluated' is the record's 'at', when the segmentation service began"
        " evaluating the batch; the consumer is this process's, fetching with the services'"
        " fetch wait)",
    ]
    if run.not_sent:
        lines.append(f"not sent (more than {args.max_in_flight} unacknowledged): {run.not_sent:,}")
    if run.due:
        lines.append(f"no audience entry within {args.drain:.0f} s of the last send: {len(run.due):,}")
    if run.stages:
        lines.append(
            "where the time went, from the services' own histograms (timed part; p50/p99: bucket bounds):"
        )
        for name, seen in run.stages.items():
            lines.append(
                f"  {name:<58} {num(seen.count):>8}  mean {seen.mean * 1000:7.1f} ms"
                f"  p50 <= {seen.quantile(0.5) * 1000:5.0f} ms  p99 <= {seen.quantile(0.99) * 1000:5.0f} ms"
            )
    if run.cpu is not None:
        names = sorted(run.cpu.processes)
        lines.append("CPU, cores busy (CPU s / wall s) / CPU us per event:")
        lines.append(f"{'wall s':>8}{'machine':>9}{'client':>15}" + "".join(f"{n:>15}" for n in names))
        cells = ""
        for name in names:
            value = run.cpu.processes.get(name)
            per = value * run.cpu.wall_s / max(1, run.sent) * 1e6 if value is not None else math.nan
            cells += f"{'n/a' if value is None else f'{value:.2f} / {num(per)}':>15}"
        client = run.cpu.client * run.cpu.wall_s / max(1, run.sent) * 1e6
        lines.append(
            f"{run.cpu.wall_s:>8.2f}{num(run.cpu.machine, 2):>9}{f'{run.cpu.client:.2f} / {num(client)}':>15}"
            + cells
        )
    lines += run.statements
    return lines


def report(run: Run, args: argparse.Namespace) -> str:
    lines = ["", machine_line()]
    if not args.skip_streaming:
        lines += streaming_report(run, args)
    if run.batch:
        b = run.batch
        seconds = b["segmentation_s"]
        verdict = "meets" if b["status"] == "SUCCEEDED" and seconds < TARGET_BATCH_S else "BELOW"
        lines += [
            "",
            f"batch: one segment job, rule {BATCH_RULE!r}",
            f"{b['profiles']:,} profiles: {b['status']}, evaluation {seconds:.2f} s "
            f"({num(b['profiles'] / seconds if seconds else math.nan)} profiles/s), "
            f"{b['wall_s']:.2f} s from the request to the answer saying so; {b['members']} members; "
            f"target < {TARGET_BATCH_S:.0f} s for 100,000: {verdict}",
            f"(before it, the job that saving the rule started, every member entering: {b['saved_status']}, "
            f"evaluation {b['saved_s']:.2f} s)",
        ]
        cpu = b["cpu"]
        lines.append(
            "cores busy: "
            + ", ".join(
                f"{name} {value:.2f}" for name, value in sorted(cpu.processes.items()) if value is not None
            )
            + f", machine {num(cpu.machine, 2)}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="events per second, open loop")
    parser.add_argument("--duration", type=float, default=20, help="seconds of timed sending")
    parser.add_argument("--warmup", type=int, default=500, help="events before timing")
    parser.add_argument("--drain", type=float, default=30, help="seconds to wait for the last entries")
    parser.add_argument("--max-in-flight", type=int, default=5_000, help="unacknowledged sends at most")
    parser.add_argument("--time-limit", type=float, default=300, help="seconds for the whole run at most")
    parser.add_argument("--skip-streaming", action="store_true", help="only (b), the segment job")
    parser.add_argument("--batch-profiles", type=int, default=100_000, help="profiles of (b); 0: skip it")
    parser.add_argument("--batch-limit", type=float, default=120, help="seconds (b) may take at most")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--statements",
        type=int,
        default=0,
        help="print the N PostgreSQL statements with the most execution time in (a) (pg_stat_statements)",
    )
    parser.add_argument(
        "--relay-processes",
        action="store_true",
        help="each service's outbox relay in a `--role relay` process of its own",
    )
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0:
        parser.error("--rate and --duration must be positive")
    stack = Stack()

    run = run_bounded(lambda: bench(args, stack), args.time_limit, stack.stop)
    if run is None:
        return 3
    print(report(run, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
