"""The cron expressions of AEP's schedules: Quartz's fields, restricted to what a daily
job needs, in UTC.

``seconds minutes hours day-of-month month day-of-week [year]``, e.g. ``0 30 13 * * ?``
(every day at 13:30:00 UTC). A schedule fires at most once a day, so seconds, minutes
and hours are one number each. The day fields take Quartz's ``*``, ``?`` (no
restriction), numbers, ranges (``MON-FRI``, ``1-15``), lists (``1,15``) and steps
(``*/2``, ``1-31/7``); months may be named ``JAN``..``DEC`` and days of the week
``SUN``..``SAT`` (1 is Sunday, as in Quartz). As in Quartz, day-of-month and day-of-week
cannot both be restricted. Quartz's ``L``, ``W`` and ``#`` are refused with a
:class:`CronError` naming them, as is anything else this module cannot read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_SEARCH_DAYS = 366 * 8
"""How far ahead an occurrence is looked for: past it, the expression never fires (a
29th of February on a Monday recurs within 28 years, but a daily job has no use for it)."""


class CronError(ValueError):
    """Why an expression is not a daily schedule this module can run."""


@dataclass(frozen=True)
class Daily:
    """A parsed expression: the time of day and the days it fires on."""

    at: time
    days_of_month: frozenset[int] | None  # None: any
    months: frozenset[int]
    days_of_week: frozenset[int] | None  # 1 (Sunday) to 7; None: any
    years: frozenset[int] | None

    def fires_on(self, day: date) -> bool:
        return (
            day.month in self.months
            and (self.days_of_month is None or day.day in self.days_of_month)
            and (self.days_of_week is None or day.isoweekday() % 7 + 1 in self.days_of_week)
            and (self.years is None or day.year in self.years)
        )

    def next_after(self, moment: datetime) -> datetime | None:
        """The first occurrence strictly after ``moment``; None when there is none."""
        day = moment.astimezone(UTC).date()
        for _ in range(_SEARCH_DAYS):
            if self.fires_on(day):
                fire = datetime.combine(day, self.at, tzinfo=UTC)
                if fire > moment:
                    return fire
            day += timedelta(days=1)
        return None


def _number(text: str, field: str, low: int, high: int, names: tuple[str, ...] = ()) -> int:
    upper = text.upper()
    if upper in names:
        return names.index(upper) + low
    special = next((c for c in "#LW" if c in upper), None)
    if special is not None:
        raise CronError(f"{field}: Quartz's {special!r} ({text!r}) is not supported")
    if not text.isdigit():
        raise CronError(f"{field}: {text!r} is not a number from {low} to {high}")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{field}: {value} is not from {low} to {high}")
    return value


def _single(text: str, field: str, high: int) -> int:
    if not text.isdigit():
        raise CronError(f"{field}: {text!r} must be one number: a schedule runs its job at most once a day")
    return _number(text, field, 0, high)


def _days(text: str, field: str, low: int, high: int, names: tuple[str, ...] = ()) -> frozenset[int] | None:
    """A day field's values; None for ``*`` and ``?``."""
    if text in ("*", "?"):
        return None
    values: set[int] = set()
    for item in text.split(","):
        span, _, step_text = item.partition("/")
        step = _number(step_text, field, 1, high) if step_text else 1
        if span == "*":
            first, last = low, high
        elif "-" in span:
            start, _, end = span.partition("-")
            first, last = _number(start, field, low, high, names), _number(end, field, low, high, names)
            if last < first:
                raise CronError(f"{field}: the range {span!r} ends before it starts")
        else:
            first = _number(span, field, low, high, names)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


def parse(expression: str) -> Daily:
    """The schedule an expression describes; a :class:`CronError` saying what is wrong."""
    fields = expression.split()
    if len(fields) not in (6, 7):
        raise CronError(
            "a cron expression has 6 or 7 fields (seconds minutes hours day-of-month month "
            f"day-of-week [year]), not {len(fields)}"
        )
    second, minute, hour, dom, month, dow = fields[:6]
    at = time(_single(hour, "hours", 23), _single(minute, "minutes", 59), _single(second, "seconds", 59))
    days_of_month = _days(dom, "day-of-month", 1, 31)
    days_of_week = _days(dow, "day-of-week", 1, 7, _DAYS)
    if days_of_month is not None and days_of_week is not None:
        raise CronError("day-of-month and day-of-week cannot both be given: one of them must be '?'")
    months = _days(month, "month", 1, 12, _MONTHS)
    years = _days(fields[6], "year", 1970, 2199) if len(fields) == 7 else None
    return Daily(at, days_of_month, months or frozenset(range(1, 13)), days_of_week, years)
