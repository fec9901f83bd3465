"""Writes that do not come from ingestion: journeys' "update profile" action and
privacy deletions.

An attribute update is a fragment of the system dataset ``itinera-profile-updates``
under the profile's anchor identity (its first-seen identity): later updates are
deep-merged into it, and the merge policy weighs it like any other fragment (newest
wins under ``timestampOrdered``). A deletion removes everything the store and the
graph hold about the profile's identities.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from itinera.common.db.outbox import enqueue
from itinera.common.errors import FieldError, ValidationFailed
from itinera.common.jsonvalues import json_problems
from itinera.common.kafka import topics
from itinera.common.kafka.envelope import Envelope
from itinera.profile.identity import repository as graph
from itinera.profile.identity.graph import Node
from itinera.profile.identity.service import Outcome
from itinera.profile.profiles import repository, service
from itinera.profile.profiles.merge import diff
from itinera.profile.profiles.outputs import SOURCE, _id, publish_updates

SYSTEM_DATASET = "itinera-profile-updates"
MAX_UPDATE_BYTES = 100 * 1024


def _deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _check(attributes: Any) -> None:
    if not isinstance(attributes, dict) or not attributes:
        raise ValidationFailed(
            "the body is the attributes to set", [FieldError("", "a non-empty object", "type")]
        )
    if "identityMap" in attributes:
        raise ValidationFailed(
            "identities cannot be changed here", [FieldError("/identityMap", "not an attribute", "forbidden")]
        )
    problems = json_problems(attributes)
    if problems:
        raise ValidationFailed("the attributes cannot be stored as JSON", problems[:20])
    if len(orjson.dumps(attributes)) > MAX_UPDATE_BYTES:
        raise ValidationFailed("too large", [FieldError("", f"at most {MAX_UPDATE_BYTES} bytes", "size")])


async def update_attributes(
    conn: asyncpg.Connection, sandbox: str, profile_id: str, attributes: Any
) -> dict[str, Any]:
    _check(attributes)
    live, rows = await service.resolve_id(conn, sandbox, profile_id)
    anchor = min(rows, key=lambda r: (r["first_seen"], r["namespace"], r["value"]))
    node = Node(anchor["namespace"], anchor["value"])
    record = _deep_merge(await repository.system_fragment(conn, sandbox, SYSTEM_DATASET, node), attributes)
    now = datetime.now(UTC)
    await repository.store_fragments(
        conn, sandbox, [(SYSTEM_DATASET, node, record, now, f"update:{now.isoformat()}")]
    )
    await publish_updates(conn, sandbox, Outcome(profiles={node: live}), {node}, [])
    return {
        "profileId": live,
        "dataset": SYSTEM_DATASET,
        "identity": {"namespace": node.namespace, "id": node.value},
    }


async def delete_profile(conn: asyncpg.Connection, sandbox: str, profile_id: str) -> dict[str, Any]:
    rows = await graph.members_of_profile(conn, sandbox, profile_id)
    nodes = [Node(r["namespace"], r["value"]) for r in rows]
    before = (await repository.views_of(conn, sandbox, [profile_id])).get(profile_id, {})
    counts = await repository.erase(conn, sandbox, nodes, profile_id)
    now = datetime.now(UTC)
    data = {
        "sandbox": sandbox,
        "profileId": profile_id,
        "changes": diff(before, {}),
        "mergedProfileIds": [],
        "changedAt": now.isoformat(),
        "deleted": True,
    }
    await enqueue(
        conn,
        topics.PROFILE_CHANGES.name,
        [
            Envelope(
                type="com.itinera.profile.change.v1",
                source=SOURCE,
                data=data,
                sandbox=sandbox,
                key=profile_id,
                id=_id(sandbox, "delete", profile_id, now.isoformat()),
                time=now,
            )
        ],
    )
    return {
        "profileId": profile_id,
        "identities": [{"namespace": n.namespace, "id": n.value} for n in nodes],
        "deleted": counts,
    }
