"""The identity graph's rules, as a pure function of what has been observed.

Everything the graph service stores (identities with when they were first and last
seen, links with when they were last seen) goes in; the profiles (connected
components), the refused links and the evicted identities come out. Because the
answer is a function of the *set* of observations, it cannot depend on the order in
which records arrived or on how they were spread over partitions and workers.

The rules, after AEP's identity graph linking rules:

1. Links are considered strongest first: by the priority of their stronger namespace,
   then of their weaker one, then the most recently seen, then by their identities
   (a total order, so ties are broken the same way every time).
2. A link joins two groups unless the union would hold two different values of a
   namespace that is unique per graph (say, two CRMIDs); then it is refused. Its
   weaker competitors were considered later, so the link dropped is always the weakest.
3. A graph holds at most ``max_identities`` identities: beyond that the identities
   seen least recently are evicted (oldest first), and the rest is resolved again
   without them.

A profile's id is derived from its anchor, the identity first seen (ties broken by
namespace and value): when two graphs join, the older anchor's id survives; the other
id is recorded as merged into it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple

PROFILE_NAMESPACE = uuid.UUID("6b1e5d0a-3c0f-4c52-9a43-1f0e2b7d9c11")


class Node(NamedTuple):
    """One identity: a namespace code and a (normalised) value. (Tuples: hashed and
    compared in C, which the graph does a great deal of.)"""

    namespace: str
    value: str

    @property
    def key(self) -> str:
        return f"{self.namespace}:{self.value}"


class Seen(NamedTuple):
    first: datetime
    last: datetime


class Link(NamedTuple):
    """An undirected link; ``a`` sorts before ``b``."""

    a: Node
    b: Node

    @staticmethod
    def of(x: Node, y: Node) -> Link:
        return Link(x, y) if x <= y else Link(y, x)


@dataclass(frozen=True, slots=True)
class Rules:
    unique: frozenset[str] = frozenset({"CRMID"})
    """Namespaces of which a graph may hold one value only."""
    priority: Mapping[str, int] = field(default_factory=dict)
    """Higher is stronger; a namespace not listed has priority 0."""
    max_identities: int = 50


@dataclass(frozen=True, slots=True)
class Resolution:
    components: tuple[frozenset[Node], ...]
    refused: frozenset[Link]
    evicted: frozenset[Node]


class _Groups:
    """Union-find that tracks, per group, the value of each unique namespace."""

    def __init__(self, nodes: Iterable[Node], unique: frozenset[str]) -> None:
        self.parent = {n: n for n in nodes}
        self.values: dict[Node, dict[str, str]] = {
            n: ({n.namespace: n.value} if n.namespace in unique else {}) for n in self.parent
        }

    def find(self, node: Node) -> Node:
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:  # path compression
            self.parent[node], node = root, self.parent[node]
        return root

    def join(self, x: Node, y: Node) -> bool:
        """Unite the groups of ``x`` and ``y`` unless a unique namespace forbids it."""
        rx, ry = self.find(x), self.find(y)
        if rx == ry:
            return True
        vx, vy = self.values[rx], self.values[ry]
        if any(vy.get(ns, value) != value for ns, value in vx.items()):
            return False
        keep, drop = (rx, ry) if rx < ry else (ry, rx)
        self.parent[drop] = keep
        self.values[keep] = vx | vy
        del self.values[drop]
        return True

    def groups(self) -> list[frozenset[Node]]:
        members: dict[Node, set[Node]] = {}
        for node in self.parent:
            members.setdefault(self.find(node), set()).add(node)
        return [frozenset(m) for m in members.values()]


def _strength(link: Link, seen: Mapping[Link, datetime], rules: Rules) -> tuple[object, ...]:
    pa = rules.priority.get(link.a.namespace, 0)
    pb = rules.priority.get(link.b.namespace, 0)
    return (-max(pa, pb), -min(pa, pb), -seen[link].timestamp(), link)


def _link(
    nodes: Iterable[Node], links: Mapping[Link, datetime], rules: Rules
) -> tuple[list[frozenset[Node]], set[Link]]:
    groups = _Groups(nodes, rules.unique)
    refused: set[Link] = set()
    for link in sorted(links, key=lambda candidate: _strength(candidate, links, rules)):
        if not groups.join(link.a, link.b):
            refused.add(link)
    return groups.groups(), refused


def resolve(nodes: Mapping[Node, Seen], links: Mapping[Link, datetime], rules: Rules) -> Resolution:
    """The graphs ``nodes`` and ``links`` make under ``rules``.

    ``links`` maps each link to when it was last observed; every endpoint of a link must
    be in ``nodes``.
    """
    components: list[frozenset[Node]] = []
    refused: set[Link] = set()
    evicted: set[Node] = set()
    pending, first_refused = _link(nodes, links, rules)
    refused |= first_refused
    while pending:
        group = pending.pop()
        if len(group) <= rules.max_identities:
            components.append(group)
            continue
        by_age = sorted(group, key=lambda n: (nodes[n].last, n))
        out = set(by_age[: len(group) - rules.max_identities])
        evicted |= out
        kept = group - out
        inner = {k: v for k, v in links.items() if k.a in kept and k.b in kept}
        refused -= {link for link in refused if link.a in group or link.b in group}
        regrouped, again = _link(kept, inner, rules)
        refused |= again
        pending.extend(regrouped)
    components.sort(key=lambda c: min(c))
    return Resolution(tuple(components), frozenset(refused), frozenset(evicted))


def anchor(component: Iterable[Node], nodes: Mapping[Node, Seen]) -> Node:
    """The identity a profile's id is derived from: the first seen."""
    return min(component, key=lambda n: (nodes[n].first, n))


@lru_cache(maxsize=65_536)
def profile_id(sandbox: str, anchor_node: Node) -> str:
    return str(uuid.uuid5(PROFILE_NAMESPACE, f"{sandbox}|{anchor_node.namespace}|{anchor_node.value}"))
