"""SQL of the runtime: instances, their steps, timers, event waits, delivery waits and profiles."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg import Record as Row

from itinera.common.projection import Plan


async def live_versions(
    conn: asyncpg.Connection, sandbox: str, entry_type: str, keys: Sequence[str]
) -> list[Row]:
    """Live versions entered by ``entry_type`` (``event``, ``audience``) with one of ``keys``."""
    rows: list[Row] = await conn.fetch(
        """SELECT journey_id, version, definition, entry_key FROM journey_versions
            WHERE sandbox = $1 AND status = 'live' AND entry_type = $2 AND entry_key = ANY($3::text[])""",
        sandbox,
        entry_type,
        list(keys),
    )
    return rows


async def versions(
    conn: asyncpg.Connection, sandbox: str, keys: Iterable[tuple[uuid.UUID, int]]
) -> list[Row]:
    """Versions by (journey id, version), with their status."""
    pairs = list(keys)
    rows: list[Row] = await conn.fetch(
        """SELECT v.journey_id, v.version, v.definition, v.status FROM journey_versions v
             JOIN unnest($2::uuid[], $3::int[]) AS k(journey_id, version)
               ON k.journey_id = v.journey_id AND k.version = v.version
            WHERE v.sandbox = $1""",
        sandbox,
        [p[0] for p in pairs],
        [p[1] for p in pairs],
    )
    return rows


async def live_version_of(conn: asyncpg.Connection, sandbox: str, journey_id: uuid.UUID) -> Row | None:
    row: Row | None = await conn.fetchrow(
        """SELECT journey_id, version, definition FROM journey_versions
            WHERE sandbox = $1 AND journey_id = $2 AND status = 'live'""",
        sandbox,
        journey_id,
    )
    return row


async def last_entry(
    conn: asyncpg.Connection, sandbox: str, profile_id: uuid.UUID, journey_id: uuid.UUID
) -> Row | None:
    """The profile's latest instance of the journey (live or ended)."""
    row: Row | None = await conn.fetchrow(
        """SELECT id, status, entered_at FROM instances
            WHERE sandbox = $1 AND profile_id = $2 AND journey_id = $3
            ORDER BY entered_at DESC LIMIT 1""",
        sandbox,
        profile_id,
        journey_id,
    )
    return row


async def last_entries(
    conn: asyncpg.Connection, sandbox: str, keys: Iterable[tuple[uuid.UUID, uuid.UUID, str]]
) -> tuple[dict[tuple[uuid.UUID, uuid.UUID], Row], set[tuple[uuid.UUID, str]]]:
    """For (profile, journey, trigger) entries that may happen, in one statement: the
    latest instance (status, entered_at) of each (profile, journey) that has one, and the
    (journey, trigger) pairs that have made a profile enter already.

    Each is a probe by key that PostgreSQL cannot fold into a join (a ``LIMIT``, an
    ``OFFSET 0``): as joins, it read them by scanning the sandbox's instances whenever its
    statistics did not know the sandbox (a new one, until the next ``ANALYZE``), every
    instance twice for every batch. The trigger's probe has one index to take, the unique
    one (migration 0016)."""
    listed = sorted(set(keys))
    rows = await conn.fetch(
        """WITH k AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS k(p uuid, j uuid, t text))
           SELECT true AS last, d.p AS profile_id, d.j AS journey_id, i.status, i.entered_at,
                  NULL AS trigger_id
             FROM (SELECT DISTINCT p, j FROM k) d
             CROSS JOIN LATERAL (
                 SELECT status, entered_at FROM instances
                  WHERE sandbox = $1 AND profile_id = d.p AND journey_id = d.j
                  ORDER BY entered_at DESC LIMIT 1
             ) i
           UNION ALL
           SELECT false, NULL, k.j, NULL, NULL, k.t
             FROM k
            WHERE EXISTS (
                 SELECT 1 FROM instances
                  WHERE sandbox = $1 AND journey_id = k.j AND trigger_id = k.t OFFSET 0
            )""",
        sandbox,
        [{"p": str(p), "j": str(j), "t": t} for p, j, t in listed],
    )
    last = {(r["profile_id"], r["journey_id"]): r for r in rows if r["last"]}
    return last, {(r["journey_id"], r["trigger_id"]) for r in rows if not r["last"]}


async def insert_instance(
    conn: asyncpg.Connection,
    sandbox: str,
    instance_id: uuid.UUID,
    journey_id: uuid.UUID,
    version: int,
    profile_id: uuid.UUID,
    trigger_id: str,
    test_mode: bool,
    context: dict[str, Any],
    now: datetime,
    *,
    status: str,
    node: str | None,
    steps: int,
    end_reason: str | None,
) -> bool:
    """A new instance, as its first walk left it; False when the profile has a live one
    in this journey already, or this trigger has already made it enter."""
    result: str = await conn.execute(
        """INSERT INTO instances
               (sandbox, id, journey_id, version, profile_id, status, node, context, steps, trigger_id,
                test_mode, entered_at, ended_at, end_reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::timestamptz,
                   CASE WHEN $6::text = 'waiting' THEN NULL ELSE $12::timestamptz END, $13)
           ON CONFLICT DO NOTHING""",
        sandbox,
        instance_id,
        journey_id,
        version,
        profile_id,
        status,
        node,
        context,
        steps,
        trigger_id,
        test_mode,
        now,
        end_reason,
    )
    return result == "INSERT 0 1"


async def insert_instances(
    conn: asyncpg.Connection, sandbox: str, now: datetime, rows: Sequence[Mapping[str, Any]]
) -> set[uuid.UUID]:
    """New instances (``id``, ``journey_id``, ``version``, ``profile_id``, ``status``,
    ``node``, ``context``, ``steps``, ``trigger_id``, ``test_mode``, ``end_reason``),
    entered ``now``, in one statement; the ids written: not those refused because the
    profile has a live one in the journey already, or the trigger made it enter already."""
    written = await conn.fetch(
        """INSERT INTO instances
               (sandbox, id, journey_id, version, profile_id, status, node, context, steps, trigger_id,
                test_mode, entered_at, ended_at, end_reason)
           SELECT $1, r.id, r.journey_id, r.version, r.profile_id, r.status, r.node, r.context, r.steps,
                  r.trigger_id, r.test_mode, $2::timestamptz,
                  CASE WHEN r.status = 'waiting' THEN NULL ELSE $2::timestamptz END, r.end_reason
             FROM jsonb_to_recordset($3::jsonb) AS r(
                  id uuid, journey_id uuid, version int, profile_id uuid, status text, node text,
                  context jsonb, steps int, trigger_id text, test_mode boolean, end_reason text)
           ON CONFLICT DO NOTHING
           RETURNING id""",
        sandbox,
        now,
        list(rows),
    )
    return {r["id"] for r in written}


async def save_instances(conn: asyncpg.Connection, sandbox: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Where instances are now (``id``, ``node``, ``context``, ``steps``, ``ended_at``,
    ``status``, ``end_reason``), in one statement."""
    await conn.execute(
        """UPDATE instances i
              SET node = r.node, context = r.context, steps = r.steps, ended_at = r.ended_at,
                  status = r.status, end_reason = r.end_reason, updated_at = now()
             FROM jsonb_to_recordset($2::jsonb) AS r(
                  id uuid, node text, context jsonb, steps int, ended_at timestamptz, status text,
                  end_reason text)
            WHERE i.sandbox = $1 AND i.id = r.id""",
        sandbox,
        list(rows),
    )


async def forget_waits(
    conn: asyncpg.Connection,
    sandbox: str,
    timers: Sequence[tuple[uuid.UUID, str]],
    event_waits: Sequence[uuid.UUID],
    calls: Sequence[uuid.UUID],
) -> None:
    """Delete timers (instance, kind), the event waits and the custom action calls of
    instances, in one statement."""
    await conn.execute(
        """WITH t AS (
               DELETE FROM timers t USING jsonb_to_recordset($2::jsonb) AS r(i uuid, k text)
                WHERE t.sandbox = $1 AND t.instance_id = r.i AND t.kind = r.k
           ), w AS (
               DELETE FROM event_waits w USING json_array_elements_text($3::json) AS r(i)
                WHERE w.sandbox = $1 AND w.instance_id = r.i::uuid
           ), c AS (
               DELETE FROM action_calls c USING json_array_elements_text($4::json) AS r(i)
                WHERE c.sandbox = $1 AND c.instance_id = r.i::uuid
           )
           SELECT 1""",
        sandbox,
        [{"i": str(i), "k": k} for i, k in timers],
        [str(i) for i in event_waits],
        [str(i) for i in calls],
    )


async def set_timers(
    conn: asyncpg.Connection, sandbox: str, rows: Sequence[tuple[uuid.UUID, str, str | None, datetime]]
) -> None:
    """Timers (instance, kind, node, due at), in one statement; one already kept is moved."""
    await conn.execute(
        """INSERT INTO timers (sandbox, instance_id, kind, node, due_at)
           SELECT $1, r.i, r.k, r.n, r.d
             FROM jsonb_to_recordset($2::jsonb) AS r(i uuid, k text, n text, d timestamptz)
           ON CONFLICT (sandbox, instance_id, kind)
           DO UPDATE SET node = excluded.node, due_at = excluded.due_at""",
        sandbox,
        [{"i": str(i), "k": k, "n": n, "d": d} for i, k, n, d in rows],
    )


async def add_event_waits(conn: asyncpg.Connection, sandbox: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Event waits (``instance_id``, ``profile_id``, ``node``, ``event_type``, ``condition``,
    ``message_id``, ``reaction``), in one statement."""
    await conn.execute(
        """INSERT INTO event_waits
               (sandbox, instance_id, profile_id, node, event_type, condition, message_id, reaction)
           SELECT $1, r.instance_id, r.profile_id, r.node, r.event_type, r.condition, r.message_id, r.reaction
             FROM jsonb_to_recordset($2::jsonb) AS r(
                  instance_id uuid, profile_id uuid, node text, event_type text, condition text,
                  message_id text, reaction text)""",
        sandbox,
        list(rows),
    )


async def add_steps(conn: asyncpg.Connection, sandbox: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Steps as (instance id, step, kind, node, node type, reason, detail, at), ids and
    times as text, in order: one ``instance_step_runs`` row per instance, holding the
    steps it took here, all in one statement (one JSON parameter: asyncpg checks the
    elements of array parameters one by one, which costs more than the rows' JSON)."""
    runs: dict[Any, list[dict[str, Any]]] = {}
    for i, s, k, n, t, r, d, a in rows:
        runs.setdefault(i, []).append({"s": s, "k": k, "n": n, "t": t, "r": r, "d": d, "a": a})
    if not runs:
        return
    await conn.execute(
        """INSERT INTO instance_step_runs (sandbox, instance_id, first_step, steps)
           SELECT $1, x.i, x.f, x.s FROM jsonb_to_recordset($2::jsonb) AS x(i uuid, f int, s jsonb)""",
        sandbox,
        [{"i": i, "f": steps[0]["s"], "s": steps} for i, steps in runs.items()],
    )


async def add_delivery_waits(
    conn: asyncpg.Connection,
    sandbox: str,
    rows: Sequence[tuple[uuid.UUID, uuid.UUID, str, int]],
    now: datetime,
) -> None:
    """Instances wait at a node for the delivery outcome of a message a step requested:
    (message id, instance id, node, step), in one statement."""
    await conn.execute(
        """INSERT INTO delivery_waits (sandbox, message_id, instance_id, node, step, created_at)
           SELECT $1, r.m, r.i, r.n, r.s, $3
             FROM jsonb_to_recordset($2::jsonb) AS r(m uuid, i uuid, n text, s int)""",
        sandbox,
        [{"m": str(m), "i": str(i), "n": n, "s": st} for m, i, n, st in rows],
        now,
    )


async def delivery_waits_of(
    conn: asyncpg.Connection, sandbox: str, message_ids: Sequence[uuid.UUID], *, lock: bool
) -> list[Row]:
    """The delivery waits of these messages (open or decided), with the profile their
    instance follows now; with ``lock``, the waits are locked until the transaction ends
    (their instances are to be locked first, as :func:`live_of_profiles` does)."""
    rows: list[Row] = await conn.fetch(
        """SELECT d.message_id, d.instance_id, d.node, d.step, d.status, d.ce_id, i.profile_id
             FROM delivery_waits d
             JOIN instances i ON i.sandbox = d.sandbox AND i.id = d.instance_id
            WHERE d.sandbox = $1 AND d.message_id = ANY($2::uuid[])
            ORDER BY d.message_id"""
        + (" FOR UPDATE OF d" if lock else ""),
        sandbox,
        list(message_ids),
    )
    return rows


async def decide_delivery(
    conn: asyncpg.Connection,
    sandbox: str,
    message_id: uuid.UUID,
    status: str,
    reason: str | None,
    ce_id: str,
    now: datetime,
) -> None:
    """The outcome that decided an open delivery wait, and the feedback record that brought it."""
    await conn.execute(
        """UPDATE delivery_waits SET status = $3, reason = $4, ce_id = $5, decided_at = $6
            WHERE sandbox = $1 AND message_id = $2 AND status IS NULL""",
        sandbox,
        message_id,
        status,
        reason,
        ce_id,
        now,
    )


async def time_out_deliveries(
    conn: asyncpg.Connection, sandbox: str, instance_ids: Sequence[uuid.UUID], now: datetime
) -> None:
    """The instances' open delivery waits end without an outcome: they timed out."""
    await conn.execute(
        """UPDATE delivery_waits SET status = 'timeout', decided_at = $3
            WHERE sandbox = $1 AND instance_id = ANY($2::uuid[]) AND status IS NULL""",
        sandbox,
        list(instance_ids),
        now,
    )


async def live_of_profiles(
    conn: asyncpg.Connection, sandbox: str, profile_ids: Sequence[uuid.UUID]
) -> list[Row]:
    """The live instances of the profiles, with what they wait for, locked until the
    transaction ends."""
    rows: list[Row] = await conn.fetch(
        """SELECT i.*, w.event_type, w.condition, w.message_id, w.reaction, w.node AS waiting_node
             FROM instances i
             LEFT JOIN event_waits w ON w.sandbox = i.sandbox AND w.instance_id = i.id
            WHERE i.sandbox = $1 AND i.profile_id = ANY($2::uuid[]) AND i.status = 'waiting'
            ORDER BY i.profile_id, i.entered_at, i.id
            FOR UPDATE OF i""",
        sandbox,
        list(profile_ids),
    )
    return rows


async def claim_timers(conn: asyncpg.Connection, now: datetime, limit: int) -> list[Row]:
    """Due timers no other worker holds (the oldest first, through the due-time index,
    so a claim costs the same however many are due), locked until the transaction ends."""
    rows: list[Row] = await conn.fetch(
        """SELECT sandbox, instance_id, kind, node AS timer_node, due_at FROM timers
            WHERE due_at <= $1 ORDER BY due_at LIMIT $2
              FOR UPDATE SKIP LOCKED""",
        now,
        limit,
    )
    return rows


async def timed_instances(
    conn: asyncpg.Connection, sandbox: str, instance_ids: Sequence[uuid.UUID]
) -> list[Row]:
    """The live instances of claimed timers, locked until the transaction ends (a
    consumer working on one is waited for)."""
    rows: list[Row] = await conn.fetch(
        """SELECT i.* FROM instances i
            WHERE i.sandbox = $1 AND i.id = ANY($2::uuid[]) AND i.status = 'waiting'
            ORDER BY i.id
              FOR UPDATE OF i""",
        sandbox,
        list(instance_ids),
    )
    return rows


async def live_of_version(
    conn: asyncpg.Connection, sandbox: str, journey_id: uuid.UUID, version: int
) -> list[Row]:
    rows: list[Row] = await conn.fetch(
        """SELECT * FROM instances
            WHERE sandbox = $1 AND journey_id = $2 AND version = $3 AND status = 'waiting'
              FOR UPDATE""",
        sandbox,
        journey_id,
        version,
    )
    return rows


async def move_instances(
    conn: asyncpg.Connection, sandbox: str, instance_ids: Sequence[uuid.UUID], profile_id: uuid.UUID
) -> None:
    """Instances (and their event waits) now follow ``profile_id``."""
    await conn.execute(
        """UPDATE instances SET profile_id = $3, updated_at = now()
            WHERE sandbox = $1 AND id = ANY($2::uuid[])""",
        sandbox,
        list(instance_ids),
        profile_id,
    )
    await conn.execute(
        "UPDATE event_waits SET profile_id = $3 WHERE sandbox = $1 AND instance_id = ANY($2::uuid[])",
        sandbox,
        list(instance_ids),
        profile_id,
    )


async def attributes_of(
    conn: asyncpg.Connection, sandbox: str, profile_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The profiles as kept, locked until the transaction ends (in id order, so that
    batches naming the same profiles wait for each other rather than deadlock)."""
    rows = await conn.fetch(
        """SELECT profile_id, attributes FROM profiles
            WHERE sandbox = $1 AND profile_id = ANY($2::uuid[])
            ORDER BY profile_id FOR UPDATE""",
        sandbox,
        sorted(set(profile_ids)),
    )
    return {str(r["profile_id"]): r["attributes"] for r in rows}


async def apply_profiles(conn: asyncpg.Connection, sandbox: str, plan: Plan) -> None:
    """Keep a batch's plan of the profiles: deleted and merged ones go, the others are
    written whole (events are not kept here)."""
    gone = sorted(plan.deleted | set(plan.merged))
    if gone:
        await conn.execute(
            "DELETE FROM profiles WHERE sandbox = $1 AND profile_id = ANY($2::uuid[])", sandbox, gone
        )
    if plan.profiles:
        await conn.execute(
            """INSERT INTO profiles (sandbox, profile_id, attributes)
               SELECT $1, p.id, p.a FROM jsonb_to_recordset($2::jsonb) AS p(id uuid, a jsonb)
               ON CONFLICT (sandbox, profile_id) DO UPDATE
               SET attributes = EXCLUDED.attributes, updated_at = now()""",
            sandbox,
            [{"id": pid, "a": attributes} for pid, attributes in sorted(plan.profiles.items())],
        )


async def profiles_of(
    conn: asyncpg.Connection, sandbox: str, profile_ids: Sequence[uuid.UUID]
) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT profile_id, attributes FROM profiles WHERE sandbox = $1 AND profile_id = ANY($2::uuid[])",
        sandbox,
        list(profile_ids),
    )
    return {str(r["profile_id"]): r["attributes"] for r in rows}


async def instance(conn: asyncpg.Connection, sandbox: str, instance_id: uuid.UUID) -> Row | None:
    row: Row | None = await conn.fetchrow(
        "SELECT * FROM instances WHERE sandbox = $1 AND id = $2", sandbox, instance_id
    )
    return row


async def steps_of(conn: asyncpg.Connection, sandbox: str, instance_id: uuid.UUID) -> list[Row]:
    """Every step of an instance, in order: step, kind, node, node_type, reason, detail, at."""
    rows: list[Row] = await conn.fetch(
        """SELECT x.s AS step, x.k AS kind, x.n AS node, x.t AS node_type, x.r AS reason,
                  x.d AS detail, x.a AS at
             FROM instance_step_runs r
             CROSS JOIN LATERAL jsonb_to_recordset(r.steps)
                  AS x(s int, k text, n text, t text, r text, d jsonb, a timestamptz)
            WHERE r.sandbox = $1 AND r.instance_id = $2
            ORDER BY x.s""",
        sandbox,
        instance_id,
    )
    return rows


async def instances_of(
    conn: asyncpg.Connection,
    sandbox: str,
    journey_id: uuid.UUID,
    status: str | None,
    profile_id: uuid.UUID | None,
    offset: int,
    limit: int,
) -> list[Row]:
    rows: list[Row] = await conn.fetch(
        """SELECT * FROM instances
            WHERE sandbox = $1 AND journey_id = $2 AND ($3::text IS NULL OR status = $3)
              AND ($4::uuid IS NULL OR profile_id = $4)
            ORDER BY entered_at DESC, id OFFSET $5 LIMIT $6""",
        sandbox,
        journey_id,
        status,
        profile_id,
        offset,
        limit,
    )
    return rows


async def add_call(
    conn: asyncpg.Connection,
    sandbox: str,
    instance_id: uuid.UUID,
    node: str,
    step: int,
    action_id: uuid.UUID,
    inputs: dict[str, Any],
) -> None:
    await conn.execute(
        """INSERT INTO action_calls (sandbox, instance_id, node, step, action_id, inputs)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        sandbox,
        instance_id,
        node,
        step,
        action_id,
        inputs,
    )


async def lease_calls(conn: asyncpg.Connection, now: datetime, limit: int, lease_s: float) -> list[Row]:
    """Calls due that no other worker holds, with their action's configuration; each is
    leased (its next attempt moved ``lease_s`` ahead) in the caller's transaction."""
    rows: list[Row] = await conn.fetch(
        """WITH due AS (
               SELECT sandbox, instance_id FROM action_calls
                WHERE next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2
                  FOR UPDATE SKIP LOCKED
           ), leased AS (
               UPDATE action_calls c SET leases = c.leases + 1,
                      next_attempt_at = $1 + make_interval(secs => $3)
                 FROM due WHERE c.sandbox = due.sandbox AND c.instance_id = due.instance_id
             RETURNING c.*
           )
           SELECT l.*, a.name AS action_name, a.config FROM leased l
             LEFT JOIN actions a ON a.sandbox = l.sandbox AND a.id = l.action_id""",
        now,
        limit,
        lease_s,
    )
    return rows


async def take_call(conn: asyncpg.Connection, sandbox: str, instance_id: uuid.UUID, step: int) -> Row | None:
    """The call's instance, locked, with its version's definition, when the call is
    still the one it waits for; the call row is removed."""
    deleted = await conn.fetchval(
        "DELETE FROM action_calls WHERE sandbox = $1 AND instance_id = $2 AND step = $3 RETURNING true",
        sandbox,
        instance_id,
        step,
    )
    if not deleted:
        return None
    row: Row | None = await conn.fetchrow(
        """SELECT i.*, v.definition FROM instances i
             JOIN journey_versions v
               ON v.sandbox = i.sandbox AND v.journey_id = i.journey_id AND v.version = i.version
            WHERE i.sandbox = $1 AND i.id = $2 AND i.status = 'waiting'
              FOR UPDATE OF i""",
        sandbox,
        instance_id,
    )
    return row


# Audience reads


async def unscheduled_reads(conn: asyncpg.Connection) -> list[Row]:
    """Live versions entered by reading an audience that have no schedule yet."""
    rows: list[Row] = await conn.fetch(
        """SELECT v.sandbox, v.journey_id, v.version, v.definition FROM journey_versions v
            WHERE v.status = 'live' AND v.entry_type = 'readAudience'
              AND NOT EXISTS (SELECT 1 FROM read_schedules s
                               WHERE s.sandbox = v.sandbox AND s.journey_id = v.journey_id
                                 AND s.version = v.version)"""
    )
    return rows


async def add_read_schedule(
    conn: asyncpg.Connection,
    sandbox: str,
    journey_id: uuid.UUID,
    version: int,
    anchor: datetime,
    next_run_at: datetime | None,
) -> None:
    await conn.execute(
        """INSERT INTO read_schedules (sandbox, journey_id, version, anchor, next_run_at)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
        sandbox,
        journey_id,
        version,
        anchor,
        next_run_at,
    )


async def claim_due_reads(conn: asyncpg.Connection, now: datetime, limit: int) -> list[Row]:
    """Due read schedules no other worker holds, with their version's status and
    definition, locked until the transaction ends."""
    rows: list[Row] = await conn.fetch(
        """SELECT s.*, v.status, v.definition FROM read_schedules s
             JOIN journey_versions v
               ON v.sandbox = s.sandbox AND v.journey_id = s.journey_id AND v.version = s.version
            WHERE s.next_run_at <= $1
            ORDER BY s.next_run_at LIMIT $2
              FOR UPDATE OF s SKIP LOCKED""",
        now,
        limit,
    )
    return rows


async def set_next_read(
    conn: asyncpg.Connection, sandbox: str, journey_id: uuid.UUID, version: int, next_run_at: datetime | None
) -> None:
    await conn.execute(
        """UPDATE read_schedules SET next_run_at = $4
            WHERE sandbox = $1 AND journey_id = $2 AND version = $3""",
        sandbox,
        journey_id,
        version,
        next_run_at,
    )


async def add_read(
    conn: asyncpg.Connection,
    sandbox: str,
    journey_id: uuid.UUID,
    version: int,
    occurrence: datetime,
    audience_id: str,
    now: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO audience_reads (sandbox, journey_id, version, occurrence, audience_id, status, due_at)
           VALUES ($1, $2, $3, $4, $5, 'running', $6) ON CONFLICT DO NOTHING""",
        sandbox,
        journey_id,
        version,
        occurrence,
        audience_id,
        now,
    )


async def claim_read(conn: asyncpg.Connection, now: datetime) -> Row | None:
    """The running read whose next chunk is due, with its version, locked until the
    transaction ends; None when none is."""
    row: Row | None = await conn.fetchrow(
        """SELECT r.*, v.status AS version_status, v.definition FROM audience_reads r
             JOIN journey_versions v
               ON v.sandbox = r.sandbox AND v.journey_id = r.journey_id AND v.version = r.version
            WHERE r.status = 'running' AND r.due_at <= $1
            ORDER BY r.due_at LIMIT 1
              FOR UPDATE OF r SKIP LOCKED""",
        now,
    )
    return row


async def advance_read(
    conn: asyncpg.Connection,
    row: Row,
    *,
    cursor: uuid.UUID | None,
    read: int,
    entered: int,
    due_at: datetime | None,
    status: str,
    reason: str | None = None,
) -> None:
    await conn.execute(
        """UPDATE audience_reads
              SET cursor = COALESCE($5, cursor), members_read = members_read + $6, entered = entered + $7,
                  due_at = $8, status = $9, finished_at = CASE WHEN $9 = 'running' THEN NULL ELSE now() END,
                  reason = $10
            WHERE sandbox = $1 AND journey_id = $2 AND version = $3 AND occurrence = $4""",
        row["sandbox"],
        row["journey_id"],
        row["version"],
        row["occurrence"],
        cursor,
        read,
        entered,
        due_at,
        status,
        reason,
    )


async def reads_of(
    conn: asyncpg.Connection, sandbox: str, journey_id: uuid.UUID, offset: int, limit: int
) -> list[Row]:
    """The journey's audience reads, latest occurrence first."""
    rows: list[Row] = await conn.fetch(
        """SELECT * FROM audience_reads WHERE sandbox = $1 AND journey_id = $2
            ORDER BY occurrence DESC, version DESC OFFSET $3 LIMIT $4""",
        sandbox,
        journey_id,
        offset,
        limit,
    )
    return rows
