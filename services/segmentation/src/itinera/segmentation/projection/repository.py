"""SQL of the profile projection."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from itinera.common.projection import Plan


async def attributes_of(
    conn: asyncpg.Connection, sandbox: str, profile_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The profiles' attributes, locked until the transaction ends."""
    rows = await conn.fetch(
        """SELECT profile_id, attributes FROM profiles
           WHERE sandbox = $1 AND profile_id = ANY($2::uuid[])
           ORDER BY profile_id FOR UPDATE""",
        sandbox,
        sorted(set(profile_ids)),
    )
    return {str(r["profile_id"]): r["attributes"] for r in rows}


async def apply(conn: asyncpg.Connection, sandbox: str, plan: Plan) -> None:
    """Write a batch's plan: wipe deleted profiles, fold merged ones into their
    survivors, then write the profiles and add the events."""
    if plan.deleted:
        wiped = sorted(plan.deleted)
        await conn.execute(
            """WITH e AS (DELETE FROM profile_events WHERE sandbox = $1 AND profile_id = ANY($2::uuid[]))
               DELETE FROM profiles WHERE sandbox = $1 AND profile_id = ANY($2::uuid[])""",
            sandbox,
            wiped,
        )
    if plan.merged:
        await conn.execute(
            """WITH m AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS m(old uuid, new uuid)),
               moved AS (
                   UPDATE profile_events e SET profile_id = m.new FROM m
                   WHERE e.sandbox = $1 AND e.profile_id = m.old
               )
               DELETE FROM profiles p USING m WHERE p.sandbox = $1 AND p.profile_id = m.old""",
            sandbox,
            [{"old": old, "new": new} for old, new in sorted(plan.merged.items())],
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
    if plan.events:
        await conn.execute(
            """INSERT INTO profile_events (sandbox, event_id, profile_id, occurred_at, body)
               SELECT $1, e.id, e.p, e.t, e.b
               FROM jsonb_to_recordset($2::jsonb) AS e(id text, p uuid, t timestamptz, b jsonb)
               ON CONFLICT (sandbox, event_id) DO NOTHING""",
            sandbox,
            [{"id": e.event_id, "p": e.profile_id, "t": e.occurred_at, "b": e.body} for e in plan.events],
        )


async def profile(
    conn: asyncpg.Connection, sandbox: str, profile_id: str, events: int
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """A profile's attributes and its ``events`` most recent events (newest first)."""
    attributes = await conn.fetchval(
        "SELECT attributes FROM profiles WHERE sandbox = $1 AND profile_id = $2", sandbox, profile_id
    )
    if attributes is None:
        return None
    rows = await conn.fetch(
        """SELECT body FROM profile_events WHERE sandbox = $1 AND profile_id = $2
           ORDER BY occurred_at DESC, event_id DESC LIMIT $3""",
        sandbox,
        profile_id,
        events,
    )
    return attributes, [r["body"] for r in rows]


# Each sandbox's events kept: those within the longest look-back of its rules that read
# events, and never less than the minimum ($2); none is trimmed in a sandbox where a
# rule reads events without a look-back (it may read any of them).
_HORIZONS = """SELECT sandbox, bool_or(lookback IS NULL) AS unbounded, max(lookback) AS longest
                 FROM segment_definitions
                WHERE EXISTS (SELECT 1 FROM unnest(paths_read) p WHERE p LIKE 'xEvent%')
                GROUP BY sandbox"""


async def trim_events(conn: asyncpg.Connection, now: datetime, minimum: timedelta, limit: int) -> int:
    """Delete up to ``limit`` events that no rule of their sandbox can read any more (see
    ``_HORIZONS``); how many were deleted."""
    status: str = await conn.execute(
        f"""WITH horizons AS ({_HORIZONS})
            DELETE FROM profile_events WHERE ctid = ANY(ARRAY(
                SELECT e.ctid FROM profile_events e LEFT JOIN horizons h ON h.sandbox = e.sandbox
                 WHERE NOT coalesce(h.unbounded, false)
                   AND e.occurred_at < $1::timestamptz - greatest(h.longest, $2::interval)  -- null ignored
                 LIMIT $3))""",
        now,
        minimum,
        limit,
    )
    return int(status.split()[-1])
