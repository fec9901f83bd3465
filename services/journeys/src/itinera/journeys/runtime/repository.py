"""SQL of the runtime: instances, their steps, timers, event waits, delivery waits and profiles."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
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
    conn: asyncpg.Connection, sandbox: str, pairs: Iterable[tuple[uuid.UUID, uuid.UUID]]
) -> dict[tuple[uuid.UUID, uuid.UUID], Row]:
    """The latest instance (status, entered_at) of each (profile, journey) that has one,
    in one statement."""
    listed = sorted(set(pairs))
    rows = await conn.fetch(
        """SELECT DISTINCT ON (i.profile_id, i.journey_id) i.profile_id, i.journey_id, i.status, i.entered_at
             FROM instances i
             JOIN unnest($2::uuid[], $3::uuid[]) AS k(profile_id, journey_id)
               ON i.profile_id = k.profile_id AND i.journey_id = k.journey_id
            WHERE i.sandbox = $1
            ORDER BY i.profile_id, i.journey_id, i.entered_at DESC""",
        sandbox,
        [p for p, _ in listed],
        [j for _, j in listed],
    )
    return {(r["profile_id"], r["journey_id"]): r for r in rows}


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


async def save(
    conn: asyncpg.Connection,
    sandbox: str,
    instance_id: uuid.UUID,
    *,
    node: str | None,
    context: dict[str, Any],
    steps: int,
    ended_at: datetime | None,
    status: str,
    end_reason: str | None,
) -> None:
    await conn.execute(
        """UPDATE instances
              SET node = $3, context = $4, steps = $5, ended_at = $6, status = $7, end_reason = $8,
                  updated_at = now()
            WHERE sandbox = $1 AND id = $2""",
        sandbox,
        instance_id,
        node,
        context,
        steps,
        ended_at,
        status,
        end_reason,
    )


async def add_steps(conn: asyncpg.Connection, sandbox: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Steps as (instance id, step, kind, node, node type, reason, detail, at)."""
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    await conn.execute(
        """INSERT INTO instance_steps (sandbox, instance_id, step, kind, node, node_type, reason, detail, at)
           SELECT $1, * FROM unnest($2::uuid[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[],
                                    $8::jsonb[], $9::timestamptz[])""",
        sandbox,
        *[list(c) for c in columns],
    )


async def clear_waits(conn: asyncpg.Connection, sandbox: str, instance_id: uuid.UUID) -> None:
    """Forget what the instance was waiting for (its resume timer and event wait)."""
    await conn.execute(
        "DELETE FROM timers WHERE sandbox = $1 AND instance_id = $2 AND kind = 'resume'", sandbox, instance_id
    )
    await conn.execute(
        "DELETE FROM event_waits WHERE sandbox = $1 AND instance_id = $2", sandbox, instance_id
    )


async def set_timer(
    conn: asyncpg.Connection,
    sandbox: str,
    instance_id: uuid.UUID,
    kind: str,
    node: str | None,
    due_at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO timers (sandbox, instance_id, kind, node, due_at) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (sandbox, instance_id, kind)
           DO UPDATE SET node = excluded.node, due_at = excluded.due_at""",
        sandbox,
        instance_id,
        kind,
        node,
        due_at,
    )


async def set_event_wait(
    conn: asyncpg.Connection,
    sandbox: str,
    instance_id: uuid.UUID,
    profile_id: uuid.UUID,
    node: str,
    event_type: str | None,
    condition: str | None,
    message_id: str | None,
    reaction: str | None,
) -> None:
    await conn.execute(
        """INSERT INTO event_waits
               (sandbox, instance_id, profile_id, node, event_type, condition, message_id, reaction)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        sandbox,
        instance_id,
        profile_id,
        node,
        event_type,
        condition,
        message_id,
        reaction,
    )


async def add_delivery_wait(
    conn: asyncpg.Connection,
    sandbox: str,
    message_id: uuid.UUID,
    instance_id: uuid.UUID,
    node: str,
    step: int,
    now: datetime,
) -> None:
    """The instance waits at ``node`` for the delivery outcome of the message ``step``
    requested."""
    await conn.execute(
        """INSERT INTO delivery_waits (sandbox, message_id, instance_id, node, step, created_at)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        sandbox,
        message_id,
        instance_id,
        node,
        step,
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


async def time_out_delivery(
    conn: asyncpg.Connection, sandbox: str, instance_id: uuid.UUID, now: datetime
) -> None:
    """The instance's open delivery wait ends without an outcome: it timed out."""
    await conn.execute(
        """UPDATE delivery_waits SET status = 'timeout', decided_at = $3
            WHERE sandbox = $1 AND instance_id = $2 AND status IS NULL""",
        sandbox,
        instance_id,
        now,
    )


async def end_instance_rows(conn: asyncpg.Connection, sandbox: str, instance_id: uuid.UUID) -> None:
    """An ended instance waits for nothing."""
    await conn.execute("DELETE FROM timers WHERE sandbox = $1 AND instance_id = $2", sandbox, instance_id)
    await conn.execute(
        "DELETE FROM action_calls WHERE sandbox = $1 AND instance_id = $2", sandbox, instance_id
    )
    await conn.execute(
        "DELETE FROM event_waits WHERE sandbox = $1 AND instance_id = $2", sandbox, instance_id
    )


async def live_of_profiles(
    conn: asyncpg.Connection, sandbox: str, profile_ids: Sequence[uuid.UUID]
) -> list[Row]:
    """The live instances of the profiles, with their version's definition and what they
    wait for, locked until the transaction ends."""
    rows: list[Row] = await conn.fetch(
        """SELECT i.*, v.definition, w.event_type, w.condition, w.message_id, w.reaction,
                  w.node AS waiting_node
             FROM instances i
             JOIN journey_versions v
               ON v.sandbox = i.sandbox AND v.journey_id = i.journey_id AND v.version = i.version
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
    """The live instances of claimed timers, with their version's definition, locked
    until the transaction ends (a consumer working on one is waited for)."""
    rows: list[Row] = await conn.fetch(
        """SELECT i.*, v.definition FROM instances i
             JOIN journey_versions v
               ON v.sandbox = i.sandbox AND v.journey_id = i.journey_id AND v.version = i.version
            WHERE i.sandbox = $1 AND i.id = ANY($2::uuid[]) AND i.status = 'waiting'
            ORDER BY i.id
              FOR UPDATE OF i""",
        sandbox,
        list(instance_ids),
    )
    return rows


async def delete_timer(conn: asyncpg.Connection, sandbox: str, instance_id: uuid.UUID, kind: str) -> None:
    await conn.execute(
        "DELETE FROM timers WHERE sandbox = $1 AND instance_id = $2 AND kind = $3", sandbox, instance_id, kind
    )


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
               SELECT $1, p.id, p.a FROM json_to_recordset($2::json) AS p(id uuid, a jsonb)
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
    rows: list[Row] = await conn.fetch(
        "SELECT * FROM instance_steps WHERE sandbox = $1 AND instance_id = $2 ORDER BY step",
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
) -> None:
    await conn.execute(
        """UPDATE audience_reads
              SET cursor = COALESCE($5, cursor), members_read = members_read + $6, entered = entered + $7,
                  due_at = $8, status = $9, finished_at = CASE WHEN $9 = 'running' THEN NULL ELSE now() END
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
    )


async def reads_of(conn: asyncpg.Connection, sandbox: str, journey_id: uuid.UUID) -> list[Row]:
    rows: list[Row] = await conn.fetch(
        """SELECT * FROM audience_reads WHERE sandbox = $1 AND journey_id = $2
            ORDER BY occurrence DESC, version DESC LIMIT 100""",
        sandbox,
        journey_id,
    )
    return rows
