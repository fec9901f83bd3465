"""What the template store consumes (group ``itinera-channels-content``): templates and
fragments on ``itinera.content.v1``, each record the whole current version of one of
them or its deletion. The latest version per kind and id is kept; an older or repeated
version changes nothing, so records delivered again or late are harmless."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from itinera.channels.content import repository
from itinera.common.errors import FieldError
from itinera.common.kafka.consumer import PermanentError, Record


def parsed(record: Record, default_sandbox: str) -> tuple[str, dict[str, Any]]:
    data = record.json()
    if not isinstance(data, dict):
        raise PermanentError([FieldError("", "expected an object", "type")])
    problems: list[FieldError] = []
    if data.get("kind") not in ("template", "fragment"):
        problems.append(FieldError("/kind", "expected template or fragment", "enum"))
    if not isinstance(data.get("id"), str) or not data["id"]:
        problems.append(FieldError("/id", "expected the template's or fragment's id", "required"))
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        problems.append(FieldError("/version", "expected a version number from 1", "type"))
    if not isinstance(data.get("deleted"), bool):
        problems.append(FieldError("/deleted", "expected true or false", "type"))
    elif not data["deleted"]:
        variants = data.get("variants")
        if not isinstance(variants, Mapping) or not all(isinstance(v, Mapping) for v in variants.values()):
            problems.append(FieldError("/variants", "expected the variants by locale", "type"))
        fragments = data.get("fragments", [])
        if not isinstance(fragments, list) or not all(isinstance(f, str) for f in fragments):
            problems.append(FieldError("/fragments", "expected a list of fragment ids", "type"))
        tracking = data.get("tracking")
        if tracking is not None and not (
            isinstance(tracking, Mapping) and all(isinstance(v, bool) for v in tracking.values())
        ):
            problems.append(FieldError("/tracking", "expected {opens, clicks}, each true or false", "type"))
    if problems:
        raise PermanentError(problems)
    return str(data.get("sandbox") or record.sandbox or default_sandbox), data


class ContentHandler:
    """Keeps the latest version of each template and fragment, one transaction a batch."""

    def __init__(self, pool: asyncpg.Pool, default_sandbox: str) -> None:
        self.pool = pool
        self.default_sandbox = default_sandbox

    async def __call__(self, batch: list[Record]) -> None:
        items = [parsed(record, self.default_sandbox) for record in batch]
        async with self.pool.acquire() as conn, conn.transaction():
            for sandbox, item in items:
                await repository.keep_latest(conn, sandbox, item)
