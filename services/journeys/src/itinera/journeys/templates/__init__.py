"""The templates the content service has published, kept from ``itinera.content.v1``
(consumer group ``itinera-journeys-content``) for the checks of publishing: a message
node names a template of its sandbox, published and not deleted, for its channel.

A record carries a template's whole current version; records of one template come in
version order on one partition, and an older version than the one kept changes
nothing, so a redelivery is harmless. Fragments are not kept: journeys never name them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import asyncpg

from itinera.common.errors import FieldError
from itinera.common.kafka.consumer import PermanentError, Record

CHANNELS = frozenset({"email", "sms", "push", "webhook"})


class Announced(NamedTuple):
    sandbox: str
    id: str
    channel: str
    version: int
    deleted: bool


def _parsed(record: Record, default_sandbox: str) -> Announced | None:
    """The template record's row; None for a fragment's."""
    data = record.json()
    if not isinstance(data, dict):
        raise PermanentError([FieldError("", "expected an object", "type")])
    if data.get("kind") == "fragment":
        return None
    problems = []
    if data.get("kind") != "template":
        problems.append(FieldError("/kind", "expected template or fragment", "enum"))
    if not isinstance(data.get("id"), str) or not data["id"]:
        problems.append(FieldError("/id", "expected the template's id", "required"))
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        problems.append(FieldError("/version", "expected a version number", "type"))
    deleted = data.get("deleted")
    if not isinstance(deleted, bool):
        problems.append(FieldError("/deleted", "expected a boolean", "type"))
    channel = data.get("channel")
    if not deleted and channel not in CHANNELS:
        problems.append(FieldError("/channel", f"expected one of {', '.join(sorted(CHANNELS))}", "enum"))
    if problems:
        raise PermanentError(problems)
    assert isinstance(version, int)
    return Announced(
        str(data.get("sandbox") or record.sandbox or default_sandbox),
        data["id"],
        channel if isinstance(channel, str) else "",
        version,
        bool(deleted),
    )


class TemplatesHandler:
    """Keeps the latest version announced of each template, in one statement a batch."""

    def __init__(self, pool: asyncpg.Pool, default_sandbox: str) -> None:
        self.pool = pool
        self.default_sandbox = default_sandbox

    async def __call__(self, batch: list[Record]) -> None:
        latest: dict[tuple[str, str], Announced] = {}
        for record in batch:
            row = _parsed(record, self.default_sandbox)
            if row is None:
                continue
            kept = latest.get((row.sandbox, row.id))
            if kept is None or row.version >= kept.version:
                latest[(row.sandbox, row.id)] = row
        if not latest:
            return
        async with self.pool.acquire() as conn:
            await conn.execute(
                """INSERT INTO templates (sandbox, id, channel, version, deleted)
                   SELECT r.s, r.i, r.c, r.v, r.d
                   FROM jsonb_to_recordset($1::jsonb) AS r(s text, i text, c text, v integer, d boolean)
                   ON CONFLICT (sandbox, id) DO UPDATE
                   SET channel = CASE WHEN EXCLUDED.deleted THEN templates.channel ELSE EXCLUDED.channel END,
                       version = EXCLUDED.version, deleted = EXCLUDED.deleted, updated_at = now()
                   WHERE templates.version <= EXCLUDED.version""",
                [
                    {"s": r.sandbox, "i": r.id, "c": r.channel, "v": r.version, "d": r.deleted}
                    for r in latest.values()
                ],
            )


async def published(conn: asyncpg.Connection, sandbox: str, ids: Iterable[str]) -> dict[str, str]:
    """Template id -> channel, for those of ``ids`` published and not deleted in the sandbox."""
    listed = sorted(set(ids))
    if not listed:
        return {}
    rows = await conn.fetch(
        "SELECT id, channel FROM templates WHERE sandbox = $1 AND id = ANY($2::text[]) AND NOT deleted",
        sandbox,
        listed,
    )
    return {r["id"]: r["channel"] for r in rows}
