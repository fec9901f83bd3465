"""SQL of campaigns, their executions, the audience members they send to, and the
look-up of profiles by identity."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg import Record as Row

# Campaigns


async def insert_campaign(
    conn: asyncpg.Connection,
    sandbox: str,
    campaign_id: uuid.UUID,
    name: str,
    kind: str,
    definition: dict[str, Any],
) -> Row:
    row: Row = await conn.fetchrow(
        """INSERT INTO campaigns (sandbox, id, name, type, status, definition)
           VALUES ($1, $2, $3, $4, 'draft', $5) RETURNING *""",
        sandbox,
        campaign_id,
        name,
        kind,
        definition,
    )
    return row


async def get_campaign(
    conn: asyncpg.Connection, sandbox: str, campaign_id: uuid.UUID, *, lock: bool = False
) -> Row | None:
    """The campaign; ``lock``: its row is locked until the transaction ends, so the
    writes of one campaign are serialised."""
    row: Row | None = await conn.fetchrow(
        "SELECT * FROM campaigns WHERE sandbox = $1 AND id = $2" + (" FOR UPDATE" if lock else ""),
        sandbox,
        campaign_id,
    )
    return row


async def replace_campaign(
    conn: asyncpg.Connection,
    sandbox: str,
    campaign_id: uuid.UUID,
    name: str,
    kind: str,
    definition: dict[str, Any],
) -> Row:
    row: Row = await conn.fetchrow(
        """UPDATE campaigns
              SET name = $3, type = $4, definition = $5, updated_at = now(), revision = revision + 1
            WHERE sandbox = $1 AND id = $2 RETURNING *""",
        sandbox,
        campaign_id,
        name,
        kind,
        definition,
    )
    return row


async def set_status(
    conn: asyncpg.Connection,
    sandbox: str,
    campaign_id: uuid.UUID,
    status: str,
    next_run_at: datetime | None,
    now: datetime,
) -> Row:
    """Moves the campaign to ``status`` (stamping ``activated_at`` or ``stopped_at``)."""
    stamp = {"live": "activated_at = $5,", "stopped": "stopped_at = $5,"}.get(status, "")
    row: Row = await conn.fetchrow(
        f"""UPDATE campaigns
               SET status = $3, next_run_at = $4, {stamp} updated_at = $5, revision = revision + 1
             WHERE sandbox = $1 AND id = $2 RETURNING *""",
        sandbox,
        campaign_id,
        status,
        next_run_at,
        now,
    )
    return row


async def set_next_run(
    conn: asyncpg.Connection,
    sandbox: str,
    campaign_id: uuid.UUID,
    next_run_at: datetime | None,
    now: datetime,
) -> None:
    """An occurrence has fired: the next one, or none (the campaign is completed)."""
    await conn.execute(
        """UPDATE campaigns
              SET next_run_at = $3, updated_at = $4,
                  status = CASE WHEN $3::timestamptz IS NULL THEN 'completed' ELSE status END,
                  revision = revision + CASE WHEN $3::timestamptz IS NULL THEN 1 ELSE 0 END
            WHERE sandbox = $1 AND id = $2""",
        sandbox,
        campaign_id,
        next_run_at,
        now,
    )


async def count_campaigns(
    conn: asyncpg.Connection, sandbox: str, status: str | None, kind: str | None
) -> int:
    total: int = await conn.fetchval(
        """SELECT count(*) FROM campaigns
            WHERE sandbox = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR type = $3)""",
        sandbox,
        status,
        kind,
    )
    return total


async def page_campaigns(
    conn: asyncpg.Connection, sandbox: str, status: str | None, kind: str | None, offset: int, limit: int
) -> list[Row]:
    """Most recently changed first; the id breaks ties so pages never overlap."""
    rows: list[Row] = await conn.fetch(
        """SELECT * FROM campaigns
            WHERE sandbox = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR type = $3)
            ORDER BY updated_at DESC, id OFFSET $4 LIMIT $5""",
        sandbox,
        status,
        kind,
        offset,
        limit,
    )
    return rows


async def claim_due_campaigns(conn: asyncpg.Connection, now: datetime, limit: int) -> list[Row]:
    """Live scheduled campaigns whose next occurrence is due, that no other worker holds,
    locked until the transaction ends."""
    rows: list[Row] = await conn.fetch(
        """SELECT * FROM campaigns
            WHERE next_run_at IS NOT NULL AND next_run_at <= $1
            ORDER BY next_run_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED""",
        now,
        limit,
    )
    return rows


# Executions


async def insert_execution(
    conn: asyncpg.Connection,
    sandbox: str,
    execution_id: uuid.UUID,
    campaign_id: uuid.UUID,
    *,
    kind: str,
    status: str,
    request_id: str | None,
    request_hash: str | None,
    audience_id: str | None,
    context: dict[str, Any],
    execute_at: datetime,
    scheduled: bool,
    due_at: datetime | None,
    targeted: int,
    created_by: str,
    now: datetime,
) -> Row | None:
    """The new execution; None when the campaign already has one for ``request_id`` (or
    one of this id)."""
    started = now if status != "Scheduled" else None
    finished = now if due_at is None else None
    row: Row | None = await conn.fetchrow(
        """INSERT INTO campaign_executions
               (sandbox, id, campaign_id, kind, status, request_id, request_hash, audience_id, context,
                execute_at, scheduled, due_at, targeted, created_by, created_at, updated_at, started_at,
                finished_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, $16, $17)
           ON CONFLICT DO NOTHING
           RETURNING *""",
        sandbox,
        execution_id,
        campaign_id,
        kind,
        status,
        request_id,
        request_hash,
        audience_id,
        context,
        execute_at,
        scheduled,
        due_at,
        targeted,
        created_by,
        now,
        started,
        finished,
    )
    return row


async def execution_for_request(
    conn: asyncpg.Connection, sandbox: str, campaign_id: uuid.UUID, request_id: str
) -> Row | None:
    row: Row | None = await conn.fetchrow(
        """SELECT * FROM campaign_executions
            WHERE sandbox = $1 AND campaign_id = $2 AND request_id = $3""",
        sandbox,
        campaign_id,
        request_id,
    )
    return row


async def get_execution(
    conn: asyncpg.Connection, sandbox: str, execution_id: uuid.UUID, *, lock: bool = False
) -> Row | None:
    """An execution with its campaign's definition; ``lock``: the execution's row is
    locked until the transaction ends (waiting for a worker sending a chunk of it)."""
    row: Row | None = await conn.fetchrow(
        """SELECT e.*, c.definition FROM campaign_executions e
             JOIN campaigns c ON c.sandbox = e.sandbox AND c.id = e.campaign_id
            WHERE e.sandbox = $1 AND e.id = $2"""
        + (" FOR UPDATE OF e" if lock else ""),
        sandbox,
        execution_id,
    )
    return row


async def claim_due_execution(conn: asyncpg.Connection, now: datetime) -> Row | None:
    """The execution whose next chunk is the most overdue, that no other worker holds,
    with its campaign's definition, locked until the transaction ends."""
    row: Row | None = await conn.fetchrow(
        """SELECT e.*, c.definition FROM campaign_executions e
             JOIN campaigns c ON c.sandbox = e.sandbox AND c.id = e.campaign_id
            WHERE e.due_at IS NOT NULL AND e.due_at <= $1
            ORDER BY e.due_at
            LIMIT 1
            FOR UPDATE OF e SKIP LOCKED""",
        now,
    )
    return row


async def next_due(conn: asyncpg.Connection) -> datetime | None:
    """When the next chunk of any execution may go."""
    found: datetime | None = await conn.fetchval(
        "SELECT min(due_at) FROM campaign_executions WHERE due_at IS NOT NULL"
    )
    return found


async def advance(
    conn: asyncpg.Connection,
    sandbox: str,
    execution_id: uuid.UUID,
    *,
    cursor: uuid.UUID | None,
    sent: int,
    due_at: datetime | None,
    now: datetime,
) -> None:
    """A chunk is sent: the cursor moves on, the count grows; ``due_at`` None: the
    execution has succeeded."""
    await conn.execute(
        """UPDATE campaign_executions
              SET cursor = coalesce($3, cursor), targeted = targeted + $4, due_at = $5,
                  status = CASE WHEN $5::timestamptz IS NULL THEN 'Succeeded' ELSE 'InProgress' END,
                  started_at = coalesce(started_at, $6),
                  finished_at = CASE WHEN $5::timestamptz IS NULL THEN $6 END,
                  updated_at = $6
            WHERE sandbox = $1 AND id = $2""",
        sandbox,
        execution_id,
        cursor,
        sent,
        due_at,
        now,
    )


async def fail_execution(
    conn: asyncpg.Connection, sandbox: str, execution_id: uuid.UUID, reason: str, now: datetime
) -> None:
    """The execution fails with ``reason``: nothing more is sent."""
    await conn.execute(
        """UPDATE campaign_executions
              SET status = 'Failed', reason = $3, due_at = NULL, started_at = coalesce(started_at, $4),
                  finished_at = $4, updated_at = $4
            WHERE sandbox = $1 AND id = $2""",
        sandbox,
        execution_id,
        reason,
        now,
    )


async def unfinished_executions(conn: asyncpg.Connection, sandbox: str, campaign_id: uuid.UUID) -> int:
    found: int = await conn.fetchval(
        """SELECT count(*) FROM campaign_executions
            WHERE sandbox = $1 AND campaign_id = $2 AND due_at IS NOT NULL""",
        sandbox,
        campaign_id,
    )
    return found


async def delete_campaign(conn: asyncpg.Connection, sandbox: str, campaign_id: uuid.UUID) -> None:
    """The campaign and its executions (by cascade)."""
    await conn.execute("DELETE FROM campaigns WHERE sandbox = $1 AND id = $2", sandbox, campaign_id)


async def fail_executions(
    conn: asyncpg.Connection, sandbox: str, campaign_id: uuid.UUID, reason: str, now: datetime
) -> int:
    """The campaign's unfinished executions fail with ``reason``; how many."""
    status: str = await conn.execute(
        """UPDATE campaign_executions
              SET status = 'Failed', reason = $3, due_at = NULL, finished_at = $4, updated_at = $4
            WHERE sandbox = $1 AND campaign_id = $2 AND due_at IS NOT NULL""",
        sandbox,
        campaign_id,
        reason,
        now,
    )
    return int(status.rsplit(" ", 1)[-1])


async def delete_scheduled(conn: asyncpg.Connection, sandbox: str, execution_id: uuid.UUID) -> bool:
    """Deletes an execution asked for later that has not started; whether there was one."""
    status: str = await conn.execute(
        """DELETE FROM campaign_executions
            WHERE sandbox = $1 AND id = $2 AND scheduled AND status = 'Scheduled'""",
        sandbox,
        execution_id,
    )
    return status == "DELETE 1"


async def executions_of(
    conn: asyncpg.Connection, sandbox: str, campaign_id: uuid.UUID, offset: int, limit: int
) -> list[Row]:
    rows: list[Row] = await conn.fetch(
        """SELECT * FROM campaign_executions WHERE sandbox = $1 AND campaign_id = $2
            ORDER BY created_at DESC, id OFFSET $3 LIMIT $4""",
        sandbox,
        campaign_id,
        offset,
        limit,
    )
    return rows


# Audience members


async def apply_memberships(
    conn: asyncpg.Connection,
    sandbox: str,
    changes: Sequence[tuple[str, uuid.UUID, bool, datetime]],
) -> None:
    """Memberships as (audience id, profile id, member, changed at); a change older than
    the one applied already is ignored."""
    if not changes:
        return
    columns = list(zip(*changes, strict=True))
    await conn.execute(
        """INSERT INTO audience_members AS m (sandbox, audience_id, profile_id, member, changed_at)
           SELECT $1, * FROM unnest($2::text[], $3::uuid[], $4::boolean[], $5::timestamptz[])
           ON CONFLICT (sandbox, audience_id, profile_id)
           DO UPDATE SET member = excluded.member, changed_at = excluded.changed_at
           WHERE excluded.changed_at >= m.changed_at""",
        sandbox,
        *[list(c) for c in columns],
    )


async def members_after(
    conn: asyncpg.Connection, sandbox: str, audience_id: str, cursor: uuid.UUID | None, limit: int
) -> list[uuid.UUID]:
    """The audience's members after ``cursor``, in profile id order."""
    rows = await conn.fetch(
        """SELECT profile_id FROM audience_members
            WHERE sandbox = $1 AND audience_id = $2 AND member
              AND ($3::uuid IS NULL OR profile_id > $3)
            ORDER BY profile_id LIMIT $4""",
        sandbox,
        audience_id,
        cursor,
        limit,
    )
    return [r["profile_id"] for r in rows]


# Profiles by identity


async def profiles_by_identity(
    conn: asyncpg.Connection, sandbox: str, probes: Sequence[dict[str, Any]]
) -> list[tuple[int, uuid.UUID, dict[str, Any]]]:
    """Profiles whose lower-cased identity map contains a probe (``{"namespace": [{"id":
    "..."}]}``, lower-cased), as (probe index from 0, profile id, attributes), most
    recently updated first for each probe."""
    rows = await conn.fetch(
        """SELECT p.n, p.profile_id, p.attributes
             FROM unnest($2::jsonb[]) WITH ORDINALITY AS c(probe, n)
             JOIN LATERAL (
                  SELECT c.n, profile_id, attributes FROM profiles
                   WHERE sandbox = $1
                     AND lower((attributes -> 'identityMap')::text)::jsonb @> c.probe
                   ORDER BY updated_at DESC
                   LIMIT 10) p ON true
            ORDER BY c.n""",
        sandbox,
        list(probes),
    )
    return [(r["n"] - 1, r["profile_id"], r["attributes"]) for r in rows]
