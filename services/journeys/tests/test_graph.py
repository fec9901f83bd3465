"""The graph checks behind validation: reachability, what comes before a node, and
cycles with no pause on them, against independent answers on random graphs."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from itinera.journeys.definitions.graph import Edge, before, reachable, unpaused_cycles


@st.composite
def graphs(draw: st.DrawFn) -> tuple[int, list[Edge], set[int]]:
    size = draw(st.integers(min_value=1, max_value=10))
    pairs = draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, size - 1)), max_size=25))
    pauses = draw(st.sets(st.integers(0, size - 1)))
    return size, [Edge(s, t, f"/e/{i}") for i, (s, t) in enumerate(pairs)], pauses


def has_cycle(size: int, edges: list[Edge], skipped: set[int]) -> bool:
    """Kahn's algorithm: a graph has a cycle when peeling nodes without incoming links
    leaves some behind."""
    kept = [e for e in edges if e.source not in skipped and e.target not in skipped]
    nodes = set(range(size)) - skipped
    incoming = dict.fromkeys(nodes, 0)
    for edge in kept:
        incoming[edge.target] += 1
    ready = [n for n in nodes if incoming[n] == 0]
    peeled = 0
    while ready:
        node = ready.pop()
        peeled += 1
        for edge in kept:
            if edge.source == node:
                incoming[edge.target] -= 1
                if incoming[edge.target] == 0:
                    ready.append(edge.target)
    return peeled < len(nodes)


class TestUnpausedCycles:
    @settings(max_examples=500, deadline=None)
    @given(graphs())
    def test_a_cycle_is_found_exactly_when_one_avoids_every_pause(
        self, graph: tuple[int, list[Edge], set[int]]
    ) -> None:
        size, edges, pauses = graph
        assert bool(unpaused_cycles(size, edges, pauses)) == has_cycle(size, edges, pauses)

    @settings(max_examples=500, deadline=None)
    @given(graphs())
    def test_each_cycle_found_is_a_closed_walk_through_no_pause(
        self, graph: tuple[int, list[Edge], set[int]]
    ) -> None:
        size, edges, pauses = graph
        for cycle in unpaused_cycles(size, edges, pauses):
            assert all(edge in edges for edge in cycle)
            assert all(a.target == b.source for a, b in pairwise(cycle))
            assert cycle[-1].target == cycle[0].source
            assert not {edge.source for edge in cycle} & pauses

    def test_a_pause_on_the_only_cycle_breaks_it(self) -> None:
        edges = [Edge(0, 1, "a"), Edge(1, 2, "b"), Edge(2, 0, "c")]
        assert [[e.path for e in cycle] for cycle in unpaused_cycles(3, edges, set())] == [["a", "b", "c"]]
        assert unpaused_cycles(3, edges, {1}) == []


class TestReachability:
    @settings(max_examples=300, deadline=None)
    @given(graphs(), st.data())
    def test_what_comes_before_a_node_is_what_reaches_it(
        self, graph: tuple[int, list[Edge], set[int]], data: st.DataObject
    ) -> None:
        size, edges, _ = graph
        node = data.draw(st.integers(0, size - 1))
        expected = {
            other
            for other in range(size)
            if node in reachable(size, edges, [e.target for e in edges if e.source == other])
        }
        assert before(size, edges, node) == expected

    def test_the_starts_are_reached(self) -> None:
        assert reachable(4, [Edge(0, 1, "a"), Edge(2, 3, "b")], [0]) == {0, 1}
