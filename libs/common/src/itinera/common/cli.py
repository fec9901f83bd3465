"""The ``itinera`` command.

    itinera run                    the whole local stack (what ``make run`` calls)
    itinera serve NAME [--role]    one service under uvicorn
    itinera migrate [NAME ...]     apply database migrations
    itinera topics create          create the catalogue's topics
    itinera token [--scope ...]    mint a development bearer token

Services add their own subcommands through the ``itinera.cli`` entry point group
(``itinera ingest`` comes from the ingestion service).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib.metadata import entry_points

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.service import Service
from itinera.common.settings import common_settings


def services() -> dict[str, Service]:
    """Every installed service, by name, in port order."""
    found: dict[str, Service] = {}
    for entry in entry_points(group="itinera.services"):
        service = entry.load()
        if not isinstance(service, Service):
            raise TypeError(f"entry point {entry.name} is not an itinera Service")
        found[service.name] = service
    return dict(sorted(found.items(), key=lambda item: item[1].port))


def _service(name: str) -> Service:
    known = services()
    if name not in known:
        raise SystemExit(f"unknown service {name!r}; installed: {', '.join(known) or 'none'}")
    return known[name]


def _serve(args: argparse.Namespace) -> int:
    service = _service(args.service)
    port = args.port or service.port
    if args.workers > 1:
        return _supervise(args, port)
    import uvicorn

    config = uvicorn.Config(
        service.create_app(role=args.role),
        host=args.host,
        port=port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=20,
    )
    server = uvicorn.Server(config)
    if not args.reuse_port:
        server.run()
        return 0
    # One of several processes on this port: the kernel spreads new connections
    # over their sockets (SO_REUSEPORT), so long-lived connections are balanced too.
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((args.host, port))
    server.run(sockets=[sock])
    return 0


def _supervise(args: argparse.Namespace, port: int) -> int:
    """``--workers N``: N server processes on one port, each with its own event loop
    (one loop uses one core); stopped together, and all stopped if one dies."""
    command = [
        sys.executable,
        "-m",
        "itinera.common.cli",
        "serve",
        args.service,
        "--role",
        args.role,
        "--host",
        args.host,
        "--port",
        str(port),
        "--workers",
        "1",
        "--reuse-port",
    ]
    children = [subprocess.Popen(command) for _ in range(args.workers)]
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    status = 0
    while any(child.poll() is None for child in children):
        for child in children:
            code = child.poll()
            if code is not None and not stopping:
                print(f"itinera serve: worker {child.pid} exited with {code}; stopping", file=sys.stderr)
                status = code or 1
                stop(signal.SIGTERM, None)
        time.sleep(0.2)
    return status


async def _migrate(names: Sequence[str]) -> None:
    import asyncpg

    from itinera.common.db.migrations import migrate

    settings = common_settings()
    chosen = [_service(n) for n in names] if names else list(services().values())
    conn = await asyncpg.connect(settings.database_url)
    try:
        for service in chosen:
            applied = await migrate(conn, service.schema, service.migrations)
            print(f"{service.name}: {len(applied)} migration(s) applied", *applied, sep="\n  ")
    finally:
        await conn.close()


def _topics(args: argparse.Namespace) -> int:
    from itinera.common.kafka.admin import create_topics, wait_for_broker

    async def run() -> list[str]:
        settings = common_settings()
        await wait_for_broker(settings.kafka_bootstrap, timeout_s=args.wait)
        return await create_topics(settings, replication=args.replication)

    created = asyncio.run(run())
    print(f"{len(created)} topic(s) created", *created, sep="\n  ")
    return 0


def _token(args: argparse.Namespace) -> int:
    print(
        mint_token(
            common_settings(),
            subject=args.subject,
            scopes=args.scope or ALL_SCOPES,
            sandbox=args.sandbox,
            ttl_s=args.ttl,
        )
    )
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="itinera", description="Itinera command line")
    commands = root.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="start broker, database and every service locally")
    from itinera.common.localrun import add_arguments
    from itinera.common.localrun import main as run_main

    add_arguments(run)
    run.set_defaults(func=run_main)

    serve = commands.add_parser("serve", help="run one service")
    serve.add_argument("service")
    serve.add_argument("--role", choices=["api", "worker", "all", "relay"], default="all")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="default: the service's own port")
    serve.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("ITINERA_WORKERS", "1")),
        help="server processes sharing the port (default: $ITINERA_WORKERS or 1)",
    )
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(func=_serve)

    mig = commands.add_parser("migrate", help="apply database migrations")
    mig.add_argument("services", nargs="*", help="default: every installed service")
    mig.set_defaults(func=lambda a: asyncio.run(_migrate(a.services)) or 0)

    topics = commands.add_parser("topics", help="manage the catalogue's topics")
    topic_commands = topics.add_subparsers(dest="topics_command", required=True)
    create = topic_commands.add_parser("create", help="create every missing topic")
    create.add_argument("--replication", type=int, default=1)
    create.add_argument("--wait", type=float, default=60, help="seconds to wait for the broker")
    create.set_defaults(func=_topics)

    token = commands.add_parser("token", help="mint a development bearer token (HS256)")
    token.add_argument("--subject", default="developer")
    token.add_argument("--scope", action="append", help=f"repeatable; default: {' '.join(ALL_SCOPES)}")
    token.add_argument("--sandbox", default=None)
    token.add_argument("--ttl", type=int, default=12 * 3600, help="seconds")
    token.set_defaults(func=_token)

    for entry in entry_points(group="itinera.cli"):
        entry.load()(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
