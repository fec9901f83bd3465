"""SQL of segment jobs and of the chunks of profiles they evaluate."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
from asyncpg import Record as Row

# A job with its status as shown: CANCELLING while a cancellation waits for the worker.
_SHOWN = """SELECT j.*, CASE WHEN j.status IN ('NEW', 'PROCESSING') AND c.job_id IS NOT NULL
                            THEN 'CANCELLING' ELSE j.status END AS shown_status
            FROM segment_jobs j
            LEFT JOIN segment_job_cancellations c ON c.sandbox = j.sandbox AND c.job_id = j.id"""


async def insert(
    conn: asyncpg.Connection,
    sandbox: str,
    job_id: uuid.UUID,
    segments: list[dict[str, Any]],
    counters: dict[str, dict[str, int]],
    trigger: str = "requested",
    schedule_id: uuid.UUID | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO segment_jobs (sandbox, id, segments, counters, trigger, schedule_id)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        sandbox,
        job_id,
        segments,
        counters,
        trigger,
        schedule_id,
    )


async def get(conn: asyncpg.Connection, sandbox: str, job_id: uuid.UUID) -> Row | None:
    row: Row | None = await conn.fetchrow(
        f"SELECT * FROM ({_SHOWN}) s WHERE sandbox = $1 AND id = $2", sandbox, job_id
    )
    return row


async def get_many(conn: asyncpg.Connection, sandbox: str, job_ids: Sequence[uuid.UUID]) -> list[Row]:
    rows: list[Row] = await conn.fetch(
        f"SELECT * FROM ({_SHOWN}) s WHERE sandbox = $1 AND id = ANY($2::uuid[])", sandbox, list(job_ids)
    )
    return rows


# The list's filters: $1 the sandbox, $2 a status (as shown), $3 [{"id": a segment id}],
# $4 a snapshot's name (an audience's name when the job was created, in any case).
_LISTED = """sandbox = $1 AND ($2::text IS NULL OR shown_status = $2)
             AND ($3::jsonb IS NULL OR segments @> $3::jsonb)
             AND ($4::text IS NULL OR EXISTS (
                 SELECT 1 FROM jsonb_array_elements(segments) AS segment
                 WHERE lower(segment ->> 'name') = lower($4)))"""


def _contains(segment_id: str | None) -> list[dict[str, str]] | None:
    return [{"id": segment_id}] if segment_id is not None else None


async def count(
    conn: asyncpg.Connection,
    sandbox: str,
    status: str | None,
    segment_id: str | None,
    snapshot: str | None,
) -> int:
    total: int = await conn.fetchval(
        f"SELECT count(*) FROM ({_SHOWN}) s WHERE {_LISTED}",
        sandbox,
        status,
        _contains(segment_id),
        snapshot,
    )
    return total


async def page(
    conn: asyncpg.Connection,
    sandbox: str,
    *,
    status: str | None,
    segment_id: str | None,
    snapshot: str | None,
    column: str,
    descending: bool,
    offset: int,
    limit: int,
) -> list[Row]:
    """``column``: created_at or updated_at; the id breaks ties so pages never overlap."""
    if column not in ("created_at", "updated_at"):
        raise ValueError(f"cannot order segment jobs by {column!r}")
    direction = "DESC" if descending else "ASC"
    rows: list[Row] = await conn.fetch(
        f"""SELECT * FROM ({_SHOWN}) s WHERE {_LISTED}
            ORDER BY {column} {direction}, id {direction} OFFSET $5 LIMIT $6""",
        sandbox,
        status,
        _contains(segment_id),
        snapshot,
        offset,
        limit,
    )
    return rows


async def request_cancel(conn: asyncpg.Connection, sandbox: str, job_id: uuid.UUID) -> None:
    await conn.execute(
        """INSERT INTO segment_job_cancellations (sandbox, job_id) VALUES ($1, $2)
           ON CONFLICT (sandbox, job_id) DO NOTHING""",
        sandbox,
        job_id,
    )


async def take_if_idle(conn: asyncpg.Connection, sandbox: str, job_id: uuid.UUID) -> bool:
    """Lock a running job that no worker holds right now, until the transaction ends."""
    found = await conn.fetchval(
        """SELECT true FROM segment_jobs WHERE sandbox = $1 AND id = $2 AND status IN ('NEW', 'PROCESSING')
           FOR NO KEY UPDATE SKIP LOCKED""",
        sandbox,
        job_id,
    )
    return found is not None


async def claim(conn: asyncpg.Connection) -> Row | None:
    """The oldest running job that no other worker holds, locked until the transaction
    ends, with ``cancelling`` when its cancellation was asked for. NO KEY UPDATE: the
    lock that an update of the row takes anyway, which lets a cancellation's foreign key
    check (KEY SHARE) through."""
    row: Row | None = await conn.fetchrow(
        """SELECT j.*, EXISTS (
                   SELECT 1 FROM segment_job_cancellations c WHERE c.sandbox = j.sandbox AND c.job_id = j.id
               ) AS cancelling
           FROM segment_jobs j WHERE j.status IN ('NEW', 'PROCESSING')
           ORDER BY j.created_at, j.id LIMIT 1
           FOR NO KEY UPDATE OF j SKIP LOCKED"""
    )
    return row


async def start(conn: asyncpg.Connection, sandbox: str, job_id: uuid.UUID) -> int:
    """Mark a new job PROCESSING; the number of profiles it will go through."""
    total: int = await conn.fetchval(
        """UPDATE segment_jobs
              SET status = 'PROCESSING', started_at = now(), updated_at = now(),
                  profiles_total = (SELECT count(*) FROM profiles WHERE sandbox = $1)
            WHERE sandbox = $1 AND id = $2
        RETURNING profiles_total""",
        sandbox,
        job_id,
    )
    return total


async def profiles_after(
    conn: asyncpg.Connection, sandbox: str, after: uuid.UUID | None, limit: int
) -> dict[str, dict[str, Any]]:
    """The next ``limit`` profiles by id after ``after`` (from the first when None), in
    id order. FOR SHARE: a change being applied to one of them (which holds it FOR UPDATE)
    is waited for, and none can be applied until the chunk commits, so that the chunk's
    memberships and the streaming evaluation's never overwrite each other."""
    chunk: dict[str, dict[str, Any]] | None = await conn.fetchval(
        # One JSON object for the whole chunk (in id order): one value to decode, not
        # one row per profile.
        """SELECT json_object_agg(profile_id, attributes ORDER BY profile_id) FROM (
               SELECT profile_id, attributes FROM profiles
               WHERE sandbox = $1 AND ($2::uuid IS NULL OR profile_id > $2)
               ORDER BY profile_id LIMIT $3 FOR SHARE
           ) chunk""",
        sandbox,
        after,
        limit,
    )
    return chunk or {}


async def advance(
    conn: asyncpg.Connection,
    sandbox: str,
    job_id: uuid.UUID,
    last_profile_id: str,
    evaluated: int,
    counters: dict[str, dict[str, int]],
) -> None:
    """Record a chunk done: the cursor, the profiles evaluated so far and the counters."""
    await conn.execute(
        """UPDATE segment_jobs
              SET last_profile_id = $3, profiles_done = profiles_done + $4, counters = $5,
                  profiles_total = GREATEST(profiles_total, profiles_done + $4), failures = 0,
                  updated_at = now()
            WHERE sandbox = $1 AND id = $2""",
        sandbox,
        job_id,
        last_profile_id,
        evaluated,
        counters,
    )


async def finish(
    conn: asyncpg.Connection, sandbox: str, job_id: uuid.UUID, status: str, error: str | None = None
) -> None:
    """End a job: SUCCEEDED (every profile seen: the total is what was done), FAILED
    with the reason, or CANCELLED."""
    await conn.execute(
        """UPDATE segment_jobs
              SET status = $3, error = $4, finished_at = now(), updated_at = now(),
                  profiles_total = CASE WHEN $3 = 'SUCCEEDED' THEN profiles_done ELSE profiles_total END
            WHERE sandbox = $1 AND id = $2""",
        sandbox,
        job_id,
        status,
        error,
    )


async def failed_attempt(
    conn: asyncpg.Connection, sandbox: str, job_id: uuid.UUID, reason: str, attempts: int
) -> bool:
    """Count a failed attempt at a running job's current chunk; the job FAILED with the
    reason at the ``attempts``-th in a row. Whether it did."""
    status = await conn.fetchval(
        """UPDATE segment_jobs
              SET failures = failures + 1, error = $3, updated_at = now(),
                  status = CASE WHEN failures + 1 >= $4 THEN 'FAILED' ELSE status END,
                  finished_at = CASE WHEN failures + 1 >= $4 THEN now() END
            WHERE sandbox = $1 AND id = $2 AND status IN ('NEW', 'PROCESSING')
        RETURNING status""",
        sandbox,
        job_id,
        reason,
        attempts,
    )
    return bool(status == "FAILED")
