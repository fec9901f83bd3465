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
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from itinera.common.db.outbox import enqueue
from itinera.common.kafka import topics
from itinera.common.kafka.envelope import Envelope
from itinera.profile.identity.graph import Node
from itinera.profile.identity.service import Outcome
from itinera.profile.profiles import policies, repository
from itinera.profile.profiles.merge import diff, merge
from itinera.profile.profiles.repository import EventRow

_IDS = uuid.UUID("0c7d9e2a-51b4-4f0e-8a3d-6b2f1e9c4a70")
SOURCE = "/itinera/profile"


def _id(*parts: str) -> str:
    return str(uuid.uuid5(_IDS, "|".join(parts)))


async def refresh_views(
    conn: asyncpg.Connection, sandbox: str, profile_ids: Iterable[str], policy: policies.MergePolicy
) -> dict[str, repository.StoredView]:
    """Merge the fragments of these profiles by ``policy`` and keep the views."""
    fragments = await repository.fragments_of_profiles(conn, sandbox, profile_ids)
    views = {
        pid: repository.StoredView(
            merge(found, policy.attribute_merge, policy.dataset_order),
            sorted({f.dataset_id for f in found}),
            max((f.record_time for f in found), default=None),
        )
        for pid, found in fragments.items()
    }
    await repository.save_views(conn, sandbox, policy.id, views)
    return views


async def publish_updates(
    conn: asyncpg.Connection,
    sandbox: str,
    outcome: Outcome,
    written: Iterable[Node],
    added_events: Sequence[EventRow],
) -> None:
    """Refresh the default policy's view of every profile whose identities or fragments
    changed (``written``: identities whose fragments were written), and publish what
    changed and the events added. A profile whose identities and fragments did not
    change keeps its view; its events carry the stored one."""
    owners = {outcome.profiles[n] for _, _, n, _, _ in added_events if n in outcome.profiles}
    stale = outcome.changed | {outcome.profiles[n] for n in written if n in outcome.profiles}
    if not stale and not owners and not outcome.merged:
        return
    before = await repository.views_of(conn, sandbox, stale | owners | set(outcome.merged))
    stale |= {pid for pid in owners if pid not in before}  # never materialised yet
    policy = await policies.ensure_default(conn, sandbox)
    after = {pid: v.entity for pid, v in (await refresh_views(conn, sandbox, stale, policy)).items()}
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
    await repository.drop_views(conn, sandbox, outcome.merged)
    await enqueue(conn, topics.PROFILE_CHANGES.name, changes)
    events = []
    for event_id, _dataset, node, at, body in added_events:
        owner = outcome.profiles.get(node)
        if owner is None:  # the identity was evicted from its graph
            continue
        view = after[owner] if owner in after else before.get(owner, {})
        snapshot = {"sandbox": sandbox, "profileId": owner, "event": body, "profile": view}
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
