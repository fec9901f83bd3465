"""SQL of what the segmentation service answered about the audiences named here
(``audience_checks``), and of the passes that ask it (``audience_check_passes``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from asyncpg import Record as Row


async def named(conn: asyncpg.Connection, sandboxes: Sequence[str] | None) -> dict[str, set[str]]:
    """The audiences that draft and live journey versions and live campaigns name, by
    sandbox; a sandbox with answers recorded but nothing named any more is there with
    none (so that its answers are pruned). ``sandboxes``: only those (None: all)."""
    rows = await conn.fetch(
        """SELECT sandbox, audience_id FROM (
               SELECT sandbox, unnest(audiences) AS audience_id FROM journey_versions
                WHERE status IN ('draft', 'live')
               UNION
               SELECT sandbox, definition ->> 'audienceId' FROM campaigns
                WHERE status = 'live' AND definition ->> 'audienceId' IS NOT NULL
               UNION
               SELECT DISTINCT sandbox, NULL FROM audience_checks
           ) named
           WHERE $1::text[] IS NULL OR sandbox = ANY($1::text[])""",
        None if sandboxes is None else list(sandboxes),
    )
    found: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        audiences = found[row["sandbox"]]
        if row["audience_id"] is not None:
            audiences.add(row["audience_id"])
    return dict(found)


@dataclass(frozen=True, slots=True)
class Changes:
    """What an answer changed: audiences missing that were not before, and audiences
    found that were missing."""

    missing: list[str]
    found: list[str]


async def record(
    conn: asyncpg.Connection, sandbox: str, answers: Mapping[str, bool], at: datetime
) -> Changes:
    """Records whether each audience was found, as answered at ``at``; an answer older
    than the one recorded changes nothing. ``missing_since`` is kept while an audience
    stays missing."""
    ids = sorted(answers)  # rows locked in one order: two writers never wait on each other in a cycle
    if not ids:
        return Changes([], [])
    before = {
        row["audience_id"]: row
        for row in await conn.fetch(
            """SELECT audience_id, found, checked_at FROM audience_checks
                WHERE sandbox = $1 AND audience_id = ANY($2::text[])
                ORDER BY audience_id FOR UPDATE""",
            sandbox,
            ids,
        )
    }
    await conn.execute(
        """INSERT INTO audience_checks AS a (sandbox, audience_id, found, checked_at, missing_since)
           SELECT $1, t.id, t.found, $4::timestamptz, CASE WHEN t.found THEN NULL ELSE $4::timestamptz END
             FROM unnest($2::text[], $3::boolean[]) AS t(id, found)
           ON CONFLICT (sandbox, audience_id) DO UPDATE
              SET found = excluded.found,
                  checked_at = excluded.checked_at,
                  missing_since = CASE WHEN excluded.found THEN NULL
                                       ELSE coalesce(a.missing_since, excluded.missing_since) END
            WHERE excluded.checked_at >= a.checked_at""",
        sandbox,
        ids,
        [answers[i] for i in ids],
        at,
    )
    newer = {i for i, row in before.items() if row["checked_at"] > at}
    return Changes(
        missing=[
            i for i in ids if i not in newer and not answers[i] and (i not in before or before[i]["found"])
        ],
        found=[i for i in ids if i not in newer and answers[i] and i in before and not before[i]["found"]],
    )


async def prune(conn: asyncpg.Connection, sandbox: str, keep: Sequence[str], before: datetime) -> None:
    """Forgets the answers about audiences nothing names any more (those recorded before
    ``before``: one recorded since, by a publish attempt, may be about a new draft)."""
    await conn.execute(
        """DELETE FROM audience_checks
            WHERE sandbox = $1 AND checked_at < $3 AND NOT (audience_id = ANY($2::text[]))""",
        sandbox,
        list(keep),
        before,
    )


async def purge(conn: asyncpg.Connection) -> None:
    """Forgets every answer (the check is off: nothing would keep them true)."""
    await conn.execute("DELETE FROM audience_checks")


async def answers(conn: asyncpg.Connection, sandbox: str, ids: Sequence[str]) -> dict[str, Row]:
    """The answers recorded about ``ids``, by audience id (those never asked are left out)."""
    if not ids:
        return {}
    rows = await conn.fetch(
        """SELECT audience_id, found, checked_at, missing_since FROM audience_checks
            WHERE sandbox = $1 AND audience_id = ANY($2::text[])""",
        sandbox,
        list(ids),
    )
    return {row["audience_id"]: row for row in rows}


async def missing(conn: asyncpg.Connection, sandbox: str, audience_id: str) -> Row | None:
    """The answer that the audience is missing; None when it was found or never asked."""
    row: Row | None = await conn.fetchrow(
        """SELECT audience_id, found, checked_at, missing_since FROM audience_checks
            WHERE sandbox = $1 AND audience_id = $2 AND NOT found""",
        sandbox,
        audience_id,
    )
    return row


async def users(conn: asyncpg.Connection, sandbox: str, ids: Sequence[str]) -> list[Row]:
    """The live journey versions and live campaigns that name any of ``ids``: ``kind``
    (``journey``, ``campaign``), ``id``, ``version`` (journeys), ``name``, ``audience_id``."""
    rows: list[Row] = await conn.fetch(
        """SELECT 'journey' AS kind, v.journey_id AS id, v.version, j.name, x.audience_id
             FROM unnest($2::text[]) AS x(audience_id)
             JOIN journey_versions v
               ON v.sandbox = $1 AND v.status = 'live' AND v.audiences @> ARRAY[x.audience_id]
             JOIN journeys j ON j.sandbox = v.sandbox AND j.id = v.journey_id
           UNION ALL
           SELECT 'campaign', c.id, NULL, c.name, x.audience_id
             FROM unnest($2::text[]) AS x(audience_id)
             JOIN campaigns c
               ON c.sandbox = $1 AND c.status = 'live' AND c.definition ->> 'audienceId' = x.audience_id
            ORDER BY 1, 4, 2""",
        sandbox,
        list(ids),
    )
    return rows


async def missing_counts(conn: asyncpg.Connection) -> list[Row]:
    """By sandbox and kind (``journey``, ``campaign``): how many live journeys and live
    campaigns name an audience last found missing."""
    rows: list[Row] = await conn.fetch(
        """SELECT a.sandbox, 'journey' AS kind, count(DISTINCT v.journey_id) AS count
             FROM audience_checks a
             JOIN journey_versions v
               ON v.sandbox = a.sandbox AND v.status = 'live' AND v.audiences @> ARRAY[a.audience_id]
            WHERE NOT a.found
            GROUP BY a.sandbox
           UNION ALL
           SELECT a.sandbox, 'campaign', count(DISTINCT c.id)
             FROM audience_checks a
             JOIN campaigns c
               ON c.sandbox = a.sandbox AND c.status = 'live'
              AND c.definition ->> 'audienceId' = a.audience_id
            WHERE NOT a.found
            GROUP BY a.sandbox"""
    )
    return rows


async def claim_pass(conn: asyncpg.Connection, now: datetime, every: timedelta) -> bool:
    """Whether this worker is to check now: the last pass (by any worker) started
    ``every`` ago or more, and none was claimed since; claiming it records ``now``."""
    claimed: datetime | None = await conn.fetchval(
        """INSERT INTO audience_check_passes AS p (id, started_at) VALUES (true, $1)
           ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at
            WHERE p.started_at <= $1 - $2::interval
           RETURNING started_at""",
        now,
        every,
    )
    return claimed is not None
