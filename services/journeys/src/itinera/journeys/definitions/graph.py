"""The journey as a directed graph of node indexes, and what is asked of its shape:
which nodes the entry reaches, which come before a node, and which cycles have no
node on them that pauses (a wait), so that a profile could loop forever at once.

Pure functions of indexes and edges: no journey document, no database.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Edge:
    source: int
    target: int
    path: str
    """Where the link is written: the JSON Pointer of the ``next``-like field."""


def _successors(size: int, edges: Iterable[Edge]) -> list[list[Edge]]:
    out: list[list[Edge]] = [[] for _ in range(size)]
    for edge in edges:
        out[edge.source].append(edge)
    return out


def reachable(size: int, edges: Iterable[Edge], starts: Iterable[int]) -> set[int]:
    """The nodes a path from any of ``starts`` reaches, the starts included."""
    out = _successors(size, edges)
    seen = set(starts)
    pending = list(seen)
    while pending:
        for edge in out[pending.pop()]:
            if edge.target not in seen:
                seen.add(edge.target)
                pending.append(edge.target)
    return seen


def before(size: int, edges: Iterable[Edge], node: int) -> set[int]:
    """The nodes from which a path leads to ``node`` (``node`` itself only on a cycle)."""
    reverse = [Edge(e.target, e.source, e.path) for e in edges]
    ancestors = reachable(size, reverse, [e.target for e in reverse if e.source == node])
    return ancestors


def unpaused_cycles(size: int, edges: Sequence[Edge], pauses: Collection[int]) -> list[list[Edge]]:
    """Cycles with no node of ``pauses`` on them: one per link that closes such a cycle
    in a depth-first walk (nodes and links in the order given), as the cycle's links,
    the closing one last. None are found exactly when every cycle has a pause on it."""
    out = _successors(size, (e for e in edges if e.source not in pauses and e.target not in pauses))
    state = [0] * size  # 0: not seen, 1: on the walk's current path, 2: done
    found: list[list[Edge]] = []
    for root in range(size):
        if state[root] or root in pauses:
            continue
        state[root] = 1
        path: list[Edge] = []
        stack: list[tuple[int, int]] = [(root, 0)]
        while stack:
            node, position = stack[-1]
            if position == len(out[node]):
                stack.pop()
                state[node] = 2
                if path:
                    path.pop()
                continue
            stack[-1] = (node, position + 1)
            edge = out[node][position]
            if state[edge.target] == 1:
                start = next((i for i, e in enumerate(path) if e.source == edge.target), len(path))
                found.append([*path[start:], edge])
            elif state[edge.target] == 0:
                state[edge.target] = 1
                path.append(edge)
                stack.append((edge.target, 0))
    return found
