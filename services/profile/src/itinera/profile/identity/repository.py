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
    await conn.execute(
        """WITH i AS (
               INSERT INTO identities (sandbox, namespace, value, first_seen, last_seen)
               SELECT $1, r.n, r.v, r.f, r.l
               FROM jsonb_to_recordset($2::jsonb) AS r(n text, v text, f timestamptz, l timestamptz)
               ON CONFLICT (sandbox, namespace, value) DO UPDATE
               SET first_seen = least(identities.first_seen, EXCLUDED.first_seen),
                   last_seen = greatest(identities.last_seen, EXCLUDED.last_seen)
               WHERE identities.first_seen > EXCLUDED.first_seen
                  OR identities.last_seen < EXCLUDED.last_seen
           ), l AS (
               INSERT INTO links (sandbox, a_namespace, a_value, b_namespace, b_value, last_seen)
               SELECT $1, r.an, r.av, r.bn, r.bv, r.t
               FROM jsonb_to_recordset($3::jsonb) AS r(an text, av text, bn text, bv text, t timestamptz)
               ON CONFLICT (sandbox, a_namespace, a_value, b_namespace, b_value) DO UPDATE
               SET last_seen = EXCLUDED.last_seen
               WHERE links.last_seen < EXCLUDED.last_seen
           )
           SELECT 1""",
        sandbox,
        [{"n": n.namespace, "v": n.value, "f": s.first, "l": s.last} for n, s in sorted(nodes.items())],
        [
            {"an": k.a.namespace, "av": k.a.value, "bn": k.b.namespace, "bv": k.b.value, "t": t}
            for k, t in sorted(links.items())
        ],
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
    cut: set[Node] = field(default_factory=set)
    """Identities of the reach with stored links to identities beyond it: empty unless
    the limit cut the reach short."""


async def reachable(conn: asyncpg.Connection, sandbox: str, start: Iterable[Node], limit: int) -> Reach:
    """Every identity linked to ``start`` through stored links (whatever the rules
    decided about them), with the links between them and their derived state; at most
    ``limit`` identities, or all of ``start`` when it holds more (it comes first). One
    statement: identity rows (``kind`` n) and link rows (l).

    Every look-up is a LATERAL probe of a primary key or index, so the plan does not
    depend on the planner's idea of how large the tables are. ``OFFSET 0`` keeps each
    one a probe: without it PostgreSQL may turn a probe into a hash join over every row
    of the sandbox, which it prefers when it expects a large reach (``found`` is
    estimated at the limit) or when a table has grown since it was last analysed (a
    fresh one: 11 ms a batch instead of 2 at 18,000 identities)."""
    rows = await conn.fetch(
        """WITH RECURSIVE reach(namespace, value) AS (
               SELECT r.n, r.v FROM jsonb_to_recordset($2::jsonb) AS r(n text, v text)
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
           ), found AS MATERIALIZED (
               SELECT * FROM reach LIMIT greatest($3, jsonb_array_length($2::jsonb))
           )
           SELECT 'n' AS kind, f.namespace AS a_namespace, f.value AS a_value,
                  NULL AS b_namespace, NULL AS b_value, i.first_seen, i.last_seen,
                  m.profile_id, e.evicted IS NOT NULL AS evicted, NULL AS decision
           FROM found f
           CROSS JOIN LATERAL (
               SELECT first_seen, last_seen FROM identities
               WHERE sandbox = $1 AND namespace = f.namespace AND value = f.value OFFSET 0
           ) i
           LEFT JOIN LATERAL (
               SELECT profile_id FROM members
               WHERE sandbox = $1 AND namespace = f.namespace AND value = f.value OFFSET 0
           ) m ON true
           LEFT JOIN LATERAL (
               SELECT true AS evicted FROM evictions
               WHERE sandbox = $1 AND namespace = f.namespace AND value = f.value OFFSET 0
           ) e ON true
           UNION ALL
           SELECT 'l', l.a_namespace, l.a_value, l.b_namespace, l.b_value, NULL, l.last_seen,
                  NULL, NULL, d.decision
           FROM found f
           JOIN LATERAL (
               SELECT * FROM links
               WHERE sandbox = $1 AND a_namespace = f.namespace AND a_value = f.value OFFSET 0
           ) l ON true
           LEFT JOIN LATERAL (
               SELECT decision FROM link_decisions
               WHERE sandbox = $1 AND a_namespace = l.a_namespace AND a_value = l.a_value
                 AND b_namespace = l.b_namespace AND b_value = l.b_value OFFSET 0
           ) d ON true""",
        sandbox,
        [{"n": n.namespace, "v": n.value} for n in sorted(set(start))],
        limit,
    )
    reach = Reach()
    links = []
    for r in rows:
        a = Node(r["a_namespace"], r["a_value"])
        if r["kind"] == "n":
            reach.nodes[a] = Seen(r["first_seen"], r["last_seen"])
            if r["profile_id"] is not None:
                reach.members[a] = str(r["profile_id"])
            if r["evicted"]:
                reach.evicted.add(a)
        else:
            links.append((Link(a, Node(r["b_namespace"], r["b_value"])), r["last_seen"], r["decision"]))
    outward: set[Node] = set()
    for link, seen, decision in links:
        if link.b in reach.nodes:
            reach.links[link] = seen
            if decision is not None:
                reach.decisions[link] = decision
        else:  # a link out of a reach the limit cut short is left out
            outward.add(link.a)
    if len(reach.nodes) >= limit:
        reach.cut = outward | await _linked_from_beyond(conn, sandbox, reach.nodes)
    return reach


async def _linked_from_beyond(
    conn: asyncpg.Connection, sandbox: str, found: Mapping[Node, Seen]
) -> set[Node]:
    """The identities of ``found`` that are the ``b`` end of a link from outside it (the
    links read by :func:`reachable` are those whose ``a`` end is in it)."""
    rows = await conn.fetch(
        """SELECT l.a_namespace, l.a_value, l.b_namespace, l.b_value
           FROM jsonb_to_recordset($2::jsonb) AS f(n text, v text)
           JOIN LATERAL (
               SELECT a_namespace, a_value, b_namespace, b_value FROM links
               WHERE sandbox = $1 AND b_namespace = f.n AND b_value = f.v OFFSET 0
           ) l ON true""",
        sandbox,
        node_keys(found),
    )
    return {
        Node(r["b_namespace"], r["b_value"])
        for r in rows
        if Node(r["a_namespace"], r["a_value"]) not in found
    }


def node_keys(nodes: Iterable[Node]) -> list[dict[str, str]]:
    """Identities as rows for ``jsonb_to_recordset($n::jsonb) AS k(n text, v text)``: one
    parameter, whatever the number (arrays cost asyncpg a type check per element)."""
    return [{"n": n.namespace, "v": n.value} for n in sorted(nodes)]


def _link_keys(links: Iterable[Link]) -> list[dict[str, str]]:
    return [
        {"an": k.a.namespace, "av": k.a.value, "bn": k.b.namespace, "bv": k.b.value} for k in sorted(links)
    ]


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
        await conn.execute(
            """INSERT INTO members (sandbox, namespace, value, profile_id)
               SELECT $1, r.n, r.v, r.p FROM jsonb_to_recordset($2::jsonb) AS r(n text, v text, p uuid)
               ON CONFLICT (sandbox, namespace, value) DO UPDATE SET profile_id = EXCLUDED.profile_id""",
            sandbox,
            [{"n": n.namespace, "v": n.value, "p": p} for n, p in sorted(moved.items())],
        )
    now_evicted = set(evicted)
    for table, rows in (("members", gone), ("evictions", reach.evicted - now_evicted)):
        if rows:
            await conn.execute(
                f"""DELETE FROM {table} t USING jsonb_to_recordset($2::jsonb) AS r(n text, v text)
                    WHERE t.sandbox = $1 AND t.namespace = r.n AND t.value = r.v""",
                sandbox,
                node_keys(rows),
            )
    if now_evicted - reach.evicted:
        await conn.execute(
            """INSERT INTO evictions (sandbox, namespace, value)
               SELECT $1, r.n, r.v FROM jsonb_to_recordset($2::jsonb) AS r(n text, v text)
               ON CONFLICT DO NOTHING""",
            sandbox,
            node_keys(now_evicted - reach.evicted),
        )
    undecided = [link for link in reach.decisions if link not in decisions]
    if undecided:
        await conn.execute(
            """DELETE FROM link_decisions d
               USING jsonb_to_recordset($2::jsonb) AS r(an text, av text, bn text, bv text)
               WHERE d.sandbox = $1 AND (d.a_namespace, d.a_value, d.b_namespace, d.b_value)
                   = (r.an, r.av, r.bn, r.bv)""",
            sandbox,
            _link_keys(undecided),
        )
    decided = sorted((k, d) for k, d in decisions.items() if reach.decisions.get(k) != d)
    if decided:
        await conn.execute(
            """INSERT INTO link_decisions (sandbox, a_namespace, a_value, b_namespace, b_value, decision)
               SELECT $1, r.an, r.av, r.bn, r.bv, r.d
               FROM jsonb_to_recordset($2::jsonb) AS r(an text, av text, bn text, bv text, d text)
               ON CONFLICT (sandbox, a_namespace, a_value, b_namespace, b_value) DO UPDATE
               SET decision = EXCLUDED.decision, decided_at = now()""",
            sandbox,
            [
                {"an": k.a.namespace, "av": k.a.value, "bn": k.b.namespace, "bv": k.b.value, "d": d}
                for k, d in decided
            ],
        )


async def record_merges(
    conn: asyncpg.Connection, sandbox: str, merged: Mapping[str, str], live: Iterable[str]
) -> None:
    """Record ``merged`` (old id -> surviving id); ids merged earlier into an old id
    follow it (unless merged again themselves: a resolution in part can leave a merged id
    holding identities, see ``IdentityGraph.resolve_around``). A ``live`` id (one that
    holds identities again, as when a split brings its anchor back) is not merged any more."""
    if merged:
        await conn.execute(
            """WITH m AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS r(old uuid, new uuid)),
               recorded AS (
                   INSERT INTO merged_profiles (sandbox, profile_id, merged_into)
                   SELECT $1, old, new FROM m
                   ON CONFLICT (sandbox, profile_id) DO UPDATE SET merged_into = EXCLUDED.merged_into,
                       merged_at = now()
               )
               UPDATE merged_profiles mp SET merged_into = m.new FROM m
               WHERE mp.sandbox = $1 AND mp.merged_into = m.old
                 AND NOT EXISTS (SELECT 1 FROM m AS again WHERE again.old = mp.profile_id)""",
            sandbox,
            [{"old": old, "new": new} for old, new in sorted(merged.items())],
        )
    listed = sorted(set(live))
    if listed:
        await conn.execute(
            "DELETE FROM merged_profiles WHERE sandbox = $1 AND profile_id = ANY($2::uuid[])", sandbox, listed
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


async def note_tangle(conn: asyncpg.Connection, sandbox: str, seeds: Iterable[Node]) -> None:
    """Ask for the tangle holding ``seeds`` to be resolved whole (an earlier note of the
    same identity keeps its time). The first 1,000 are enough: each names the whole
    tangle it is part of."""
    await conn.execute(
        """INSERT INTO graph_tangles (sandbox, namespace, value)
           SELECT $1, r.n, r.v FROM jsonb_to_recordset($2::jsonb) AS r(n text, v text)
           ON CONFLICT DO NOTHING""",
        sandbox,
        node_keys(seeds)[:1000],
    )


async def next_tangle(conn: asyncpg.Connection, settled_s: float) -> tuple[str, Node] | None:
    """The oldest noted tangle identity at least ``settled_s`` old, locked; None when none."""
    row = await conn.fetchrow(
        """SELECT sandbox, namespace, value FROM graph_tangles
           WHERE noted_at <= now() - make_interval(secs => $1)
           ORDER BY noted_at LIMIT 1 FOR UPDATE SKIP LOCKED""",
        settled_s,
    )
    return None if row is None else (row["sandbox"], Node(row["namespace"], row["value"]))


async def forget_tangles(conn: asyncpg.Connection, sandbox: str, nodes: Iterable[Node]) -> int:
    """Remove the notes of ``nodes`` (a tangle just resolved whole); how many there were."""
    removed: int = await conn.fetchval(
        """WITH gone AS (
               DELETE FROM graph_tangles t USING jsonb_to_recordset($2::jsonb) AS r(n text, v text)
               WHERE t.sandbox = $1 AND t.namespace = r.n AND t.value = r.v
               RETURNING 1
           )
           SELECT count(*) FROM gone""",
        sandbox,
        node_keys(nodes),
    )
    return removed
