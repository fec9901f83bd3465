"""SQL of the profile store: fragments and experience events."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from itinera.profile.identity.graph import Node
from itinera.profile.profiles.merge import Fragment

FragmentRow = tuple[str, Node, dict[str, Any], datetime, str]
"""(dataset id, identity, record, record time, ce_id)"""
EventRow = tuple[str, str, Node, datetime, dict[str, Any]]
"""(event id, dataset id, identity, occurred at, body)"""


async def store_fragments(conn: asyncpg.Connection, sandbox: str, rows: Sequence[FragmentRow]) -> None:
    """Keep the latest record per (dataset, identity), by the record's own time: the
    outcome does not depend on the order records arrive in."""
    await conn.executemany(
        """INSERT INTO fragments (sandbox, dataset_id, namespace, value, record, record_time, ce_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (sandbox, dataset_id, namespace, value) DO UPDATE
           SET record = EXCLUDED.record, record_time = EXCLUDED.record_time, ce_id = EXCLUDED.ce_id,
               updated_at = now()
           WHERE (fragments.record_time, fragments.ce_id) < (EXCLUDED.record_time, EXCLUDED.ce_id)""",
        [(sandbox, d, n.namespace, n.value, r, t, c) for d, n, r, t, c in rows],
    )


async def store_events(conn: asyncpg.Connection, sandbox: str, rows: Sequence[EventRow]) -> None:
    """Append events; one with an ``_id`` already stored is a duplicate and dropped."""
    await conn.executemany(
        """INSERT INTO events (sandbox, event_id, dataset_id, namespace, value, occurred_at, body)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (sandbox, event_id) DO NOTHING""",
        [(sandbox, e, d, n.namespace, n.value, t, b) for e, d, n, t, b in rows],
    )


async def fragments_of(conn: asyncpg.Connection, sandbox: str, nodes: Iterable[Node]) -> list[Fragment]:
    listed = list(nodes)
    rows = await conn.fetch(
        """SELECT f.dataset_id, f.record_time, f.record FROM fragments f
           JOIN unnest($2::text[], $3::text[]) AS n(namespace, value)
             ON f.namespace = n.namespace AND f.value = n.value
           WHERE f.sandbox = $1""",
        sandbox,
        [n.namespace for n in listed],
        [n.value for n in listed],
    )
    return [Fragment(r["dataset_id"], r["record_time"], r["record"]) for r in rows]


async def event_count(conn: asyncpg.Connection, sandbox: str, nodes: Iterable[Node]) -> int:
    listed = list(nodes)
    count: int = await conn.fetchval(
        """SELECT count(*) FROM events e
           JOIN unnest($2::text[], $3::text[]) AS n(namespace, value)
             ON e.namespace = n.namespace AND e.value = n.value
           WHERE e.sandbox = $1""",
        sandbox,
        [n.namespace for n in listed],
        [n.value for n in listed],
    )
    return count


async def events_of(
    conn: asyncpg.Connection,
    sandbox: str,
    nodes: Iterable[Node],
    *,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, str] | None,
    descending: bool,
    limit: int,
) -> list[asyncpg.Record]:
    """Events of ``nodes`` in [start, end), in time order, from after the cursor."""
    listed = list(nodes)
    direction, compare = ("DESC", "<") if descending else ("ASC", ">")
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT e.event_id, e.occurred_at, e.body FROM events e
            JOIN unnest($2::text[], $3::text[]) AS n(namespace, value)
              ON e.namespace = n.namespace AND e.value = n.value
            WHERE e.sandbox = $1
              AND ($4::timestamptz IS NULL OR e.occurred_at >= $4)
              AND ($5::timestamptz IS NULL OR e.occurred_at < $5)
              AND ($6::timestamptz IS NULL OR (e.occurred_at, e.event_id) {compare} ($6, $7))
            ORDER BY e.occurred_at {direction}, e.event_id {direction}
            LIMIT $8""",
        sandbox,
        [n.namespace for n in listed],
        [n.value for n in listed],
        start,
        end,
        after[0] if after else None,
        after[1] if after else "",
        limit,
    )
    return rows
