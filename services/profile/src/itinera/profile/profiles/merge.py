"""Merging a profile's fragments into one view, as a merge policy says.

- ``timestampOrdered``: for every attribute (a leaf path; an array is one value), the
  value of the most recent fragment that has it wins (ties: the dataset id).
- ``dataSetPrecedence``: fragments of datasets earlier in the policy's order win;
  datasets the order does not name come after, most recent first.

``identityMap`` is not an attribute: the view's is the union of every fragment's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Fragment:
    dataset_id: str
    record_time: datetime
    record: dict[str, Any]


def _leaves(value: Any, path: tuple[str, ...] = ()) -> Iterable[tuple[tuple[str, ...], Any]]:
    """(path, value) of each leaf; an empty object inside is a leaf, the empty root has none."""
    if isinstance(value, dict) and (value or not path):
        for key, child in value.items():
            yield from _leaves(child, (*path, key))
    else:
        yield path, value


def _put(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = target
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value


def _ranked(fragments: Sequence[Fragment], policy: str, order: Sequence[str]) -> list[Fragment]:
    """Strongest first."""
    by_time = sorted(fragments, key=lambda f: (f.record_time, f.dataset_id), reverse=True)
    if policy == "dataSetPrecedence":
        rank = {dataset: i for i, dataset in enumerate(order)}
        return sorted(by_time, key=lambda f: rank.get(f.dataset_id, len(rank)))
    return by_time


def merge(
    fragments: Sequence[Fragment], policy: str = "timestampOrdered", order: Sequence[str] = ()
) -> dict[str, Any]:
    view: dict[str, Any] = {}
    taken: set[tuple[str, ...]] = set()
    inside: set[tuple[str, ...]] = set()  # every proper prefix of a taken path
    identities: dict[str, list[dict[str, Any]]] = {}
    for fragment in _ranked(fragments, policy, order):
        for path, value in _leaves({k: v for k, v in fragment.record.items() if k != "identityMap"}):
            blocked = path in taken or path in inside or any(path[:i] in taken for i in range(1, len(path)))
            if path and not blocked:
                taken.add(path)
                inside.update(path[:i] for i in range(1, len(path)))
                _put(view, path, value)
        for namespace, items in (fragment.record.get("identityMap") or {}).items():
            known = identities.setdefault(namespace, [])
            for item in items if isinstance(items, list) else ():
                if isinstance(item, dict) and all(item.get("id") != k.get("id") for k in known):
                    known.append(item)
    if identities:
        view["identityMap"] = identities
    return view


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Changed attributes as ``{path, old, new}`` (dotted leaf paths; an array, and
    ``identityMap``, are one value each), sorted by path. Absent is ``None``."""

    def flat(view: dict[str, Any]) -> dict[str, Any]:
        found = {
            ".".join(path): value
            for path, value in _leaves({k: v for k, v in view.items() if k != "identityMap"})
        }
        if "identityMap" in view:
            found["identityMap"] = view["identityMap"]
        return found

    old, new = flat(before), flat(after)
    return [
        {"path": path, "old": old.get(path), "new": new.get(path)}
        for path in sorted(old.keys() | new.keys())
        if old.get(path) != new.get(path)
    ]
