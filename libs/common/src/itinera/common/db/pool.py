"""The asyncpg pool of a service: its own schema first on the search path, JSON as jsonb."""

from __future__ import annotations

import asyncpg
import orjson

from itinera.common.settings import CommonSettings


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Returning a connection to the pool costs no round trip. asyncpg still rolls back
    an open transaction and drops listener callbacks; its default reset would also run
    ``RESET ALL``, ``UNLISTEN *`` and ``pg_advisory_unlock_all()``, which Itinera has no
    use for: services take transaction-scoped advisory locks (``*_xact_lock``), or a
    session lock they release before letting the connection go, ending the session
    when the release fails (segmentation's preview claims); they set session settings
    only at connect (``server_settings``) or with ``SET LOCAL``, and remove their
    listeners before releasing a connection."""


async def create_pool(settings: CommonSettings, schema: str) -> asyncpg.Pool:
    """A pool whose connections see ``schema`` (the service's own) before ``public``."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.database_pool_min,
        max_size=settings.database_pool_max,
        init=_init_connection,
        reset=_keep_session,
        server_settings={
            "search_path": f"{schema},public",
            "application_name": f"itinera-{schema}",
        },
        command_timeout=60,
    )
    return pool
