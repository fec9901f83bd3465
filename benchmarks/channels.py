"""Channels: the delivery service's speed targets, on this machine.

(a) Throughput: the channels service in its own process (``itinera serve channels
    --role all``) on a broker and PostgreSQL this run starts, sending to a local SMTP
    sink (:class:`~itinera.common.sinks.LocalDelivery`) running in this process. One
    marketing email template (subject, HTML with about 20 substitutions, a loop over
    three products and a condition, text, sender) is published on
    ``itinera.content.v1`` as the content service does; after ``--warmup`` requests
    (not counted: the consumer group's join, the first compile, the first connections),
    ``--messages`` requests for distinct profiles (``personalEmail.address``, email
    consent given) are produced on ``itinera.messages.v1`` as fast as the producer goes,
    keyed by profile id as journeys do. Emails per second are the emails the sink
    accepted over the time from the first send to the last email's arrival; every
    second, what the service has recorded (``channels.messages``: stored, sent) and what
    the sink holds are sampled, so the table shows whether taking requests in
    (consume, check, render, store) or sending them out is the slower half.
    The service paces each provider with a token bucket (``ITINERA_CHANNELS_RATE_EMAIL``,
    100 a second by default, a policy towards real providers); the run sets it to
    ``--send-rate`` (unbounded by default) so the figure is what the service can do.
    The sink parses every email with the ``email`` package (about 7 ms of CPU an email
    in this process, so it takes no more than about 140 a second on a core of its own);
    ``--sink count`` puts an SMTP server in its place that only counts what it accepts
    (:class:`CountingSink`), to measure the service rather than the sink.
(b) Render latency: ``benchmarks/render.py`` as it is (its own process, before anything
    else is started), its table repeated in the report.
(c) The whole loop: ``itinera run`` (every service, local delivery, the demo seeds) on a
    broker of its own and a database of its own on this run's PostgreSQL, as
    ``tests/integration/test_welcome_loop.py`` runs it. One customer record per
    sign-up (Email identity, name, ``personalEmail``) goes in through the demo CRM
    connection (``POST /collection/batch``), and the run waits until the profile
    service has stored them all. Then ``demo.signup`` events, one per customer, are sent
    to the demo web events connection (``POST /collection/{id}``, one event a request,
    several keep-alive connections) open-loop at ``--rate`` per second for
    ``--duration`` seconds after ``--warmup-events`` not counted: event i is due at
    start + i / rate whatever was answered before. The demo welcome journey takes each
    one and asks for the welcome email; each email is timed from its event's due time to
    its ``receivedAt`` in the local inbox, found by polling the inbox's JSON API
    (``GET /api/messages?limit=``, newest first, until a message already seen) and
    matched by recipient. The channels' email pacing is ``--send-rate`` here too (the
    service's default of 100 a second would make 200 sign-ups a second impossible by
    construction).

Every phase is bounded in time (``--phase-limit``, ``--drain``, and ``--time-limit`` for
the whole run), and whatever the run started is stopped at the end, on errors and on
Ctrl-C. The benchmark reports; it never asserts. The ``others`` column of each CPU table
is the machine's busy cores that no process of the run accounts for: other work on the
machine, which takes cores from the run.

    .venv/bin/python benchmarks/channels.py                        # (b), (a), (c): ~3 minutes
    .venv/bin/python benchmarks/channels.py --only a --messages 5000
    .venv/bin/python benchmarks/channels.py --only a --messages 5000 --sink count
    .venv/bin/python benchmarks/channels.py --only c --rate 200 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import statements
from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from journeys import cpu_lines
from machine import (
    CpuSample,
    CpuUse,
    cpu_use,
    listening_pid,
    machine_line,
    machine_ticks,
    num,
    percentile_ms,
    say,
    tree_cpu_s,
)
from stack import drop_database_files, run_bounded

from itinera.common.devstack import Broker, Database, free_port, port_free
from itinera.common.kafka import topics
from itinera.common.kafka.admin import create_topics
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.render import compile_template
from itinera.common.settings import CommonSettings
from itinera.common.sinks import LocalDelivery
from itinera.common.sinks.store import Store

TARGET_EMAILS_S = 1_000
TARGET_RENDER_P99_MS = 2.0
TARGET_LOOP_P99_MS = 1_000.0
TARGET_LOOP_RATE = 200
PHASES = ("a", "b", "c")
RENDER_SCRIPT = Path(__file__).with_name("render.py")
TEMPLATE_ID = "bench-weekly-picks"
LOOP_SERVICES = {
    "ingestion": 8001,
    "profile": 8002,
    "segmentation": 8003,
    "journeys": 8004,
    "content": 8005,
    "channels": 8006,
}
INBOX_PORT, SMTP_PORT = 8025, 1025

SUBJECT = "{{profile.person.name.firstName}}, this week's picks for {{profile.homeAddress.city}}"
HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Weekly picks</title></head>
<body style="font-family:Arial,sans-serif;color:#222">
  <p>Hello {%= profile.person.name.firstName ?: "there" %} {{titleCase profile.person.name.lastName}},</p>
  {{#if profile.loyalty.tier = "gold"}}
    <p>As a {{upperCase profile.loyalty.tier}} member you have {{profile.loyalty.points}} points:
       enough for {{context.reward}}.</p>
  {{else}}
    <p>You have {{profile.loyalty.points}} points. Join Gold to earn twice as fast.</p>
  {{/if}}
  <p>Picked for you in {{profile.homeAddress.city}} this week, with code
     <strong>{{context.code}}</strong> (valid until {{context.validUntil}}):</p>
  <table>
    {{#each context.products as |product|}}
    <tr><td><a href="https://shop.example.com/p/{{product.sku}}?utm_campaign={{urlEncode(../context.campaign)}}">{{product.name}}</a></td>
        <td>{%= formatCurrency(product.price, "en_US") %}</td></tr>
    {{/each}}
  </table>
  <p>Your nearest store: {{context.store.name}}, {{context.store.street}}, {{profile.homeAddress.city}}.
     Open today {{context.store.hours}}.</p>
  <p><a href="https://shop.example.com/account?ref={{context.campaign}}">Your account</a> |
     <a href="https://shop.example.com/preferences?e={{profile.personalEmail.address}}">Preferences</a></p>
  <p style="font-size:11px">Sent to {{profile.personalEmail.address}} for {{context.campaign}}.</p>
</body></html>
"""
TEXT = (
    "Hello {{profile.person.name.firstName}}, your code {{context.code}} is valid until "
    "{{context.validUntil}}. You have {{profile.loyalty.points}} points. "
    "https://shop.example.com/account"
)
FIRST_NAMES = ("Ana", "Bruno", "Chloé", "Dmitri", "Eve", "Farah", "Gus", "Hana", "Ines", "Jon")
CITIES = ("Lyon", "Porto", "Ghent", "Turin", "Graz", "Cork", "Lille", "Bremen", "Aarhus")
TIERS = ("gold", "silver", "bronze")


def template_record(sandbox: str) -> dict[str, Any]:
    """The template as the content service publishes it on ``itinera.content.v1``."""
    variant = {
        "subject": SUBJECT,
        "html": HTML,
        "text": TEXT,
        "sender": {"name": "Itinera Shop", "address": "news@shop.example.com"},
    }
    return {
        "sandbox": sandbox,
        "kind": "template",
        "id": TEMPLATE_ID,
        "version": 1,
        "deleted": False,
        "name": "Weekly picks",
        "channel": "email",
        "defaultLocale": "en",
        "variants": {"en": variant},
        "fragments": [],
        "publishedAt": datetime.now(UTC).isoformat(),
    }


def render_data(i: int, run: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A distinct profile (its own address, name, city, points) and the step's context."""
    profile = {
        "person": {"name": {"firstName": FIRST_NAMES[i % 10], "lastName": f"o'brien-{i % 97}"}},
        "personalEmail": {"address": f"a-{run}-{i}@example.com"},
        "homeAddress": {"city": CITIES[i % 9], "countryCode": "FR"},
        "loyalty": {"tier": TIERS[i % 3], "points": (i * 37) % 5_000},
        "consents": {"marketing": {"email": {"val": "y"}}},
        "preferredLanguage": "en",
    }
    context = {
        "code": f"PICK{i % 1000:03d}",
        "validUntil": "2026-12-06",
        "reward": "a free tote bag",
        "campaign": "weekly picks & more",
        "store": {"name": "Itinera Bellecour", "street": "1 Place Bellecour", "hours": "9:00-19:30"},
        "products": [
            {
                "sku": f"SKU-{(i + n) % 500}",
                "name": f"Product {n} <{i % 7}>",
                "price": 9.5 + (i + n * 11) % 90,
            }
            for n in range(3)
        ],
    }
    return profile, context


def request_record(sandbox: str, run: str, i: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """A message request as journeys publish it: key, value, headers."""
    profile_id = str(uuid.uuid4())
    profile, context = render_data(i, run)
    now = datetime.now(UTC)
    envelope = Envelope(
        type="com.itinera.journey.message.v1",
        source="/itinera/journeys",
        sandbox=sandbox,
        key=profile_id,
        time=now,
        data={
            "messageId": str(uuid.uuid4()),
            "sandbox": sandbox,
            "profileId": profile_id,
            "channel": "email",
            "templateId": TEMPLATE_ID,
            "category": "marketing",
            "context": context,
            "profile": profile,
            "origin": {
                "kind": "journey",
                "journeyId": str(uuid.UUID(int=7, version=4)),
                "version": 1,
                "nodeId": "picks",
                "step": 2,
            },
            "requestedAt": now.isoformat().replace("+00:00", "Z"),
        },
    )
    return profile_id.encode(), envelope.value(), envelope.headers(trace={})


def own_cpu_s(pid: int) -> float | None:
    """CPU seconds of one process alone (``itinera run`` is the parent of every service,
    so its tree would count them twice)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)


@dataclass
class Watched:
    """Processes whose CPU a phase reports: trees (a service and its children) and single
    processes."""

    trees: dict[str, int] = field(default_factory=dict)
    alone: dict[str, int] = field(default_factory=dict)

    def sample(self) -> CpuSample:
        processes = {name: tree_cpu_s(pid) for name, pid in self.trees.items()}
        processes |= {name: own_cpu_s(pid) for name, pid in self.alone.items()}
        return CpuSample(time.perf_counter(), machine_ticks(), time.process_time(), processes)


@dataclass
class Stack:
    """What the run started: stopped in reverse order at the end, whatever happened."""

    state_dir: Path
    statement_stats: bool = False
    database: Database | None = None
    brokers: list[Broker] = field(default_factory=list)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_database(self) -> str:
        if self.database is None:
            self.database = Database(
                data_dir=self.state_dir / "postgres", port=free_port(), statement_stats=self.statement_stats
            )
            self.database.start()
        return self.database.url

    def servers(self) -> dict[str, int]:
        """The broker last started and PostgreSQL, by name."""
        found = {}
        if self.brokers and self.brokers[-1].process is not None:
            found["broker"] = self.brokers[-1].process.pid
        if self.database is not None and self.database.process is not None:
            found["postgres"] = self.database.process.pid
        return found

    def start_broker(self, name: str) -> str:
        broker = Broker(port=free_port(), log_path=self.state_dir / f"{name}.log")
        broker.start()
        self.brokers.append(broker)
        return broker.bootstrap

    def spawn(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.state_dir / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self.processes[name] = process
        return process

    def stop_process(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = 60) -> None:
        process = self.processes.pop(name, None)
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: it and its children
            process.wait()

    def stop(self) -> None:
        for name in list(self.processes):
            # ``itinera run`` stops its services on SIGINT, as on Ctrl-C.
            self.stop_process(name, signal.SIGINT if name == "itinera run" else signal.SIGTERM)
        for broker in reversed(self.brokers):
            broker.stop()
        self.brokers.clear()
        if self.database is not None:
            self.database.stop()
            self.database = None
        drop_database_files(self.state_dir)


async def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError("the service exited; see its log in the run's folder")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/readyz", timeout=2)).status_code == 200:
                    return
            await asyncio.sleep(0.25)
    raise TimeoutError(f"{url} was not ready in time")


# (a) ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThroughputTick:
    at_s: float
    stored: int
    sent: int
    excluded: int
    in_sink: int


@dataclass
class Throughput:
    planned: int
    produced: int = 0
    produce_s: float = math.nan
    emails: int = 0
    last_email_s: float = math.nan
    """From the first send to the last email's arrival at the sink."""
    stored_s: float = math.nan
    """From the first send to the moment every request was recorded (checked, rendered)."""
    ticks: list[ThroughputTick] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    cpu: CpuUse | None = None
    statements: list[str] = field(default_factory=list)  # --statements


async def message_counts(db: asyncpg.Connection, sandbox: str) -> tuple[int, int, int]:
    row = await db.fetchrow(
        """SELECT count(*) AS stored, count(*) FILTER (WHERE state = 'sent') AS sent,
                  count(*) FILTER (WHERE state = 'excluded') AS excluded
             FROM channels.messages WHERE sandbox = $1""",
        sandbox,
    )
    assert row is not None
    return int(row["stored"]), int(row["sent"]), int(row["excluded"])


async def throughput_phase(args: argparse.Namespace, stack: Stack, result: Throughput) -> None:
    url_db = stack.start_database()
    bootstrap = stack.start_broker("broker-a")
    settings = CommonSettings(kafka_bootstrap=bootstrap, database_url=url_db)
    await create_topics(settings)
    run = uuid.uuid4().hex[:8]
    sandbox = f"bench-{run}"
    cap = args.messages + args.warmup + 1_000
    sink: LocalDelivery | CountingSink = (
        CountingSink(cap) if args.sink == "count" else LocalDelivery(smtp_port=0, web_port=0, cap=cap)
    )
    async with sink:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        overrides = {
            "ITINERA_CHANNELS_PUBLIC_URL": url,
            "ITINERA_CHANNELS_RATE_EMAIL": str(args.send_rate),
        }
        if args.delivery_batch:
            overrides["ITINERA_CHANNELS_DELIVERY_BATCH"] = str(args.delivery_batch)
        result.settings = {**overrides, "sink": args.sink}
        env = {
            **os.environ,
            "ITINERA_KAFKA_BOOTSTRAP": bootstrap,
            "ITINERA_DATABASE_URL": url_db,
            "ITINERA_LOG_LEVEL": "WARNING",
            **sink.environment(),
            **overrides,
        }
        command = [sys.executable, "-m", "itinera.common.cli", "serve", "channels", "--role", "all"]
        process = stack.spawn("channels", [*command, "--port", str(port)], env)
        await wait_ready(url, process, 120)
        watched = Watched(trees={"channels": process.pid, **stack.servers()})
        producer = Producer(settings, client_id="itinera-bench-channels")
        await producer.start()
        db = await asyncpg.connect(url_db)
        try:
            await producer.publish(
                topics.CONTENT.name,
                [
                    Envelope(
                        type="com.itinera.content.v1",
                        source="/itinera/content",
                        data=template_record(sandbox),
                        sandbox=sandbox,
                        key=f"template:{TEMPLATE_ID}",
                    )
                ],
            )
            deadline = time.monotonic() + 60
            while not await db.fetchval(
                "SELECT count(*) FROM channels.content_items WHERE sandbox = $1 AND id = $2",
                sandbox,
                TEMPLATE_ID,
            ):
                if time.monotonic() > deadline:
                    raise TimeoutError("the template never reached the channels' store")
                await asyncio.sleep(0.1)
            say(f"(a) channels at {url}, sink SMTP port {sink.smtp_port}; template stored; warming up")
            records = [request_record(sandbox, run, i) for i in range(args.warmup + args.messages)]
            await produce(producer, records[: args.warmup])
            try:
                await sink.mail.wait_count(args.warmup, timeout_s=args.phase_limit)
            except TimeoutError:
                say(f"(a) the warm-up's {args.warmup} emails did not all arrive; measuring anyway")
            sink.mail.clear()
            say(f"(a) {args.messages:,} requests as fast as they go (limit {args.phase_limit:.0f} s)")
            base = await message_counts(db, sandbox)
            if args.statements:
                await statements.reset(url_db)
            before = watched.sample()
            started_wall, started = time.time(), time.perf_counter()
            sampling = asyncio.create_task(sample_throughput(db, sandbox, sink, result, base, started))
            try:
                await produce(producer, records[args.warmup :])
                result.produced = args.messages
                result.produce_s = time.perf_counter() - started
                with contextlib.suppress(TimeoutError):
                    await sink.mail.wait_count(
                        args.messages,
                        timeout_s=max(0.0, args.phase_limit - (time.perf_counter() - started)),
                    )
                result.cpu = cpu_use(before, watched.sample())
                if args.statements:
                    result.statements = await statements.top(url_db, args.statements)
            finally:
                sampling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampling
            arrivals = [m.received_at.timestamp() for m in sink.mail]
            result.emails = len(arrivals)
            if arrivals:
                result.last_email_s = max(arrivals) - started_wall
            rows = await db.fetch(
                "SELECT state, count(*) AS n FROM channels.messages WHERE sandbox = $1 GROUP BY state",
                sandbox,
            )
            result.states = {r["state"]: int(r["n"]) for r in rows}
        finally:
            await db.close()
            await producer.stop()
            stack.stop_process("channels")


@dataclass(frozen=True, slots=True)
class Accepted:
    """An email the counting sink accepted: when, and its size."""

    id: str
    received_at: datetime
    size: int


class _Counting:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        self.store.add(Accepted(uuid.uuid4().hex, datetime.now(UTC), len(envelope.original_content or b"")))
        return "250 Message accepted for delivery"

    def __init__(self, store: Store[Accepted]) -> None:
        self.store = store


class CountingSink:
    """(a) with ``--sink count``: an SMTP server (aiosmtpd, as LocalDelivery's) on this
    process's loop that accepts every email and keeps only when it came and its size.
    LocalDelivery's sink parses each email with the ``email`` package, about 7 ms of CPU
    an email in this process, which bounds the run below 150 emails/s on a free core
    whatever the service does; this one measures the service."""

    def __init__(self, cap: int) -> None:
        self.mail: Store[Accepted] = Store(cap)
        self.smtp_port = 0
        self._server: asyncio.Server | None = None
        self._connections: list[SMTP] = []

    def environment(self) -> dict[str, str]:
        return {"ITINERA_CHANNELS_SMTP_HOST": "127.0.0.1", "ITINERA_CHANNELS_SMTP_PORT": str(self.smtp_port)}

    async def __aenter__(self) -> CountingSink:
        loop = asyncio.get_running_loop()
        handler = _Counting(self.mail)

        def protocol() -> SMTP:
            smtp = SMTP(handler, hostname="bench-sink", data_size_limit=32 << 20, loop=loop)
            self._connections.append(smtp)
            return smtp

        self._server = await loop.create_server(protocol, "127.0.0.1", 0)
        self.smtp_port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.close()
            for smtp in self._connections:  # the service keeps its connections open
                if smtp.transport is not None:
                    smtp.transport.close()
            await self._server.wait_closed()


async def produce(producer: Producer, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> None:
    pending = [
        await producer.send(topics.MESSAGES.name, value, key, headers) for key, value, headers in records
    ]
    await asyncio.gather(*pending)


async def sample_throughput(
    db: asyncpg.Connection,
    sandbox: str,
    sink: LocalDelivery | CountingSink,
    result: Throughput,
    base: tuple[int, int, int],
    started: float,
) -> None:
    """Every second: requests recorded and sent (the service's table) and emails in the sink."""
    tick = 1.0
    while True:
        await asyncio.sleep(max(0.0, started + tick - time.perf_counter()))
        tick += 1.0
        stored, sent, excluded = await message_counts(db, sandbox)
        at = time.perf_counter() - started
        stored -= base[0]
        result.ticks.append(ThroughputTick(at, stored, sent - base[1], excluded - base[2], len(sink.mail)))
        if stored >= result.planned and math.isnan(result.stored_s):
            result.stored_s = at


def throughput_report(run: Throughput) -> list[str]:
    rate = run.emails / run.last_email_s if run.last_email_s > 0 else math.nan
    verdict = "meets" if run.emails == run.planned and rate >= TARGET_EMAILS_S else "BELOW"
    stored_rate = run.planned / run.stored_s if run.stored_s > 0 else math.nan
    lines = [
        f"(a) {run.planned:,} email requests produced in {run.produce_s:.2f} s "
        f"({num(run.produced / run.produce_s if run.produce_s else math.nan)}/s); service settings "
        + ", ".join(f"{k}={v}" for k, v in run.settings.items()),
        f"{'emails accepted by the sink':<40}{run.emails:>10,}  of {run.planned:,}",
        f"{'first request -> last email':<40}{run.last_email_s:>10.2f} s",
        f"{'emails/s (emails / that time)':<40}{num(rate):>10}   target >= {TARGET_EMAILS_S:,}/s: {verdict}",
        f"{'requests recorded (rendered) /s':<40}{num(stored_rate):>10}   "
        + (
            f"all recorded {run.stored_s:.0f} s after the first send"
            if not math.isnan(run.stored_s)
            else "not all recorded within the limit"
        ),
        "states at the end: " + ", ".join(f"{k} {v:,}" for k, v in sorted(run.states.items())),
    ]
    if run.ticks:
        step = max(1, math.ceil(len(run.ticks) / 30))
        lines.append(
            "every second (shown every " + (f"{step} s" if step > 1 else "s") + "): recorded = requests "
            "consumed, checked, rendered and stored; sent = the service's sent state; sink = emails received"
        )
        lines.append(
            f"{'t s':>6}{'recorded':>10}{'rec/s':>8}{'sent':>10}{'sent/s':>8}{'sink':>10}{'sink/s':>8}"
        )
        previous = ThroughputTick(0, 0, 0, 0, 0)
        for i, tick in enumerate(run.ticks):
            if (i + 1) % step and i != len(run.ticks) - 1:
                continue
            dt = max(tick.at_s - previous.at_s, 1e-9)
            lines.append(
                f"{tick.at_s:>6.0f}{tick.stored:>10,}{(tick.stored - previous.stored) / dt:>8,.0f}"
                f"{tick.sent:>10,}{(tick.sent - previous.sent) / dt:>8,.0f}"
                f"{tick.in_sink:>10,}{(tick.in_sink - previous.in_sink) / dt:>8,.0f}"
            )
            previous = tick
    if run.cpu is not None:
        lines += cpu_lines(run.cpu, max(1, run.emails), "email")
        lines.append(
            "client = this process: the producer and the SMTP sink "
            + (
                "(it only counts the emails it accepts)"
                if run.settings.get("sink") == "count"
                else "(it parses every email it accepts)"
            )
        )
    return lines + run.statements


# (b) ------------------------------------------------------------------------------------


def render_phase(args: argparse.Namespace) -> list[str]:
    """benchmarks/render.py in a process of its own; its table as it printed it."""
    say(f"(b) {RENDER_SCRIPT.name} --renders {args.renders:,}")
    done = subprocess.run(
        [sys.executable, str(RENDER_SCRIPT), "--renders", str(args.renders)],
        capture_output=True,
        text=True,
        timeout=max(60.0, args.phase_limit),
        check=False,
    )
    table = [line for line in done.stdout.splitlines() if not line.startswith("bench |")]
    while table and not table[0].strip():
        table.pop(0)
    header = f"(b) template render ({RENDER_SCRIPT.name}: one compiled template, timed per render; "
    header += f"target p99 < {TARGET_RENDER_P99_MS:g} ms)"
    if done.returncode != 0:
        return [header, f"render.py exited with {done.returncode}:", *done.stderr.splitlines()[-5:], *table]
    return [header, *table]


# (c) ------------------------------------------------------------------------------------


@dataclass
class Loop:
    planned: int
    profiles: int = 0
    profiles_s: float = math.nan
    sent: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    not_sent: int = 0
    latencies_s: list[float] = field(default_factory=list)
    missing: int = 0
    polls: int = 0
    cpu: CpuUse | None = None
    warmup: int = 0
    warmup_latencies_s: list[float] = field(default_factory=list)


class Poster:
    """Keep-alive HTTP/1.1 POSTs of JSON bodies, answering the status.

    httpx spends milliseconds of CPU per request here; at 200 requests a second that is
    a share of a core taken from the services being measured, so the events go out
    through this instead (a request, a status line, a body of ``content-length`` bytes).
    """

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parsed = httpx.URL(url)
        self.host, self.port = parsed.host, parsed.port or 80
        head = {"Host": f"{self.host}:{self.port}", "Content-Type": "application/json", **headers}
        self.head = "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode()
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes) -> int:
        request = b"".join(
            (
                b"POST ",
                path.encode(),
                b" HTTP/1.1\r\n",
                self.head,
                b"Content-Length: ",
                str(len(body)).encode(),
            )
        )
        request += b"\r\n\r\n" + body
        while self.idle:
            reader, writer = self.idle.pop()
            try:
                return await self.exchange(reader, writer, request)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                # An idle connection the server had closed: a new one. A half answer is
                # an error of this request.
                if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                    raise
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return await self.exchange(reader, writer, request)

    async def exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
    ) -> int:
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        self.idle.append((reader, writer))
        return int(head[9:12])

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


@dataclass
class Inbox:
    """Follows the local inbox: emails newest first, read until one already seen; each
    one sent to a wanted address gives that address's latency (``receivedAt`` minus the
    event's due time, both wall-clock times of this machine)."""

    client: httpx.AsyncClient
    url: str
    wanted: dict[str, float] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    limit: int = 100
    polls: int = 0
    emptied: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by a poll after which no email is awaited."""

    async def poll(self) -> None:
        while True:
            response = await self.client.get(
                f"{self.url}/api/messages", params={"limit": self.limit}, timeout=10
            )
            response.raise_for_status()
            self.polls += 1
            messages = orjson.loads(response.content)["messages"]
            fresh = []
            for message in messages:
                if message["id"] in self.seen:
                    break
                fresh.append(message)
            if len(fresh) == len(messages) == self.limit and self.limit < 10_000:
                self.limit = min(10_000, self.limit * 2)  # more came than a page: read again, deeper
                continue
            break
        for message in fresh:
            self.seen.add(message["id"])
            received = datetime.fromisoformat(message["receivedAt"]).timestamp()
            for address in message["envelopeTo"]:
                due = self.wanted.pop(address.lower(), None)
                if due is not None:
                    self.latencies_s.append(received - due)
        if not self.wanted:
            self.emptied.set()
        self.limit = max(100, 4 * len(fresh))

    async def follow(self, stop: asyncio.Event, every_s: float) -> None:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                await self.poll()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)


def free_offset() -> int:
    """A port offset under which every port ``itinera run`` takes is free."""
    for offset in range(22_000, 40_000, 100):
        ports = [*LOOP_SERVICES.values(), INBOX_PORT, SMTP_PORT]
        if all(port_free(p + offset) for p in ports):
            return offset
    raise RuntimeError("no free range of ports for itinera run")


async def started_run(log: Path, process: subprocess.Popen[bytes], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = await asyncio.to_thread(lambda: log.read_text(errors="replace") if log.exists() else "")
        if "Stop with Ctrl-C" in text:
            return text
        if process.poll() is not None:
            raise RuntimeError(f"itinera run exited early; see {log}")
        await asyncio.sleep(0.5)
    raise TimeoutError(f"itinera run did not start in {timeout_s:.0f} s; see {log}")


def customer(run: str, i: int) -> dict[str, Any]:
    email = f"c-{run}-{i}@example.com"
    return {
        "_id": str(uuid.uuid4()),
        "identityMap": {"Email": [{"id": email, "primary": True}]},
        "person": {"name": {"firstName": FIRST_NAMES[i % 10], "lastName": f"Doe-{i % 97}"}},
        "personalEmail": {"address": email},
        "preferredLanguage": "en-GB" if i % 2 else "fr-FR",
    }


def signup(run: str, i: int) -> bytes:
    return orjson.dumps(
        {
            "_id": str(uuid.uuid4()),
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "eventType": "demo.signup",
            "identityMap": {"Email": [{"id": f"c-{run}-{i}@example.com", "primary": True}]},
            "web": {"webPageDetails": {"name": "signup"}},
        }
    )


async def loop_phase(args: argparse.Namespace, stack: Stack, result: Loop) -> None:
    admin_url = stack.start_database()
    bootstrap = stack.start_broker("broker-c")
    name = f"loop_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    db_url = f"{admin_url.rpartition('/')[0]}/{name}"
    offset = free_offset()
    env = {
        **os.environ,
        "ITINERA_KAFKA_BOOTSTRAP": bootstrap,
        "ITINERA_DATABASE_URL": db_url,
        "ITINERA_LOG_LEVEL": "WARNING",
        # Passed on to every service: the channels' pacing of the local sink, as in (a).
        "ITINERA_CHANNELS_RATE_EMAIL": str(args.send_rate),
    }
    command = [sys.executable, "-m", "itinera.common.cli", "run", "--port-offset", str(offset)]
    command += ["--state-dir", str(stack.state_dir / "run")]
    say(f"(c) itinera run --port-offset {offset} (log: {stack.state_dir / 'itinera run.log'})")
    process = stack.spawn("itinera run", command, env)
    text = await started_run(stack.state_dir / "itinera run.log", process, 240)
    token = re.search(r"export TOKEN=(\S+)", text)
    web = re.search(r"Demo web events: +dataset \w+, connection (\w+)", text)
    crm = re.search(r"Demo CRM profiles: dataset \w+, connection (\w+)", text)
    if not (token and web and crm):
        raise RuntimeError("itinera run did not print the token and the demo connections")
    watched = Watched(alone={"run+inbox": process.pid})
    for service, port in LOOP_SERVICES.items():
        pid = listening_pid(f"127.0.0.1:{port + offset}")
        if pid is not None:
            watched.trees[service] = pid
    watched.trees |= stack.servers()
    ingestion = f"http://127.0.0.1:{LOOP_SERVICES['ingestion'] + offset}"
    inbox_url = f"http://127.0.0.1:{INBOX_PORT + offset}"
    headers = {"authorization": f"Bearer {token[1]}"}
    run = uuid.uuid4().hex[:8]
    count = result.warmup + result.planned
    db = await asyncpg.connect(db_url)
    try:
        async with httpx.AsyncClient(headers=headers, timeout=30) as http:
            say(f"(c) {count:,} customer records through the CRM connection")
            started = time.perf_counter()
            for first in range(0, count, 100):
                batch = [customer(run, i) for i in range(first, min(count, first + 100))]
                sent = await http.post(f"{ingestion}/collection/batch/{crm[1]}", json={"messages": batch})
                refused = [r for r in sent.json().get("responses", []) if r.get("status", 200) >= 300]
                if sent.status_code >= 300 or refused:
                    raise RuntimeError(
                        f"customer records refused: {sent.status_code} {refused[:1] or sent.text}"
                    )
            while time.perf_counter() - started < args.phase_limit:
                result.profiles = await db.fetchval(
                    "SELECT count(*) FROM profile.fragments WHERE namespace = 'Email' AND value LIKE $1",
                    f"c-{run}-%",
                )
                if result.profiles >= count:
                    break
                await asyncio.sleep(0.5)
            result.profiles_s = time.perf_counter() - started
            say(f"(c) {result.profiles:,} profiles stored in {result.profiles_s:.1f} s")
            if result.profiles < count:
                raise RuntimeError("the profile service did not store every customer in time")
            poster = Poster(ingestion, headers)
            inbox = Inbox(http, inbox_url)
            stop = asyncio.Event()
            following = asyncio.create_task(inbox.follow(stop, args.poll))
            try:
                say(f"(c) warm-up: {result.warmup} sign-ups at {args.rate:,.0f}/s")
                await send_signups(
                    poster, web[1], run, range(result.warmup), args, inbox, result, timed=False
                )
                await drain(inbox, args.drain)
                result.warmup_latencies_s, inbox.latencies_s = inbox.latencies_s, []
                inbox.wanted.clear()
                say(f"(c) {result.planned:,} sign-ups at {args.rate:,.0f}/s for {args.duration:.0f} s")
                before = watched.sample()
                await send_signups(
                    poster, web[1], run, range(result.warmup, count), args, inbox, result, timed=True
                )
                await drain(inbox, args.drain)
                result.cpu = cpu_use(before, watched.sample())
                result.latencies_s = inbox.latencies_s
                result.missing = len(inbox.wanted)
                result.polls = inbox.polls
            finally:
                stop.set()
                await following
                poster.close()
    finally:
        await db.close()
        stack.stop_process("itinera run", signal.SIGINT, timeout_s=90)


async def send_signups(
    poster: Poster,
    connection: str,
    run: str,
    which: range,
    args: argparse.Namespace,
    inbox: Inbox,
    result: Loop,
    *,
    timed: bool,
) -> None:
    """Open loop: sign-up i is due at start + i / rate, whatever was answered before."""
    path = f"/collection/{connection}"
    bodies = [signup(run, i) for i in which]
    in_flight: set[asyncio.Task[None]] = set()

    async def one(address: str, body: bytes) -> None:
        try:
            async with asyncio.timeout(10):
                status = await poster.post(path, body)
        except (
            OSError,
            TimeoutError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ) as exc:
            failure = type(exc).__name__
        else:
            if status < 300:
                return
            failure = f"HTTP {status}"
        inbox.wanted.pop(address, None)  # no email to wait for
        if timed:
            result.refused[failure] = result.refused.get(failure, 0) + 1

    started_wall = time.time() + 0.01
    started = time.perf_counter() + 0.01
    for n, (i, body) in enumerate(zip(which, bodies, strict=True)):
        due = started + n / args.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) >= args.max_in_flight:
            result.not_sent += int(timed)
            continue
        # Wanted before the answer comes: the email may be quicker than the answer.
        address = f"c-{run}-{i}@example.com"
        inbox.wanted[address] = started_wall + n / args.rate
        task = asyncio.create_task(one(address, body))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        result.sent += int(timed)
    if in_flight:
        await asyncio.wait(set(in_flight))


async def drain(inbox: Inbox, limit_s: float) -> None:
    """Until every sent sign-up's email came, or ``limit_s``."""
    inbox.emptied.clear()
    if inbox.wanted:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(inbox.emptied.wait(), limit_s)


def loop_report(run: Loop, args: argparse.Namespace) -> list[str]:
    got = len(run.latencies_s)
    p99 = percentile_ms(run.latencies_s, 99)
    complete = got == run.sent == run.planned
    verdict = "meets" if complete and p99 < TARGET_LOOP_P99_MS and args.rate >= TARGET_LOOP_RATE else "BELOW"
    lines = [
        f"(c) sign-up -> welcome email in the inbox, through itinera run, at {args.rate:,.0f} events/s for "
        f"{args.duration:.0f} s (one new customer each; {run.profiles:,} customer records stored by the "
        f"profile service in {run.profiles_s:.1f} s before)",
        f"{'':<30}{'sent':>8}{'emails':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}   target",
        f"{'event due -> email received':<30}{run.sent:>8,}{got:>8,}"
        + "".join(f"{percentile_ms(run.latencies_s, q):>9.1f}" for q in (50, 90, 99, 100))
        + f"   p99 < {TARGET_LOOP_P99_MS:,.0f} ms at {TARGET_LOOP_RATE}/s: {verdict}",
        f"{'warm-up (not counted)':<30}{run.warmup:>8,}{len(run.warmup_latencies_s):>8,}"
        + "".join(f"{percentile_ms(run.warmup_latencies_s, q):>9.1f}" for q in (50, 90, 99, 100)),
        f"inbox polls: {run.polls:,} (every {args.poll:g} s, newest first until an email already seen)",
    ]
    if run.refused:
        lines.append("refused or failed sends: " + ", ".join(f"{k} {v:,}" for k, v in run.refused.items()))
    if run.not_sent:
        lines.append(f"not sent (more than {args.max_in_flight} requests unanswered): {run.not_sent:,}")
    if run.missing:
        lines.append(f"no email within {args.drain:.0f} s of the last send: {run.missing:,}")
    if run.cpu is not None:
        lines += cpu_lines(run.cpu, max(1, run.sent), "event")
        lines.append(
            "run+inbox = the itinera run process alone: the SMTP sink and the inbox answering the polls; "
            "client = this process (the sends and the polls)"
        )
    return lines


# ----------------------------------------------------------------------------------------


@dataclass
class Results:
    busy_before: float = math.nan
    render: list[str] = field(default_factory=list)
    throughput: Throughput | None = None
    loop: Loop | None = None
    notes: list[str] = field(default_factory=list)


def check_template() -> None:
    """The benchmark's template renders without errors, so (a) measures sends, not exclusions."""
    profile, context = render_data(0, "check")
    for part in (SUBJECT, HTML, TEXT):
        rendered = compile_template(part).render({"profile": profile, "context": context})
        if rendered.errors or rendered.undefined_paths:
            raise RuntimeError(
                f"the benchmark's template renders with {rendered.errors} {rendered.undefined_paths}"
            )


async def bench(args: argparse.Namespace, stack: Stack, results: Results) -> Results:
    quiet = Watched().sample()
    await asyncio.sleep(2)
    results.busy_before = cpu_use(quiet, Watched().sample()).machine
    if "b" in args.phases:
        results.render = await asyncio.to_thread(render_phase, args)
    if "a" in args.phases:
        check_template()
        results.throughput = Throughput(args.messages)
        say(f"(a) starting PostgreSQL and a broker (logs in {stack.state_dir})")
        await throughput_phase(args, stack, results.throughput)
    if "c" in args.phases:
        results.loop = Loop(int(args.rate * args.duration), warmup=args.warmup_events)
        await loop_phase(args, stack, results.loop)
        if args.duration + args.drain > 55:
            results.notes.append(
                "(c) the demo journey sends an SMS 60 s after each unopened email: runs that long also "
                "measure those sends"
            )
    return results


def report(results: Results, args: argparse.Namespace) -> str:
    lines = [
        "",
        machine_line(),
        f"cores busy before the run started anything: {num(results.busy_before, 2)}",
        "",
    ]
    if results.render:
        lines += [*results.render, ""]
    if results.throughput is not None:
        lines += [*throughput_report(results.throughput), ""]
    if results.loop is not None:
        lines += [*loop_report(results.loop, args), ""]
    lines += results.notes
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000, help="(a) email requests produced at once")
    parser.add_argument("--warmup", type=int, default=500, help="(a) requests before timing")
    parser.add_argument(
        "--send-rate",
        type=float,
        default=1e9,
        help="(a), (c) ITINERA_CHANNELS_RATE_EMAIL (default: unbounded)",
    )
    parser.add_argument(
        "--delivery-batch",
        type=int,
        default=0,
        help="(a) ITINERA_CHANNELS_DELIVERY_BATCH (default: the service's)",
    )
    parser.add_argument(
        "--sink",
        choices=("local", "count"),
        default="local",
        help="(a) local: LocalDelivery's SMTP sink, which parses every email (the issue's "
        "target); count: an SMTP server that only counts them, so the sink's parsing does "
        "not bound what the service is measured at",
    )
    parser.add_argument(
        "--statements",
        type=int,
        default=0,
        help="(a) print the N PostgreSQL statements with the most execution time (pg_stat_statements)",
    )
    parser.add_argument("--renders", type=int, default=20_000, help="(b) renders timed by render.py")
    parser.add_argument(
        "--rate", type=float, default=TARGET_LOOP_RATE, help="(c) sign-ups per second, open loop"
    )
    parser.add_argument("--duration", type=float, default=20, help="(c) seconds of timed sending")
    parser.add_argument("--warmup-events", type=int, default=200, help="(c) sign-ups before timing")
    parser.add_argument("--drain", type=float, default=30, help="(c) seconds to wait for the last emails")
    parser.add_argument("--poll", type=float, default=0.1, help="(c) seconds between looks at the inbox")
    parser.add_argument("--max-in-flight", type=int, default=256, help="(c) unanswered sends at most")
    parser.add_argument("--phase-limit", type=float, default=180, help="seconds a phase's wait may take")
    parser.add_argument("--only", choices=PHASES, action="append", help="run only these phases (repeatable)")
    parser.add_argument("--time-limit", type=float, default=900, help="seconds for the whole run at most")
    args = parser.parse_args(argv)
    if args.messages <= 0 or args.rate <= 0 or args.duration <= 0 or args.renders <= 0:
        parser.error("--messages, --rate, --duration and --renders must be positive")
    args.phases = set(args.only or PHASES)
    stack = Stack(
        Path(tempfile.mkdtemp(prefix="itinera-bench-channels-")), statement_stats=args.statements > 0
    )
    results = Results()

    finished = run_bounded(lambda: bench(args, stack, results), args.time_limit, stack.stop)
    print(report(results, args))
    return 0 if finished is not None else 3


if __name__ == "__main__":
    sys.exit(main())
