"""SQL of the audiences' listing and sizes, and of previews and their results."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from asyncpg import Record as Row

_ORDERABLE = frozenset({"name", "created_at", "updated_at", "id", "members"})
"""Columns a listing orders by; ``members``: the size (realized and existing)."""


@dataclass(frozen=True, slots=True)
class Filters:
    """What the listed definitions must match; None: anything."""

    name_contains: str | None = None
    description_contains: str | None = None
    id: uuid.UUID | None = None
    name: str | None = None
    merge_policy_id: str | None = None
    batch: bool | None = None
    continuous: bool | None = None
    synchronous: bool | None = None
    origin: str | None = None

    def values(self) -> tuple[object, ...]:
        return (
            self.name_contains,
            self.description_contains,
            self.id,
            self.name,
            self.merge_policy_id,
            self.batch,
            self.continuous,
            self.synchronous,
            self.origin,
        )


# $1 the sandbox, then Filters.values() in order.
_MATCHING = """sandbox = $1
    AND ($2::text IS NULL OR strpos(lower(name), lower($2)) > 0)
    AND ($3::text IS NULL OR strpos(lower(description), lower($3)) > 0)
    AND ($4::uuid IS NULL OR id = $4)
    AND ($5::text IS NULL OR name = $5)
    AND ($6::text IS NULL OR merge_policy_id = $6)
    AND ($7::boolean IS NULL OR batch_enabled = $7)
    AND ($8::boolean IS NULL OR continuous_enabled = $8)
    AND ($9::boolean IS NULL OR synchronous_enabled = $9)
    AND ($10::text IS NULL OR origin = $10)"""


async def count_matching(conn: asyncpg.Connection, sandbox: str, filters: Filters) -> int:
    total: int = await conn.fetchval(
        f"SELECT count(*) FROM segment_definitions WHERE {_MATCHING}", sandbox, *filters.values()
    )
    return total


async def matching(
    conn: asyncpg.Connection,
    sandbox: str,
    filters: Filters,
    order: Sequence[tuple[str, bool]],
    offset: int,
    limit: int,
) -> list[Row]:
    """A page of the definitions matching ``filters``, each with its size (``members``);
    ``order``: (column, descending) pairs, the id breaking ties so that pages never overlap."""
    unknown = [column for column, _ in order if column not in _ORDERABLE]
    if unknown:
        raise ValueError(f"cannot order segment definitions by {unknown}")
    keys = [f"{column} {'DESC' if descending else 'ASC'}" for column, descending in order]
    if "id" not in (column for column, _ in order):
        keys.append("id ASC")
    rows: list[Row] = await conn.fetch(
        f"""SELECT d.*, coalesce(sized.members, 0) AS members
              FROM segment_definitions d
              LEFT JOIN (
                  SELECT audience_id, sum(realized + existing) AS members FROM audience_sizes
                   WHERE sandbox = $1 GROUP BY audience_id
              ) sized ON sized.audience_id = d.id
             WHERE {_MATCHING}
             ORDER BY {", ".join(keys)} OFFSET $11 LIMIT $12""",
        sandbox,
        *filters.values(),
        offset,
        limit,
    )
    return rows


async def sizes(
    conn: asyncpg.Connection, sandbox: str, audience_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """Each audience's memberships by status, from its counters (an audience that never
    had any is absent)."""
    rows = await conn.fetch(
        """SELECT audience_id, sum(realized)::bigint AS realized, sum(existing)::bigint AS existing,
                  sum(exited)::bigint AS exited
             FROM audience_sizes WHERE sandbox = $1 AND audience_id = ANY($2::uuid[])
            GROUP BY audience_id""",
        sandbox,
        list(audience_ids),
    )
    return {r["audience_id"]: {s: r[s] for s in ("realized", "existing", "exited")} for r in rows}


async def fold_sizes(conn: asyncpg.Connection, limit: int) -> int:
    """Fold the counter rows of up to ``limit`` audiences (of any sandbox) into one row
    each; how many audiences. Rows committed meanwhile are left for the next fold, and
    rows another fold took first are skipped (a row is summed by whoever deletes it)."""
    folded: int = await conn.fetchval(
        """WITH crowded AS (
               SELECT sandbox, audience_id FROM audience_sizes
                GROUP BY sandbox, audience_id HAVING count(*) > 1
                LIMIT $1
           ), taken AS (
               DELETE FROM audience_sizes s USING crowded c
                WHERE s.sandbox = c.sandbox AND s.audience_id = c.audience_id
            RETURNING s.sandbox, s.audience_id, s.realized, s.existing, s.exited
           ), summed AS (
               INSERT INTO audience_sizes (sandbox, audience_id, realized, existing, exited)
               SELECT sandbox, audience_id, sum(realized), sum(existing), sum(exited) FROM taken
                GROUP BY sandbox, audience_id
            RETURNING 1
           )
           SELECT count(*) FROM summed""",
        limit,
    )
    return folded


async def referrers_of(
    conn: asyncpg.Connection, sandbox: str, audience_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """For each audience, the audiences whose rules name it, by id."""
    rows = await conn.fetch(
        """SELECT referenced_id, definition_id FROM segment_references
            WHERE sandbox = $1 AND referenced_id = ANY($2::uuid[])
            ORDER BY referenced_id, definition_id""",
        sandbox,
        list(audience_ids),
    )
    found: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for r in rows:
        found[r["referenced_id"]].append(r["definition_id"])
    return found


# Previews


async def purge_expired(conn: asyncpg.Connection, limit: int) -> int:
    """Remove up to ``limit`` expired previews (of any sandbox) that nobody else is
    removing, and progress rows left by evaluations that did not end; how many previews."""
    status: str = await conn.execute(
        """DELETE FROM previews WHERE (sandbox, id) IN (
               SELECT sandbox, id FROM previews WHERE expires_at <= now()
               ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)""",
        limit,
    )
    await conn.execute(
        """DELETE FROM preview_progress p WHERE (p.sandbox, p.preview_id) IN (
               SELECT q.sandbox, q.preview_id FROM preview_progress q
               WHERE NOT EXISTS (SELECT 1 FROM previews v
                                 WHERE v.sandbox = q.sandbox AND v.id = q.preview_id AND v.state = 'RUNNING')
               LIMIT $1)""",
        limit,
    )
    return int(status.rsplit(" ", 1)[-1])


async def record_progress(
    conn: asyncpg.Connection, sandbox: str, preview_id: uuid.UUID, total: int, read: int, matched: int
) -> None:
    await conn.execute(
        """INSERT INTO preview_progress (sandbox, preview_id, profiles_total, profiles_read, profiles_matched)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (sandbox, preview_id) DO UPDATE
           SET profiles_total = EXCLUDED.profiles_total, profiles_read = EXCLUDED.profiles_read,
               profiles_matched = EXCLUDED.profiles_matched, updated_at = now()""",
        sandbox,
        preview_id,
        total,
        read,
        matched,
    )


async def progress_of(conn: asyncpg.Connection, sandbox: str, preview_id: uuid.UUID) -> Row | None:
    """How far a running evaluation of the preview has got; None before its first chunk."""
    row: Row | None = await conn.fetchrow(
        "SELECT * FROM preview_progress WHERE sandbox = $1 AND preview_id = $2", sandbox, preview_id
    )
    return row


async def forget_progress(conn: asyncpg.Connection, sandbox: str, preview_id: uuid.UUID) -> None:
    await conn.execute(
        "DELETE FROM preview_progress WHERE sandbox = $1 AND preview_id = $2", sandbox, preview_id
    )


async def profile_count(conn: asyncpg.Connection, sandbox: str) -> int:
    total: int = await conn.fetchval("SELECT count(*) FROM profiles WHERE sandbox = $1", sandbox)
    return total


async def profiles_in_chunks(
    conn: asyncpg.Connection, sandbox: str, sample: int | None, chunk: int
) -> AsyncIterator[dict[str, dict[str, Any]]]:
    """The sandbox's profiles (id -> attributes), ``chunk`` at a time, through a cursor
    (the caller's transaction must be open). With ``sample``, only that many: those whose
    id hashes lowest, the same ones every time while the profiles stay the same."""
    args: list[object] = [sandbox]
    if sample is None:
        query = "SELECT profile_id, attributes FROM profiles WHERE sandbox = $1"
    else:
        query = """SELECT profile_id, attributes FROM profiles WHERE sandbox = $1
                    ORDER BY hashtextextended(profile_id::text, 0), profile_id LIMIT $2"""
        args.append(sample)
    cursor = await conn.cursor(query, *args)
    while rows := await cursor.fetch(chunk):
        yield {str(r["profile_id"]): r["attributes"] for r in rows}


async def statuses_in(
    conn: asyncpg.Connection, sandbox: str, audience_ids: Sequence[str], profile_ids: Sequence[str]
) -> dict[str, dict[str, str]]:
    """profile id -> audience id -> status, for the audiences named; read without locks
    (a preview changes no membership)."""
    rows = await conn.fetch(
        """SELECT profile_id, audience_id, status FROM memberships
            WHERE sandbox = $1 AND audience_id = ANY($2::uuid[]) AND profile_id = ANY($3::uuid[])""",
        sandbox,
        list(audience_ids),
        list(profile_ids),
    )
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for r in rows:
        found[str(r["profile_id"])][str(r["audience_id"])] = r["status"]
    return found


@dataclass(frozen=True, slots=True)
class PreviewRequest:
    """A preview as asked for, before it is evaluated."""

    expression: str
    predicate_model: str
    graph_type: str | None
    merge_policy_id: str | None
    max_profiles: int
    ttl: timedelta


async def insert_preview(
    conn: asyncpg.Connection, sandbox: str, preview_id: uuid.UUID, c: PreviewRequest
) -> None:
    """A RUNNING preview, for a worker to evaluate; it expires ``ttl`` from now."""
    await conn.execute(
        """INSERT INTO previews (sandbox, id, state, expression, predicate_model, graph_type,
                                 merge_policy_id, max_profiles, created_at, expires_at)
           VALUES ($1, $2, 'RUNNING', $3, $4, $5, $6, $7, now(), now() + $8::interval)""",
        sandbox,
        preview_id,
        c.expression,
        c.predicate_model,
        c.graph_type,
        c.merge_policy_id,
        c.max_profiles,
        c.ttl,
    )


async def waiting_previews(conn: asyncpg.Connection, limit: int) -> list[tuple[str, uuid.UUID]]:
    """(sandbox, id) of up to ``limit`` RUNNING previews that have not expired, oldest first."""
    rows = await conn.fetch(
        """SELECT sandbox, id FROM previews WHERE state = 'RUNNING' AND expires_at > now()
            ORDER BY created_at, id LIMIT $1""",
        limit,
    )
    return [(r["sandbox"], r["id"]) for r in rows]


def _claim_key(sandbox: str, preview_id: uuid.UUID) -> str:
    return f"itinera.segmentation.preview:{sandbox}:{preview_id}"


async def try_claim(conn: asyncpg.Connection, sandbox: str, preview_id: uuid.UUID) -> bool:
    """Take the preview for this session (an advisory lock, released by :func:`release`
    or when the session ends); False when another session has it."""
    taken: bool = await conn.fetchval(
        "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", _claim_key(sandbox, preview_id)
    )
    return taken


async def release(conn: asyncpg.Connection, sandbox: str, preview_id: uuid.UUID) -> None:
    await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", _claim_key(sandbox, preview_id))


async def running_preview(conn: asyncpg.Connection, sandbox: str, preview_id: uuid.UUID) -> Row | None:
    """The preview if it is still RUNNING and has not expired."""
    row: Row | None = await conn.fetchrow(
        """SELECT * FROM previews
            WHERE sandbox = $1 AND id = $2 AND state = 'RUNNING' AND expires_at > now()""",
        sandbox,
        preview_id,
    )
    return row


@dataclass(frozen=True, slots=True)
class PreviewCounts:
    profiles_total: int
    profiles_read: int
    profiles_matched: int
    evaluated_at: datetime
    namespaces: dict[str, int] = field(default_factory=dict)
    """Qualifying profiles by namespace code in their ``identityMap``."""


async def store_results(
    conn: asyncpg.Connection,
    sandbox: str,
    preview_id: uuid.UUID,
    c: PreviewCounts,
    qualifying: Sequence[str],
) -> bool:
    """Mark a preview RESULT_READY with its counts, and store its qualifying profiles with
    their attributes as the caller's snapshot sees them (the one they were evaluated in).
    It then expires as long after now as it was to expire after its creation. The row is
    updated first: in a REPEATABLE READ transaction, a preview deleted meanwhile fails
    here (a serialization failure) before any result is written; one that expired
    meanwhile is left as it is. Whether the results were stored."""
    updated = await conn.fetchval(
        """UPDATE previews
              SET state = 'RESULT_READY', profiles_total = $3, profiles_read = $4,
                  profiles_matched = $5, evaluated_at = $6, namespace_counts = $7,
                  expires_at = clock_timestamp() + (expires_at - created_at)
            WHERE sandbox = $1 AND id = $2 AND expires_at > now()
        RETURNING true""",
        sandbox,
        preview_id,
        c.profiles_total,
        c.profiles_read,
        c.profiles_matched,
        c.evaluated_at,
        c.namespaces,
    )
    if updated is None:
        return False
    await conn.execute(
        """INSERT INTO preview_profiles (sandbox, preview_id, profile_id, attributes)
           SELECT $1, $2, profile_id, attributes FROM profiles
            WHERE sandbox = $1 AND profile_id = ANY($3::uuid[])""",
        sandbox,
        preview_id,
        list(qualifying),
    )
    return True


async def failed_attempt(
    conn: asyncpg.Connection, sandbox: str, preview_id: uuid.UUID, reason: str, attempts: int
) -> bool:
    """Count a failed attempt at evaluating a RUNNING preview; FAILED with the reason at
    the ``attempts``-th. Whether it did."""
    state = await conn.fetchval(
        """UPDATE previews
              SET failures = failures + 1, error = $3,
                  state = CASE WHEN failures + 1 >= $4 THEN 'FAILED' ELSE state END
            WHERE sandbox = $1 AND id = $2 AND state = 'RUNNING'
        RETURNING state""",
        sandbox,
        preview_id,
        reason,
        attempts,
    )
    return bool(state == "FAILED")


async def preview(conn: asyncpg.Connection, sandbox: str, preview_id: uuid.UUID) -> Row | None:
    """A preview that has not expired, in whatever state."""
    row: Row | None = await conn.fetchrow(
        "SELECT * FROM previews WHERE sandbox = $1 AND id = $2 AND expires_at > now()", sandbox, preview_id
    )
    return row


async def results(
    conn: asyncpg.Connection, sandbox: str, preview_id: uuid.UUID, offset: int, limit: int
) -> list[Row]:
    """A page of a preview's qualifying profiles, by profile id."""
    rows: list[Row] = await conn.fetch(
        """SELECT profile_id, attributes FROM preview_profiles WHERE sandbox = $1 AND preview_id = $2
            ORDER BY profile_id OFFSET $3 LIMIT $4""",
        sandbox,
        preview_id,
        offset,
        limit,
    )
    return rows


async def delete_preview(conn: asyncpg.Connection, sandbox: str, preview_id: uuid.UUID) -> bool:
    """Remove a preview that has not expired; whether there was one."""
    removed = await conn.fetchval(
        "DELETE FROM previews WHERE sandbox = $1 AND id = $2 AND expires_at > now() RETURNING true",
        sandbox,
        preview_id,
    )
    return removed is not None
