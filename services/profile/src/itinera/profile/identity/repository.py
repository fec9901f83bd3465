"""SQL of the identity graph: observations in, the derived graph out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from itinera.profile.identity.graph import Link, Node, Seen


async def observe(
    conn: asyncpg.Connection, sandbox: str, nodes: Mapping[Node, Seen], links: Mapping[Link, datetime]
) -> None:
    """Record identities and links; times only ever widen (first earlier, last later).
    A row whose times would not change is not written again."""
    listed = sorted(nodes.items())
    joined = sorted(links.items())
    await conn.execute(
        """WITH i AS (
               INSERT INTO identities (sandbox, namespace, value, first_seen, last_seen)
               SELECT $1, * FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[])
               ON CONFLICT (sandbox, namespace, value) DO UPDATE
               SET first_seen = least(identities.first_seen, EXCLUDED.first_seen),
                   last_seen = greatest(identities.last_seen, EXCLUDED.last_seen)
               WHERE identities.first_seen > EXCLUDED.first_seen
                  OR identities.last_seen < EXCLUDED.last_seen
           ), l AS (
               INSERT INTO links (sandbox, a_namespace, a_value, b_namespace, b_value, last_seen)
               SELECT $1, * FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[])
               ON CONFLICT (sandbox, a_namespace, a_value, b_namespace, b_value) DO UPDATE
               SET last_seen = EXCLUDED.last_seen
               WHERE links.last_seen < EXCLUDED.last_seen
           )
           SELECT 1""",
        sandbox,
        [n.namespace for n, _ in listed],
        [n.value for n, _ in listed],
        [s.first for _, s in listed],
        [s.last for _, s in listed],
        [k.a.namespace for k, _ in joined],
        [k.a.value for k, _ in joined],
        [k.b.namespace for k, _ in joined],
        [k.b.value for k, _ in joined],
        [t for _, t in joined],
    )


@dataclass
class Reach:
    """The part of the graph some identities reach through stored links, with the
    state derived from it so far (what the rules decided last time)."""

    nodes: dict[Node, Seen] = field(default_factory=dict)
    links: dict[Link, datetime] = field(default_factory=dict)
    members: dict[Node, str] = field(default_factory=dict)
    evicted: set[Node] = field(default_factory=set)
    decisions: dict[Link, str] = field(default_factory=dict)


async def reachable(conn: asyncpg.Connection, sandbox: str, start: Iterable[Node], limit: int) -> Reach:
    """Every identity linked to ``start`` through stored links (whatever the rules
    decided about them), with the links between them and their derived state; at most
    ``limit`` identities."""
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
           SELECT i.namespace, i.value, i.first_seen, i.last_seen, m.profile_id,
                  e.namespace IS NOT NULL AS evicted
           FROM (SELECT * FROM reach LIMIT $4) r
           JOIN identities i ON i.sandbox = $1 AND i.namespace = r.namespace AND i.value = r.value
           LEFT JOIN members m ON m.sandbox = $1 AND m.namespace = r.namespace AND m.value = r.value
           LEFT JOIN evictions e ON e.sandbox = $1 AND e.namespace = r.namespace AND e.value = r.value""",
        sandbox,
        [n.namespace for n in starts],
        [n.value for n in starts],
        limit,
    )
    reach = Reach()
    for r in rows:
        node = Node(r["namespace"], r["value"])
        reach.nodes[node] = Seen(r["first_seen"], r["last_seen"])
        if r["profile_id"] is not None:
            reach.members[node] = str(r["profile_id"])
        if r["evicted"]:
            reach.evicted.add(node)
    link_rows = await conn.fetch(
        """SELECT l.a_namespace, l.a_value, l.b_namespace, l.b_value, l.last_seen, d.decision
           FROM unnest($2::text[], $3::text[]) AS a(namespace, value)
           JOIN links l ON l.sandbox = $1 AND l.a_namespace = a.namespace AND l.a_value = a.value
           LEFT JOIN link_decisions d ON d.sandbox = $1
               AND (d.a_namespace, d.a_value, d.b_namespace, d.b_value)
                 = (l.a_namespace, l.a_value, l.b_namespace, l.b_value)""",
        sandbox,
        [n.namespace for n in reach.nodes],
        [n.value for n in reach.nodes],
    )
    for r in link_rows:
        link = Link(Node(r["a_namespace"], r["a_value"]), Node(r["b_namespace"], r["b_value"]))
        if link.b not in reach.nodes:
            continue
        reach.links[link] = r["last_seen"]
        if r["decision"] is not None:
            reach.decisions[link] = r["decision"]
    return reach


def _columns(nodes: Iterable[Node]) -> tuple[list[str], list[str]]:
    listed = sorted(nodes)
    return [n.namespace for n in listed], [n.value for n in listed]


async def rewrite(
    conn: asyncpg.Connection,
    sandbox: str,
    reach: Reach,
    members: Mapping[Node, str],
    decisions: Mapping[Link, str],
    evicted: Iterable[Node],
) -> None:
    """Bring the derived state of ``reach`` (members, link decisions, evictions) to
    what the rules now say, writing only what differs."""
    moved = {n: p for n, p in members.items() if reach.members.get(n) != p}
    gone = [n for n in reach.members if n not in members]
    if moved:
        listed = sorted(moved.items())
        await conn.execute(
            """INSERT INTO members (sandbox, namespace, value, profile_id)
               SELECT $1, * FROM unnest($2::text[], $3::text[], $4::uuid[])
               ON CONFLICT (sandbox, namespace, value) DO UPDATE SET profile_id = EXCLUDED.profile_id""",
            sandbox,
            [n.namespace for n, _ in listed],
            [n.value for n, _ in listed],
            [p for _, p in listed],
        )
    now_evicted = set(evicted)
    for table, rows in (("members", gone), ("evictions", reach.evicted - now_evicted)):
        if rows:
            await conn.execute(
                f"""DELETE FROM {table} t USING unnest($2::text[], $3::text[]) AS n(namespace, value)
                    WHERE t.sandbox = $1 AND t.namespace = n.namespace AND t.value = n.value""",
                sandbox,
                *_columns(rows),
            )
    if now_evicted - reach.evicted:
        await conn.execute(
            """INSERT INTO evictions (sandbox, namespace, value)
               SELECT $1, * FROM unnest($2::text[], $3::text[]) ON CONFLICT DO NOTHING""",
            sandbox,
            *_columns(now_evicted - reach.evicted),
        )
    undecided = sorted(link for link in reach.decisions if link not in decisions)
    if undecided:
        await conn.execute(
            """DELETE FROM link_decisions d
               USING unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS l(an, av, bn, bv)
               WHERE d.sandbox = $1 AND (d.a_namespace, d.a_value, d.b_namespace, d.b_value)
                   = (l.an, l.av, l.bn, l.bv)""",
            sandbox,
            [k.a.namespace for k in undecided],
            [k.a.value for k in undecided],
            [k.b.namespace for k in undecided],
            [k.b.value for k in undecided],
        )
    decided = sorted((k, d) for k, d in decisions.items() if reach.decisions.get(k) != d)
    if decided:
        await conn.execute(
            """INSERT INTO link_decisions (sandbox, a_namespace, a_value, b_namespace, b_value, decision)
               SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
               ON CONFLICT (sandbox, a_namespace, a_value, b_namespace, b_value) DO UPDATE
               SET decision = EXCLUDED.decision, decided_at = now()""",
            sandbox,
            [k.a.namespace for k, _ in decided],
            [k.a.value for k, _ in decided],
            [k.b.namespace for k, _ in decided],
            [k.b.value for k, _ in decided],
            [d for _, d in decided],
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
