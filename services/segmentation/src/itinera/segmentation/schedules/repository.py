"""SQL of schedules (AEP's ``/config/schedules``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg
from asyncpg import Record as Row


async def insert(
    conn: asyncpg.Connection,
    sandbox: str,
    schedule_id: uuid.UUID,
    *,
    name: str,
    segments: Sequence[str],
    schedule: str,
    state: str,
    next_run_at: datetime,
) -> Row:
    row: Row = await conn.fetchrow(
        """INSERT INTO segment_schedules (sandbox, id, name, type, segments, schedule, state, next_run_at)
           VALUES ($1, $2, $3, 'batch_segmentation', $4, $5, $6, $7)
           RETURNING *""",
        sandbox,
        schedule_id,
        name,
        list(segments),
        schedule,
        state,
        next_run_at,
    )
    return row


async def get(
    conn: asyncpg.Connection, sandbox: str, schedule_id: uuid.UUID, *, for_update: bool = False
) -> Row | None:
    lock = " FOR UPDATE" if for_update else ""
    row: Row | None = await conn.fetchrow(
        f"SELECT * FROM segment_schedules WHERE sandbox = $1 AND id = $2{lock}", sandbox, schedule_id
    )
    return row


async def count(conn: asyncpg.Connection, sandbox: str) -> int:
    total: int = await conn.fetchval("SELECT count(*) FROM segment_schedules WHERE sandbox = $1", sandbox)
    return total


async def page(conn: asyncpg.Connection, sandbox: str, offset: int, limit: int) -> list[Row]:
    """Oldest first; the id breaks ties so that pages never overlap."""
    rows: list[Row] = await conn.fetch(
        """SELECT * FROM segment_schedules WHERE sandbox = $1
           ORDER BY created_at, id OFFSET $2 LIMIT $3""",
        sandbox,
        offset,
        limit,
    )
    return rows


async def change(
    conn: asyncpg.Connection,
    sandbox: str,
    schedule_id: uuid.UUID,
    *,
    schedule: str,
    state: str,
    next_run_at: datetime,
) -> None:
    await conn.execute(
        """UPDATE segment_schedules
              SET schedule = $3, state = $4, next_run_at = $5, updated_at = now()
            WHERE sandbox = $1 AND id = $2""",
        sandbox,
        schedule_id,
        schedule,
        state,
        next_run_at,
    )


async def delete(conn: asyncpg.Connection, sandbox: str, schedule_id: uuid.UUID) -> bool:
    status: str = await conn.execute(
        "DELETE FROM segment_schedules WHERE sandbox = $1 AND id = $2", sandbox, schedule_id
    )
    return status != "DELETE 0"


async def claim_due(conn: asyncpg.Connection, now: datetime, limit: int) -> list[Row]:
    """Active schedules due at ``now`` that no other worker holds, locked until the
    transaction ends."""
    rows: list[Row] = await conn.fetch(
        """SELECT * FROM segment_schedules
            WHERE state = 'active' AND next_run_at <= $1
            ORDER BY next_run_at, sandbox, id LIMIT $2
            FOR UPDATE SKIP LOCKED""",
        now,
        limit,
    )
    return rows


async def fired(
    conn: asyncpg.Connection,
    sandbox: str,
    schedule_id: uuid.UUID,
    *,
    at: datetime,
    job_id: uuid.UUID | None,
    next_run_at: datetime | None,
) -> None:
    """Record an occurrence: when, its job (if any), and the next one (none: the
    schedule becomes inactive)."""
    await conn.execute(
        """UPDATE segment_schedules
              SET last_run_at = $3, last_job_id = COALESCE($4, last_job_id),
                  next_run_at = COALESCE($5, next_run_at),
                  state = CASE WHEN $5::timestamptz IS NULL THEN 'inactive' ELSE state END,
                  updated_at = now()
            WHERE sandbox = $1 AND id = $2""",
        sandbox,
        schedule_id,
        at,
        job_id,
        next_run_at,
    )
