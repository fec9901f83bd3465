"""One statement of a retention sweep: delete the oldest rows past their time, a chunk at
a time (see :meth:`itinera.common.periodic.Periodic.drain`), so any number of replicas
can sweep at once and a row deleted twice is deleted once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg


async def delete_oldest(
    conn: asyncpg.Connection,
    table: str,
    keys: Sequence[str],
    age: str,
    before: datetime,
    limit: int,
    where: str = "true",
    *args: Any,
) -> int:
    """Delete up to ``limit`` rows of ``table`` (identified by ``keys``) whose ``age``
    column is before ``before`` and that match ``where`` (an SQL condition whose own
    parameters, ``args``, are ``$3`` on), oldest first; how many. ``table``, ``keys``,
    ``age`` and ``where`` are the caller's SQL, never a request's text."""
    same = " AND ".join(f"t.{k} = old.{k}" for k in keys)
    deleted: int = await conn.fetchval(
        f"""WITH old AS (
                SELECT {", ".join(keys)} FROM {table}
                WHERE {age} < $1 AND ({where}) ORDER BY {age} LIMIT $2
            ), gone AS (
                DELETE FROM {table} t USING old WHERE {same} RETURNING 1
            )
            SELECT count(*) FROM gone""",
        before,
        limit,
        *args,
    )
    return deleted
