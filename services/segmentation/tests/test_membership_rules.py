"""Which audiences a change re-evaluates, and what an evaluation records: streaming
evaluation re-evaluates only the rules that read what changed, and a rule met again
changes a membership silently (``existing``), never announcing it twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from itinera.common import pql
from itinera.segmentation.membership.repository import Audience, Change
from itinera.segmentation.membership.rules import relevant, transition
from itinera.segmentation.membership.service import evaluate, evaluate_in_order

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
PROFILE = str(uuid.uuid4())
GOLD_ANN = {"loyalty": {"tier": "gold"}, "person": {"name": {"firstName": "Ann"}}}


def audience(rule: str) -> Audience:
    """A new audience of ``rule``, with what the definitions service stores of it."""
    analysis = pql.analyse(rule)
    assert not analysis.problems, analysis.problems
    return Audience(
        str(uuid.uuid4()),
        rule,
        tuple(analysis.references),
        tuple(analysis.segments),
        analysis.lookback,
        analysis.time_dependent,
        NOW,
    )


class TestTransition:
    @pytest.mark.parametrize(
        ("previous", "qualifies", "stored", "announced"),
        [
            (None, True, "realized", "realized"),
            ("exited", True, "realized", "realized"),
            ("realized", True, "existing", None),
            ("existing", True, "existing", None),
            ("realized", False, "exited", "exited"),
            ("existing", False, "exited", "exited"),
            ("exited", False, "exited", None),
            (None, False, None, None),
        ],
    )
    def test_entries_and_exits_are_announced_once(
        self, previous: str | None, qualifies: bool, stored: str | None, announced: str | None
    ) -> None:
        assert transition(previous, qualifies) == (stored, announced)


class TestRelevant:
    @pytest.mark.parametrize(
        ("references", "touched", "expected"),
        [
            (["loyalty.tier"], {"loyalty.tier"}, True),
            (["loyalty.tier", "person.age"], {"person.age"}, True),
            (["loyalty.tier"], {"person.name.firstName"}, False),
            (["person.name.firstName"], {"person.name"}, True),  # the whole object replaced
            (["person.name"], {"person.name.firstName"}, True),  # a part of what it reads
            (["person.names"], {"person.name"}, False),  # a prefix of the text, not of the path
            (["person.name"], {"person.names.first"}, False),
            (["xEvent.eventType"], {"xEvent"}, True),  # a new event
            (["xEvent"], {"xEvent"}, True),
            (["loyalty.tier"], {"xEvent"}, False),
            (["loyalty.tier"], set(), False),
            ([], {"loyalty.tier"}, False),
            (["loyalty.tier"], None, True),  # anything may have changed (merged, seeded)
            ([], None, True),
        ],
    )
    def test_a_rule_is_concerned_by_what_it_reads(
        self, references: list[str], touched: set[str] | None, expected: bool
    ) -> None:
        assert relevant(references, touched) is expected


class TestEvaluatingWhatChanged:
    def test_a_change_evaluates_only_the_audiences_whose_rules_read_it(self) -> None:
        gold, named = audience('loyalty.tier = "gold"'), audience('person.name.firstName = "Ann"')
        held = {PROFILE: {gold.id: "realized"}}
        outcome = evaluate(
            [gold, named], {PROFILE: GOLD_ANN}, {PROFILE: {"person.name.firstName"}}, {}, held, NOW
        )
        # Evaluated, `gold` would have made its membership existing.
        assert outcome.changes == [Change(named.id, PROFILE, "realized", "realized", None)]

    def test_each_profile_evaluates_the_audiences_its_own_change_concerns(self) -> None:
        gold, named = audience('loyalty.tier = "gold"'), audience('person.name.firstName = "Ann"')
        other = str(uuid.uuid4())
        profiles = {PROFILE: GOLD_ANN, other: GOLD_ANN}
        touched: dict[str, set[str] | None] = {PROFILE: {"loyalty.tier"}, other: {"person.name"}}
        outcome = evaluate([gold, named], profiles, touched, {}, {}, NOW)
        assert {(c.audience_id, c.profile_id) for c in outcome.changes} == {
            (gold.id, PROFILE),
            (named.id, other),
        }

    def test_an_event_evaluates_the_rules_on_events_only(self) -> None:
        gold, visited = audience('loyalty.tier = "gold"'), audience('xEvent[eventType = "web.visit"]')
        events: dict[str, Any] = {PROFILE: [{"eventType": "web.visit", "timestamp": NOW.isoformat()}]}
        held = {PROFILE: {gold.id: "realized"}}
        outcome = evaluate([gold, visited], {PROFILE: GOLD_ANN}, {PROFILE: {"xEvent"}}, events, held, NOW)
        assert outcome.changes == [Change(visited.id, PROFILE, "realized", "realized", None)]

    def test_a_profile_that_may_have_changed_anywhere_evaluates_every_audience(self) -> None:
        gold, named = audience('loyalty.tier = "gold"'), audience('person.name.firstName = "Ann"')
        held = {PROFILE: {gold.id: "realized"}}
        outcome = evaluate([gold, named], {PROFILE: GOLD_ANN}, {PROFILE: None}, {}, held, NOW)
        assert outcome.changes == [
            Change(gold.id, PROFILE, "existing", None, "realized"),
            Change(named.id, PROFILE, "realized", "realized", None),
        ]

    def test_only_the_time_dependent_audiences_evaluated_are_scheduled(self) -> None:
        today = audience("person.birthDate occurs today")
        recent = audience('xEvent[eventType = "a" and timestamp occurs <= 24 hours before now]')
        outcome = evaluate(
            [today, recent],
            {PROFILE: {"person": {"birthDate": "2026-11-28"}}},
            {PROFILE: {"person.birthDate"}},
            {},
            {},
            NOW,
        )
        assert [(a, p) for a, p, _ in outcome.schedule] == [(today.id, PROFILE)]

    def test_an_audience_naming_a_changed_one_follows_it_in_the_same_pass(self) -> None:
        gold = audience('loyalty.tier = "gold"')
        french_gold = audience(f'inSegment("{gold.id}") and homeAddress.countryCode = "FR"')
        attributes = {"loyalty": {"tier": "gold"}, "homeAddress": {"countryCode": "FR"}}
        outcome = evaluate_in_order(
            [french_gold, gold], {PROFILE: attributes}, {PROFILE: {"loyalty.tier"}}, {}, {}, NOW
        )
        assert [c.audience_id for c in outcome.changes] == [gold.id, french_gold.id]
