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
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any

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


def app_from_environment() -> Any:
    """The app factory each uvicorn worker process calls (``--workers N``)."""
    service = _service(os.environ["ITINERA_SERVE_SERVICE"])
    return service.create_app(role=os.environ.get("ITINERA_SERVE_ROLE", "all"))  # type: ignore[arg-type]


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    service = _service(args.service)
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port or service.port,
        "log_config": None,
        "access_log": False,
        "loop": "uvloop",
        "http": "httptools",
        "timeout_graceful_shutdown": 20,
    }
    if args.workers > 1:
        # One process per worker, sharing the socket: an event loop uses one core.
        os.environ["ITINERA_SERVE_SERVICE"] = args.service
        os.environ["ITINERA_SERVE_ROLE"] = args.role
        uvicorn.run("itinera.common.cli:app_from_environment", factory=True, workers=args.workers, **options)
    else:
        uvicorn.run(service.create_app(role=args.role), **options)
    return 0


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
    serve.add_argument("--role", choices=["api", "worker", "all"], default="all")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="default: the service's own port")
    serve.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("ITINERA_WORKERS", "1")),
        help="server processes sharing the port (default: $ITINERA_WORKERS or 1)",
    )
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
