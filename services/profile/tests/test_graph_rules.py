"""The linking rules as a pure function of the observations."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from itinera.profile.identity.graph import Link, Node, Rules, Seen, anchor, profile_id, resolve

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RULES = Rules(unique=frozenset({"CRMID"}), priority={"CRMID": 100, "Email": 90, "Phone": 80, "ECID": 40})


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def seen(*nodes: Node, minute: int = 0) -> dict[Node, Seen]:
    return {n: Seen(at(minute), at(minute)) for n in nodes}


def components(result: object) -> set[frozenset[Node]]:
    return set(result.components)  # type: ignore[attr-defined]


crm1, crm2 = Node("CRMID", "c1"), Node("CRMID", "c2")
email, phone, ecid = Node("Email", "jane@example.com"), Node("Phone", "+15550001"), Node("ECID", "1" * 38)


class TestLinking:
    def test_identities_seen_together_form_one_profile(self) -> None:
        result = resolve(seen(email, ecid), {Link.of(email, ecid): at(0)}, RULES)
        assert components(result) == {frozenset({email, ecid})}
        assert result.refused == frozenset()

    def test_a_link_that_would_join_two_crm_ids_is_refused_and_it_is_the_weakest(self) -> None:
        links = {
            Link.of(crm1, email): at(1),  # strong: CRMID-Email
            Link.of(crm2, ecid): at(2),
            Link.of(email, ecid): at(3),  # weak: Email-ECID; joining would put c1 and c2 together
        }
        result = resolve(seen(crm1, crm2, email, ecid), links, RULES)
        assert components(result) == {frozenset({crm1, email}), frozenset({crm2, ecid})}
        assert result.refused == frozenset({Link.of(email, ecid)})

    def test_between_equal_namespaces_the_most_recent_link_wins(self) -> None:
        links = {Link.of(crm1, email): at(1), Link.of(crm2, email): at(5)}
        result = resolve(seen(crm1, crm2, email), links, RULES)
        assert frozenset({crm2, email}) in components(result)
        assert result.refused == frozenset({Link.of(crm1, email)})

    def test_beyond_the_limit_the_identities_seen_least_recently_are_evicted(self) -> None:
        devices = [Node("ECID", f"{n:038d}") for n in range(5)]
        nodes = {d: Seen(at(n), at(n)) for n, d in enumerate(devices)} | {email: Seen(at(10), at(10))}
        links = {Link.of(email, d): at(10) for d in devices}
        result = resolve(nodes, links, Rules(max_identities=4, priority=RULES.priority))
        assert result.evicted == frozenset(devices[:2])
        assert components(result) == {frozenset({email, *devices[2:]})}

    def test_the_profile_id_comes_from_the_first_seen_identity(self) -> None:
        nodes = {email: Seen(at(5), at(9)), ecid: Seen(at(1), at(9))}
        component = frozenset(nodes)
        assert anchor(component, nodes) == ecid
        assert profile_id("prod", ecid) == profile_id("prod", ecid) != profile_id("dev", ecid)


namespaces = st.sampled_from(["CRMID", "Email", "Phone", "ECID"])
identities = st.builds(Node, namespaces, st.sampled_from(["a", "b", "c", "d"]))


@st.composite
def graphs(draw: st.DrawFn) -> tuple[dict[Node, Seen], dict[Link, datetime]]:
    nodes = draw(st.sets(identities, min_size=1, max_size=12))
    listed = sorted(nodes)
    seen_at = {n: Seen(at(draw(st.integers(0, 50))), at(draw(st.integers(51, 100)))) for n in listed}
    pairs = draw(st.sets(st.tuples(st.sampled_from(listed), st.sampled_from(listed)), max_size=20))
    links = {Link.of(x, y): at(draw(st.integers(0, 100))) for x, y in pairs if x != y}
    return seen_at, links


@settings(max_examples=300, deadline=None)
@given(graphs(), st.integers(2, 6), st.randoms())
def test_the_rules_hold_and_the_answer_does_not_depend_on_order(
    graph: tuple[dict[Node, Seen], dict[Link, datetime]], limit: int, shuffler: random.Random
) -> None:
    nodes, links = graph
    rules = Rules(unique=RULES.unique, priority=RULES.priority, max_identities=limit)
    result = resolve(nodes, links, rules)
    shuffled_links = list(links.items())
    shuffler.shuffle(shuffled_links)
    shuffled_nodes = list(nodes.items())
    shuffler.shuffle(shuffled_nodes)
    assert resolve(dict(shuffled_nodes), dict(shuffled_links), rules) == result
    placed = [n for c in result.components for n in c]
    assert len(placed) == len(set(placed)), "an identity is in one profile at most"
    assert set(placed) | result.evicted == set(nodes)
    for component in result.components:
        assert len(component) <= limit
        crm = {n.value for n in component if n.namespace == "CRMID"}
        assert len(crm) <= 1, "a profile holds one CRMID at most"
    for link in result.refused:
        # A refused link is one whose acceptance would have broken a rule.
        owner = {n: i for i, c in enumerate(result.components) for n in c}
        assert owner.get(link.a) != owner.get(link.b) or link.a not in owner
