"""Durations and schedules as journeys write them, read without a database.

- A duration is a number of seconds (``3600``) or an ISO-8601 duration of weeks, days,
  hours, minutes and seconds (``P2D``, ``PT30M``, ``P1W``, ``PT1.5S``). Years and months
  are refused: their length depends on the calendar, and a wait must mean one span.
- A cron expression has AEP's and Unix's five fields, minute, hour, day of month, month
  and day of week, each ``*``, a number, a range ``a-b``, a step ``*/n`` or ``a-b/n``, or
  a list of those; months and days may be named (``JAN``, ``MON``), Sunday is 0 or 7.
  As in Unix cron, when both day fields are restricted a day matching either is taken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_DURATION = re.compile(
    r"P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)
_UNIT_SECONDS = {"weeks": 604_800, "days": 86_400, "hours": 3_600, "minutes": 60, "seconds": 1}
MAX_SECONDS = 10 * 366 * 86_400
"""The longest duration accepted anywhere: ten years."""


def duration_seconds(value: int | float | str) -> float:
    """The seconds ``value`` stands for; ``ValueError`` when it is not a duration."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or an ISO-8601 duration such as PT1H")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.fullmatch(value.strip().upper())
        if match is None or value.strip().upper() in ("P", "PT") or value.strip().upper().endswith("T"):
            raise ValueError(
                f"{value!r} is not an ISO-8601 duration of weeks, days, hours, minutes and seconds "
                "(P2D, PT30M, P1W); years and months are not accepted"
            )
        seconds = sum(float(match[unit] or 0) * factor for unit, factor in _UNIT_SECONDS.items())
    if not 0 <= seconds <= MAX_SECONDS:
        raise ValueError(f"a duration is 0 to {MAX_SECONDS} seconds (ten years)")
    return seconds


_MONTHS = {
    name: number for number, name in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)
}
_WEEKDAYS = {name: number for number, name in enumerate("SUN MON TUE WED THU FRI SAT".split())}


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}),
    _Field("month", 1, 12, _MONTHS),
    _Field("day of week", 0, 7, _WEEKDAYS),
)


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed cron expression: the values each field allows."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 is Sunday; a 7 written in the expression is stored as 0."""
    any_day: bool
    any_weekday: bool

    def matches(self, at: datetime) -> bool:
        """Whether ``at`` (to the minute, in its own time zone) is one of the schedule's times."""
        return (
            at.minute in self.minutes
            and at.hour in self.hours
            and at.month in self.months
            and self._day_matches(at)
        )

    def _day_matches(self, at: datetime) -> bool:
        by_day = at.day in self.days
        by_weekday = (at.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return by_day and by_weekday
        return by_day or by_weekday

    def next_after(self, at: datetime) -> datetime:
        """The first time of the schedule strictly after ``at``, in ``at``'s time zone
        (wall-clock minutes: a time skipped by a daylight-saving change is skipped)."""
        candidate = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
        # Any schedule fires within about eight years (29 February on a given weekday).
        for _ in range(366 * 9):
            if candidate.month in self.months and self._day_matches(candidate):
                for hour in sorted(h for h in self.hours if h >= candidate.hour):
                    first = candidate.minute if hour == candidate.hour else 0
                    for minute in sorted(m for m in self.minutes if m >= first):
                        return candidate.replace(hour=hour, minute=minute)
            candidate = (candidate + timedelta(days=1)).replace(hour=0, minute=0)
        raise ValueError("the schedule never fires")  # e.g. 30 February


def parse_cron(expression: str) -> Cron:
    """``ValueError`` names the field at fault when ``expression`` is not a cron expression."""
    parts = expression.split()
    if len(parts) != 5:
        raise ValueError(
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), not {len(parts)}"
        )
    values = [_parse_field(part, spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(0 if day == 7 else day for day in values[4])
    cron = Cron(
        minutes=values[0],
        hours=values[1],
        days=values[2],
        months=values[3],
        weekdays=weekdays,
        any_day=parts[2].startswith("*"),
        any_weekday=parts[4].startswith("*"),
    )
    if cron.any_weekday and not any(day <= _longest_month(cron.months) for day in cron.days):
        raise ValueError(f"no month of {sorted(cron.months)} has day {min(cron.days)}")
    return cron


def _longest_month(months: frozenset[int]) -> int:
    return max(29 if month == 2 else 30 if month in (4, 6, 9, 11) else 31 for month in months)


def _value(text: str, spec: _Field) -> int:
    upper = text.upper()
    if upper in spec.names:
        return spec.names[upper]
    if not text.isdigit() or len(text) > 2:
        raise ValueError(f"{text!r} is not a {spec.name}")
    number = int(text)
    if not spec.low <= number <= spec.high:
        raise ValueError(f"the {spec.name} is {spec.low} to {spec.high}, not {number}")
    return number


def _parse_field(text: str, spec: _Field) -> frozenset[int]:
    allowed: set[int] = set()
    for item in text.split(","):
        span, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or not 1 <= int(step_text) <= spec.high:
                raise ValueError(f"the step of {item!r} ({spec.name}) is 1 to {spec.high}")
            step = int(step_text)
        if span == "*":
            low, high = spec.low, spec.high
        elif "-" in span:
            first, _, last = span.partition("-")
            low, high = _value(first, spec), _value(last, spec)
            if low > high:
                raise ValueError(f"the range {span!r} ({spec.name}) runs backwards")
        else:
            low = _value(span, spec)
            high = spec.high if slash else low
        allowed.update(range(low, high + 1, step))
    return frozenset(allowed)
