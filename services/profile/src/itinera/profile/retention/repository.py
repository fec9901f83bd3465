"""SQL of event retention: per-dataset time-to-live and the expiry sweep."""

from __future__ import annotations

from datetime import timedelta

import asyncpg


async def ttls_of(conn: asyncpg.Connection, sandbox: str) -> dict[str, timedelta]:
    rows = await conn.fetch("SELECT dataset_id, ttl_seconds FROM event_ttls WHERE sandbox = $1", sandbox)
    return {r["dataset_id"]: timedelta(seconds=r["ttl_seconds"]) for r in rows}


async def all_ttls(conn: asyncpg.Connection) -> list[tuple[str, str, timedelta]]:
    rows = await conn.fetch("SELECT sandbox, dataset_id, ttl_seconds FROM event_ttls ORDER BY 1, 2")
    return [(r["sandbox"], r["dataset_id"], timedelta(seconds=r["ttl_seconds"])) for r in rows]


async def set_ttl(conn: asyncpg.Connection, sandbox: str, dataset_id: str, ttl: timedelta) -> None:
    await conn.execute(
        """INSERT INTO event_ttls (sandbox, dataset_id, ttl_seconds) VALUES ($1, $2, $3)
           ON CONFLICT (sandbox, dataset_id) DO UPDATE
           SET ttl_seconds = EXCLUDED.ttl_seconds, updated_at = now()""",
        sandbox,
        dataset_id,
        int(ttl.total_seconds()),
    )


async def drop_ttl(conn: asyncpg.Connection, sandbox: str, dataset_id: str) -> bool:
    status: str = await conn.execute(
        "DELETE FROM event_ttls WHERE sandbox = $1 AND dataset_id = $2", sandbox, dataset_id
    )
    return status != "DELETE 0"


async def delete_expired(
    conn: asyncpg.Connection, sandbox: str, dataset_id: str, ttl: timedelta, limit: int
) -> int:
    """Delete at most ``limit`` of the dataset's events older than ``ttl``; how many."""
    status: str = await conn.execute(
        """DELETE FROM events WHERE ctid = ANY(ARRAY(
               SELECT ctid FROM events
               WHERE sandbox = $1 AND dataset_id = $2 AND occurred_at < now() - $3::interval
               LIMIT $4))""",
        sandbox,
        dataset_id,
        ttl,
        limit,
    )
    return int(status.rsplit(" ", 1)[1])
