"""Ingestion throughput: the HTTP batch API against raw Kafka production, in one run.

(a) raw: the records ingestion would publish (same value, key and CloudEvents headers),
    pre-serialised and produced with aiokafka through the service's own producer
    settings (``acks=all``), send futures gathered in windows: what one Python process
    can push into this broker, the ceiling for (b).
(b) http: ``POST /collection/batch/{CONNECTION_ID}`` with pre-serialised batches of AEP
    streaming messages from concurrent keep-alive clients, against the ingestion
    service in its own process (uvicorn on loopback, ``--role api``). A 207 there means
    every event was validated and acknowledged by the broker.

Both phases run in the same process and the same run, one after the other, so they
share the machine's state. The client, the server, the broker and PostgreSQL share the
machine's cores: the CPU table says who used what. The benchmark reports; it never
asserts. It exits by itself (``--time-limit``) and stops whatever it started.

    .venv/bin/python benchmarks/ingest.py [--events N] [--concurrency C] [--batch B]
    .venv/bin/python benchmarks/ingest.py --reuse --url http://127.0.0.1:8001   # after make run
"""

from __future__ import annotations

import argparse
import asyncio
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from machine import CpuUse, cpu_sample, cpu_use, listening_pid, machine_line, num, percentile_ms, say
from shop import PAGES, PRODUCTS, USER_AGENTS
from stack import run_bounded

from itinera.common.auth import mint_token
from itinera.common.devstack import Infrastructure, free_port
from itinera.common.kafka import topics
from itinera.common.kafka.admin import create_topics
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.settings import CommonSettings

EXPERIENCE_EVENT = "https://ns.adobe.com/xdm/context/experienceevent"
XDM_CONTENT_TYPE = "application/vnd.adobe.xed-full+json;version=1"
IMS_ORG = "5D3A7B2C4E1F0A9B8C7D6E5F@AdobeOrg"
DATASET_NAME = "bench-events"
CONNECTION_NAME = "bench"
RAW_TOPIC = "itinera.bench.raw.v1"
EVENT_TYPE = "com.itinera.ingestion.event.v1"  # what ingestion puts in ce_type

TARGET_EVENTS_PER_S = 20_000
TARGET_RATIO = 0.35


# -- the events ---------------------------------------------------------------------


class EventFactory:
    """Realistic, schema-valid commerce.productViews events, each with a unique ``_id``.

    Deterministic for a seed; the identities come from a pool of profiles so that keys
    (the primary ECID) spread over every partition as real traffic does.
    """

    def __init__(self, seed: int, profiles: int = 20_000) -> None:
        self._rng = random.Random(seed)
        self._profiles = [
            ("".join(self._rng.choices("0123456789", k=38)), f"customer.{n:06d}@example.com")
            for n in range(profiles)
        ]
        self._clock = datetime.now(UTC) - timedelta(hours=1)

    def event(self) -> dict[str, Any]:
        rng = self._rng
        ecid, email = rng.choice(self._profiles)
        page_name, url = rng.choice(PAGES)
        sku, product, price = rng.choice(PRODUCTS)
        self._clock += timedelta(milliseconds=rng.randint(1, 40))
        return {
            "_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "timestamp": self._clock.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "eventType": "commerce.productViews",
            "identityMap": {
                "ECID": [{"id": ecid, "primary": True}],
                "Email": [{"id": email, "authenticatedState": "authenticated"}],
            },
            "web": {
                "webPageDetails": {"name": page_name, "URL": url},
            },
            "commerce": {"productViews": {"value": 1}},
            "productListItems": [{"SKU": sku, "name": product, "quantity": 1, "priceTotal": price}],
            "environment": {"browserDetails": {"userAgent": rng.choice(USER_AGENTS)}},
        }


def aep_message(entity: dict[str, Any], dataset_id: str) -> dict[str, Any]:
    schema_ref = {"id": EXPERIENCE_EVENT, "contentType": XDM_CONTENT_TYPE}
    return {
        "header": {
            "schemaRef": schema_ref,
            "imsOrgId": IMS_ORG,
            "datasetId": dataset_id,
            "flowId": "bench",
            "source": {"name": "itinera-bench"},
        },
        "body": {"xdmMeta": {"schemaRef": schema_ref}, "xdmEntity": entity},
    }


@dataclass(frozen=True, slots=True)
class Batch:
    body: bytes
    events: int


def http_batches(factory: EventFactory, events: int, size: int, dataset_id: str) -> list[Batch]:
    batches = []
    for start in range(0, events, size):
        count = min(size, events - start)
        messages = [aep_message(factory.event(), dataset_id) for _ in range(count)]
        batches.append(Batch(orjson.dumps({"messages": messages}), count))
    return batches


RawRecord = tuple[bytes, bytes, list[tuple[str, bytes]]]


def raw_records(
    factory: EventFactory, events: int, sandbox: str, dataset_id: str, connection_id: str
) -> list[RawRecord]:
    """What ingestion would publish for these events: the same value, key and headers."""
    received = datetime.now(UTC)
    records = []
    for _ in range(events):
        entity = factory.event()
        envelope = Envelope(
            type=EVENT_TYPE,
            source=f"/itinera/ingestion/connections/{connection_id}",
            data=entity,
            sandbox=sandbox,
            key=f"ECID:{entity['identityMap']['ECID'][0]['id']}",
            time=received,
            extensions={
                "itinera_dataset": dataset_id,
                "itinera_schema": EXPERIENCE_EVENT,
                "itinera_connection": connection_id,
            },
        )
        assert envelope.key is not None
        records.append((envelope.key.encode(), envelope.value(), envelope.headers()))
    return records


# -- CPU accounting (Linux /proc; absent elsewhere) -----------------------------------


def reused_processes(url: str, settings: CommonSettings) -> dict[str, int]:
    """With ``--reuse``: the processes behind the loopback addresses, found by port."""
    found: dict[str, int] = {}
    database = httpx.URL(settings.database_url)
    addresses = {
        "ingestion": httpx.URL(url).netloc.decode(),
        "broker": settings.kafka_bootstrap.split(",")[0],
        "postgres": f"{database.host}:{database.port or 5432}",
    }
    for name, address in addresses.items():
        pid = listening_pid(address)
        if pid is not None:
            found[name] = pid
    return found


# -- the phases -----------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    planned: int
    events: int = 0
    seconds: float = math.nan
    latencies_s: list[float] = field(default_factory=list)
    failed: int = 0
    """Events not accepted: refused, or in a request that failed."""
    failures: list[str] = field(default_factory=list)
    """The first few reasons."""
    stopped_at_limit: bool = False
    cpu: CpuUse | None = None

    def fail(self, events: int, reason: str) -> None:
        self.failed += events
        if len(self.failures) < 5:
            self.failures.append(reason)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else math.nan

    def percentile_ms(self, p: float) -> float:
        """Nearest-rank percentile of the request latencies."""
        return percentile_ms(self.latencies_s, p)


async def produce(
    kafka: Any, topic: str, records: Sequence[RawRecord], window: int, deadline: float
) -> tuple[int, bool]:
    """Send ``window`` records, wait for every acknowledgement, repeat."""
    sent = 0
    for start in range(0, len(records), window):
        if time.monotonic() > deadline:
            return sent, True
        pending = [
            await kafka.send(topic, value=value, key=key, headers=headers)
            for key, value, headers in records[start : start + window]
        ]
        await asyncio.gather(*pending)
        sent += len(pending)
    return sent, False


async def run_raw(
    kafka: Any,
    topic: str,
    warmup: Sequence[RawRecord],
    records: Sequence[RawRecord],
    args: Args,
    watched: dict[str, int],
) -> PhaseResult:
    result = PhaseResult("(a) raw aiokafka", len(records))
    await produce(kafka, topic, warmup, args.window, time.monotonic() + args.phase_limit)
    before = cpu_sample(watched)
    started = time.perf_counter()
    result.events, result.stopped_at_limit = await produce(
        kafka, topic, records, args.window, time.monotonic() + args.phase_limit
    )
    result.seconds = time.perf_counter() - started
    result.cpu = cpu_use(before, cpu_sample(watched))
    return result


async def post_batches(
    client: httpx.AsyncClient, path: str, batches: Sequence[Batch], concurrency: int, deadline: float
) -> PhaseResult:
    result = PhaseResult("(b) HTTP batch", sum(b.events for b in batches))
    queue: Iterator[Batch] = iter(batches)

    async def worker() -> None:
        for batch in queue:  # shared: each batch goes to exactly one worker
            if time.monotonic() > deadline:
                result.stopped_at_limit = True
                return
            started = time.perf_counter()
            try:
                response = await client.post(path, content=batch.body)
            except httpx.HTTPError as exc:
                result.fail(batch.events, f"{type(exc).__name__}: {exc}")
                continue
            result.latencies_s.append(time.perf_counter() - started)
            content = response.content
            if response.status_code != 207:
                result.fail(batch.events, f"HTTP {response.status_code}: {content[:300]!r}")
                continue
            refused = 0
            if b'"status"' in content:  # only a refused message carries a status
                for item in orjson.loads(content)["responses"]:
                    if "status" in item:
                        refused += 1
                        result.fail(1, f"{item['status']}: {item.get('message', '')}")
            result.events += batch.events - refused

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


async def run_http(
    client: httpx.AsyncClient,
    path: str,
    warmup: Sequence[Batch],
    batches: Sequence[Batch],
    args: Args,
    watched: dict[str, int],
) -> PhaseResult:
    warm = await post_batches(client, path, warmup, args.concurrency, time.monotonic() + args.phase_limit)
    if warm.failed:
        raise BenchError(f"{warm.failed} warm-up events not accepted, e.g. {warm.failures[0]}")
    before = cpu_sample(watched)
    result = await post_batches(client, path, batches, args.concurrency, time.monotonic() + args.phase_limit)
    result.cpu = cpu_use(before, cpu_sample(watched))
    return result


# -- the stack ------------------------------------------------------------------------


class BenchError(Exception):
    """The benchmark cannot measure anything meaningful (setup failed, events refused)."""


@dataclass
class Stack:
    """What this run started, so that it can all be stopped, whatever happens."""

    state_dir: Path | None = None
    infra: Infrastructure | None = None
    server: subprocess.Popen[bytes] | None = None
    server_log: Path | None = None

    def start_infra(self) -> Infrastructure:
        self.state_dir = Path(tempfile.mkdtemp(prefix="itinera-bench-"))
        self.infra = Infrastructure.start(self.state_dir, kafka_port=free_port(), pg_port=free_port())
        return self.infra

    def start_server(self, port: int, env: dict[str, str], workers: int) -> subprocess.Popen[bytes]:
        assert self.state_dir is not None
        self.server_log = self.state_dir / "ingestion.log"
        with open(self.server_log, "ab") as log:
            self.server = subprocess.Popen(
                [
                    *(sys.executable, "-m", "itinera.common.cli", "serve", "ingestion"),
                    *("--role", "api", "--port", str(port), "--workers", str(workers)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches only us; we stop it in order
            )
        return self.server

    def server_log_tail(self, lines: int = 20) -> str:
        if self.server_log is None or not self.server_log.exists():
            return ""
        return "\n".join(self.server_log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=25)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        self.server = None
        if self.infra is not None:
            self.infra.stop()
            self.infra = None
        if self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self.state_dir = None

    def watched(self) -> dict[str, int]:
        pids: dict[str, int] = {}
        if self.server is not None:
            pids["ingestion"] = self.server.pid
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
                f"the ingestion service exited with {stack.server.returncode}:\n{stack.server_log_tail()}"
            )
        try:
            if (await client.get("/readyz", timeout=2)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"the ingestion service at {client.base_url} was not ready in {timeout_s:.0f} s")
        await asyncio.sleep(0.25)


async def ensure_connection(client: httpx.AsyncClient) -> tuple[str, str]:
    """(dataset id, connection id) of the benchmark's dataset and connection, created
    when missing, so that repeated ``--reuse`` runs do not pile them up."""

    def checked(response: httpx.Response, what: str) -> Any:
        if response.status_code >= 300:
            raise BenchError(f"{what}: HTTP {response.status_code} {response.text[:500]}")
        return response.json()

    datasets = checked(await client.get("/v1/datasets"), "listing datasets")["items"]
    dataset = next((d for d in datasets if d["name"] == DATASET_NAME), None)
    if dataset is None:
        dataset = checked(
            await client.post(
                "/v1/datasets",
                json={
                    "name": DATASET_NAME,
                    "schemaRef": {"id": EXPERIENCE_EVENT, "contentType": XDM_CONTENT_TYPE},
                    "profileEnabled": True,
                },
            ),
            "creating the dataset",
        )
    elif dataset["schemaRef"]["id"] != EXPERIENCE_EVENT or not dataset["profileEnabled"]:
        raise BenchError(f"dataset {DATASET_NAME!r} exists with another schema or profile setting")
    connections = checked(await client.get("/v1/connections"), "listing connections")["items"]
    connection = next(
        (c for c in connections if c["name"] == CONNECTION_NAME and c["datasetId"] == dataset["id"]), None
    )
    if connection is None:
        connection = checked(
            await client.post("/v1/connections", json={"name": CONNECTION_NAME, "datasetId": dataset["id"]}),
            "creating the connection",
        )
    return dataset["id"], connection["id"]


async def ensure_topic(settings: CommonSettings, name: str) -> None:
    """The raw phase's own topic, shaped like ``itinera.events.v1`` (same partitions),
    so that consumers of the events topic in a running stack do not see raw records."""
    template = topics.EVENTS
    bench = topics.Topic(
        name=name,
        description="benchmark records",
        key=template.key,
        payload_schema=template.payload_schema,
        partitions=template.partitions,
        retention_ms=60 * 60 * 1000,
    )
    await create_topics(settings, [bench])


# -- the report -----------------------------------------------------------------------


def _cpu_cell(cores: float | None, phase: PhaseResult) -> str:
    if cores is None:
        return "n/a"
    micros = cores * phase.seconds / phase.events * 1e6 if phase.events else math.nan
    return f"{cores:.2f} / {num(micros)}"


def _verdict(ok: bool) -> str:
    return "meets" if ok else "BELOW"


def report(raw: PhaseResult, http: PhaseResult, args: Args, sizes: dict[str, float]) -> str:
    ratio = http.rate / raw.rate if raw.rate > 0 else math.nan
    rows = [
        f"{'':<20}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}   {'target':<16}verdict",
        f"{raw.name:<20}{num(raw.rate):>10}{'-':>9}{'-':>9}",
        f"{http.name:<20}{num(http.rate):>10}{num(http.percentile_ms(50), 1):>9}"
        f"{num(http.percentile_ms(99), 1):>9}   {f'>= {TARGET_EVENTS_PER_S:,}/s':<16}"
        f"{_verdict(http.rate >= TARGET_EVENTS_PER_S)}",
        f"{'ratio (b)/(a)':<20}{num(ratio * 100, 1) + '%':>10}{'':>18}   {f'>= {TARGET_RATIO:.0%}':<16}"
        f"{_verdict(ratio >= TARGET_RATIO)}",
    ]
    lines = [
        "",
        machine_line(),
        f"workload: {args.events:,} events per phase after {args.warmup:,} warm-up events; "
        f"event {sizes['event']:.0f} B as JSON, AEP message {sizes['message']:.0f} B; "
        f"HTTP: {args.batch} messages per request ({sizes['body'] / 1024:.0f} KiB), "
        f"{args.concurrency} concurrent clients; raw: windows of {args.window:,} sends, acks=all",
        "",
        *rows,
    ]
    for phase in (raw, http):
        if phase.stopped_at_limit:
            lines.append(
                f"{phase.name}: stopped at the phase limit after {phase.events:,} of {phase.planned:,}"
            )
        if phase.failed:
            lines.append(f"{phase.name}: {phase.failed:,} events not accepted (not counted), e.g.:")
            lines.extend(f"    {reason}" for reason in phase.failures)
    names = ["client", *sorted({n for p in (raw, http) if p.cpu for n in p.cpu.processes})]
    lines += [
        "",
        "CPU during the timed part of each phase, as cores busy (CPU s / wall s) / CPU us per event;",
        "client = this process (the load generator); machine = every process, whoever started it:",
        f"{'':<20}{'wall s':>8}{'machine':>9}{'steal':>7}" + "".join(f"{n:>14}" for n in names),
    ]
    for phase in (raw, http):
        if phase.cpu is None:
            continue
        cpu = phase.cpu
        cores = {"client": cpu.client, **cpu.processes}
        cells = "".join(f"{_cpu_cell(cores.get(n), phase):>14}" for n in names)
        lines.append(
            f"{phase.name:<20}{cpu.wall_s:>8.2f}{num(cpu.machine, 2):>9}{num(cpu.steal, 2):>7}{cells}"
        )
    server = http.cpu.processes.get("ingestion") if http.cpu else None
    if server and http.events:
        per_event = server * http.seconds / http.events
        lines.append(
            f"one ingestion process at {per_event * 1e6:.0f} us of CPU per event tops out near "
            f"{1 / per_event:,.0f} events/s per core"
        )
    return "\n".join(lines)


# -- the run --------------------------------------------------------------------------


@dataclass(frozen=True)
class Args:
    events: int
    warmup: int
    concurrency: int
    server_workers: int
    batch: int
    window: int
    reuse: bool
    url: str
    raw_topic: str
    phase_limit: float
    time_limit: float
    seed: int


def parse_args(argv: Sequence[str] | None) -> Args:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000, help="timed events per phase")
    parser.add_argument("--warmup", type=int, default=5_000, help="untimed events before each phase")
    parser.add_argument("--concurrency", type=int, default=12, help="concurrent HTTP clients")
    parser.add_argument(
        "--server-workers", type=int, default=2, help="ingestion server processes (itinera serve --workers)"
    )
    parser.add_argument("--batch", type=int, default=100, help="messages per HTTP request")
    parser.add_argument("--window", type=int, default=1_000, help="raw sends between waits for acks")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="use the running stack: ITINERA_KAFKA_BOOTSTRAP and ingestion at --url (e.g. after make run)",
    )
    parser.add_argument("--url", default="http://127.0.0.1:8001", help="ingestion's URL with --reuse")
    parser.add_argument("--raw-topic", default=RAW_TOPIC, help="topic of the raw phase")
    parser.add_argument("--phase-limit", type=float, default=120, help="seconds per timed phase at most")
    parser.add_argument("--time-limit", type=float, default=420, help="seconds for the whole run at most")
    parser.add_argument("--seed", type=int, default=7)
    ns = parser.parse_args(argv)
    for name in ("events", "warmup", "concurrency", "server_workers", "batch", "window"):
        if getattr(ns, name) < (0 if name == "warmup" else 1):
            parser.error(f"--{name} must be positive")
    return Args(
        events=ns.events,
        warmup=ns.warmup,
        concurrency=ns.concurrency,
        server_workers=ns.server_workers,
        batch=ns.batch,
        window=ns.window,
        reuse=ns.reuse,
        url=ns.url.rstrip("/"),
        raw_topic=ns.raw_topic,
        phase_limit=ns.phase_limit,
        time_limit=ns.time_limit,
        seed=ns.seed,
    )


async def bench(args: Args, stack: Stack) -> int:
    if args.reuse:
        settings = CommonSettings()
        url = args.url
    else:
        assert stack.infra is not None
        settings = CommonSettings(
            kafka_bootstrap=stack.infra.kafka_bootstrap, database_url=stack.infra.database_url
        )
        say(f"broker {settings.kafka_bootstrap}, database {settings.database_url}")
        await create_topics(settings)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "ITINERA_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "ITINERA_DATABASE_URL": settings.database_url,
            "ITINERA_LOG_LEVEL": "WARNING",
        }
        stack.start_server(port, env, args.server_workers)
        say(f"ingestion starting at {url} (uvicorn, --role api, {args.server_workers} worker process(es))")
    await ensure_topic(settings, args.raw_topic)
    token = mint_token(settings, scopes=["ingest:write", "catalog:write", "catalog:read"])
    client = httpx.AsyncClient(
        base_url=url,
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        limits=httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency),
        timeout=httpx.Timeout(60),
    )
    kafka = Producer(settings, client_id="itinera-bench-raw").client
    try:
        await wait_ready(client, stack, timeout_s=120)
        dataset_id, connection_id = await ensure_connection(client)
        path = f"/collection/batch/{connection_id}"
        say(f"dataset {dataset_id}, connection {connection_id}")

        say("generating and pre-serialising the events")
        factory = EventFactory(args.seed)
        sandbox = settings.default_sandbox
        raw_warmup = raw_records(factory, args.warmup, sandbox, dataset_id, connection_id)
        raw = raw_records(factory, args.events, sandbox, dataset_id, connection_id)
        check, *http_warmup = http_batches(factory, args.warmup + args.batch, args.batch, dataset_id)
        http = http_batches(factory, args.events, args.batch, dataset_id)
        sample = factory.event()
        sizes = {
            "event": len(orjson.dumps(sample)),
            "message": len(orjson.dumps(aep_message(sample, dataset_id))),
            "body": sum(len(b.body) for b in http) / len(http),
        }

        # One batch first: the events must be valid for the figures to mean anything.
        response = await client.post(path, content=check.body)
        if response.status_code != 207:
            raise BenchError(f"the check batch got HTTP {response.status_code}: {response.text[:1000]}")
        refused = [r for r in response.json()["responses"] if "status" in r]
        if refused:
            reasons = "\n  ".join(f"{r['status']} {r.get('message', '')}" for r in refused[:5])
            raise BenchError(f"{len(refused)} of {check.events} check events refused:\n  {reasons}")
        say(f"check batch accepted ({check.events} events)")

        await kafka.start()
        watched = stack.watched() if not args.reuse else reused_processes(url, settings)
        say(f"(a) raw: {args.warmup:,} warm-up + {args.events:,} events to {args.raw_topic}")
        raw_result = await run_raw(kafka, args.raw_topic, raw_warmup, raw, args, watched)
        say(f"(a) raw: {num(raw_result.rate)} events/s")
        say(f"(b) HTTP: {args.warmup:,} warm-up + {args.events:,} events, {args.concurrency} clients")
        http_result = await run_http(client, path, http_warmup, http, args, watched)
        say(f"(b) HTTP: {num(http_result.rate)} events/s")
        print(report(raw_result, http_result, args, sizes), flush=True)
        return 0
    finally:
        await kafka.stop()
        await client.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    stack = Stack()
    say(machine_line())
    if not args.reuse:
        say("starting the broker and PostgreSQL")
        try:
            stack.start_infra()
        except BaseException:
            stack.stop()
            raise

    async def work() -> int:
        try:
            return await bench(args, stack)
        except BenchError as exc:
            say(f"error: {exc}")
            return 1

    status = run_bounded(work, args.time_limit - (time.monotonic() - started), stack.stop)
    return 3 if status is None else status


if __name__ == "__main__":
    sys.exit(main())
