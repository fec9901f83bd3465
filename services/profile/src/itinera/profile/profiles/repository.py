"""SQL of the profile store: fragments and experience events."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from itinera.profile.identity.graph import Node
from itinera.profile.identity.repository import node_keys
from itinera.profile.profiles.merge import Fragment

FragmentRow = tuple[str, Node, dict[str, Any], datetime, str]
"""(dataset id, identity, record, record time, ce_id)"""
EventRow = tuple[str, str, Node, datetime, dict[str, Any]]
"""(event id, dataset id, identity, occurred at, body)"""


async def store_fragments(conn: asyncpg.Connection, sandbox: str, rows: Sequence[FragmentRow]) -> set[Node]:
    """Keep the latest record per (dataset, identity), by the record's own time: the
    outcome does not depend on the order records arrive in. Returns the identities
    whose fragments were written."""
    latest: dict[tuple[str, Node], FragmentRow] = {}
    for row in rows:  # one statement may not write a row twice: the batch's latest each
        key = (row[0], row[1])
        if key not in latest or (latest[key][3], latest[key][4]) < (row[3], row[4]):
            latest[key] = row
    if not latest:
        return set()
    listed = [latest[k] for k in sorted(latest)]
    written = await conn.fetch(
        """INSERT INTO fragments (sandbox, dataset_id, namespace, value, record, record_time, ce_id)
           SELECT $1, r.d, r.n, r.v, r.r, r.t, r.c
           FROM jsonb_to_recordset($2::jsonb) AS r(d text, n text, v text, r jsonb, t timestamptz, c text)
           ON CONFLICT (sandbox, dataset_id, namespace, value) DO UPDATE
           SET record = EXCLUDED.record, record_time = EXCLUDED.record_time, ce_id = EXCLUDED.ce_id,
               updated_at = now()
           WHERE (fragments.record_time, fragments.ce_id) < (EXCLUDED.record_time, EXCLUDED.ce_id)
           RETURNING namespace, value""",
        sandbox,
        [{"d": d, "n": n.namespace, "v": n.value, "r": r, "t": t, "c": c} for d, n, r, t, c in listed],
    )
    return {Node(r["namespace"], r["value"]) for r in written}


async def store_events(conn: asyncpg.Connection, sandbox: str, rows: Sequence[EventRow]) -> set[str]:
    """Append events; one with an ``_id`` already stored is a duplicate and dropped.
    Returns the ids of the events actually added."""
    if not rows:
        return set()
    added = await conn.fetch(
        """INSERT INTO events (sandbox, event_id, dataset_id, namespace, value, occurred_at, body)
           SELECT $1, e.id, e.d, e.n, e.v, e.t, e.b
           FROM jsonb_to_recordset($2::jsonb) AS e(id text, d text, n text, v text, t timestamptz, b jsonb)
           ON CONFLICT (sandbox, event_id) DO NOTHING
           RETURNING event_id""",
        sandbox,
        [{"id": e, "d": d, "n": n.namespace, "v": n.value, "t": t, "b": b} for e, d, n, t, b in rows],
    )
    return {r["event_id"] for r in added}


@dataclass(frozen=True, slots=True)
class StoredView:
    """A profile's merged view as ``profile_views`` keeps it."""

    entity: dict[str, Any]
    sources: list[str]
    last_modified: datetime | None


async def views_of(
    conn: asyncpg.Connection, sandbox: str, profile_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT profile_id, entity FROM profile_views WHERE sandbox = $1 AND profile_id = ANY($2::uuid[])",
        sandbox,
        list(profile_ids),
    )
    return {str(r["profile_id"]): r["entity"] for r in rows}


async def fragments_of_profiles(
    conn: asyncpg.Connection, sandbox: str, profile_ids: Iterable[str]
) -> dict[str, list[Fragment]]:
    """The fragments of every member of each profile, in one query: index probes from
    the profile ids, kept probes by ``OFFSET 0`` (see ``identity.repository.reachable``;
    planned as a scan of ``members``, it cost 12 ms a batch at 18,000 identities)."""
    listed = sorted(set(profile_ids))
    found: dict[str, list[Fragment]] = {pid: [] for pid in listed}
    rows = await conn.fetch(
        """SELECT p.id AS profile_id, f.dataset_id, f.record_time, f.record
           FROM unnest($2::uuid[]) AS p(id)
           CROSS JOIN LATERAL (
               SELECT namespace, value FROM members WHERE sandbox = $1 AND profile_id = p.id OFFSET 0
           ) m
           CROSS JOIN LATERAL (
               SELECT dataset_id, record_time, record FROM fragments
               WHERE sandbox = $1 AND namespace = m.namespace AND value = m.value OFFSET 0
           ) f""",
        sandbox,
        listed,
    )
    for r in rows:
        found[str(r["profile_id"])].append(Fragment(r["dataset_id"], r["record_time"], r["record"]))
    return found


async def save_views(
    conn: asyncpg.Connection, sandbox: str, policy_id: str, views: dict[str, StoredView]
) -> None:
    if not views:
        return
    await conn.execute(
        """INSERT INTO profile_views (sandbox, profile_id, entity, sources, last_modified, policy_id)
           SELECT $1, v.p, v.e, v.s, v.m, $3::uuid
           FROM jsonb_to_recordset($2::jsonb) AS v(p uuid, e jsonb, s jsonb, m timestamptz)
           ON CONFLICT (sandbox, profile_id) DO UPDATE
           SET entity = EXCLUDED.entity, sources = EXCLUDED.sources,
               last_modified = EXCLUDED.last_modified, policy_id = EXCLUDED.policy_id, updated_at = now()""",
        sandbox,
        [{"p": pid, "e": v.entity, "s": v.sources, "m": v.last_modified} for pid, v in sorted(views.items())],
        policy_id,
    )


async def drop_views(conn: asyncpg.Connection, sandbox: str, profile_ids: Iterable[str]) -> None:
    listed = list(profile_ids)
    if listed:
        await conn.execute(
            "DELETE FROM profile_views WHERE sandbox = $1 AND profile_id = ANY($2::uuid[])", sandbox, listed
        )


async def fragments_of(conn: asyncpg.Connection, sandbox: str, nodes: Iterable[Node]) -> list[Fragment]:
    listed = list(nodes)
    rows = await conn.fetch(
        """SELECT f.dataset_id, f.record_time, f.record
           FROM jsonb_to_recordset($2::jsonb) AS k(n text, v text)
           CROSS JOIN LATERAL (
               SELECT dataset_id, record_time, record FROM fragments
               WHERE sandbox = $1 AND namespace = k.n AND value = k.v OFFSET 0
           ) f""",
        sandbox,
        node_keys(listed),
    )
    return [Fragment(r["dataset_id"], r["record_time"], r["record"]) for r in rows]


async def event_count(conn: asyncpg.Connection, sandbox: str, nodes: Iterable[Node]) -> int:
    listed = list(nodes)
    count: int = await conn.fetchval(
        """SELECT count(*) FROM jsonb_to_recordset($2::jsonb) AS k(n text, v text)
           CROSS JOIN LATERAL (
               SELECT 1 FROM events e WHERE e.sandbox = $1 AND e.namespace = k.n AND e.value = k.v
                 AND NOT EXISTS (
                     SELECT 1 FROM event_ttls t WHERE t.sandbox = $1 AND t.dataset_id = e.dataset_id
                       AND e.occurred_at < now() - t.ttl_seconds * interval '1 second')
               OFFSET 0
           ) e""",
        sandbox,
        node_keys(listed),
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
        f"""SELECT e.event_id, e.occurred_at, e.body
            FROM jsonb_to_recordset($2::jsonb) AS k(n text, v text)
            CROSS JOIN LATERAL (  -- the first page of each identity, then of all of them
                SELECT event_id, occurred_at, body FROM events
                WHERE sandbox = $1 AND namespace = k.n AND value = k.v
                  AND NOT EXISTS (  -- expired by its dataset's time-to-live
                      SELECT 1 FROM event_ttls t WHERE t.sandbox = $1 AND t.dataset_id = events.dataset_id
                        AND events.occurred_at < now() - t.ttl_seconds * interval '1 second')
                  AND ($3::timestamptz IS NULL OR occurred_at >= $3)
                  AND ($4::timestamptz IS NULL OR occurred_at < $4)
                  AND ($5::timestamptz IS NULL OR (occurred_at, event_id) {compare} ($5, $6))
                ORDER BY occurred_at {direction}, event_id {direction}
                LIMIT $7
            ) e
            ORDER BY e.occurred_at {direction}, e.event_id {direction}
            LIMIT $7""",
        sandbox,
        node_keys(listed),
        start,
        end,
        after[0] if after else None,
        after[1] if after else "",
        limit,
    )
    return rows


async def erase(
    conn: asyncpg.Connection, sandbox: str, nodes: Sequence[Node], profile_id: str
) -> dict[str, int]:
    """Remove every trace of these identities: fragments, events, the graph's
    observations and decisions, and the profile's view. Returns counts per table."""
    namespaces, values = [n.namespace for n in nodes], [n.value for n in nodes]
    counts: dict[str, int] = {}
    for table, a, b in (
        ("fragments", "namespace", "value"),
        ("events", "namespace", "value"),
        ("members", "namespace", "value"),
        ("evictions", "namespace", "value"),
        ("identities", "namespace", "value"),
        ("links", "a_namespace", "a_value"),
        ("links", "b_namespace", "b_value"),
        ("link_decisions", "a_namespace", "a_value"),
        ("link_decisions", "b_namespace", "b_value"),
    ):
        status: str = await conn.execute(
            f"""DELETE FROM {table} t USING unnest($2::text[], $3::text[]) AS n(namespace, value)
                WHERE t.sandbox = $1 AND t.{a} = n.namespace AND t.{b} = n.value""",
            sandbox,
            namespaces,
            values,
        )
        counts[table] = counts.get(table, 0) + int(status.rsplit(" ", 1)[1])
    await conn.execute(
        "DELETE FROM profile_views WHERE sandbox = $1 AND profile_id = $2", sandbox, uuid.UUID(profile_id)
    )
    await conn.execute(
        "DELETE FROM merged_profiles WHERE sandbox = $1 AND (merged_into = $2 OR profile_id = $2)",
        sandbox,
        uuid.UUID(profile_id),
    )
    return counts


async def system_fragment(
    conn: asyncpg.Connection, sandbox: str, dataset_id: str, node: Node
) -> dict[str, Any]:
    record: dict[str, Any] | None = await conn.fetchval(
        """SELECT record FROM fragments
           WHERE sandbox = $1 AND dataset_id = $2 AND namespace = $3 AND value = $4""",
        sandbox,
        dataset_id,
        node.namespace,
        node.value,
    )
    return record or {}
