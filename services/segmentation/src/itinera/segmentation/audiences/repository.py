"""SQL of the audiences' listing and sizes, and of previews and their results."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from asyncpg import Record as Row

_ORDERABLE = frozenset({"name", "created_at", "updated_at", "id"})


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
    """A page of the definitions matching ``filters``; ``order``: (column, descending)
    pairs, the id breaking ties so that pages never overlap."""
    unknown = [column for column, _ in order if column not in _ORDERABLE]
    if unknown:
        raise ValueError(f"cannot order segment definitions by {unknown}")
    keys = [f"{column} {'DESC' if descending else 'ASC'}" for column, descending in order]
    if "id" not in (column for column, _ in order):
        keys.append("id ASC")
    rows: list[Row] = await conn.fetch(
        f"""SELECT * FROM segment_definitions WHERE {_MATCHING}
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
    """Each audience's memberships counted by status (an audience without any is absent)."""
    rows = await conn.fetch(
        """SELECT audience_id, status, count(*) AS n FROM memberships
            WHERE sandbox = $1 AND audience_id = ANY($2::uuid[])
            GROUP BY audience_id, status""",
        sandbox,
        list(audience_ids),
    )
    found: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    for r in rows:
        found[r["audience_id"]][r["status"]] = r["n"]
    return found


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
    removing; how many."""
    status: str = await conn.execute(
        """DELETE FROM previews WHERE (sandbox, id) IN (
               SELECT sandbox, id FROM previews WHERE expires_at <= now()
               ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)""",
        limit,
    )
    return int(status.rsplit(" ", 1)[-1])


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
class PreviewColumns:
    expression: str
    predicate_model: str
    graph_type: str | None
    merge_policy_id: str | None
    profiles_total: int
    profiles_read: int
    profiles_matched: int
    evaluated_at: datetime
    ttl: timedelta


async def insert_preview(
    conn: asyncpg.Connection,
    sandbox: str,
    preview_id: uuid.UUID,
    c: PreviewColumns,
    qualifying: Sequence[str],
) -> None:
    """Store a preview and its qualifying profiles, their attributes as the caller's
    snapshot sees them (the one they were evaluated in)."""
    await conn.execute(
        """INSERT INTO previews (sandbox, id, expression, predicate_model, graph_type, merge_policy_id,
                                 profiles_total, profiles_read, profiles_matched, evaluated_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, clock_timestamp() + $11::interval)""",
        sandbox,
        preview_id,
        c.expression,
        c.predicate_model,
        c.graph_type,
        c.merge_policy_id,
        c.profiles_total,
        c.profiles_read,
        c.profiles_matched,
        c.evaluated_at,
        c.ttl,
    )
    await conn.execute(
        """INSERT INTO preview_profiles (sandbox, preview_id, profile_id, attributes)
           SELECT $1, $2, profile_id, attributes FROM profiles
            WHERE sandbox = $1 AND profile_id = ANY($3::uuid[])""",
        sandbox,
        preview_id,
        list(qualifying),
    )


async def preview(conn: asyncpg.Connection, sandbox: str, preview_id: uuid.UUID) -> Row | None:
    """A preview that has not expired."""
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
