"""SQL of the identity graph: observations in, the derived graph out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import asyncpg

from itinera.profile.identity.graph import Link, Node, Seen


async def observe(
    conn: asyncpg.Connection, sandbox: str, nodes: Mapping[Node, Seen], links: Mapping[Link, datetime]
) -> None:
    """Record identities and links; times only ever widen (first earlier, last later)."""
    await conn.executemany(
        """INSERT INTO identities (sandbox, namespace, value, first_seen, last_seen)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (sandbox, namespace, value) DO UPDATE
           SET first_seen = least(identities.first_seen, EXCLUDED.first_seen),
               last_seen = greatest(identities.last_seen, EXCLUDED.last_seen)""",
        [(sandbox, n.namespace, n.value, s.first, s.last) for n, s in sorted(nodes.items())],
    )
    await conn.executemany(
        """INSERT INTO links (sandbox, a_namespace, a_value, b_namespace, b_value, last_seen)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (sandbox, a_namespace, a_value, b_namespace, b_value) DO UPDATE
           SET last_seen = greatest(links.last_seen, EXCLUDED.last_seen)""",
        [(sandbox, k.a.namespace, k.a.value, k.b.namespace, k.b.value, t) for k, t in sorted(links.items())],
    )


async def reachable(
    conn: asyncpg.Connection, sandbox: str, start: Iterable[Node], limit: int
) -> tuple[dict[Node, Seen], dict[Link, datetime]]:
    """Every identity linked to ``start`` through stored links (whatever the rules
    decided about them), with the links between them; at most ``limit`` identities."""
    starts = sorted(set(start))
    rows = await conn.fetch(
        """WITH RECURSIVE reach(namespace, value) AS (
               SELECT * FROM unnest($2::text[], $3::text[])
               UNION
               SELECT n.namespace, n.value
               FROM reach r
               CROSS JOIN LATERAL (
                   SELECT b_namespace AS namespace, b_value AS value FROM links
                   WHERE sandbox = $1 AND a_namespace = r.namespace AND a_value = r.value
                   UNION ALL
                   SELECT a_namespace, a_value FROM links
                   WHERE sandbox = $1 AND b_namespace = r.namespace AND b_value = r.value
               ) n
           )
           SELECT i.namespace, i.value, i.first_seen, i.last_seen
           FROM (SELECT * FROM reach LIMIT $4) r
           JOIN identities i ON i.sandbox = $1 AND i.namespace = r.namespace AND i.value = r.value""",
        sandbox,
        [n.namespace for n in starts],
        [n.value for n in starts],
        limit,
    )
    nodes = {Node(r["namespace"], r["value"]): Seen(r["first_seen"], r["last_seen"]) for r in rows}
    link_rows = await conn.fetch(
        """SELECT l.a_namespace, l.a_value, l.b_namespace, l.b_value, l.last_seen
           FROM links l
           JOIN unnest($2::text[], $3::text[]) AS a(namespace, value)
             ON l.a_namespace = a.namespace AND l.a_value = a.value
           WHERE l.sandbox = $1""",
        sandbox,
        [n.namespace for n in nodes],
        [n.value for n in nodes],
    )
    links = {
        Link(Node(r["a_namespace"], r["a_value"]), Node(r["b_namespace"], r["b_value"])): r["last_seen"]
        for r in link_rows
    }
    return nodes, {k: t for k, t in links.items() if k.b in nodes}


async def members_of(conn: asyncpg.Connection, sandbox: str, nodes: Iterable[Node]) -> dict[Node, str]:
    listed = list(nodes)
    rows = await conn.fetch(
        """SELECT m.namespace, m.value, m.profile_id FROM members m
           JOIN unnest($2::text[], $3::text[]) AS n(namespace, value)
             ON m.namespace = n.namespace AND m.value = n.value
           WHERE m.sandbox = $1""",
        sandbox,
        [n.namespace for n in listed],
        [n.value for n in listed],
    )
    return {Node(r["namespace"], r["value"]): str(r["profile_id"]) for r in rows}


async def rewrite(
    conn: asyncpg.Connection,
    sandbox: str,
    nodes: Iterable[Node],
    members: Mapping[Node, str],
    decisions: Mapping[Link, str],
    evicted: Iterable[Node],
) -> None:
    """Replace the derived state of ``nodes`` (members, link decisions, evictions)."""
    listed = list(nodes)
    namespaces, values = [n.namespace for n in listed], [n.value for n in listed]
    for table, a, b in (
        ("members", "namespace", "value"),
        ("evictions", "namespace", "value"),
        ("link_decisions", "a_namespace", "a_value"),
    ):
        await conn.execute(
            f"""DELETE FROM {table} t USING unnest($2::text[], $3::text[]) AS n(namespace, value)
                WHERE t.sandbox = $1 AND t.{a} = n.namespace AND t.{b} = n.value""",
            sandbox,
            namespaces,
            values,
        )
    await conn.executemany(
        "INSERT INTO members (sandbox, namespace, value, profile_id) VALUES ($1, $2, $3, $4)",
        [(sandbox, n.namespace, n.value, p) for n, p in sorted(members.items())],
    )
    await conn.executemany(
        "INSERT INTO evictions (sandbox, namespace, value) VALUES ($1, $2, $3)",
        [(sandbox, n.namespace, n.value) for n in sorted(evicted)],
    )
    await conn.executemany(
        """INSERT INTO link_decisions (sandbox, a_namespace, a_value, b_namespace, b_value, decision)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        [
            (sandbox, k.a.namespace, k.a.value, k.b.namespace, k.b.value, d)
            for k, d in sorted(decisions.items())
        ],
    )


async def record_merges(conn: asyncpg.Connection, sandbox: str, merged: Mapping[str, str]) -> None:
    await conn.executemany(
        """INSERT INTO merged_profiles (sandbox, profile_id, merged_into) VALUES ($1, $2, $3)
           ON CONFLICT (sandbox, profile_id) DO UPDATE SET merged_into = EXCLUDED.merged_into,
               merged_at = now()""",
        [(sandbox, old, new) for old, new in sorted(merged.items())],
    )
    # An id merged earlier into one that is now merged itself follows it.
    await conn.executemany(
        "UPDATE merged_profiles SET merged_into = $3 WHERE sandbox = $1 AND merged_into = $2",
        [(sandbox, old, new) for old, new in sorted(merged.items())],
    )
    # A profile that exists again (a split brought its anchor back) is not merged any more.
    await conn.execute(
        """DELETE FROM merged_profiles mp WHERE mp.sandbox = $1
           AND EXISTS (SELECT 1 FROM members m WHERE m.sandbox = $1 AND m.profile_id = mp.profile_id)""",
        sandbox,
    )


async def profile_of(conn: asyncpg.Connection, sandbox: str, node: Node) -> str | None:
    value: object = await conn.fetchval(
        "SELECT profile_id FROM members WHERE sandbox = $1 AND namespace = $2 AND value = $3",
        sandbox,
        node.namespace,
        node.value,
    )
    return str(value) if value is not None else None


async def members_of_profile(conn: asyncpg.Connection, sandbox: str, profile_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT m.namespace, m.value, i.first_seen, i.last_seen FROM members m
           JOIN identities i USING (sandbox, namespace, value)
           WHERE m.sandbox = $1 AND m.profile_id = $2 ORDER BY m.namespace, m.value""",
        sandbox,
        profile_id,
    )
    return rows


async def decisions_around(
    conn: asyncpg.Connection, sandbox: str, nodes: Iterable[Node]
) -> list[asyncpg.Record]:
    listed = list(nodes)
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT d.* FROM link_decisions d
           JOIN unnest($2::text[], $3::text[]) AS n(namespace, value)
             ON (d.a_namespace = n.namespace AND d.a_value = n.value)
             OR (d.b_namespace = n.namespace AND d.b_value = n.value)
           WHERE d.sandbox = $1 ORDER BY d.a_namespace, d.a_value, d.b_namespace, d.b_value""",
        sandbox,
        [n.namespace for n in listed],
        [n.value for n in listed],
    )
    return rows


async def is_evicted(conn: asyncpg.Connection, sandbox: str, node: Node) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM evictions WHERE sandbox = $1 AND namespace = $2 AND value = $3)",
        sandbox,
        node.namespace,
        node.value,
    )
    return found


async def merged_into(conn: asyncpg.Connection, sandbox: str, profile_id: str) -> str | None:
    value: object = await conn.fetchval(
        "SELECT merged_into FROM merged_profiles WHERE sandbox = $1 AND profile_id = $2", sandbox, profile_id
    )
    return str(value) if value is not None else None
