"""Kafka input: experience events and profile records, as ingestion publishes them.

Each record's identities (its ``identityMap`` and its key, the primary identity) are
observed together at the record's own time (an event's ``timestamp``, else the
CloudEvent's ``ce_time``), so the graph does not depend on when records arrive.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson

from itinera.common.errors import FieldError
from itinera.common.kafka.consumer import PermanentError, Record
from itinera.common.xdm.identity import from_identity_map
from itinera.profile.identity import namespaces as ns
from itinera.profile.identity.service import IdentityGraph, Observation, nodes_from


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


class GraphHandler:
    def __init__(self, graph: IdentityGraph, default_sandbox: str) -> None:
        self.graph = graph
        self.default_sandbox = default_sandbox

    async def __call__(self, batch: list[Record]) -> None:
        pending: dict[str, list[tuple[list[tuple[str, str]], datetime]]] = defaultdict(list)
        for record in batch:
            entity = record.json()
            if not isinstance(entity, dict):
                raise PermanentError([FieldError("", "the record is not an XDM entity (object)", "type")])
            pairs = [(i.namespace, i.id) for i in from_identity_map(entity)]
            pairs.extend(_header_identities(record))
            if record.key and ":" in record.key:
                namespace, _, value = record.key.partition(":")
                pairs.append((namespace, value))
            if pairs:
                pending[record.sandbox or self.default_sandbox].append((pairs, _time(entity, record)))
        for sandbox, seen in pending.items():
            async with self.graph.pool.acquire() as conn:
                known = await ns.all_of(conn, sandbox)
            await self.graph.observe(
                sandbox, [Observation(nodes_from(pairs, known), at) for pairs, at in seen]
            )
