"""Streaming evaluation: in the transaction that applied a consumed batch to the
projection, re-evaluate the streaming audiences whose rules read what changed, for
each profile the batch changed; record the memberships and announce entries and exits
on ``itinera.audiences.v1`` through the outbox.

Rules are compiled once per audience version and cached. A rule that reads events
gets the profile's events within its look-back (or the most recent
``ITINERA_SEGMENTATION_EVALUATION_EVENTS`` when it has none); ``inSegment`` reads the
profile's memberships as they were before this evaluation. Profiles merged into
another, and deleted ones, exit every audience.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from itinera.common import pql
from itinera.common.db.outbox import enqueue
from itinera.common.kafka import topics
from itinera.common.kafka.envelope import Envelope
from itinera.segmentation.membership import repository
from itinera.segmentation.membership.repository import Audience, Change
from itinera.segmentation.membership.rules import relevant, transition
from itinera.segmentation.projection.changes import Plan

SOURCE = "/itinera/segmentation"
TYPE = "com.itinera.audience.membership.v1"
_IDS = uuid.UUID("5d0f3a8e-2c41-4b7e-9f16-8a3e7c2d1b90")
_RULES: dict[tuple[str, datetime], pql.Rule] = {}


def rule_of(audience: Audience) -> pql.Rule:
    key = (audience.id, audience.updated_at)
    found = _RULES.get(key)
    if found is None:
        if len(_RULES) > 10_000:
            _RULES.clear()
        found = _RULES[key] = pql.compile_rule(audience.expression)
    return found


def announcements(sandbox: str, changes: Iterable[Change], at: datetime, evaluation: str) -> list[Envelope]:
    found = []
    for change in changes:
        if change.announced is None:
            continue
        stamp = at.isoformat()
        digest = hashlib.sha256(
            f"{sandbox}|{change.audience_id}|{change.profile_id}|{change.announced}|{stamp}".encode()
        ).hexdigest()
        found.append(
            Envelope(
                type=TYPE,
                source=SOURCE,
                sandbox=sandbox,
                key=change.profile_id,
                id=str(uuid.uuid5(_IDS, digest)),
                time=at,
                data={
                    "sandbox": sandbox,
                    "profileId": change.profile_id,
                    "audienceId": change.audience_id,
                    "status": change.announced,
                    "previousStatus": change.previous,
                    "at": stamp,
                    "evaluation": evaluation,
                },
            )
        )
    return found


def evaluate(
    audiences: Sequence[Audience],
    profiles: Mapping[str, dict[str, Any]],
    touched: Mapping[str, set[str] | None],
    events: Mapping[str, list[dict[str, Any]]],
    memberships: Mapping[str, Mapping[str, str]],
    now: datetime,
) -> list[Change]:
    """The membership changes of evaluating the relevant audiences for each profile."""
    changes = []
    for profile_id, attributes in profiles.items():
        held = memberships.get(profile_id, {})
        for audience in audiences:
            if not relevant(audience.references, touched.get(profile_id)):
                continue
            qualifies = rule_of(audience).qualifies(
                attributes, now=now, events=events.get(profile_id, []), segments=held
            )
            previous = held.get(audience.id)
            status, announced = transition(previous, qualifies)
            if status is not None and status != previous:
                changes.append(Change(audience.id, profile_id, status, announced, previous))
    return changes


async def evaluate_streaming(
    conn: asyncpg.Connection, sandbox: str, plan: Plan, event_limit: int, now: datetime | None = None
) -> list[Change]:
    """Evaluate the batch's changed profiles; returns the membership changes made."""
    now = now or datetime.now(UTC)
    gone = set(plan.merged) | (plan.deleted - set(plan.profiles))
    exited = await repository.exit_all(conn, sandbox, gone) if gone else []
    gone_changes = [Change(a, p, "exited", "exited", previous) for a, p, previous in exited]
    changes: list[Change] = []
    audiences = await repository.streaming_audiences(conn, sandbox)
    alive = {pid: attrs for pid, attrs in plan.profiles.items() if pid not in gone}
    wanted = [a for a in audiences if any(relevant(a.references, plan.touched.get(p)) for p in alive)]
    if wanted and alive:
        memberships = await repository.memberships_of(conn, sandbox, alive)
        events: Mapping[str, list[dict[str, Any]]] = {}
        readers = [a for a in wanted if any(r.startswith("xEvent") for r in a.references)]
        if readers:
            since = window_start(now, (a.lookback for a in readers))
            events = await repository.events_of(conn, sandbox, alive, since, event_limit)
        changes = evaluate(wanted, alive, plan.touched, events, memberships, now)
    await repository.save(conn, sandbox, changes, now)
    announced = announcements(sandbox, [*gone_changes, *changes], now, "streaming")
    await enqueue(conn, topics.AUDIENCES.name, announced)
    return [*gone_changes, *changes]


def window_start(now: datetime, lookbacks: Iterable[timedelta | None]) -> datetime | None:
    """Where the longest look-back starts (None: a rule reads all events)."""
    listed = list(lookbacks)
    if not listed or any(w is None for w in listed):
        return None
    return now - max(w for w in listed if w is not None)
