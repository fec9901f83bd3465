"""SQL of memberships and of what streaming evaluation reads."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg


@dataclass(frozen=True, slots=True)
class Audience:
    id: str
    expression: str
    references: tuple[str, ...]
    audiences: tuple[str, ...]
    lookback: timedelta | None
    time_dependent: bool
    updated_at: datetime


def _audience(r: asyncpg.Record) -> Audience:
    return Audience(
        str(r["id"]),
        r["expression"],
        tuple(r["paths_read"]),
        tuple(r["audiences"]),
        r["lookback"],
        r["time_dependent"],
        r["updated_at"],
    )


_AUDIENCE = "id, expression, paths_read, audiences, lookback, time_dependent, updated_at"


async def streaming_audiences(conn: asyncpg.Connection, sandbox: str) -> list[Audience]:
    rows = await conn.fetch(
        f"SELECT {_AUDIENCE} FROM segment_definitions WHERE sandbox = $1 AND continuous_enabled ORDER BY id",
        sandbox,
    )
    return [_audience(r) for r in rows]


async def audiences_by_id(conn: asyncpg.Connection, sandbox: str, ids: Iterable[str]) -> dict[str, Audience]:
    rows = await conn.fetch(
        f"SELECT {_AUDIENCE} FROM segment_definitions WHERE sandbox = $1 AND id = ANY($2::uuid[])",
        sandbox,
        sorted(set(ids)),
    )
    return {str(r["id"]): _audience(r) for r in rows}


async def schedule(
    conn: asyncpg.Connection, sandbox: str, due: Iterable[tuple[str, str, datetime | None]]
) -> None:
    """Set (audience, profile, when) re-evaluations; None clears one."""
    listed = sorted(due, key=lambda d: (d[0], d[1]))
    later = [{"a": a, "p": p, "t": t} for a, p, t in listed if t is not None]
    never = [{"a": a, "p": p} for a, p, t in listed if t is None]
    if later:
        await conn.execute(
            """INSERT INTO reevaluations (sandbox, audience_id, profile_id, due_at)
               SELECT $1, r.a, r.p, r.t FROM jsonb_to_recordset($2::jsonb) AS r(a uuid, p uuid, t timestamptz)
               ON CONFLICT (sandbox, audience_id, profile_id) DO UPDATE SET due_at = EXCLUDED.due_at""",
            sandbox,
            later,
        )
    if never:
        await conn.execute(
            """DELETE FROM reevaluations t USING jsonb_to_recordset($2::jsonb) AS r(a uuid, p uuid)
               WHERE t.sandbox = $1 AND t.audience_id = r.a AND t.profile_id = r.p""",
            sandbox,
            never,
        )


async def take_due(conn: asyncpg.Connection, limit: int) -> list[tuple[str, str, str]]:
    """Due re-evaluations, locked and removed (the caller's transaction may re-add
    them): (sandbox, audience, profile)."""
    rows = await conn.fetch(
        """DELETE FROM reevaluations t WHERE (t.sandbox, t.audience_id, t.profile_id) IN (
               SELECT sandbox, audience_id, profile_id FROM reevaluations
               WHERE due_at <= now() ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING t.sandbox, t.audience_id, t.profile_id""",
        limit,
    )
    return [(r["sandbox"], str(r["audience_id"]), str(r["profile_id"])) for r in rows]


async def profiles_of(
    conn: asyncpg.Connection, sandbox: str, profile_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT profile_id, attributes FROM profiles WHERE sandbox = $1 AND profile_id = ANY($2::uuid[])",
        sandbox,
        sorted(set(profile_ids)),
    )
    return {str(r["profile_id"]): r["attributes"] for r in rows}


async def memberships_of(
    conn: asyncpg.Connection, sandbox: str, profile_ids: Iterable[str]
) -> dict[str, dict[str, str]]:
    """profile id -> audience id -> status, locked until the transaction ends."""
    rows = await conn.fetch(
        """SELECT profile_id, audience_id, status FROM memberships
           WHERE sandbox = $1 AND profile_id = ANY($2::uuid[])
           ORDER BY audience_id, profile_id FOR UPDATE""",
        sandbox,
        sorted(set(profile_ids)),
    )
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for r in rows:
        found[str(r["profile_id"])][str(r["audience_id"])] = r["status"]
    return found


async def memberships_between(
    conn: asyncpg.Connection, sandbox: str, first: str, last: str
) -> dict[str, dict[str, str]]:
    """:func:`memberships_of` for every profile id from ``first`` to ``last``: one range of
    the primary key instead of one look-up per profile, for a run of profiles in id order."""
    rows = await conn.fetch(
        """SELECT profile_id, audience_id, status FROM memberships
           WHERE sandbox = $1 AND profile_id >= $2 AND profile_id <= $3
           ORDER BY audience_id, profile_id FOR UPDATE""",
        sandbox,
        first,
        last,
    )
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for r in rows:
        found[str(r["profile_id"])][str(r["audience_id"])] = r["status"]
    return found


async def events_of(
    conn: asyncpg.Connection, sandbox: str, profile_ids: Iterable[str], since: datetime | None, limit: int
) -> dict[str, str]:
    """Each profile's events since ``since`` (all when None), at most ``limit`` each,
    newest first, as the text of one JSON array; a profile without any is left out.
    Left as text for the caller to decode the ones it reads; and all in one row of two
    arrays, which asyncpg decodes in a fraction of the time one row per profile takes."""
    row = await conn.fetchrow(
        """SELECT array_agg(p.id::text) AS ids, array_agg(e.bodies::text) AS bodies
           FROM unnest($2::uuid[]) AS p(id)
           CROSS JOIN LATERAL (
               SELECT json_agg(body ORDER BY occurred_at DESC) AS bodies FROM (
                   SELECT body, occurred_at FROM profile_events
                   WHERE sandbox = $1 AND profile_id = p.id AND ($3::timestamptz IS NULL OR occurred_at >= $3)
                   ORDER BY occurred_at DESC LIMIT $4
               ) newest
           ) e
           WHERE e.bodies IS NOT NULL""",
        sandbox,
        sorted(set(profile_ids)),
        since,
        limit,
    )
    if row is None or row["ids"] is None:
        return {}
    return dict(zip(row["ids"], row["bodies"], strict=True))


@dataclass(frozen=True, slots=True)
class Change:
    audience_id: str
    profile_id: str
    status: str
    announced: str | None
    previous: str | None


async def save(conn: asyncpg.Connection, sandbox: str, changes: Sequence[Change], at: datetime) -> None:
    if not changes:
        return
    await conn.execute(
        """INSERT INTO memberships
               (sandbox, audience_id, profile_id, status, entered_at, exited_at, evaluated_at)
           SELECT $1, c.a, c.p, c.s,
                  CASE WHEN c.s = 'realized' THEN $3::timestamptz END,
                  CASE WHEN c.s = 'exited' THEN $3::timestamptz END, $3
           FROM jsonb_to_recordset($2::jsonb) AS c(a uuid, p uuid, s text)
           ON CONFLICT (sandbox, audience_id, profile_id) DO UPDATE
           SET status = EXCLUDED.status,
               entered_at = CASE WHEN EXCLUDED.status = 'realized' THEN $3 ELSE memberships.entered_at END,
               exited_at = CASE WHEN EXCLUDED.status = 'exited' THEN $3
                                WHEN EXCLUDED.status = 'realized' THEN NULL ELSE memberships.exited_at END,
               evaluated_at = $3""",
        sandbox,
        [{"a": c.audience_id, "p": c.profile_id, "s": c.status} for c in changes],
        at,
    )


async def exit_all(
    conn: asyncpg.Connection, sandbox: str, profile_ids: Iterable[str]
) -> list[tuple[str, str, str]]:
    """Exit every membership of profiles that no longer exist; (audience, profile,
    previous status) of each."""
    rows = await conn.fetch(
        """WITH old AS (
               SELECT audience_id, profile_id, status FROM memberships
               WHERE sandbox = $1 AND profile_id = ANY($2::uuid[]) AND status <> 'exited'
               FOR UPDATE
           )
           UPDATE memberships m SET status = 'exited', exited_at = now(), evaluated_at = now()
           FROM old WHERE m.sandbox = $1 AND m.audience_id = old.audience_id AND m.profile_id = old.profile_id
           RETURNING m.audience_id, m.profile_id, old.status""",
        sandbox,
        sorted(set(profile_ids)),
    )
    return [(str(r["audience_id"]), str(r["profile_id"]), r["status"]) for r in rows]


async def members(
    conn: asyncpg.Connection,
    sandbox: str,
    audience_id: str,
    statuses: Sequence[str],
    after: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """An audience's memberships of ``statuses``, by profile id, after the cursor."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT profile_id, status, entered_at, exited_at FROM memberships
           WHERE sandbox = $1 AND audience_id = $2 AND status = ANY($3::text[])
             AND ($4::uuid IS NULL OR profile_id > $4)
           ORDER BY profile_id LIMIT $5""",
        sandbox,
        audience_id,
        list(statuses),
        after,
        limit,
    )
    return rows


async def audiences_of(conn: asyncpg.Connection, sandbox: str, profile_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT m.audience_id, d.name, m.status, m.entered_at, m.exited_at FROM memberships m
           JOIN segment_definitions d ON d.sandbox = m.sandbox AND d.id = m.audience_id
           WHERE m.sandbox = $1 AND m.profile_id = $2 ORDER BY d.name, m.audience_id""",
        sandbox,
        profile_id,
    )
    return rows


async def audience_exists(conn: asyncpg.Connection, sandbox: str, audience_id: str) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM segment_definitions WHERE sandbox = $1 AND id = $2)",
        sandbox,
        audience_id,
    )
    return found
