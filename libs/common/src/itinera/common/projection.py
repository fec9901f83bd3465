"""A projection of profiles, as pure functions: what a service downstream of the profile
service keeps of each profile's merged view (segmentation, for the rules of audiences;
journeys, for the steps their instances take), from what the profile service publishes.

- ``itinera.profile.changes.v1`` carries, per profile, the attributes of its merged view
  that changed (dotted leaf paths with old and new values) and the profile ids merged
  into it. Applied in order (a profile's changes share its partition), they rebuild the
  view. On a merge the profile service diffs the new view against what the merged
  profiles and the survivor knew together, so the survivor here first takes the merged
  profiles' attributes, then the change.
- ``itinera.profile.events.v1`` carries each new experience event with a snapshot of
  the whole view; the snapshot only seeds a profile the projection has not seen (the
  two topics are not ordered with each other, so an older snapshot must not undo a
  newer change).
- A change with ``deleted: true`` removes the profile and its events.

A consumer checks each profile event with :func:`event_problems` first and dead-letters
what fails it; :func:`plan` itself keeps only events with an id and a readable time.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from itinera.common.errors import FieldError


def set_path(target: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path (``identityMap`` is one value); ``None`` removes it, and
    objects left empty go with it."""
    keys = path.split(".")
    trail: list[tuple[dict[str, Any], str]] = []
    node = target
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            if value is None:
                return
            child = node[key] = {}
        trail.append((node, key))
        node = child
    if value is None:
        node.pop(keys[-1], None)
        for parent, key in reversed(trail):
            if parent[key]:
                break
            del parent[key]
    else:
        node[keys[-1]] = copy.deepcopy(value)


def deep_merge(base: dict[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """``other`` over ``base``, object by object."""
    merged = dict(base)
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass
class Event:
    profile_id: str
    event_id: str
    occurred_at: datetime
    body: dict[str, Any]


@dataclass
class Plan:
    """What one batch does to the projection, in one transaction."""

    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Profiles to write, with their whole attributes."""
    merged: dict[str, str] = field(default_factory=dict)
    """Profile id -> the id it was merged into: its row goes, its events follow."""
    deleted: set[str] = field(default_factory=set)
    events: list[Event] = field(default_factory=list)
    touched: dict[str, set[str] | None] = field(default_factory=dict)
    """Per profile the batch changed (its keys are those to re-evaluate), the attribute
    paths that changed (``xEvent`` for a new event); None when anything may have
    (seeded, merged, deleted)."""

    def touch(self, profile_id: str, paths: Iterable[str] | None) -> None:
        found = self.touched.get(profile_id, set())
        self.touched[profile_id] = None if paths is None or found is None else found | set(paths)


def occurred_at(event: Mapping[str, Any]) -> datetime | None:
    stamp = event.get("timestamp")
    if not isinstance(stamp, str):
        return None
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def event_problems(data: Mapping[str, Any]) -> list[FieldError]:
    """Why a record of ``itinera.profile.events.v1`` cannot be kept (empty: it can): its
    ``event`` must be an object with an ``_id`` and an ISO 8601 ``timestamp``, the two
    things a projection keys and windows events by."""
    event = data.get("event")
    if not isinstance(event, Mapping):
        return [FieldError("/event", "expected the experience event", "required")]
    problems = []
    if not isinstance(event.get("_id"), str) or not event["_id"]:
        problems.append(FieldError("/event/_id", "expected the event's id (a string)", "required"))
    if occurred_at(event) is None:
        problems.append(FieldError("/event/timestamp", "expected an ISO 8601 date-time", "format"))
    return problems


def plan(known: Mapping[str, dict[str, Any]], records: Iterable[tuple[str, Mapping[str, Any]]]) -> Plan:
    """Apply ``records`` (``("change" | "event", data)``, in the order consumed) to the
    attributes ``known`` of the profiles they name (absent: not in the projection).

    A deleted profile is wiped before the rest of the batch is written, so what came
    for it later in the batch (the same id comes back when its identities do) stays."""
    result = Plan()
    state: dict[str, dict[str, Any] | None] = dict(known)
    for kind, data in records:
        profile_id = str(data["profileId"])
        if kind == "change" and data.get("deleted"):
            result.touch(profile_id, None)
            state[profile_id] = None
            result.deleted.add(profile_id)
            result.profiles.pop(profile_id, None)
            result.events = [e for e in result.events if e.profile_id != profile_id]
            continue
        if kind == "change":
            attributes: dict[str, Any] = {}
            result.touch(profile_id, [str(c["path"]) for c in data.get("changes") or ()])
            for old in map(str, data.get("mergedProfileIds") or ()):
                result.touch(profile_id, None)
                attributes = deep_merge(attributes, state.get(old) or {})
                state[old] = None
                result.merged[old] = profile_id
                result.profiles.pop(old, None)
            attributes = deep_merge(attributes, state.get(profile_id) or {})
            for change in data.get("changes") or ():
                set_path(attributes, str(change["path"]), change.get("new"))
            state[profile_id] = attributes
        else:
            event = data["event"]
            at = occurred_at(event)
            if at is not None and isinstance(event.get("_id"), str):
                result.events.append(Event(profile_id, event["_id"], at, dict(event)))
            result.touch(profile_id, ["xEvent"])
            if state.get(profile_id) is None:
                result.touch(profile_id, None)
                snapshot = data.get("profile")
                state[profile_id] = dict(snapshot) if isinstance(snapshot, Mapping) else {}
        result.profiles[profile_id] = state[profile_id] or {}
    for old, new in list(result.merged.items()):  # a survivor merged again follows on
        while new in result.merged:
            new = result.merged[new]
        result.merged[old] = new
    for event in result.events:
        event.profile_id = result.merged.get(event.profile_id, event.profile_id)
    return result
