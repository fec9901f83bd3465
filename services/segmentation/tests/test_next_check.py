"""When time alone can next change a rule's answer for a profile: the moment a
time-dependent audience is evaluated again without any new event."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from itinera.segmentation.membership.repository import Audience
from itinera.segmentation.membership.service import next_check


class TestNextCheck:
    AUDIENCE = Audience("a", "x", ("xEvent.timestamp",), (), timedelta(hours=24), True, datetime.now(UTC))
    NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)

    def test_the_oldest_event_in_the_window_leaving_it_is_the_next_check(self) -> None:
        events = [{"timestamp": "2026-11-28T01:00:00Z"}, {"timestamp": "2026-11-27T20:00:00Z"}]
        due = next_check(self.AUDIENCE, events, self.NOW)
        assert due == datetime(2026, 11, 28, 20, tzinfo=UTC) + timedelta(milliseconds=1)

    def test_no_event_in_the_window_means_no_check(self) -> None:
        assert next_check(self.AUDIENCE, [{"timestamp": "2026-11-20T00:00:00Z"}], self.NOW) is None

    def test_a_rule_on_calendar_time_is_checked_at_midnight(self) -> None:
        calendar = replace(self.AUDIENCE, lookback=None)
        assert next_check(calendar, [], self.NOW) == datetime(2026, 11, 29, tzinfo=UTC)

    def test_a_rule_that_does_not_depend_on_time_is_never_checked(self) -> None:
        assert next_check(replace(self.AUDIENCE, time_dependent=False), [], self.NOW) is None
