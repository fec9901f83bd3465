"""What the profile service tells the others, in the transaction that stored the change.

- ``itinera.profile.changes.v1``: for every profile a batch touched, the attributes of
  its default-policy view that changed (old and new values) and the profile ids merged
  into it. The view itself is kept in ``profile_views``.
- ``itinera.profile.events.v1``: every experience event stored for the first time,
  with its profile id and a snapshot of the profile's view.

Both go through the outbox, so a crash neither loses nor invents one; ``ce_id`` is
derived from the content, so a redelivered record that changes nothing publishes
nothing, and a consumer can de-duplicate by ``ce_id``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from itinera.common.db.outbox import enqueue
from itinera.common.kafka import topics
from itinera.common.kafka.envelope import Envelope
from itinera.profile.identity.service import Outcome
from itinera.profile.profiles import policies, repository, service
from itinera.profile.profiles.merge import diff
from itinera.profile.profiles.repository import EventRow

_IDS = uuid.UUID("0c7d9e2a-51b4-4f0e-8a3d-6b2f1e9c4a70")
SOURCE = "/itinera/profile"


def _id(*parts: str) -> str:
    return str(uuid.uuid5(_IDS, "|".join(parts)))


async def publish_updates(
    conn: asyncpg.Connection, sandbox: str, outcome: Outcome, added_events: Sequence[EventRow]
) -> None:
    touched = set(outcome.profiles.values()) | set(outcome.merged.values())
    if not touched:
        return
    policy = await policies.ensure_default(conn, sandbox)
    before = await repository.views_of(conn, sandbox, touched | set(outcome.merged))
    after = {pid: (await service.view(conn, sandbox, pid, policy))["entity"] for pid in sorted(touched)}
    now = datetime.now(UTC)
    changes: list[Envelope] = []
    for profile, view in after.items():
        merged = sorted(old for old, new in outcome.merged.items() if new == profile)
        # What the merged profiles knew counts as known: only what is new to both is a change.
        known: dict[str, Any] = {}
        for old in merged:
            known |= before.get(old, {})
        known |= before.get(profile, {})
        changed = diff(known, view)
        if not changed and not merged:
            continue
        data: dict[str, Any] = {
            "sandbox": sandbox,
            "profileId": profile,
            "changes": changed,
            "mergedProfileIds": merged,
            "changedAt": now.isoformat(),
        }
        digest = hashlib.sha256(orjson.dumps([changed, merged], option=orjson.OPT_SORT_KEYS)).hexdigest()
        changes.append(
            Envelope(
                type="com.itinera.profile.change.v1",
                source=SOURCE,
                data=data,
                sandbox=sandbox,
                key=profile,
                id=_id(sandbox, "change", profile, digest),
                time=now,
            )
        )
    await repository.save_views(conn, sandbox, after)
    await repository.drop_views(conn, sandbox, outcome.merged)
    await enqueue(conn, topics.PROFILE_CHANGES.name, changes)
    events = []
    for event_id, _dataset, node, at, body in added_events:
        owner = outcome.profiles.get(node)
        if owner is None:  # the identity was evicted from its graph
            continue
        snapshot = {"sandbox": sandbox, "profileId": owner, "event": body, "profile": after.get(owner, {})}
        events.append(
            Envelope(
                type="com.itinera.profile.event.v1",
                source=SOURCE,
                data=snapshot,
                sandbox=sandbox,
                key=owner,
                id=_id(sandbox, "event", event_id),
                time=at,
            )
        )
    await enqueue(conn, topics.PROFILE_EVENTS.name, events)
