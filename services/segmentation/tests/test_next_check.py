"""When time alone can next change a rule's answer for a profile: the moment a
time-dependent audience is evaluated again without any new event. It must be no later
than the earliest moment the answer can change: an event leaving a window anchored on
now, or the start of the next calendar period (UTC) the rule reads."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from itinera.common import pql
from itinera.common.projection import occurred_at
from itinera.segmentation.membership.service import next_check, window_start

from .test_membership_rules import audience

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)  # a Saturday
MIDNIGHT = datetime(2026, 11, 29, tzinfo=UTC)
LATER = timedelta(milliseconds=1)
"""How long after the moment an event's time crosses a bound the check comes."""
WITHIN_24_HOURS = 'xEvent[eventType = "a" and timestamp occurs <= 24 hours before now]'
TODAY = 'xEvent[eventType = "a" and timestamp occurs today]'


def at(text: str) -> dict[str, str]:
    return {"eventType": "a", "timestamp": text}


class TestWindowsAnchoredOnNow:
    def test_the_oldest_event_in_the_window_leaving_it_is_the_next_check(self) -> None:
        events = [at("2026-11-28T01:00:00Z"), at("2026-11-27T20:00:00Z")]
        due = next_check(audience(WITHIN_24_HOURS), events, NOW)
        assert due == datetime(2026, 11, 28, 20, tzinfo=UTC) + LATER

    def test_a_plain_24_hour_window_is_not_cut_at_midnight(self) -> None:
        due = next_check(audience(WITHIN_24_HOURS), [at("2026-11-28T09:00:00Z")], NOW)
        assert due == datetime(2026, 11, 29, 9, tzinfo=UTC) + LATER

    def test_no_event_in_the_window_means_no_check(self) -> None:
        assert next_check(audience(WITHIN_24_HOURS), [at("2026-11-20T00:00:00Z")], NOW) is None

    def test_a_future_dated_event_is_checked_when_it_reaches_now(self) -> None:
        due = next_check(audience(WITHIN_24_HOURS), [at("2026-11-28T15:00:00Z")], NOW)
        assert due == datetime(2026, 11, 28, 15, tzinfo=UTC) + LATER

    def test_an_event_entering_a_window_that_does_not_start_at_now_is_checked_when_it_does(self) -> None:
        # 20 to 19 hours before now: an event at 09:00 enters at 04:00 the next day.
        rule = 'xEvent[eventType = "a" and timestamp occurs = 20 hours before now]'
        due = next_check(audience(rule), [at("2026-11-28T09:00:00Z")], NOW)
        assert due == datetime(2026, 11, 29, 4, tzinfo=UTC) + LATER


class TestCalendarPeriods:
    def test_an_event_today_is_checked_at_the_next_midnight_not_a_day_after_it(self) -> None:
        event = [at("2026-11-28T09:00:00Z")]
        assert next_check(audience(TODAY), event, datetime(2026, 11, 28, 9, tzinfo=UTC)) == MIDNIGHT

    def test_an_event_yesterday_is_checked_when_it_becomes_yesterday_and_when_it_stops(self) -> None:
        rule = audience('xEvent[eventType = "a" and timestamp occurs yesterday]')
        event = [at("2026-11-28T09:00:00Z")]
        assert next_check(rule, event, datetime(2026, 11, 28, 9, tzinfo=UTC)) == MIDNIGHT
        assert next_check(rule, event, MIDNIGHT) == MIDNIGHT + timedelta(days=1)

    def test_an_event_this_week_is_checked_on_monday(self) -> None:
        rule = audience('xEvent[eventType = "a" and timestamp occurs this week]')
        assert next_check(rule, [at("2026-11-27T09:00:00Z")], NOW) == datetime(2026, 11, 30, tzinfo=UTC)

    def test_an_event_last_minute_is_checked_at_the_next_minute(self) -> None:
        rule = audience('xEvent[eventType = "a" and timestamp occurs last minute]')
        now = datetime(2026, 11, 28, 12, 0, 20, tzinfo=UTC)
        due = next_check(rule, [at("2026-11-28T11:59:59.999Z")], now)
        assert due == datetime(2026, 11, 28, 12, 1, tzinfo=UTC)

    def test_an_event_no_calendar_period_can_hold_again_is_never_checked(self) -> None:
        assert next_check(audience(TODAY), [at("2026-11-20T09:00:00Z")], NOW) is None
        assert next_check(audience(TODAY), [], NOW) is None

    def test_a_profile_attribute_on_calendar_time_is_checked_at_each_midnight_whatever_the_events(
        self,
    ) -> None:
        rule = audience(f"person.birthDate occurs today and {WITHIN_24_HOURS}")
        assert next_check(rule, [at("2026-11-28T09:00:00Z")], NOW) == MIDNIGHT
        assert next_check(rule, [], NOW) == MIDNIGHT
        assert next_check(audience("person.birthDate occurs today"), [], NOW) == MIDNIGHT

    @pytest.mark.parametrize(
        ("rule", "due"),
        [
            ("person.birthMonth = currentMonth()", datetime(2026, 12, 1, tzinfo=UTC)),
            ("person.birthYear = currentYear()", datetime(2027, 1, 1, tzinfo=UTC)),
            ("person.birthDay = currentDayOfMonth()", MIDNIGHT),
            ("person.lastVisit occurs last week", datetime(2026, 11, 30, tzinfo=UTC)),
            ("person.lastVisit occurs this month", datetime(2026, 12, 1, tzinfo=UTC)),
            ("person.lastVisit occurs = 3 hours before today", MIDNIGHT),
        ],
    )
    def test_a_rule_is_checked_when_the_period_it_reads_ends(self, rule: str, due: datetime) -> None:
        assert next_check(audience(rule), [], NOW) == due

    def test_the_earliest_of_several_periods_and_windows_comes_first(self) -> None:
        rule = audience(f"person.lastVisit occurs this month and {TODAY} and {WITHIN_24_HOURS}")
        assert next_check(rule, [at("2026-11-28T01:00:00Z")], NOW) == MIDNIGHT
        late = datetime(2026, 11, 29, 0, 30, tzinfo=UTC)
        assert (
            next_check(rule, [at("2026-11-28T01:00:00Z")], late)
            == datetime(2026, 11, 29, 1, tzinfo=UTC) + LATER
        )


class TestOtherTimes:
    def test_a_rule_reading_now_otherwise_is_checked_daily(self) -> None:
        rule = audience("person.birthDate occurs <= 30 days before now")
        assert next_check(rule, [], NOW) == MIDNIGHT

    def test_a_look_back_reaching_before_year_1_reads_from_the_first_moment(self) -> None:
        # (one stored before look-backs over 1,000 years were read as "every event")
        assert window_start(NOW, [timedelta(days=366 * 5000)]) == datetime.min.replace(tzinfo=UTC)
        assert window_start(NOW, [timedelta(days=1), None]) is None
        assert window_start(NOW, [timedelta(days=1)]) == NOW - timedelta(days=1)

    def test_a_rule_that_does_not_depend_on_time_is_never_checked(self) -> None:
        assert next_check(audience('person.name = "x"'), [], NOW) is None
        assert (
            next_check(replace(audience(TODAY), time_dependent=False), [at("2026-11-28T09:00:00Z")], NOW)
            is None
        )


A = 'xEvent[eventType = "a" and timestamp occurs'
SAMPLES = [
    TODAY,
    WITHIN_24_HOURS,
    'xEvent[eventType = "a" and timestamp occurs yesterday]',
    'xEvent[eventType = "a" and timestamp occurs tomorrow]',
    'xEvent[eventType = "a" and timestamp occurs this week]',
    'xEvent[eventType = "a" and timestamp occurs last hour]',
    'xEvent[eventType = "a" and timestamp occurs = 20 hours before now]',
    f"{A} > 3 hours before now and timestamp occurs <= 1 days before now]",
    f"{A} != 2 hours before now and timestamp occurs <= 1 days before now]",
    'xEvent[eventType = "a" and timestamp occurs < 2 hours after now]',
    'xEvent[eventType = "a" and timestamp occurs = 2 hours after now]',
    'xEvent[eventType = "a" and timestamp occurs <= 3 hours before today]',
    'xEvent[eventType = "a" and timestamp occurs between yesterday and now]',
    f"not {TODAY}",
    "xEvent.forall(e => e.timestamp occurs today)",
    'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "a") WHEN(today),'
    " B: WHAT(true) WHEN(<= 2 hours before now)])",
    f"person.birthDate occurs today and {WITHIN_24_HOURS}",
    'person.birthDate occurs this month or xEvent[eventType = "a" and timestamp occurs last minute]',
    "person.birthMonth = currentMonth()",
]
moments = st.integers(-4 * 24 * 3600 * 1000, 4 * 24 * 3600 * 1000).map(lambda ms: NOW + ms * LATER)


class TestNothingChangesBeforeTheCheck:
    @pytest.mark.parametrize("rule", SAMPLES)
    @settings(max_examples=150, deadline=None)
    @given(
        now=moments,
        times=st.lists(moments, max_size=3),
        birth=st.dates(date(2026, 10, 1), date(2026, 12, 31)),
        fraction=st.floats(0, 1, exclude_max=True),
    )
    def test_the_answer_is_the_same_at_any_moment_before_the_check(
        self, rule: str, now: datetime, times: list[datetime], birth: date, fraction: float
    ) -> None:
        events = [at(time.isoformat()) for time in times]
        profile = {"person": {"birthDate": birth.isoformat(), "birthMonth": birth.month}}
        found = audience(rule)
        since = now - found.lookback if found.lookback is not None else None
        read = [e for e in events if since is None or (occurred_at(e) or since) >= since]
        due = next_check(found, read, now) or now + timedelta(days=60)
        # A bound an event's time reaches holds from that moment: it is seen 1 ms later.
        span = (due - LATER - now) // timedelta(microseconds=1)
        assume(span > 0)
        moment = now + timedelta(microseconds=min(int(span * fraction), span - 1))
        qualifies = pql.compile_rule(rule).qualifies
        assert qualifies(profile, now=moment, events=events) == qualifies(profile, now=now, events=events)
