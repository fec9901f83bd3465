"""SQL of the dead-letter store behind ``GET /v1/dlq``."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from asyncpg import Record as Row

from itinera.common.kafka.deadletter import DeadLetter


def _text(value: str | None) -> str | None:
    return value.replace("\x00", "\ufffd") if value is not None else None


def _storable(letter: DeadLetter) -> tuple[Any, str | None, list[dict[str, Any]]]:
    """PostgreSQL's jsonb cannot hold U+0000: such a payload is kept as base64 of its
    JSON, and NULs in reasons (which quote field names) become U+FFFD."""
    payload, payload_base64 = letter.payload, letter.payload_base64
    if payload is not None:
        serialized = orjson.dumps(payload)
        if b"\\u0000" in serialized:
            payload, payload_base64 = None, base64.b64encode(serialized).decode()
    reasons = [{k: _text(v) for k, v in r.model_dump(mode="json").items()} for r in letter.reasons]
    return payload, payload_base64, reasons


async def insert(conn: asyncpg.Connection, letters: Sequence[DeadLetter]) -> None:
    """Store dead letters; a redelivered one (same id) is stored once."""
    await conn.executemany(
        """INSERT INTO dead_letters (id, sandbox, kind, received_at, connection_id, dataset_id,
                                     origin, reasons, payload, payload_base64)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (id) DO NOTHING""",
        [
            (
                d.id,
                d.sandbox,
                d.kind,
                d.received_at,
                _text(d.origin.connection_id),
                _text(d.origin.dataset_id),
                {
                    k: _text(v) if isinstance(v, str) else v
                    for k, v in d.origin.model_dump(mode="json", by_alias=True, exclude_none=True).items()
                },
                reasons,
                payload,
                payload_base64,
            )
            for d in letters
            for payload, payload_base64, reasons in [_storable(d)]
        ],
    )


async def page(
    conn: asyncpg.Connection,
    *,
    sandbox: str,
    dataset_id: str | None,
    connection_id: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Row]:
    """Newest first; ``before`` is the (received_at, id) of the last item of the previous page."""
    rows: list[Row] = await conn.fetch(
        """SELECT * FROM dead_letters
           WHERE sandbox = $1
             AND ($2::text IS NULL OR dataset_id = $2)
             AND ($3::text IS NULL OR connection_id = $3)
             AND ($4::timestamptz IS NULL OR (received_at, id) < ($4, $5))
           ORDER BY received_at DESC, id DESC
           LIMIT $6""",
        sandbox,
        dataset_id,
        connection_id,
        before[0] if before else None,
        before[1] if before else "",
        limit,
    )
    return rows


async def get(conn: asyncpg.Connection, sandbox: str, letter_id: str) -> Row | None:
    row: Row | None = await conn.fetchrow(
        "SELECT * FROM dead_letters WHERE sandbox = $1 AND id = $2", sandbox, letter_id
    )
    return row
