"""SQL of the suppression list: addresses (email addresses, phone numbers, push tokens)
and email domains, each on the client (suppressed) or the allowed list."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

TABLES = {"addresses": "suppressed_addresses", "domains": "suppressed_domains"}


def normal(value: str, entity_type: str) -> str:
    """How a value is kept and looked up: email addresses and domains in lower case;
    phone numbers and push tokens as given (a token's case matters)."""
    value = value.strip()
    return value.lower() if entity_type in ("email", "domain") else value


def domains_of(address: str) -> list[str]:
    """The email address's domain and the domains above it (``a.b.com``, ``b.com``)."""
    _, at, domain = address.rpartition("@")
    if not at or not domain:
        return []
    labels = domain.lower().rstrip(".").split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)] or [domain.lower()]


_REFRESH = """ON CONFLICT (sandbox, list_type, value) DO UPDATE SET
    reason = EXCLUDED.reason, suppressed_by = EXCLUDED.suppressed_by, comment = EXCLUDED.comment,
    updated_at = now()"""
"""An entry listed again keeps its id and creation date, and takes the new reason,
author and comment."""
ENTITY_TYPES = {"email": "email", "sms": "phone", "push": "pushToken"}
"""The entity type of each channel's addresses (webhooks have none)."""


@dataclass(frozen=True)
class Screened:
    """What the lists say of a batch's (channel, address) pairs, as given: why each
    suppressed one is, and the email addresses the allowed list keeps out."""

    suppressed: Mapping[tuple[str, str], str] = field(default_factory=dict)
    not_allowed: frozenset[tuple[str, str]] = frozenset()


async def screen(conn: asyncpg.Connection, sandbox: str, wanted: Iterable[tuple[str, str]]) -> Screened:
    """Look these (channel, address) pairs up in one statement. Suppressed: the address,
    or for email its domain or a domain above it, is on the client list. Not allowed
    (email only): the sandbox's allowed list is in force and neither the address nor its
    domain (nor one above it) is on it, so with the list in force and empty no email is
    allowed. Channels without addresses (webhook) are left out."""
    pairs = sorted({(c, a) for c, a in wanted if c in ENTITY_TYPES})
    if not pairs:
        return Screened()
    rows = await conn.fetch(
        """SELECT r.i,
                  coalesce(
                      (SELECT s.reason FROM suppressed_addresses s
                       WHERE s.sandbox = $1 AND s.list_type = 'client' AND s.value = r.v),
                      (SELECT s.reason FROM suppressed_domains s
                       WHERE s.sandbox = $1 AND s.list_type = 'client' AND s.value = ANY(r.d) LIMIT 1)
                  ) AS reason,
                  r.email
                  AND EXISTS (SELECT FROM allowed_lists l WHERE l.sandbox = $1 AND l.active)
                  AND NOT EXISTS (SELECT FROM suppressed_addresses s
                                  WHERE s.sandbox = $1 AND s.list_type = 'allowed' AND s.value = r.v)
                  AND NOT EXISTS (SELECT FROM suppressed_domains s
                                  WHERE s.sandbox = $1 AND s.list_type = 'allowed' AND s.value = ANY(r.d))
                  AS not_allowed
           FROM jsonb_to_recordset($2::jsonb) AS r(i integer, v text, d text[], email boolean)""",
        sandbox,
        [
            {
                "i": i,
                "v": normal(address, ENTITY_TYPES[channel]),
                "d": domains_of(address) if channel == "email" else [],
                "email": channel == "email",
            }
            for i, (channel, address) in enumerate(pairs)
        ],
    )
    return Screened(
        {pairs[row["i"]]: row["reason"] for row in rows if row["reason"] is not None},
        frozenset(pairs[row["i"]] for row in rows if row["not_allowed"]),
    )


async def allowed_list(conn: asyncpg.Connection, sandbox: str) -> asyncpg.Record | None:
    """The sandbox's allowed list setting (None: never set, so off)."""
    return await conn.fetchrow(
        "SELECT active, updated_by, updated_at FROM allowed_lists WHERE sandbox = $1", sandbox
    )


async def set_allowed_list(
    conn: asyncpg.Connection, sandbox: str, active: bool, user: str | None
) -> asyncpg.Record:
    row = await conn.fetchrow(
        """INSERT INTO allowed_lists (sandbox, active, updated_by) VALUES ($1, $2, $3)
           ON CONFLICT (sandbox) DO UPDATE SET
               active = EXCLUDED.active, updated_by = EXCLUDED.updated_by, updated_at = now()
           RETURNING active, updated_by, updated_at""",
        sandbox,
        active,
        user,
    )
    assert row is not None
    return row


async def add(
    conn: asyncpg.Connection,
    kind: str,
    sandbox: str,
    list_type: str,
    entries: Sequence[dict[str, Any]],
) -> list[asyncpg.Record]:
    """Add (or refresh) entries ``{value, entity_type, reason, user, comment}`` of
    ``kind`` (``addresses``, ``domains``) in one statement, whatever their number; an
    entry already listed keeps its id and creation date and takes the new reason and
    comment. The rows, in the entries' order (a value given twice: its last entry)."""
    if not entries:
        return []
    last = list({e["value"]: e for e in entries}.values())
    columns = [
        [e["value"] for e in last],
        [e["reason"] for e in last],
        [e.get("user") for e in last],
        [e.get("comment") for e in last],
    ]
    if kind == "addresses":
        rows = await conn.fetch(
            f"""INSERT INTO suppressed_addresses
                   (sandbox, value, id, entity_type, list_type, reason, suppressed_by, comment)
               SELECT $1, r.value, gen_random_uuid(), r.entity_type, $2, r.reason, r.author, r.comment
               FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
                    AS r(value, reason, author, comment, entity_type)
               {_REFRESH}
               RETURNING *""",
            sandbox,
            list_type,
            *columns,
            [e["entity_type"] for e in last],
        )
    else:
        rows = await conn.fetch(
            f"""INSERT INTO suppressed_domains (sandbox, value, id, list_type, reason, suppressed_by, comment)
               SELECT $1, r.value, gen_random_uuid(), $2, r.reason, r.author, r.comment
               FROM unnest($3::text[], $4::text[], $5::text[], $6::text[])
                    AS r(value, reason, author, comment)
               {_REFRESH}
               RETURNING *""",
            sandbox,
            list_type,
            *columns,
        )
    by_value = {row["value"]: row for row in rows}
    return [by_value[e["value"]] for e in entries]


async def record_bounce(
    conn: asyncpg.Connection,
    sandbox: str,
    value: str,
    entity_type: str,
    reason: str,
    events: Sequence[dict[str, Any]],
    soft_count: int,
) -> None:
    """Suppress an address after bounces or a refusal (``reason`` ``hard`` or ``soft``),
    adding ``events`` to its bounce state and setting its soft count; an entry already
    listed for another reason (manual, unsubscribe, complaint) keeps that reason."""
    await conn.execute(
        """INSERT INTO suppressed_addresses
               (sandbox, value, id, entity_type, list_type, reason, suppressed_by, comment,
                soft_count, bounce_events)
           VALUES ($1, $2, $3, $4, 'client', $5, 'itinera-channels', $6, $7, $8::jsonb)
           ON CONFLICT (sandbox, list_type, value) DO UPDATE SET
               reason = CASE WHEN suppressed_addresses.reason IN ('soft', 'hard')
                             THEN EXCLUDED.reason ELSE suppressed_addresses.reason END,
               soft_count = EXCLUDED.soft_count,
               bounce_events = suppressed_addresses.bounce_events || EXCLUDED.bounce_events,
               updated_at = now()""",
        sandbox,
        value,
        uuid.uuid4(),
        entity_type,
        reason,
        events[-1].get("message") if events else None,
        soft_count,
        list(events),
    )


async def count_soft_bounce(
    conn: asyncpg.Connection,
    sandbox: str,
    value: str,
    entity_type: str,
    event: dict[str, Any],
    *,
    now: datetime,
    period_s: float,
) -> list[dict[str, Any]]:
    """Count a soft bounce of the address, forgetting those older than the period: the
    soft bounces that count now, oldest first (this one last)."""
    events: list[dict[str, Any]] = await conn.fetchval(
        """INSERT INTO soft_bounces (sandbox, value, entity_type, events, updated_at)
           VALUES ($1, $2, $3, jsonb_build_array($4::jsonb), $5)
           ON CONFLICT (sandbox, value) DO UPDATE SET
               events = coalesce(
                   (SELECT jsonb_agg(e.event ORDER BY e.n)
                    FROM jsonb_array_elements(soft_bounces.events) WITH ORDINALITY AS e(event, n)
                    WHERE (e.event ->> 'date')::timestamptz > $5 - make_interval(secs => $6)),
                   '[]'::jsonb) || EXCLUDED.events,
               updated_at = $5
           RETURNING events""",
        sandbox,
        value,
        entity_type,
        event,
        now,
        period_s,
    )
    return events


async def delete_all(conn: asyncpg.Connection, sandbox: str) -> int:
    """Take every entry of the sandbox's suppression list (not of its allowed list) off,
    and forget the soft bounces counted; how many entries there were."""
    count = 0
    for table in TABLES.values():
        status: str = await conn.execute(
            f"DELETE FROM {table} WHERE sandbox = $1 AND list_type = 'client'", sandbox
        )
        count += int(status.rsplit(" ", 1)[1])
    await conn.execute("DELETE FROM soft_bounces WHERE sandbox = $1", sandbox)
    return count


async def take_soft_bounces(conn: asyncpg.Connection, sandbox: str, value: str) -> list[dict[str, Any]]:
    """Forget the address's soft bounces (it was delivered to, or is being suppressed);
    the ones there were, oldest first."""
    events: list[dict[str, Any]] | None = await conn.fetchval(
        "DELETE FROM soft_bounces WHERE sandbox = $1 AND value = $2 RETURNING events", sandbox, value
    )
    return events or []


async def one(
    conn: asyncpg.Connection, kind: str, sandbox: str, list_type: str, value: str
) -> asyncpg.Record | None:
    if "\x00" in value:  # PostgreSQL text holds none: nothing can match
        return None
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""SELECT * FROM {TABLES[kind]} WHERE sandbox = $1 AND list_type = $2 AND value IN ($3, lower($3))
            ORDER BY value = $3 DESC LIMIT 1""",
        sandbox,
        list_type,
        value.strip(),
    )
    return row


async def delete(
    conn: asyncpg.Connection, kind: str, sandbox: str, list_type: str, value: str
) -> asyncpg.Record | None:
    found = await one(conn, kind, sandbox, list_type, value)
    if found is None:
        return None
    await conn.execute(
        f"DELETE FROM {TABLES[kind]} WHERE sandbox = $1 AND list_type = $2 AND value = $3",
        sandbox,
        list_type,
        found["value"],
    )
    return found


async def page(
    conn: asyncpg.Connection,
    kind: str,
    sandbox: str,
    list_type: str,
    order: str,
    descending: bool,
    after: tuple[datetime | None, str] | None,
    limit: int,
    filters: Sequence[tuple[str, str, Any]] = (),
) -> list[asyncpg.Record]:
    """One page in the order asked, after the key ``after`` (creation time and value, or
    value alone when ordered by value); one row more than ``limit``, to know of a next.
    ``filters``: ``(property, operator, value)``, ``creationdate`` (a time) or
    ``channel`` (an entity type; a domain's is ``email``), compared with ``=``, ``<>``,
    ``<``, ``<=``, ``>``, ``>=``."""
    direction = "DESC" if descending else "ASC"
    compare = "<" if descending else ">"
    table = TABLES[kind]
    created = "date_trunc('milliseconds', created_at)"
    if order == "entityvalue":
        keys, start = f"value {direction}", f"value {compare} $3"
        args: list[Any] = [after[1]] if after else []
    else:
        keys = f"{created} {direction}, value {direction}"
        start = f"({created}, value) {compare} ($3, $4)"
        args = [after[0], after[1]] if after else []
    where = f"sandbox = $1 AND list_type = $2{' AND ' + start if after else ''}"
    columns = {"creationdate": "created_at", "channel": "entity_type" if kind == "addresses" else "'email'"}
    for name, operator, value in filters:
        assert operator in ("=", "<>", "<", "<=", ">", ">="), operator  # never caller text
        args.append(value)
        where += f" AND {columns[name]} {operator} ${2 + len(args)}"
    limit_arg = f"${3 + len(args)}"
    return list(
        await conn.fetch(
            f"SELECT * FROM {table} WHERE {where} ORDER BY {keys} LIMIT {limit_arg}",
            sandbox,
            list_type,
            *args,
            limit + 1,
        )
    )
