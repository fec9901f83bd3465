"""Durations and cron schedules as journeys write them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itinera.journeys.definitions.timing import duration_seconds, parse_cron


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("PT30M", 1800),
            ("P2D", 172_800),
            ("P1W", 604_800),
            ("P1DT2H3M4.5S", 93_784.5),
            ("pt1h", 3600),
            (90, 90),
        ],
    )
    def test_seconds_and_iso_8601_durations(self, text: str | int, seconds: float) -> None:
        assert duration_seconds(text) == seconds

    @pytest.mark.parametrize(
        "text", ["P1M", "P1Y", "P", "PT", "P1DT", "1 hour", "-PT1H", -5, True, "P99999W"]
    )
    def test_anything_else_is_refused(self, text: str | int) -> None:
        with pytest.raises(ValueError, match="duration"):
            duration_seconds(text)


class TestCron:
    def test_fields_names_ranges_steps_and_lists(self) -> None:
        cron = parse_cron("*/15 9-17 * JAN,jul MON-FRI")
        assert cron.minutes == {0, 15, 30, 45}
        assert cron.hours == set(range(9, 18))
        assert cron.months == {1, 7}
        assert cron.weekdays == {1, 2, 3, 4, 5}
        assert parse_cron("0 0 * * 7").weekdays == {0}

    @pytest.mark.parametrize(
        ("expression", "word"),
        [
            ("* * * *", "5 fields"),
            ("60 * * * *", "minute"),
            ("* 24 * * *", "hour"),
            ("* * 0 * *", "day of month"),
            ("* * * 13 *", "month"),
            ("* * * * 8", "day of week"),
            ("5-1 * * * *", "backwards"),
            ("*/0 * * * *", "step"),
            ("0 0 30 2 *", "no month"),
        ],
    )
    def test_a_bad_expression_says_which_field(self, expression: str, word: str) -> None:
        with pytest.raises(ValueError, match=word):
            parse_cron(expression)

    def test_the_next_time_follows_the_schedule(self) -> None:
        cron = parse_cron("30 9 * * MON")
        friday = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
        assert cron.next_after(friday) == datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
        paris = datetime(2026, 11, 30, 9, 30, tzinfo=ZoneInfo("Europe/Paris"))
        assert cron.next_after(paris) == datetime(2026, 12, 7, 9, 30, tzinfo=ZoneInfo("Europe/Paris"))

    def test_either_day_field_matches_when_both_are_restricted(self) -> None:
        cron = parse_cron("0 0 13 * FRI")
        assert cron.next_after(datetime(2026, 11, 1, tzinfo=UTC)) == datetime(2026, 11, 6, tzinfo=UTC)

    @settings(max_examples=200, deadline=None)
    @given(
        minute=st.sampled_from(["*", "0", "*/7", "5,35", "10-20"]),
        hour=st.sampled_from(["*", "3", "*/5", "22-23"]),
        day=st.sampled_from(["*", "1", "29", "15-16"]),
        month=st.sampled_from(["*", "2", "FEB,DEC", "6-8"]),
        weekday=st.sampled_from(["*", "0", "SAT", "1-5"]),
        at=st.integers(min_value=946_684_800, max_value=3_786_825_600).map(
            lambda seconds: datetime.fromtimestamp(seconds, UTC)
        ),
    )
    def test_the_next_time_is_the_first_matching_minute_after(
        self, minute: str, hour: str, day: str, month: str, weekday: str, at: datetime
    ) -> None:
        cron = parse_cron(f"{minute} {hour} {day} {month} {weekday}")
        following = cron.next_after(at)
        assert following > at
        assert cron.matches(following)
        assert (following.second, following.microsecond) == (0, 0)
        # No matching minute between: checked on the last day before it, minute by minute.
        probe = max(at.replace(second=0, microsecond=0), following - timedelta(days=1)) + timedelta(minutes=1)
        while probe < following:
            assert not cron.matches(probe), probe
            probe += timedelta(minutes=1)
