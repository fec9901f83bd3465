"""Kafka input: the profile service's changes and events, kept as the projection the
rules of audiences read (see ``projection.changes``), then evaluated against the
streaming audiences in the same transaction (see ``membership.service``)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import asyncpg

from itinera.common.errors import FieldError
from itinera.common.kafka import topics
from itinera.common.kafka.consumer import PermanentError, Record
from itinera.common.projection import event_problems, plan
from itinera.segmentation.membership.service import evaluate_streaming
from itinera.segmentation.projection import repository


def _checked(record: Record) -> tuple[str, dict[str, Any]]:
    """(kind, data) of a record, or a PermanentError naming what is wrong with it."""
    data = record.json()
    kind = "event" if record.topic == topics.PROFILE_EVENTS.name else "change"
    problems = []
    if not isinstance(data, dict):
        raise PermanentError([FieldError("", "expected an object", "type")])
    try:
        uuid.UUID(str(data.get("profileId")))
    except ValueError:
        problems.append(FieldError("/profileId", "expected a profile id (UUID)", "format"))
    if kind == "event":
        problems += event_problems(data)
    if kind == "change":
        changes = data.get("changes", [])
        if not isinstance(changes, list) or not all(
            isinstance(c, Mapping) and isinstance(c.get("path"), str) and c["path"] for c in changes
        ):
            problems.append(FieldError("/changes", "expected [{path, old, new}, ...]", "type"))
        merged = data.get("mergedProfileIds", [])
        if not isinstance(merged, list) or not all(isinstance(m, str) for m in merged):
            problems.append(FieldError("/mergedProfileIds", "expected a list of profile ids", "type"))
    if problems:
        raise PermanentError(problems)
    return kind, data


class ProjectionHandler:
    """Applies a consumed batch to the projection, one transaction per sandbox; the
    profiles it names are locked first, so workers on other partitions (a merge
    names profiles of any partition) wait for each other."""

    def __init__(self, pool: asyncpg.Pool, default_sandbox: str, event_limit: int) -> None:
        self.pool = pool
        self.default_sandbox = default_sandbox
        self.event_limit = event_limit

    async def __call__(self, batch: list[Record]) -> None:
        by_sandbox: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for record in batch:
            kind, data = _checked(record)
            sandbox = str(data.get("sandbox") or record.sandbox or self.default_sandbox)
            by_sandbox[sandbox].append((kind, data))
        for sandbox, records in by_sandbox.items():
            named = {str(data["profileId"]) for _, data in records}
            named |= {str(m) for _, data in records for m in data.get("mergedProfileIds") or ()}
            async with self.pool.acquire() as conn, conn.transaction():
                known = await repository.attributes_of(conn, sandbox, named)
                planned = plan(known, records)
                await repository.apply(conn, sandbox, planned)
                await evaluate_streaming(conn, sandbox, planned, self.event_limit)
