"""Where PostgreSQL's time went: the statements ``pg_stat_statements`` counted during a
timed phase, most time first. The benchmarks' PostgreSQL loads it when asked
(``--statements N``; ``Infrastructure.start(..., statement_stats=True)``)."""

from __future__ import annotations

import re

import asyncpg

_SPACE = re.compile(r"\s+")


async def reset(database_url: str) -> None:
    """Forget what was counted so far (set-up, warm-up)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
    finally:
        await conn.close()


async def top(database_url: str, limit: int, width: int = 110) -> list[str]:
    """Report lines for the ``limit`` statements with the most execution time since
    :func:`reset`: calls, total and mean milliseconds, rows, the statement's start."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """SELECT calls, total_exec_time, rows, query FROM pg_stat_statements
               WHERE query NOT LIKE '%pg_stat_statements%'
               ORDER BY total_exec_time DESC LIMIT $1""",
            limit,
        )
        total = await conn.fetchval("SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements")
    finally:
        await conn.close()
    lines = [
        f"PostgreSQL statements, most execution time first ({total:,.0f} ms in all):",
        f"  {'calls':>8} {'total ms':>9} {'share':>6} {'ms/call':>8} {'rows':>8}  statement",
    ]
    for r in rows:
        text = _SPACE.sub(" ", r["query"]).strip()
        share = r["total_exec_time"] / total if total else 0.0
        lines.append(
            f"  {r['calls']:>8,} {r['total_exec_time']:>9,.0f} {share:>6.1%} "
            f"{r['total_exec_time'] / max(r['calls'], 1):>8.2f} {r['rows']:>8,}  {text[:width]}"
        )
    return lines
