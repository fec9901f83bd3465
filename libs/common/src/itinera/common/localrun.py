"""``itinera run``: the whole suite on one machine, without Docker.

Starts the broker and PostgreSQL (unless ``ITINERA_KAFKA_BOOTSTRAP`` /
``ITINERA_DATABASE_URL`` name external ones), starts local delivery in this process
(the SMTP sink on 1025, the inbox with the SMS and push simulators on 8025; see
:mod:`itinera.common.sinks`), creates the topics, applies every service's migrations,
starts each installed service on its own port as a child process with its log lines
prefixed by its name and the channels settings (``ITINERA_CHANNELS_SMTP_HOST``,
``..._SMTP_PORT``, ``..._SMS_BASE_URL``, ``..._PUSH_BASE_URL``) pointing at local
delivery, runs the services' demo seeds, prints the URLs and a development token, and
on Ctrl-C (or SIGTERM) stops the services, then local delivery, then the
infrastructure. ``--port-offset`` shifts every port but the broker's and the
database's, local delivery's included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import httpx

from itinera.common.auth import mint_token
from itinera.common.devstack import Infrastructure, port_free
from itinera.common.settings import CommonSettings

COLOURS = ("36", "35", "33", "32", "34", "31", "96", "95", "93", "92")


def add_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("--state-dir", type=Path, default=Path(".stack"))
    run.add_argument("--kafka-port", type=int, default=9092)
    run.add_argument("--pg-port", type=int, default=55432)
    run.add_argument(
        "--port-offset", type=int, default=0, help="add this to every service's port (8001 -> 8001+N)"
    )
    run.add_argument("--fresh", action="store_true", help="start from an empty database")
    run.add_argument("--no-demo", action="store_true", help="skip the demo seed")
    run.add_argument(
        "--exit-after-start",
        action="store_true",
        help="stop everything once it is up (a smoke check for automation)",
    )


def _prefix(name: str, index: int) -> bytes:
    colour = COLOURS[index % len(COLOURS)]
    if sys.stdout.isatty():
        return f"\x1b[{colour}m{name:<13}|\x1b[0m ".encode()
    return f"{name:<13}| ".encode()


async def _pump(stream: asyncio.StreamReader, prefix: bytes) -> None:
    while line := await stream.readline():
        sys.stdout.buffer.write(prefix + line)
        sys.stdout.buffer.flush()


async def _wait_healthy(port: int, proc: asyncio.subprocess.Process, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"the service on port {port} exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://127.0.0.1:{port}/readyz", timeout=2)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the service on port {port} did not become ready")
            await asyncio.sleep(0.25)


DEMO_ORDER = ("ingestion", "profile", "segmentation", "content", "journeys", "channels")
"""The order the demo seeds run in: the journeys' seed publishes a journey and a campaign
whose templates the content's seed publishes (publishing checks them)."""


def _seed_order(entry: EntryPoint) -> tuple[int, str]:
    return (DEMO_ORDER.index(entry.name) if entry.name in DEMO_ORDER else len(DEMO_ORDER), entry.name)


async def _run(args: argparse.Namespace) -> int:
    from itinera.common.cli import services
    from itinera.common.kafka.admin import create_topics

    # Imported here: production images run ``itinera serve`` without the ``local`` extra.
    from itinera.common.sinks import DEFAULT_SMTP_PORT, DEFAULT_WEB_PORT, LocalDelivery
    from itinera.common.sinks.local import DEFAULT_BOUNCE_PORT

    env_kafka = os.environ.get("ITINERA_KAFKA_BOOTSTRAP")
    env_db = os.environ.get("ITINERA_DATABASE_URL")
    print("itinera | starting infrastructure", flush=True)
    infra = await asyncio.to_thread(
        Infrastructure.start,
        args.state_dir.resolve(),
        kafka_bootstrap=env_kafka,
        database_url=env_db,
        kafka_port=args.kafka_port,
        pg_port=args.pg_port,
        fresh_database=args.fresh,
    )
    delivery = LocalDelivery(
        smtp_port=DEFAULT_SMTP_PORT + args.port_offset,
        web_port=DEFAULT_WEB_PORT + args.port_offset,
        bounce_port=DEFAULT_BOUNCE_PORT + args.port_offset,
    )
    children: list[tuple[str, asyncio.subprocess.Process]] = []
    pumps: list[asyncio.Task[None]] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await delivery.start()
        env = {
            **os.environ,
            "ITINERA_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
            "ITINERA_DATABASE_URL": infra.database_url,
            "ITINERA_LOG_FORMAT": os.environ.get("ITINERA_LOG_FORMAT", "text"),
            "PYTHONUNBUFFERED": "1",
            **delivery.environment(),
        }
        installed = services()
        if "channels" in installed:  # the links its emails carry (unsubscribe, tracking)
            env["ITINERA_CHANNELS_PUBLIC_URL"] = (
                f"http://127.0.0.1:{installed['channels'].port + args.port_offset}"
            )
        if "profile" in installed:  # for the services that read profiles from it
            env["ITINERA_PROFILE_SERVICE_URL"] = (
                f"http://127.0.0.1:{installed['profile'].port + args.port_offset}"
            )
        if "segmentation" in installed:  # for the services that read audiences from it
            env["ITINERA_SEGMENTATION_SERVICE_URL"] = (
                f"http://127.0.0.1:{installed['segmentation'].port + args.port_offset}"
            )
        settings = CommonSettings(kafka_bootstrap=infra.kafka_bootstrap, database_url=infra.database_url)
        created = await create_topics(settings)
        print(f"itinera | broker {infra.kafka_bootstrap}: {len(created)} topic(s) created", flush=True)
        print(f"itinera | database {infra.database_url}", flush=True)
        for index, (name, service) in enumerate(installed.items()):
            port = service.port + args.port_offset
            if not port_free(port):
                raise RuntimeError(f"port {port} for {name} is taken")
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "itinera.common.cli",
                "serve",
                name,
                "--role",
                "all",
                "--port",
                str(port),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            children.append((name, proc))
            assert proc.stdout is not None
            pumps.append(asyncio.create_task(_pump(proc.stdout, _prefix(name, index))))
        for (_, proc), service in zip(children, installed.values(), strict=True):
            await _wait_healthy(service.port + args.port_offset, proc, timeout_s=90)
        token = mint_token(settings)

        def url_of(name: str) -> str:
            return f"http://127.0.0.1:{installed[name].port + args.port_offset}"

        lines = [""] + [
            f"  {name:<13} {url_of(name)}   (docs: /docs, OpenAPI: /openapi.json)"
            for name, s in installed.items()
        ]
        lines.append(
            f"  {'inbox':<13} {delivery.web_url}   (email sent to SMTP {delivery.smtp_host}:"
            f"{delivery.smtp_port}; SMS and push simulators at the same URL)"
        )
        if not args.no_demo:
            for entry in sorted(entry_points(group="itinera.demo"), key=_seed_order):
                seed = entry.load()
                lines.extend(await seed(settings, token, url_of))
        print(
            "\n".join(
                [
                    "",
                    "Itinera is running.",
                    *lines,
                    "",
                    "  Development bearer token (12 h, every scope, sandbox 'prod'):",
                    f"  export TOKEN={token}",
                    "",
                    "  Stop with Ctrl-C.",
                    "",
                ]
            ),
            flush=True,
        )
        if not args.exit_after_start:
            await stop.wait()
        return 0
    finally:
        print("itinera | stopping", flush=True)
        for _, proc in reversed(children):
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in reversed(children):
            try:
                await asyncio.wait_for(proc.wait(), timeout=30)
            except TimeoutError:
                print(f"itinera | {name} did not stop in time; killing it", flush=True)
                proc.kill()
                await proc.wait()
        for pump in pumps:
            pump.cancel()
        try:
            await delivery.stop()
        finally:
            await asyncio.to_thread(infra.stop)
        print("itinera | stopped", flush=True)


def main(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))
