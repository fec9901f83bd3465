"""Profile service: how fast it applies events, and how fast it answers look-ups, in one run.

(a) consumption: realistic experience events (``commerce.productViews``, about 0.7 KB,
    keyed by their ECID; a share also carry the person's Email, so the graph links and
    merges), pre-serialised and produced to ``itinera.events.v1`` as fast as aiokafka
    goes (``acks=all``, the service's own producer settings); then we watch the service
    apply them: events/s from the first one produced to the last one applied, and what
    it drained each second. "Applied" is the service's own count of records it handled
    (``itinera_consumer_records_total`` of its group at ``/metrics``), so it counts
    committed batches; its ``itinera_consumer_lag`` and the outbox backlog (rows in
    ``profile.outbox``) are sampled beside it.
(b) reads: profiles seeded as profile records on ``itinera.records.v1`` (bounded in
    time: the report says how many were stored), then AEP's profile look-up
    ``GET /data/core/ups/access/entities?schema.name=_xdm.context.profile&entityId=<email>
    &entityIdNS=Email`` driven open-loop at a fixed rate: requests are scheduled at
    fixed intervals whatever the responses, with a bound on those in flight, and latency
    is counted from when a request was due (and, beside it, from when it was sent).

The service runs in its own process (``itinera serve profile --role all``), on a broker
and PostgreSQL this run starts, as ``benchmarks/ingest.py`` does; the client, the
service, the broker and PostgreSQL share the machine's cores and the CPU table says
who used what. The benchmark reports; it never asserts. Every phase is bounded in
time, the whole run by ``--time-limit``, and whatever it started is stopped at the end,
on errors and on Ctrl-C.

    .venv/bin/python benchmarks/profile.py [--events N] [--read-profiles P] [--rate R] [--duration D]
    .venv/bin/python benchmarks/profile.py --reuse --url http://127.0.0.1:8002   # after make run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import statements
from machine import CpuUse, cpu_sample, cpu_use, listening_pid, machine_line, num, percentile_ms, say
from prometheus_client.parser import text_string_to_metric_families
from shop import PAGES, PRODUCTS, USER_AGENTS
from stack import run_bounded

from itinera.common.auth import mint_token
from itinera.common.devstack import Infrastructure, free_port
from itinera.common.kafka import topics
from itinera.common.kafka.admin import create_topics
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.settings import CommonSettings

GROUP = "itinera-profile"  # ITINERA_PROFILE_CONSUMER_GROUP's default
SCHEMA = "profile"  # the service's PostgreSQL schema
EXPERIENCE_EVENT = "https://ns.adobe.com/xdm/context/experienceevent"
PROFILE = "https://ns.adobe.com/xdm/context/profile"
EVENT_TYPE = "com.itinera.ingestion.event.v1"  # what ingestion puts in ce_type
RECORD_TYPE = "com.itinera.ingestion.record.v1"
EVENTS_DATASET = "bench-events"
PROFILES_DATASET = "bench-profiles"
SOURCE = "/itinera/ingestion/connections/bench"
LOOKUP = "/data/core/ups/access/entities?schema.name=_xdm.context.profile&entityIdNS=Email&entityId="

TARGET_EVENTS_PER_S = 10_000
TARGET_P99_MS = 10.0
TARGET_RATE = 500
TARGET_PROFILES = 100_000

FIRST_NAMES = ("Jane", "Ravi", "Mei", "Lucas", "Amara", "Jonas", "Sofia", "Kenji", "Ines", "Omar")
LAST_NAMES = ("Doe", "Patel", "Chen", "Martin", "Okafor", "Berg", "Rossi", "Tanaka", "Silva", "Haddad")
CITIES = (
    ("Lyon", "69002", "FR"),
    ("Hamburg", "20095", "DE"),
    ("Leeds", "LS1 4AP", "GB"),
    ("Porto", "4050-262", "PT"),
)
TIERS = ("bronze", "silver", "gold", "platinum")


# -- the traffic ----------------------------------------------------------------------

RawRecord = tuple[bytes, bytes, list[tuple[str, bytes]]]


def _wire(entity: dict[str, Any], key: str, kind: str, sandbox: str, dataset: str, n: int) -> RawRecord:
    """What ingestion publishes for an accepted entity: same value, key and headers."""
    envelope = Envelope(
        type=kind,
        source=SOURCE,
        data=entity,
        sandbox=sandbox,
        key=key,
        id=f"bench-{dataset}-{n}",
        extensions={
            "itinera_dataset": dataset,
            "itinera_schema": EXPERIENCE_EVENT if kind == EVENT_TYPE else PROFILE,
            "itinera_connection": "bench",
        },
    )
    return key.encode(), envelope.value(), envelope.headers(trace={})


class Traffic:
    """Deterministic events and profile records for a seed.

    Events: ``profiles`` devices (ECIDs) in the pool; one device in five is a person's
    second, sharing the email of the one before it. An event carries its ECID and, with
    probability ``email_share``, the person's Email: the first such event links the
    device to the email, and a second device's graph then joins the first's (a merge),
    as a shopper logging in on a phone and a laptop does.

    Profile records: one per person (``member.NNNNNN@example.com``), with a CRMID, so
    every stored profile is a graph of two identities.
    """

    def __init__(self, seed: int, profiles: int, email_share: float, sandbox: str) -> None:
        self._rng = random.Random(seed)
        self._sandbox = sandbox
        self._email_share = email_share
        self._ecids = ["".join(self._rng.choices("0123456789", k=38)) for _ in range(profiles)]
        self._emails = [f"customer.{n - (n % 5 == 1):06d}@example.com" for n in range(profiles)]
        self._clock = datetime.now(UTC) - timedelta(hours=2)
        self._events = 0

    def event(self, ecid: str | None = None, email: str | None = None) -> dict[str, Any]:
        rng = self._rng
        if ecid is None:
            device = rng.randrange(len(self._ecids))
            ecid = self._ecids[device]
            email = self._emails[device] if rng.random() < self._email_share else None
        page_name, url = rng.choice(PAGES)
        sku, product, price = rng.choice(PRODUCTS)
        self._clock += timedelta(milliseconds=rng.randint(1, 40))
        identity_map: dict[str, list[dict[str, Any]]] = {"ECID": [{"id": ecid, "primary": True}]}
        if email is not None:
            identity_map["Email"] = [{"id": email, "authenticatedState": "authenticated"}]
        return {
            "_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "timestamp": self._clock.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "eventType": "commerce.productViews",
            "identityMap": identity_map,
            "web": {"webPageDetails": {"name": page_name, "URL": url}},
            "commerce": {"productViews": {"value": 1}},
            "productListItems": [{"SKU": sku, "name": product, "quantity": 1, "priceTotal": price}],
            "environment": {"browserDetails": {"userAgent": rng.choice(USER_AGENTS)}},
        }

    def events(self, count: int) -> list[RawRecord]:
        found = []
        for _ in range(count):
            entity = self.event()
            key = f"ECID:{entity['identityMap']['ECID'][0]['id']}"
            found.append(_wire(entity, key, EVENT_TYPE, self._sandbox, EVENTS_DATASET, self._events))
            self._events += 1
        return found

    def probe(self) -> tuple[str, RawRecord]:
        """One event of an identity of its own: (its ``Namespace:value``, the record)."""
        ecid = f"probe-{uuid.uuid4().hex}"
        record = _wire(self.event(ecid), f"ECID:{ecid}", EVENT_TYPE, self._sandbox, EVENTS_DATASET, -1)
        return f"ECID:{ecid}", record

    @staticmethod
    def member_email(n: int) -> str:
        return f"member.{n:06d}@example.com"

    def records(self, start: int, count: int) -> list[RawRecord]:
        found = []
        for n in range(start, start + count):
            first, last = FIRST_NAMES[n % 10], LAST_NAMES[n // 10 % 10]
            city, postcode, country = CITIES[n % len(CITIES)]
            email = self.member_email(n)
            entity = {
                "identityMap": {
                    "Email": [{"id": email, "primary": True, "authenticatedState": "authenticated"}],
                    "CRMID": [{"id": f"CRM-{n:09d}"}],
                },
                "person": {
                    "name": {"firstName": first, "lastName": last, "fullName": f"{first} {last}"},
                    "birthDate": f"19{60 + n % 40}-{1 + n % 12:02d}-{1 + n % 28:02d}",
                    "gender": ("female", "male", "not_specified")[n % 3],
                },
                "personalEmail": {"address": email, "primary": True, "status": "active"},
                "mobilePhone": {"number": f"+33 6 {n % 100:02d} {n // 100 % 100:02d} 45 67", "primary": True},
                "homeAddress": {
                    "street1": f"{1 + n % 180} rue des Alpes",
                    "city": city,
                    "postalCode": postcode,
                    "countryCode": country,
                },
                "loyalty": {"program": "Outdoor Club", "tier": TIERS[n % 4], "points": n % 5000 * 3},
                "consents": {"collect": {"val": "y"}, "marketing": {"email": {"val": "y" if n % 3 else "n"}}},
            }
            found.append(_wire(entity, f"Email:{email}", RECORD_TYPE, self._sandbox, PROFILES_DATASET, n))
        return found


# -- CPU accounting (Linux /proc; absent elsewhere) -----------------------------------


def reused_processes(url: str, settings: CommonSettings) -> dict[str, int]:
    """With ``--reuse``: the processes behind the loopback addresses, found by port."""
    database = httpx.URL(settings.database_url)
    addresses = {
        "profile": httpx.URL(url).netloc.decode(),
        "broker": settings.kafka_bootstrap.split(",")[0],
        "postgres": f"{database.host}:{database.port or 5432}",
    }
    found = {name: listening_pid(address) for name, address in addresses.items()}
    return {name: pid for name, pid in found.items() if pid is not None}


# -- what the service says about itself, and what its tables hold --------------------


@dataclass(frozen=True)
class Counters:
    """The consumer group's figures at ``/metrics`` (one process's)."""

    processed: float = 0
    dead_lettered: float = 0
    lag: float = 0
    batches: float = 0
    handler_s: float = 0
    relayed: float = 0
    conflicts: float = 0

    @property
    def drained(self) -> float:
        return self.processed + self.dead_lettered


class ServiceMetrics:
    def __init__(
        self, client: httpx.AsyncClient, url: str, relay_url: str | None = None, others: Sequence[str] = ()
    ) -> None:
        self._client = client
        consumers = [url, *others]  # every consuming process (``--consumers``), each its own figures
        self._urls = [f"{u}/metrics" for u in consumers] + ([f"{relay_url}/metrics"] if relay_url else [])

    async def read(self) -> Counters:
        """The consumer's figures (and the relay's, when it runs in its own process)."""
        texts = []
        for url in self._urls:
            response = await self._client.get(url, timeout=5)
            response.raise_for_status()
            texts.append(response.text)
        found: dict[str, float] = dict.fromkeys(
            ("processed", "dead_lettered", "lag", "batches", "handler_s", "relayed", "conflicts"), 0.0
        )
        for family in text_string_to_metric_families("".join(texts)):
            for sample in family.samples:
                labels = sample.labels
                if sample.name == "itinera_outbox_relayed_records_total" and labels.get("schema") == SCHEMA:
                    found["relayed"] += sample.value
                if sample.name == "itinera_profile_graph_conflicts_total":
                    found["conflicts"] += sample.value
                if labels.get("group") != GROUP:
                    continue
                if sample.name == "itinera_consumer_records_total":
                    # Note: a batch is counted under its first record's topic; sum them.
                    if labels.get("outcome") in ("processed", "dead_lettered"):
                        found[labels["outcome"]] += sample.value
                elif sample.name == "itinera_consumer_lag":
                    found["lag"] += sample.value
                elif sample.name == "itinera_consumer_handler_seconds_count":
                    found["batches"] += sample.value
                elif sample.name == "itinera_consumer_handler_seconds_sum":
                    found["handler_s"] += sample.value
        return Counters(**found)


class Tables:
    """Counts read straight from the service's tables. Services never read each
    other's tables; a benchmark may look, to say what was actually stored."""

    def __init__(self, conn: Any, sandbox: str) -> None:
        self._conn = conn
        self._sandbox = sandbox

    async def analyze(self) -> bool:
        """Fresh planner statistics for the service's tables (see ``--no-analyze``)."""
        if self._conn is None:
            return False
        rows = await self._conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", SCHEMA)
        for row in rows:
            await self._conn.execute(f'ANALYZE {SCHEMA}."{row["tablename"]}"')
        return True

    async def outbox(self) -> int | None:
        if self._conn is None:
            return None
        count: int = await self._conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox")
        return count

    async def stored(self) -> dict[str, int]:
        if self._conn is None:
            return {}
        row = await self._conn.fetchrow(
            f"""SELECT
                 (SELECT count(*) FROM {SCHEMA}.events WHERE sandbox = $1) AS events,
                 (SELECT count(*) FROM {SCHEMA}.fragments WHERE sandbox = $1) AS fragments,
                 (SELECT count(*) FROM {SCHEMA}.identities WHERE sandbox = $1) AS identities,
                 (SELECT count(DISTINCT profile_id) FROM {SCHEMA}.members WHERE sandbox = $1) AS profiles,
                 (SELECT count(*) FROM {SCHEMA}.merged_profiles WHERE sandbox = $1) AS merged""",
            self._sandbox,
        )
        return dict(row)

    async def member_emails(self) -> list[str]:
        """Emails of the seeded profiles that were stored."""
        if self._conn is None:
            return []
        rows = await self._conn.fetch(
            f"""SELECT value FROM {SCHEMA}.fragments
                WHERE sandbox = $1 AND dataset_id = $2 AND namespace = 'Email'""",
            self._sandbox,
            PROFILES_DATASET,
        )
        return [r["value"] for r in rows]


# -- producing ------------------------------------------------------------------------


@dataclass
class Progress:
    sent: int = 0
    finished_at: float | None = None


async def produce(
    kafka: Any, topic: str, records: Sequence[RawRecord], window: int, progress: Progress, deadline: float
) -> None:
    """Send ``window`` records, wait for every acknowledgement, repeat."""
    for start in range(0, len(records), window):
        if time.perf_counter() > deadline:
            break
        pending = [
            await kafka.send(topic, value=value, key=key, headers=headers)
            for key, value, headers in records[start : start + window]
        ]
        await asyncio.gather(*pending)
        progress.sent += len(pending)
    progress.finished_at = time.perf_counter()


async def wait_applied(metrics: ServiceMetrics, base: float, count: int, deadline: float) -> float:
    """Poll until ``count`` records past ``base`` were handled; return how many were."""
    while True:
        applied = (await metrics.read()).drained - base
        if applied >= count or time.perf_counter() > deadline:
            return applied
        await asyncio.sleep(0.25)


# -- (a) consumption ------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    at_s: float
    produced: int
    applied: float
    lag_reported: float
    outbox: int | None
    relayed: float


@dataclass
class Consumption:
    planned: int
    produced: int = 0
    produce_s: float = math.nan
    applied: float = 0
    seconds: float = math.nan
    drained: bool = False
    dead_lettered: float = 0
    batches: float = 0
    handler_s: float = 0
    conflicts: float = 0
    ticks: list[Tick] = field(default_factory=list)
    cpu: CpuUse | None = None

    @property
    def rate(self) -> float:
        return self.applied / self.seconds if self.seconds > 0 else math.nan


async def run_consumption(
    kafka: Any,
    metrics: ServiceMetrics,
    tables: Tables,
    records: Sequence[RawRecord],
    args: Args,
    watched: dict[str, int],
) -> Consumption:
    result = Consumption(len(records))
    base = await metrics.read()
    progress = Progress()
    before = cpu_sample(watched)
    started = time.perf_counter()
    deadline = started + args.consume_limit
    sending = asyncio.create_task(
        produce(kafka, topics.EVENTS.name, records, args.window, progress, deadline)
    )
    result.ticks.append(Tick(0, 0, 0, base.lag, await tables.outbox(), 0))
    next_tick = started + 1
    try:
        while True:
            await asyncio.sleep(0.25)
            now_counters = await metrics.read()
            now = time.perf_counter()
            applied = now_counters.drained - base.drained
            done = sending.done() and applied >= progress.sent
            if done or now >= next_tick or now > deadline:
                result.ticks.append(
                    Tick(
                        now - started,
                        progress.sent,
                        applied,
                        now_counters.lag,
                        await tables.outbox(),
                        now_counters.relayed - base.relayed,
                    )
                )
                next_tick += 1
            if done or now > deadline:
                result.drained = done
                result.seconds = now - started
                result.applied = applied
                result.dead_lettered = now_counters.dead_lettered - base.dead_lettered
                result.batches = now_counters.batches - base.batches
                result.handler_s = now_counters.handler_s - base.handler_s
                result.conflicts = now_counters.conflicts - base.conflicts
                break
        result.cpu = cpu_use(before, cpu_sample(watched))
    finally:
        if not sending.done():
            sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending
    result.produced = progress.sent
    if progress.finished_at is not None:
        result.produce_s = progress.finished_at - started
    return result


@dataclass
class OutboxSettling:
    rows: int | None = None
    seconds: float = math.nan
    remaining: int | None = None
    relayed: float = 0


async def settle_outbox(metrics: ServiceMetrics, tables: Tables, limit_s: float) -> OutboxSettling:
    """Wait (bounded) until the relay has published the outbox; how long it took."""
    result = OutboxSettling(rows=await tables.outbox())
    if result.rows is None:
        return result
    base = (await metrics.read()).relayed
    started = time.perf_counter()
    remaining = result.rows
    while remaining and time.perf_counter() - started < limit_s:
        await asyncio.sleep(0.25)
        remaining = await tables.outbox() or 0
    result.seconds = time.perf_counter() - started
    result.remaining = remaining
    result.relayed = (await metrics.read()).relayed - base
    return result


# -- (b) reads ------------------------------------------------------------------------


@dataclass
class Seeding:
    planned: int
    produced: int = 0
    applied: float = 0
    seconds: float = math.nan
    stopped_at_limit: bool = False
    cpu: CpuUse | None = None

    @property
    def rate(self) -> float:
        return self.applied / self.seconds if self.seconds > 0 else math.nan


async def run_seeding(
    kafka: Any, metrics: ServiceMetrics, traffic: Traffic, first: int, args: Args, watched: dict[str, int]
) -> Seeding:
    """Profile records in chunks, never more than about three seconds of the service's
    work ahead of it, until all are sent or ``--seed-limit``; then what was sent is given
    a grace to be applied. The backlog stays small, so none is left over to compete
    with the reads."""
    result = Seeding(args.read_profiles - first)
    chunk = 500
    base = (await metrics.read()).drained
    before = cpu_sample(watched)
    started = time.perf_counter()
    deadline = started + args.seed_limit
    while result.produced < result.planned and time.perf_counter() < deadline:
        applied = (await metrics.read()).drained - base
        elapsed = time.perf_counter() - started
        ahead = max(chunk, int(3 * applied / elapsed)) if elapsed > 1 else chunk
        if result.produced - applied >= ahead:
            await asyncio.sleep(0.25)
            continue
        batch = traffic.records(first + result.produced, min(chunk, result.planned - result.produced))
        await produce(kafka, topics.RECORDS.name, batch, args.window, Progress(), math.inf)
        result.produced += len(batch)
    result.stopped_at_limit = result.produced < result.planned
    result.applied = await wait_applied(metrics, base, result.produced, time.perf_counter() + 30)
    result.seconds = time.perf_counter() - started
    result.cpu = cpu_use(before, cpu_sample(watched))
    return result


@dataclass
class Reads:
    rate: float
    planned: int
    sent: int = 0
    ok: int = 0
    not_sent: int = 0
    """Due while ``--max-in-flight`` requests were outstanding: not sent, an error."""
    errors: Counter[str] = field(default_factory=Counter)
    due_s: list[float] = field(default_factory=list)
    """Latency of each good response from when the request was due."""
    sent_s: list[float] = field(default_factory=list)
    """... and from when it was sent."""
    seconds: float = math.nan
    cpu: CpuUse | None = None

    @property
    def failed(self) -> int:
        return self.not_sent + sum(self.errors.values())

    @property
    def achieved(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else math.nan


class KeepAlive:
    """The read load's HTTP/1.1 client: keep-alive connections and pre-built GETs.

    httpx was measured at 2 to 5 ms of CPU per request on a 2-core EPYC VM (more with
    more connections open): at 500 requests/s it would take a core from the service
    it measures. This does what the load needs (a GET, a status, a body of
    ``content-length`` bytes) for a small fraction of that.
    """

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parsed = httpx.URL(url)
        self._host = parsed.host
        self._port = parsed.port or 80
        lines = [f"Host: {parsed.netloc.decode()}", *(f"{k}: {v}" for k, v in headers.items())]
        self._head = ("".join(f"{line}\r\n" for line in lines) + "\r\n").encode()
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get(self, path: str) -> tuple[int, bytes]:
        while self._idle:
            reader, writer = self._idle.pop()
            try:
                return await self._exchange(reader, writer, path)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                    raise
                # The server closed this idle connection (its keep-alive time-out ran
                # out) before it read the request: what any HTTP client does, try again.
        reader, writer = await asyncio.open_connection(self._host, self._port)
        return await self._exchange(reader, writer, path)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
    ) -> tuple[int, bytes]:
        try:
            writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self._head)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.lower().split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line[15:])
                elif line.startswith(b"transfer-encoding:"):
                    raise ValueError("chunked responses are not expected here")
            body = await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        self._idle.append((reader, writer))
        return status, body

    async def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


async def drive_reads(
    http: KeepAlive, emails: Sequence[str], rate: float, duration: float, args: Args, seed: int
) -> Reads:
    """Open loop: request i is due at start + i / rate, whatever came back before."""
    rng = random.Random(seed)
    result = Reads(rate, int(rate * duration))
    paths = [LOOKUP + quote(rng.choice(emails), safe="") for _ in range(min(result.planned, 50_000))]
    in_flight: set[asyncio.Task[None]] = set()

    async def one(due: float, path: str) -> None:
        sent = time.perf_counter()
        try:
            async with asyncio.timeout(10):
                status, _ = await http.get(path)
        except (
            OSError,
            TimeoutError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ) as exc:
            result.errors[type(exc).__name__] += 1
            return
        done = time.perf_counter()
        if status != 200:
            result.errors[f"HTTP {status}"] += 1
            return
        result.ok += 1
        result.due_s.append(done - due)
        result.sent_s.append(done - sent)

    started = time.perf_counter() + 0.01
    for i in range(result.planned):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) >= args.max_in_flight:
            result.not_sent += 1
            continue
        task = asyncio.create_task(one(due, paths[i % len(paths)]))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        result.sent += 1
    if in_flight:
        await asyncio.wait(set(in_flight))  # each is bounded by its own time-out
    result.seconds = time.perf_counter() - started
    return result


async def run_reads(
    http: KeepAlive, emails: Sequence[str], rate: float, args: Args, watched: dict[str, int]
) -> Reads:
    if args.read_warmup > 0:
        await drive_reads(http, emails, rate, args.read_warmup, args, args.seed + 1)
    before = cpu_sample(watched)
    result = await drive_reads(http, emails, rate, args.duration, args, args.seed + 2)
    result.cpu = cpu_use(before, cpu_sample(watched))
    return result


# -- the stack ------------------------------------------------------------------------


class BenchError(Exception):
    """The benchmark cannot measure anything meaningful (setup failed, nothing applied)."""


@dataclass
class Stack:
    """What this run started, so that it can all be stopped, whatever happens."""

    state_dir: Path | None = None
    infra: Infrastructure | None = None
    server: subprocess.Popen[bytes] | None = None
    server_log: Path | None = None
    api: subprocess.Popen[bytes] | None = None
    """The read API's processes (``--api-workers``), beside the one that consumes."""
    relay: subprocess.Popen[bytes] | None = None
    """The outbox relay's process (``--relay-process``)."""
    consumers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    """More consuming processes of the group (``--consumers``), beside ``server``."""
    spy: subprocess.Popen[bytes] | None = None

    def start_infra(self, statement_stats: bool = False) -> Infrastructure:
        self.state_dir = Path(tempfile.mkdtemp(prefix="itinera-bench-"))
        self.infra = Infrastructure.start(
            self.state_dir, kafka_port=free_port(), pg_port=free_port(), statement_stats=statement_stats
        )
        return self.infra

    def _serve(self, log_name: str, env: dict[str, str], *options: str) -> subprocess.Popen[bytes]:
        """``itinera serve profile`` with ``options``, logging to ``log_name`` in the run's folder."""
        assert self.state_dir is not None
        with open(self.state_dir / log_name, "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "itinera.common.cli", "serve", "profile", *options],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches only us; we stop it in order
            )

    def start_server(self, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
        assert self.state_dir is not None
        self.server_log = self.state_dir / "profile.log"
        self.server = self._serve(self.server_log.name, env, "--role", "all", "--port", str(port))
        return self.server

    def start_consumer(self, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
        n = len(self.consumers) + 2
        process = self._serve(f"profile-{n}.log", env, "--role", "worker", "--port", str(port))
        self.consumers.append(process)
        return process

    def start_relay(self, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
        self.relay = self._serve("profile-relay.log", env, "--role", "relay", "--port", str(port))
        return self.relay

    def start_api(self, port: int, env: dict[str, str], workers: int) -> subprocess.Popen[bytes]:
        options = ("--role", "api", "--workers", str(workers), "--port", str(port))
        self.api = self._serve("profile-api.log", env, *options)
        return self.api

    def server_log_tail(self, lines: int = 20) -> str:
        if self.server_log is None or not self.server_log.exists():
            return ""
        return "\n".join(self.server_log.read_text(errors="replace").splitlines()[-lines:])

    def start_spy(self, pid: int, output: Path, limit_s: float) -> None:
        """py-spy on the service, raw collapsed stacks, until :meth:`stop_spy`."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.spy = subprocess.Popen(
            [
                *(spy, "record", "-p", str(pid), "-f", "raw", "-o", str(output), "--nonblocking"),
                *("-d", str(max(1, math.ceil(limit_s)))),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop_spy(self) -> None:
        if self.spy is not None and self.spy.poll() is None:
            self.spy.send_signal(signal.SIGINT)  # py-spy writes what it has, then exits
            try:
                self.spy.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.spy.kill()
                self.spy.wait()
        self.spy = None

    def stop(self) -> None:
        self.stop_spy()
        for process in (self.api, self.server, *self.consumers, self.relay):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=25)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.api = self.server = self.relay = None
        self.consumers = []
        if self.infra is not None:
            self.infra.stop()
            self.infra = None
        if self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self.state_dir = None

    def watched(self) -> dict[str, int]:
        pids: dict[str, int] = {}
        if self.server is not None:
            pids["profile"] = self.server.pid
        for n, process in enumerate(self.consumers, start=2):
            pids[f"profile {n}"] = process.pid
        if self.api is not None:
            pids["profile api"] = self.api.pid  # the supervisor: its tree is the workers
        if self.relay is not None:
            pids["profile relay"] = self.relay.pid
        if self.infra is not None and self.infra.broker is not None and self.infra.broker.process:
            pids["broker"] = self.infra.broker.process.pid
        if self.infra is not None and self.infra.database is not None and self.infra.database.process:
            pids["postgres"] = self.infra.database.process.pid
        return pids


async def wait_ready(client: httpx.AsyncClient, stack: Stack, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if stack.server is not None and stack.server.poll() is not None:
            raise BenchError(
                f"the profile service exited with {stack.server.returncode}:\n{stack.server_log_tail()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get("/readyz", timeout=2)).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise BenchError(f"the profile service at {client.base_url} was not ready in {timeout_s:.0f} s")
        await asyncio.sleep(0.25)


async def wait_consuming(kafka: Any, client: httpx.AsyncClient, traffic: Traffic, timeout_s: float) -> float:
    """Send one event of a new identity and wait until its profile can be read: then the
    consumer group has its partitions (its first join on Tansu takes about 5 s)."""
    identity, (key, value, headers) = traffic.probe()
    started = time.monotonic()
    await (await kafka.send(topics.EVENTS.name, value=value, key=key, headers=headers))
    while True:
        response = await client.get("/v1/profiles", params={"identity": identity}, timeout=5)
        if response.status_code == 200:
            return time.monotonic() - started
        if response.status_code != 404:
            raise BenchError(f"looking up the probe: HTTP {response.status_code} {response.text[:500]}")
        if time.monotonic() - started > timeout_s:
            raise BenchError(f"the probe event was not applied within {timeout_s:.0f} s")
        await asyncio.sleep(0.2)


# -- the report -----------------------------------------------------------------------


def code_line() -> str:
    """Which code was measured: the commit, and whether the service had local changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "services/profile", "libs/common"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "code: unknown (no git)"
    files = [line[3:] for line in changed if line.strip()]
    return f"code: {commit}" + (f" + uncommitted changes to {', '.join(files)}" if files else "")


def _verdict(ok: bool) -> str:
    return "meets" if ok else "BELOW"


@dataclass
class Results:
    """What the run measured so far: the report prints whatever is there."""

    sizes: dict[str, float] = field(default_factory=dict)
    probe_s: float = math.nan
    analyzed: bool = False
    consumption: Consumption | None = None
    after_events: OutboxSettling | None = None
    seeding: Seeding | None = None
    after_records: OutboxSettling | None = None
    stored: dict[str, int] = field(default_factory=dict)
    readable: int = 0
    reads: list[Reads] = field(default_factory=list)
    spy_files: list[Path] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)  # where PostgreSQL's time went in (a)


def _consumption_lines(c: Consumption, args: Args) -> list[str]:
    lines = [
        f"{'':<34}{'count':>9}{'s':>8}{'per s':>9}   {'target':<16}verdict",
        f"{'(a) events produced (acks=all)':<34}{c.produced:>9,}{num(c.produce_s, 1):>8}"
        f"{num(c.produced / c.produce_s if c.produce_s > 0 else math.nan):>9}",
        f"{'(a) events applied':<34}{c.applied:>9,.0f}{num(c.seconds, 1):>8}{num(c.rate):>9}   "
        f"{f'>= {TARGET_EVENTS_PER_S:,}/s':<16}{_verdict(c.rate >= TARGET_EVENTS_PER_S)}",
    ]
    if not c.drained:
        lines.append(
            f"(a) stopped at --consume-limit {args.consume_limit:.0f} s: {c.applied:,.0f} of "
            f"{c.produced:,} applied; the rest is still queued"
        )
    if c.dead_lettered:
        lines.append(f"(a) {c.dead_lettered:,.0f} records dead-lettered (counted as applied)")
    if c.batches:
        lines.append(
            f"(a) {c.batches:,.0f} batches, {c.applied / c.batches:,.0f} records each on average, "
            f"{c.handler_s / c.batches * 1000:,.0f} ms in the handler each "
            f"({c.handler_s / c.seconds:.0%} of the wall time); "
            f"{c.conflicts:,.0f} graph transactions run again after a conflict"
        )
    return lines


def _tick_lines(ticks: Sequence[Tick]) -> list[str]:
    """Drained per second; long runs are shown in wider steps, about 30 rows."""
    step = max(1, math.ceil((len(ticks) - 1) / 30))
    shown = [*ticks[:-1:step], ticks[-1]] if len(ticks) > 1 else list(ticks)
    lines = [
        f"every {step} s: applied/s is the lag drained per second; lag = produced - applied "
        "(the service's own itinera_consumer_lag beside it); outbox = rows waiting in profile.outbox",
        f"{'t s':>7}{'produced':>10}{'applied':>10}{'applied/s':>11}{'lag':>9}{'svc lag':>9}"
        f"{'outbox':>9}{'relayed/s':>11}",
    ]
    for before, tick in itertools.pairwise(shown):
        dt = tick.at_s - before.at_s
        lines.append(
            f"{tick.at_s:>7.1f}{tick.produced:>10,}{tick.applied:>10,.0f}"
            f"{num((tick.applied - before.applied) / dt if dt > 0 else math.nan):>11}"
            f"{tick.produced - tick.applied:>9,.0f}{tick.lag_reported:>9,.0f}"
            f"{'n/a' if tick.outbox is None else f'{tick.outbox:,}':>9}"
            f"{num((tick.relayed - before.relayed) / dt if dt > 0 else math.nan):>11}"
        )
    return lines


def _outbox_line(what: str, settling: OutboxSettling | None, limit_s: float) -> list[str]:
    if settling is None or settling.rows is None:
        return []
    if not settling.rows:
        return [f"outbox after {what}: empty"]
    rate = settling.relayed / settling.seconds if settling.seconds > 0 else math.nan
    end = (
        f"published in {settling.seconds:.1f} s"
        if not settling.remaining
        else f"{settling.remaining:,} still there after {limit_s:.0f} s"
    )
    return [f"outbox after {what}: {settling.rows:,} rows waiting, {end} ({num(rate)} records/s relayed)"]


def _reads_lines(results: Results, args: Args) -> list[str]:
    profiles = results.stored.get("profiles", results.readable)
    seeding = results.seeding
    target = f"p99 < {TARGET_P99_MS:.0f} ms"
    lines = []
    if seeding is not None:
        warm = args.read_profiles - seeding.planned
        lines.append(
            f"profiles stored: {profiles:,} in the sandbox, {results.readable:,} of them read here by Email "
            f"(profile records: {warm:,} in the warm-up + {seeding.applied:,.0f} applied of "
            f"{seeding.produced:,} sent, of {args.read_profiles:,} asked"
            + (", stopped at --seed-limit" if seeding.stopped_at_limit else "")
            + f"); the target is stated with {TARGET_PROFILES:,}"
        )
    lines += [
        f"{'':<24}{'req/s':>8}{'ok':>8}{'errors':>8}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}{'max ms':>8}"
        f"   {'target':<16}verdict",
    ]
    for r in results.reads:
        conditions = r.rate >= TARGET_RATE and profiles >= TARGET_PROFILES
        p99 = percentile_ms(r.due_s, 99)
        verdict = _verdict(p99 < TARGET_P99_MS) + ("" if conditions else " (not at the target's conditions)")
        for name, values in ((f"(b) reads at {r.rate:,.0f}/s", r.due_s), ("    latency from send", r.sent_s)):
            first = name.startswith("(b)")
            lines.append(
                f"{name:<24}{num(r.achieved, 1) if first else '':>8}{f'{r.ok:,}' if first else '':>8}"
                f"{f'{r.failed:,}' if first else '':>8}"
                + "".join(f"{num(percentile_ms(values, p), 1):>8}" for p in (50, 90, 99, 100))
                + (f"   {target:<16}{verdict}" if first else "")
            )
    for r in results.reads:
        if r.failed:
            reasons = {
                **r.errors,
                **({"not sent: --max-in-flight reached": r.not_sent} if r.not_sent else {}),
            }
            lines.append(
                f"(b) errors at {r.rate:,.0f}/s: "
                + ", ".join(f"{n:,} {reason}" for reason, n in sorted(reasons.items()))
            )
    return lines


def _cpu_lines(phases: Sequence[tuple[str, CpuUse | None, float, str]]) -> list[str]:
    measured = [(name, cpu, count, unit) for name, cpu, count, unit in phases if cpu is not None]
    if not measured:
        return []
    names = ["client", *sorted({n for _, cpu, _, _ in measured if cpu for n in cpu.processes})]
    lines = [
        "CPU over each phase, as cores busy (CPU s / wall s) / CPU us per unit (event, record, request);",
        "client = this process (the load generator); machine = every process, whoever started it:",
        f"{'':<22}{'wall s':>8}{'machine':>9}{'steal':>7}" + "".join(f"{n:>15}" for n in names),
    ]
    for name, cpu, count, _unit in measured:
        assert cpu is not None
        cores = {"client": cpu.client, **cpu.processes}
        cells = ""
        for n in names:
            value = cores.get(n)
            micros = value * cpu.wall_s / count * 1e6 if value is not None and count else math.nan
            cells += f"{'n/a' if value is None else f'{value:.2f} / {num(micros)}':>15}"
        lines.append(f"{name:<22}{cpu.wall_s:>8.2f}{num(cpu.machine, 2):>9}{num(cpu.steal, 2):>7}{cells}")
    for name, cpu, count, unit in measured:
        assert cpu is not None
        # Requests are the read API's work when it runs apart (--api-workers).
        who = "profile api" if unit == "request" and cpu.processes.get("profile api") else "profile"
        service = cpu.processes.get(who)
        if service and count:
            per = service * cpu.wall_s / count
            lines.append(
                f"{name}: the {who} process(es) at {per * 1e6:,.0f} us of CPU per {unit} tops out near "
                f"{1 / per:,.0f} {unit}s/s per core"
            )
    return lines


def report(results: Results, args: Args) -> str:
    sizes = results.sizes
    lines = [
        "",
        machine_line(),
        code_line(),
        f"workload: {args.events:,} events over {args.profiles:,} devices (warm-up: {args.warmup:,} "
        f"events, {min(args.warmup // 2, args.read_profiles):,} records), "
        f"{args.email_share:.0%} with the Email too; event {sizes.get('event', 0):.0f} B as JSON, "
        f"profile record {sizes.get('record', 0):.0f} B; windows of {args.window:,} sends, acks=all; "
        f"reads: {' then '.join(f'{r:,.0f}' for r in args.rates)} req/s open-loop, "
        f"{args.duration:.0f} s each (+{args.read_warmup:.0f} s warm-up), "
        f"at most {args.max_in_flight} in flight",
    ]
    if results.analyzed:
        lines.append(
            "statistics: ANALYZE of the profile schema's tables after the warm-up and after seeding "
            "(--no-analyze leaves them to autovacuum)"
        )
    if not math.isnan(results.probe_s):
        lines.append(f"the probe event was readable {results.probe_s:.1f} s after it was sent (group join)")
    c = results.consumption
    if c is not None:
        lines += ["", *_consumption_lines(c, args)]
    s = results.seeding
    if s is not None:
        lines.append(
            f"{'(b) profile records applied':<34}{s.applied:>9,.0f}{num(s.seconds, 1):>8}{num(s.rate):>9}"
            "   (seeding the reads)"
        )
    if c is not None:
        lines += ["", *_tick_lines(c.ticks)]
    lines += [
        *_outbox_line("the events", results.after_events, args.outbox_limit),
        *_outbox_line("the records", results.after_records, args.outbox_limit),
    ]
    if results.stored:
        lines.append("stored in the sandbox: " + ", ".join(f"{v:,} {k}" for k, v in results.stored.items()))
    if results.reads:
        lines += ["", *_reads_lines(results, args)]
    lines += [
        "",
        *_cpu_lines(
            [
                ("(a) events applied", c.cpu if c else None, c.applied if c else 0, "event"),
                ("(b) records applied", s.cpu if s else None, s.applied if s else 0, "record"),
                *((f"(b) reads at {r.rate:,.0f}/s", r.cpu, r.ok, "request") for r in results.reads),
            ]
        ),
    ]
    if results.statements:
        lines += ["", *results.statements]
    if results.spy_files:
        lines.append("py-spy (raw collapsed stacks): " + ", ".join(str(p) for p in results.spy_files))
    return "\n".join(lines)


# -- the run --------------------------------------------------------------------------


@dataclass(frozen=True)
class Args:
    events: int
    warmup: int
    profiles: int
    email_share: float
    window: int
    read_profiles: int
    rates: tuple[float, ...]
    duration: float
    read_warmup: float
    max_in_flight: int
    api_workers: int
    analyze: bool
    reuse: bool
    url: str
    metrics_url: str
    sandbox: str
    consume_limit: float
    seed_limit: float
    outbox_limit: float
    time_limit: float
    seed: int
    py_spy: Path | None
    relay_process: bool
    consumers: int
    statements: int


def parse_args(argv: Sequence[str] | None) -> Args:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=50_000, help="timed events of (a)")
    parser.add_argument("--warmup", type=int, default=1_000, help="events applied before (a) is timed")
    parser.add_argument("--profiles", type=int, default=10_000, help="distinct devices (ECIDs) of the events")
    parser.add_argument("--email-share", type=float, default=0.3, help="share of events that carry the Email")
    parser.add_argument("--window", type=int, default=1_000, help="sends between waits for acks")
    parser.add_argument("--read-profiles", type=int, default=100_000, help="profile records seeded for (b)")
    parser.add_argument(
        "--rate",
        type=float,
        action="append",
        help="reads scheduled per second (default 500); repeat it for one timed step per rate",
    )
    parser.add_argument("--duration", type=float, default=20, help="seconds of timed reads")
    parser.add_argument("--read-warmup", type=float, default=2, help="seconds of reads before timing")
    parser.add_argument("--max-in-flight", type=int, default=64, help="reads outstanding at most")
    parser.add_argument(
        "--api-workers",
        type=int,
        default=2,
        help="reads go to `serve profile --role api --workers N` (0: to the one --role all process)",
    )
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="leave the planner statistics of the service's tables to autovacuum (see README)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="use the running stack: ITINERA_KAFKA_BOOTSTRAP, ITINERA_DATABASE_URL and the service at --url",
    )
    parser.add_argument(
        "--url", default="http://127.0.0.1:8002", help="the profile service's URL with --reuse"
    )
    parser.add_argument(
        "--metrics-url", default=None, help="where the consumer's /metrics are with --reuse (default: --url)"
    )
    parser.add_argument(
        "--sandbox", default=None, help="sandbox of the run's data (default: a new one, bench-<time>)"
    )
    parser.add_argument("--consume-limit", type=float, default=180, help="seconds for (a) at most")
    parser.add_argument("--seed-limit", type=float, default=200, help="seconds of seeding at most")
    parser.add_argument("--outbox-limit", type=float, default=30, help="seconds to wait for the outbox")
    parser.add_argument("--time-limit", type=float, default=600, help="seconds for the whole run at most")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--consumers",
        type=int,
        default=1,
        help="processes consuming in the service's group (each `--role worker` beyond the first)",
    )
    parser.add_argument(
        "--relay-process",
        action="store_true",
        help="publish the outbox from a `--role relay` process of its own, not the consumer's",
    )
    parser.add_argument(
        "--py-spy", type=Path, default=None, help="folder: record the service with py-spy during each phase"
    )
    parser.add_argument(
        "--statements",
        type=int,
        default=0,
        metavar="N",
        help="print the N PostgreSQL statements with the most execution time in (a) (pg_stat_statements)",
    )
    ns = parser.parse_args(argv)
    for name in ("events", "warmup", "profiles", "window", "read_profiles", "max_in_flight", "api_workers"):
        if getattr(ns, name) < (0 if name in ("warmup", "api_workers") else 1):
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if not 0 <= ns.email_share <= 1:
        parser.error("--email-share is between 0 and 1")
    rates = ns.rate or [float(TARGET_RATE)]
    if min(rates) <= 0 or ns.duration <= 0:
        parser.error("--rate and --duration must be positive")
    sandbox = ns.sandbox or f"bench-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    return Args(
        events=ns.events,
        warmup=ns.warmup,
        profiles=ns.profiles,
        email_share=ns.email_share,
        window=ns.window,
        read_profiles=ns.read_profiles,
        rates=tuple(rates),
        duration=ns.duration,
        read_warmup=ns.read_warmup,
        max_in_flight=ns.max_in_flight,
        api_workers=ns.api_workers,
        analyze=not ns.no_analyze,
        reuse=ns.reuse,
        url=ns.url.rstrip("/"),
        metrics_url=(ns.metrics_url or ns.url).rstrip("/"),
        sandbox=sandbox,
        consume_limit=ns.consume_limit,
        seed_limit=ns.seed_limit,
        outbox_limit=ns.outbox_limit,
        time_limit=ns.time_limit,
        seed=ns.seed,
        py_spy=ns.py_spy,
        relay_process=ns.relay_process,
        consumers=ns.consumers,
        statements=ns.statements,
    )


@contextlib.contextmanager
def spied(
    stack: Stack, results: Results, args: Args, pid: int | None, phase: str, limit_s: float
) -> Iterator[None]:
    """With ``--py-spy``: record the service for the length of the block."""
    if args.py_spy is None or pid is None:
        yield
        return
    args.py_spy.mkdir(parents=True, exist_ok=True)
    output = args.py_spy / f"{phase}.txt"
    stack.start_spy(pid, output, limit_s)
    try:
        yield
    finally:
        stack.stop_spy()
        if output.exists():
            results.spy_files.append(output)
        else:
            say(f"py-spy wrote nothing for {phase} (is ptrace allowed?)")


async def bench(args: Args, stack: Stack, results: Results) -> int:
    env = dict(os.environ)
    relay_url = None
    consumer_urls: list[str] = []
    if args.reuse:
        settings = CommonSettings()
        url, metrics_url = args.url, args.metrics_url
    else:
        assert stack.infra is not None
        settings = CommonSettings(
            kafka_bootstrap=stack.infra.kafka_bootstrap, database_url=stack.infra.database_url
        )
        say(f"broker {settings.kafka_bootstrap}, database {settings.database_url}")
        await create_topics(settings)
        port = free_port()
        url = metrics_url = f"http://127.0.0.1:{port}"
        env |= {
            "ITINERA_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "ITINERA_DATABASE_URL": settings.database_url,
            "ITINERA_LOG_LEVEL": "WARNING",
        }
        if args.relay_process:
            relay_url = f"http://127.0.0.1:{(relay_port := free_port())}"
            env["ITINERA_OUTBOX_RELAY_IN_WORKERS"] = "false"
            stack.start_relay(relay_port, env)
            say(f"outbox relay starting at {relay_url} (--role relay, its own process)")
        stack.start_server(port, env)
        say(f"profile service starting at {url} (--role all, one process)")
        for _ in range(args.consumers - 1):
            consumer_urls.append(f"http://127.0.0.1:{(consumer_port := free_port())}")
            stack.start_consumer(consumer_port, env)
            say(f"another consumer starting at {consumer_urls[-1]} (--role worker)")
    token = mint_token(settings, scopes=["profiles:read", "identity:read"], sandbox=args.sandbox)
    client = httpx.AsyncClient(
        base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=httpx.Timeout(5)
    )
    scraper = httpx.AsyncClient(timeout=httpx.Timeout(5))
    http = KeepAlive(url, {"authorization": f"Bearer {token}"})
    kafka = Producer(settings, client_id="itinera-bench-profile").client
    conn = None
    try:
        await wait_ready(client, stack, timeout_s=120)
        try:
            conn = await asyncpg.connect(settings.database_url)
        except (OSError, asyncpg.PostgresError) as exc:
            say(f"no database figures: {type(exc).__name__}: {exc}")
        tables = Tables(conn, args.sandbox)
        for consumer_url in consumer_urls:
            async with httpx.AsyncClient(base_url=consumer_url) as consumer:
                await wait_ready(consumer, stack, timeout_s=120)
        metrics = ServiceMetrics(scraper, metrics_url, relay_url, consumer_urls)
        await kafka.start()
        traffic = Traffic(args.seed, args.profiles, args.email_share, args.sandbox)
        say(f"sandbox {args.sandbox}; waiting for the consumer group (probe event)")
        results.probe_s = await wait_consuming(kafka, client, traffic, timeout_s=120)
        say(f"consuming ({results.probe_s:.1f} s); generating and pre-serialising {args.events:,} events")
        warmup = traffic.events(args.warmup)
        timed = traffic.events(args.events)
        results.sizes = {
            "event": sum(len(value) for _, value, _ in timed) / max(1, len(timed)),
            "record": len(traffic.records(0, 1)[0][1]),
        }
        watched = stack.watched() if not args.reuse else reused_processes(url, settings)
        service_pid = watched.get("profile")

        # The warm-up has profile records too: the sandbox then has rows in every table
        # when the statistics are taken, as a sandbox in use would.
        warm_records = min(args.warmup // 2, args.read_profiles)
        if warmup:
            base = (await metrics.read()).drained
            await produce(kafka, topics.EVENTS.name, warmup, args.window, Progress(), math.inf)
            records = traffic.records(0, warm_records)
            await produce(kafka, topics.RECORDS.name, records, args.window, Progress(), math.inf)
            count = len(warmup) + len(records)
            applied = await wait_applied(metrics, base, count, time.perf_counter() + args.consume_limit)
            say(f"warm-up: {applied:,.0f} of {len(warmup):,} events + {len(records):,} records applied")
            await settle_outbox(metrics, tables, args.outbox_limit)
        if args.analyze:
            results.analyzed = await tables.analyze()

        say(f"(a) {args.events:,} events to {topics.EVENTS.name}; waiting for the service to apply them")
        if args.statements:
            await statements.reset(settings.database_url)
        with spied(stack, results, args, service_pid, "a-events", args.consume_limit):
            results.consumption = await run_consumption(kafka, metrics, tables, timed, args, watched)
        if args.statements:
            results.statements = await statements.top(settings.database_url, args.statements)
        c = results.consumption
        say(f"(a) {c.applied:,.0f} applied in {c.seconds:.1f} s: {num(c.rate)} events/s")
        if not c.applied:
            raise BenchError(f"no event was applied; the service's log:\n{stack.server_log_tail()}")
        results.after_events = await settle_outbox(metrics, tables, args.outbox_limit)

        say(f"(b) seeding {args.read_profiles:,} profile records (at most {args.seed_limit:.0f} s)")
        with spied(stack, results, args, service_pid, "b-records", args.seed_limit + 30):
            results.seeding = await run_seeding(kafka, metrics, traffic, warm_records, args, watched)
        s = results.seeding
        say(f"(b) {s.applied:,.0f} records applied in {s.seconds:.1f} s: {num(s.rate)} records/s")
        results.after_records = await settle_outbox(metrics, tables, args.outbox_limit)
        if args.analyze:
            await tables.analyze()
        results.stored = await tables.stored()
        emails = await tables.member_emails() if conn is not None else []
        if not emails:  # no database to ask: the records the service said it applied
            emails = [Traffic.member_email(n) for n in range(int(min(s.applied, s.produced)))]
        if not emails:
            raise BenchError("no seeded profile was stored: nothing to read")
        results.readable = len(emails)
        if args.api_workers and not args.reuse:
            api_port = free_port()
            stack.start_api(api_port, env, args.api_workers)
            api_url = f"http://127.0.0.1:{api_port}"
            say(f"(b) read API: {args.api_workers} processes at {api_url} (--role api --workers)")
            await http.close()
            http = KeepAlive(api_url, {"authorization": f"Bearer {token}"})
            await client.aclose()
            client = httpx.AsyncClient(
                base_url=api_url, headers={"authorization": f"Bearer {token}"}, timeout=httpx.Timeout(5)
            )
            await wait_ready(client, stack, timeout_s=120)
            watched = stack.watched()
        check = await client.get(LOOKUP + quote(emails[0], safe=""))
        if check.status_code != 200:
            raise BenchError(f"the check read got HTTP {check.status_code}: {check.text[:500]}")
        results.sizes["response"] = len(check.content)

        for rate in args.rates:
            say(f"(b) reads: {rate:,.0f}/s for {args.duration:.0f} s over {len(emails):,} profiles")
            spy_name = f"b-reads-{rate:.0f}"
            with spied(stack, results, args, service_pid, spy_name, args.read_warmup + args.duration + 15):
                reads = await run_reads(http, emails, rate, args, watched)
            results.reads.append(reads)
            say(f"(b) {reads.ok:,} good answers, p99 {percentile_ms(reads.due_s, 99):.1f} ms")
        return 0
    finally:
        stack.stop_spy()
        await kafka.stop()
        await client.aclose()
        await scraper.aclose()
        await http.close()
        if conn is not None:
            await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    stack = Stack()
    results = Results()
    say(machine_line())
    if not args.reuse:
        say("starting the broker and PostgreSQL")
        try:
            stack.start_infra(statement_stats=args.statements > 0)
        except BaseException:
            stack.stop()
            raise

    async def work() -> int:
        try:
            return await bench(args, stack, results)
        except BenchError as exc:
            say(f"error: {exc}")
            return 1

    status = run_bounded(work, args.time_limit - (time.monotonic() - started), stack.stop)
    if results.consumption is not None:
        print(report(results, args), flush=True)
    return 3 if status is None else status


if __name__ == "__main__":
    sys.exit(main())
