"""What ``analyse`` says about a rule without running it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from itinera.common.pql import Timing, analyse

CHECKOUT_TODAY = (
    'CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.checkouts", false)) WHEN(today)])'
)


class TestReferences:
    def test_profile_paths(self) -> None:
        analysis = analyse('person.name.firstName = "Jo" and homeAddress.countryCode = "US"')
        assert analysis.references == ["homeAddress.countryCode", "person.name.firstName"]

    def test_event_paths_are_prefixed_with_xevent(self) -> None:
        analysis = analyse('xEvent[eventType = "x" and commerce.order.priceTotal > 5].count() > 1')
        assert analysis.references == ["xEvent.commerce.order.priceTotal", "xEvent.eventType"]

    def test_counting_every_event_reads_the_events(self) -> None:
        assert analyse("xEvent.count() > 1").references == ["xEvent"]
        assert analyse("count(xEvent) > 1").references == ["xEvent"]

    def test_paths_read_through_bound_variables(self) -> None:
        analysis = analyse(
            "exists E from xEvent where (E.commerce.item.price > 50),"
            ' I from E.productListItems where I.SKU = "PS"'
        )
        assert analysis.references == ["xEvent.commerce.item.price", "xEvent.productListItems.SKU"]

    def test_chain_reads_its_time_field(self) -> None:
        assert analyse(CHECKOUT_TODAY).references == ["xEvent.eventType", "xEvent.timestamp"]

    def test_up_leads_back_to_the_profile(self) -> None:
        analysis = analyse('xEvent[productListItems[SKU = "PS" or ^^.person.gender = "female"]]')
        assert analysis.references == ["person.gender", "xEvent.productListItems.SKU"]

    def test_lambda_parameters_and_named_profiles(self) -> None:
        assert analyse("orders.filter(o => o.price > 1).count() > 0").references == ["orders.price"]
        assert analyse("(P) => P.homeAddress.city = $1.workAddress.city").references == [
            "homeAddress.city",
            "workAddress.city",
        ]

    def test_let_bound_values_are_not_attributes(self) -> None:
        analysis = analyse("let S = (sum X.commerce.order.priceTotal over X from xEvent) in S > 100")
        assert analysis.references == ["xEvent.commerce.order.priceTotal"]

    def test_map_lookups_with_a_literal_key(self) -> None:
        assert analyse('identityMap.get("Email").id.includes("x")').references == ["identityMap.Email.id"]


class TestSegments:
    def test_in_segment_and_membership_lookups_name_audiences(self) -> None:
        analysis = analyse(
            'inSegment("gold") or segmentMembership.get("ups").get("silver").status = "realized"'
        )
        assert analysis.segments == ["gold", "silver"]


class TestStreamingFollowsAepsEligibilityRules:
    @pytest.mark.parametrize(
        "rule",
        [
            CHECKOUT_TODAY,
            'homeAddress.country.equals("Canada", false)',
            f'workAddress.country.equals("Canada", false) and {CHECKOUT_TODAY}',
            'workAddress.country.equals("US", false) and CHAIN(xEvent, timestamp, ['
            'C0: WHAT(eventType.equals("directMarketing.emailClicked", false)) WHEN(today), '
            'C1: WHAT(eventType.equals("commerce.checkouts", false)) WHEN(today)])',
            'inSegment("a730ed3f") and inSegment("8fbbe169")',
            'homeAddress.countryCode = "US" and inSegment("existing")',
            'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "homePageView")'
            " WHEN(< 24 hours before now) COUNT(5)])",
            'xEvent[timestamp occurs < 2 hours before now and eventType = "x"]',
            'select var1 from xEvent where var1.timestamp occurs today and var1.eventType = "x"',
        ],
    )
    def test_eligible(self, rule: str) -> None:
        analysis = analyse(rule)
        assert analysis.streaming, analysis.streaming_reasons
        assert analysis.streaming_reasons == []

    @pytest.mark.parametrize(
        ("rule", "reason"),
        [
            ('chain(xEvent, timestamp, [A: WHAT(eventType = "addToCart")])', "no time window"),
            (
                'chain(xEvent, timestamp, [X: WHAT(eventType = "addToCart") WHEN(< 8 days before now)])',
                "8 days",
            ),
            (
                'not(chain(xEvent, timestamp, [A: WHAT(eventType = "homePageView")'
                " WHEN(< 24 hours before now)]))",
                "negated",
            ),
            (
                'chain(xEvent, timestamp, [X: WHAT(eventType = "a") WHEN(today)])'
                ' and chain(xEvent, timestamp, [X: WHAT(eventType = "b") WHEN(today)])',
                "one CHAIN",
            ),
            ("xEvent[timestamp occurs today].count() > 3", "aggregates"),
            ("let S = (sum X.value over X from xEvent) in S > 100", "aggregates"),
            (f'inSegment("e3be6d7f") and {CHECKOUT_TODAY}', "inSegment"),
            ("exists X from xEvent where X.timestamp occurs last week", "14 days"),
            (
                'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "a"), B: WHAT(eventType = "b") WHEN(today)])',
                "no time",
            ),
            ("unknownFunction()", "problems"),
            ("a = ", "does not parse"),
        ],
    )
    def test_ineligible_with_a_reason(self, rule: str, reason: str) -> None:
        analysis = analyse(rule)
        assert not analysis.streaming
        assert any(reason in text for text in analysis.streaming_reasons), analysis.streaming_reasons

    def test_in_segment_with_events_streams_when_the_audiences_are_profile_only(self) -> None:
        rule = f'inSegment("e3be6d7f") and {CHECKOUT_TODAY}'
        assert analyse(rule, profile_only_segments={"e3be6d7f"}).streaming is True


class TestLookback:
    @pytest.mark.parametrize(
        ("rule", "lookback"),
        [
            (CHECKOUT_TODAY, timedelta(days=1)),
            ("CHAIN(xEvent, timestamp, [A: WHAT(true) WHEN(<= 24 hours before now)])", timedelta(hours=24)),
            ("xEvent[timestamp occurs < 7 days before now].count()", timedelta(days=7)),
            ("xEvent[timestamp occurs = 3 days before today]", timedelta(days=4)),
            ("exists X from xEvent where X.timestamp occurs yesterday", timedelta(days=2)),
            ("xEvent.exists(e => e.timestamp occurs < 2 hours before now)", timedelta(hours=2)),
            ("xEvent[timestamp occurs today or timestamp occurs < 3 days before now]", timedelta(days=3)),
            ('xEvent[timestamp occurs this month and eventType = "a"]', timedelta(days=31)),
            ("xEvent[timestamp occurs > 3 days before now]", None),
            ("xEvent[timestamp occurs between date(2020, 1, 1) and date(2021, 1, 1)]", None),
            ('xEvent[eventType = "a"]', None),
            ('person.name = "x"', None),
            ("xEvent[timestamp occurs <= 1000 years before now]", timedelta(days=366_000)),
            ("xEvent[timestamp occurs <= 5000 years before now].count() > 0", None),  # every event
            (
                "CHAIN(xEvent, timestamp, [A: WHAT(true) WHEN(today)])"
                " and xEvent[timestamp occurs last week]",
                timedelta(days=14),
            ),
        ],
    )
    def test_longest_window_into_the_events(self, rule: str, lookback: timedelta | None) -> None:
        assert analyse(rule).lookback == lookback


class TestTimeDependence:
    @pytest.mark.parametrize(
        ("rule", "dependent"),
        [
            ("person.birthMonth = currentMonth()", True),
            ("x occurs today", True),
            ("x occurs last week", True),
            ("x > now", True),
            ("x occurs between date(2015, 1, 8) and date(2017, 7, 1)", False),
            ('x occurs before "2020-01-01"', False),
            ("person.age > 21", False),
        ],
    )
    def test_relative_time_makes_a_rule_depend_on_now(self, rule: str, dependent: bool) -> None:
        assert analyse(rule).time_dependent is dependent


HOUR, DAY = timedelta(hours=1), timedelta(days=1)


class TestTiming:
    @pytest.mark.parametrize(
        ("rule", "timing"),
        [
            ('person.name = "x"', Timing()),
            ("person.birthDate occurs today", Timing(calendar=frozenset({"day"}))),
            ("person.birthMonth = currentMonth()", Timing(calendar=frozenset({"month"}))),
            ("person.birthYear = currentYear()", Timing(calendar=frozenset({"year"}))),
            ("x occurs last week or y occurs next month", Timing(calendar=frozenset({"week", "month"}))),
            ("x occurs <= 3 days before today", Timing(calendar=frozenset({"day"}))),
            ("x occurs <= 3 days before now", Timing(unforeseen=True)),
            ("now.getDayOfMonth() = 1", Timing(unforeseen=True)),
            ('xEvent[eventType = "a" and timestamp occurs today]', Timing(event_calendar=frozenset({"day"}))),
            (CHECKOUT_TODAY, Timing(event_calendar=frozenset({"day"}))),
            (
                "exists X from xEvent where X.timestamp occurs last hour",
                Timing(event_calendar=frozenset({"hour"})),
            ),
            (
                "xEvent[timestamp occurs <= 24 hours before now]",
                Timing(event_offsets=frozenset({0 * DAY, DAY})),
            ),
            ("xEvent[timestamp occurs > 2 hours before now]", Timing(event_offsets=frozenset({2 * HOUR}))),
            (
                "xEvent[timestamp occurs = 3 days before now]",
                Timing(event_offsets=frozenset({2 * DAY, 3 * DAY})),
            ),
            (
                "xEvent.exists(e => e.timestamp occurs < 2 hours after now)",
                Timing(event_offsets=frozenset({-2 * HOUR, 0 * HOUR})),
            ),
            ("xEvent[timestamp occurs before now]", Timing(event_offsets=frozenset({0 * HOUR}))),
            (
                "CHAIN(xEvent, timestamp, [A: WHAT(true) WHEN(today),"
                " B: WHAT(true) WHEN(<= 1 hours before now)])",
                Timing(event_calendar=frozenset({"day"}), event_offsets=frozenset({0 * HOUR, HOUR})),
            ),
            (
                "person.birthDate occurs today and xEvent[timestamp occurs <= 24 hours before now]",
                Timing(calendar=frozenset({"day"}), event_offsets=frozenset({0 * DAY, DAY})),
            ),
        ],
    )
    def test_when_time_alone_can_change_the_value(self, rule: str, timing: Timing) -> None:
        assert analyse(rule).timing == timing

    @pytest.mark.parametrize(
        "rule",
        [
            "xEvent[timestamp occurs <= 1 months before now]",  # months vary in length
            "xEvent[commerce.order.date occurs <= 1 days before now]",  # not the event's timestamp
            "CHAIN(xEvent, other.time, [A: WHAT(true) WHEN(<= 24 hours before now)])",
            "xEvent[not (timestamp occurs <= 24 hours before now)]",
        ],
    )
    def test_now_in_a_test_no_event_time_foretells_is_unforeseen(self, rule: str) -> None:
        timing = analyse(rule).timing
        assert timing.unforeseen
        assert not timing.event_offsets

    def test_a_calendar_period_tested_against_another_time_of_an_event_holds_whatever_the_events(
        self,
    ) -> None:
        timing = analyse("xEvent[commerce.order.date occurs today]").timing
        assert timing == Timing(calendar=frozenset({"day"}))


class TestAnalyseNeverRaises:
    @pytest.mark.parametrize("text", ["", "(((", "a = = 1", '"unterminated', "foo(1)", "[" * 5000, "\x00"])
    def test_bad_input_is_reported_as_problems(self, text: str) -> None:
        analysis = analyse(text)
        assert analysis.problems
        assert analysis.streaming is False

    def test_input_that_is_not_text_is_a_problem(self) -> None:
        assert analyse(None).problems  # type: ignore[arg-type]

    def test_a_valid_rule_has_no_problems(self) -> None:
        assert analyse('homeAddress.countryCode = "US"').problems == []
