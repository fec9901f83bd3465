"""SQL that follows fragment inclusions: the fragments a text reaches, and the
published templates and fragments that reach a fragment. Both walk the ``fragments``
arrays of published versions, at most ``MAX_DEPTH`` inclusions deep (the renderer
refuses deeper nesting anyway, and a cycle must not walk forever)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from asyncpg import Record as Row

MAX_DEPTH = 8

_PUBLISHED = """fragment_versions v ON v.sandbox = f.sandbox AND v.fragment_id = f.id
                AND v.version = f.published_version"""


async def reached(
    conn: asyncpg.Connection, sandbox: str, ids: Sequence[str], *, lock: bool = False
) -> list[Row]:
    """The fragments ``ids`` name and those their published versions include, in turn:
    ``id``, ``type``, ``published_version`` and its ``content`` (null when none is
    published) and ``fragments``. Ids of no fragment are absent. ``lock`` holds the rows
    (``FOR SHARE``) until the transaction ends, so none is deleted under a publication."""
    rows: list[Row] = await conn.fetch(
        f"""WITH RECURSIVE walk(id, depth) AS (
                SELECT unnest($2::text[]), 1
                UNION ALL
                SELECT r.ref, walk.depth + 1
                  FROM walk
                  JOIN fragments f ON f.sandbox = $1 AND f.id = walk.id
                  JOIN {_PUBLISHED}
                  CROSS JOIN LATERAL unnest(v.fragments) AS r(ref)
                 WHERE walk.depth < $3
            )
            SELECT f.id, f.type, f.published_version, v.document->>'content' AS content,
                   coalesce(v.fragments, '{{}}') AS fragments
              FROM fragments f
              LEFT JOIN {_PUBLISHED}
             WHERE f.sandbox = $1 AND f.id IN (SELECT id FROM walk)
             ORDER BY f.id
             {"FOR SHARE OF f" if lock else ""}""",
        sandbox,
        list(ids),
        MAX_DEPTH,
    )
    return rows


async def users(conn: asyncpg.Connection, sandbox: str, fragment_id: str) -> list[Row]:
    """The published templates and fragments that include the fragment, directly or
    through other fragments: ``kind``, ``id``, ``version``; templates first."""
    rows: list[Row] = await conn.fetch(
        """WITH RECURSIVE above(id, depth) AS (
                SELECT $2::text, 0
                UNION ALL
                SELECT f.id, above.depth + 1
                  FROM above
                  JOIN fragment_versions v
                    ON v.sandbox = $1 AND v.status = 'published' AND above.id = ANY(v.fragments)
                  JOIN fragments f ON f.sandbox = v.sandbox AND f.id = v.fragment_id
                   AND f.published_version = v.version
                 WHERE above.depth < $3
            )
            SELECT DISTINCT 'template' AS kind, t.id, t.published_version AS version
              FROM templates t
              JOIN template_versions v ON v.sandbox = t.sandbox AND v.template_id = t.id
               AND v.version = t.published_version
             WHERE t.sandbox = $1 AND v.fragments && (SELECT array_agg(id) FROM above)
            UNION
            SELECT DISTINCT 'fragment', f.id, f.published_version
              FROM fragments f
             WHERE f.sandbox = $1 AND f.id <> $2 AND f.published_version IS NOT NULL
               AND f.id IN (SELECT id FROM above WHERE depth > 0)
            ORDER BY kind DESC, id""",
        sandbox,
        fragment_id,
        MAX_DEPTH,
    )
    return rows
