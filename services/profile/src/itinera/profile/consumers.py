"""Kafka input: experience events and profile records, as ingestion publishes them.

Every record feeds the identity graph; profile records are then kept as fragments
(the latest per dataset and primary identity) and experience events appended (one per
``_id``). Both writes are idempotent, so a redelivered batch changes nothing.

Each record's identities (its ``identityMap`` and its key, the primary identity) are
observed together at the record's own time (an event's ``timestamp``, else the
CloudEvent's ``ce_time``), so the graph does not depend on when records arrive.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from itinera.common.errors import FieldError, NotFound, ValidationFailed
from itinera.common.kafka import topics
from itinera.common.kafka.consumer import PermanentError, Record
from itinera.common.xdm.identity import MAX_IDENTITIES_PER_RECORD, from_identity_map
from itinera.profile.identity import namespaces as ns
from itinera.profile.identity.service import IdentityGraph, Observation, Outcome, nodes_from
from itinera.profile.profiles import updates
from itinera.profile.profiles.outputs import publish_updates
from itinera.profile.profiles.repository import EventRow, FragmentRow, store_events, store_fragments
from itinera.profile.retention import repository as retention


def _time(entity: dict[str, Any], record: Record) -> datetime:
    for candidate in (entity.get("timestamp"), record.headers.get("ce_time")):
        if isinstance(candidate, str):
            try:
                parsed = datetime.fromisoformat(candidate.replace("Z", "+00:00"))
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)


def _header_identities(record: Record) -> list[tuple[str, str]]:
    """Identities ingestion found through identity descriptors (``itinera_identities``)."""
    raw = record.headers.get("itinera_identities")
    if not raw:
        return []
    try:
        listed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise PermanentError([FieldError("/headers/itinera_identities", "not JSON", "json")]) from None
    if not isinstance(listed, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) and v for v in pair)
        for pair in listed
    ):
        raise PermanentError(
            [FieldError("/headers/itinera_identities", "expected [[namespace, id], ...]", "type")]
        )
    return [(pair[0], pair[1]) for pair in listed]


MAX_EVENT_BYTES = 10 * 1024
MAX_RECORD_BYTES = 100 * 1024


def _guardrails(record: Record, identities: int) -> None:
    """AEP's profile guardrails: refused records are dead-lettered with the reason."""
    size = len(record.value or b"")
    limit = MAX_EVENT_BYTES if record.topic == topics.EVENTS.name else MAX_RECORD_BYTES
    problems = []
    if size > limit:
        problems.append(FieldError("", f"{size} bytes; the profile store takes at most {limit}", "size"))
    if identities > MAX_IDENTITIES_PER_RECORD:
        problems.append(
            FieldError(
                "/identityMap",
                f"{identities} identities; at most {MAX_IDENTITIES_PER_RECORD}",
                "identity.count",
            )
        )
    if problems:
        raise PermanentError(problems)


Pending = tuple[Record, dict[str, Any], list[tuple[str, str]], datetime]
"""A record to store: the record, its entity, its identities, its time."""


class StoreHandler:
    """Feeds the identity graph, then stores each record as a fragment (profile records)
    or an event (experience events) under its primary identity."""

    def __init__(self, graph: IdentityGraph, default_sandbox: str) -> None:
        self.graph = graph
        self.default_sandbox = default_sandbox

    async def __call__(self, batch: list[Record]) -> None:
        pending: dict[str, list[Pending]] = defaultdict(list)
        for record in batch:
            entity = record.json()
            if not isinstance(entity, dict):
                raise PermanentError([FieldError("", "the record is not an XDM entity (object)", "type")])
            pairs = []
            if record.key and ":" in record.key:  # the primary identity first
                namespace, _, value = record.key.partition(":")
                pairs.append((namespace, value))
            pairs += _header_identities(record)
            pairs += [(i.namespace, i.id) for i in from_identity_map(entity)]
            _guardrails(record, len(set(pairs)))
            if pairs:
                pending[record.sandbox or self.default_sandbox].append(
                    (record, entity, pairs, _time(entity, record))
                )
        for sandbox, items in pending.items():
            async with self.graph.pool.acquire() as conn:
                known = await ns.all_of(conn, sandbox)
                ttls = await retention.ttls_of(conn, sandbox)
            await self._store(sandbox, items, known, ttls)

    async def _store(
        self, sandbox: str, items: list[Pending], known: list[ns.Namespace], ttls: dict[str, timedelta]
    ) -> None:
        now = datetime.now(UTC)
        by_code = ns.by_code(known)
        resolved = [(record, entity, nodes_from(pairs, by_code), at) for record, entity, pairs, at in items]
        fragments: list[FragmentRow] = []
        events: list[EventRow] = []
        batch_ids: set[str] = set()
        for record, entity, nodes, at in resolved:
            dataset = record.headers.get("itinera_dataset", "")
            if record.topic == topics.EVENTS.name and isinstance(entity.get("_id"), str):
                if dataset in ttls and at < now - ttls[dataset]:
                    continue  # expired on arrival: its identities count, the event is not kept
                if entity["_id"] not in batch_ids:  # sent twice in one batch: once
                    batch_ids.add(entity["_id"])
                    events.append((entity["_id"], dataset, nodes[0], at, entity))
            elif record.topic == topics.RECORDS.name:
                ce_id = record.ce_id or f"{record.partition}:{record.offset}"
                fragments.append((dataset, nodes[0], entity, at, ce_id))

        async def store(conn: asyncpg.Connection, outcome: Outcome) -> None:
            # In the graph's transaction: the graph, the store and what is
            # published about them commit together.
            written = await store_fragments(conn, sandbox, fragments)
            added = await store_events(conn, sandbox, events)
            await publish_updates(conn, sandbox, outcome, written, [e for e in events if e[0] in added])

        observations = [Observation(nodes, at) for _, _, nodes, at in resolved]
        await self.graph.observe(sandbox, observations, store, known)


class UpdatesHandler:
    """Applies attribute updates from ``itinera.profile.updates.v1`` as the PATCH of
    attributes does (:func:`updates.update_attributes`), one transaction per record. An
    update the PATCH would refuse (no such profile, identities, too large) is
    dead-lettered with the reason."""

    def __init__(self, pool: asyncpg.Pool, default_sandbox: str) -> None:
        self.pool = pool
        self.default_sandbox = default_sandbox

    async def __call__(self, batch: list[Record]) -> None:
        for record in batch:
            data = record.json()
            if not isinstance(data, dict):
                raise PermanentError([FieldError("", "expected an object", "type")])
            profile_id = data.get("profileId")
            if not isinstance(profile_id, str):
                raise PermanentError([FieldError("/profileId", "expected a profile id", "required")])
            sandbox = str(data.get("sandbox") or record.sandbox or self.default_sandbox)
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    await updates.update_attributes(conn, sandbox, profile_id, data.get("attributes"))
            except (ValidationFailed, NotFound) as exc:
                problems = exc.errors or [FieldError("/profileId", str(exc), "not-found")]
                raise PermanentError(problems) from None
