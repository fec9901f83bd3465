"""The runtime meaning of PQL's values, operators and functions.

Everything here takes whatever the profile holds and never raises: a value of the
wrong shape gives ``None`` (null) or ``False``, as the package docstring describes.
Times are compared in UTC; ``Period`` is a half-open span of time, or an instant when
its start and end are equal.
"""

from __future__ import annotations

import math
import re
from calendar import monthrange
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

_DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}")
FIXED_UNITS = {
    "millisecond": timedelta(milliseconds=1),
    "second": timedelta(seconds=1),
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(days=7),
}
"""The units of fixed length; the others (months, years...) follow the calendar."""
_MONTH_UNITS = {"month": 1, "year": 12, "decade": 120, "century": 1200, "millennium": 12000}
UNIT_UPPER_BOUND = {
    **FIXED_UNITS,
    "month": timedelta(days=31),
    "year": timedelta(days=366),
    "decade": timedelta(days=3653),
    "century": timedelta(days=36525),
    "millennium": timedelta(days=365250),
}
"""The longest a unit can last, for bounding look-back windows."""


@dataclass(frozen=True, slots=True)
class MapEntry:
    """What ``mapEntry(key, value)`` builds; ``map`` over a map turns these into a map."""

    key: Any
    value: Any


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime

    @property
    def instant(self) -> bool:
        return self.start == self.end


# Kinds of value


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_array(value: Any) -> bool:
    return isinstance(value, list | tuple)


def truthy(value: Any) -> bool:
    """PQL truth: ``true``, or an array with at least one item (an existence test)."""
    return value is True or (isinstance(value, list | tuple) and len(value) > 0)


def get(value: Any, name: str) -> Any:
    """``value.name``: an object's attribute, or the attribute of every item of an array."""
    if isinstance(value, Mapping):
        return value.get(name)
    if isinstance(value, list | tuple):
        found: list[Any] = []
        for item in value:
            inner = get(item, name)
            if isinstance(inner, list | tuple):
                found.extend(inner)
            elif inner is not None:
                found.append(inner)
        return found
    return None


def get_path(value: Any, names: tuple[str, ...]) -> Any:
    for name in names:
        if value is None:
            return None
        value = get(value, name)
    return value


# Time


@lru_cache(maxsize=8192)
def _parse_time_text(text: str) -> datetime | date | None:
    try:
        if len(text) == 10 and _DATE_ONLY.fullmatch(text):
            return date.fromisoformat(text)
        if _TIMESTAMP.match(text):
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is None:
                return parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return None


def as_time(value: Any) -> datetime | date | None:
    """A date (``YYYY-MM-DD``) or a UTC timestamp from an XDM value, or ``None``."""
    if isinstance(value, str):
        return _parse_time_text(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except (ValueError, OverflowError):
            return None
    if isinstance(value, date):
        return value
    return None


def as_instant(value: Any) -> datetime | None:
    """A moment in time; a date stands for its first moment (midnight UTC)."""
    time = as_time(value)
    if time is None or isinstance(time, datetime):
        return time
    return datetime(time.year, time.month, time.day, tzinfo=UTC)


def as_period(value: Any) -> Period | None:
    """A date covers its whole day; a timestamp is an instant."""
    if isinstance(value, Period):
        return value
    time = as_time(value)
    if time is None:
        return None
    if isinstance(time, datetime):
        return Period(time, time)
    start = datetime(time.year, time.month, time.day, tzinfo=UTC)
    end = shift(start, "day", 1)
    return Period(start, end) if end is not None else None


def shift(moment: datetime, unit: str, amount: int) -> datetime | None:
    """``moment`` moved by ``amount`` units (calendar units keep the day where they can)."""
    try:
        if unit in FIXED_UNITS:
            return moment + FIXED_UNITS[unit] * amount
        total = moment.year * 12 + moment.month - 1 + _MONTH_UNITS[unit] * amount
        year, month_index = divmod(total, 12)
        if not 1 <= year <= 9999:
            return None
        day = min(moment.day, monthrange(year, month_index + 1)[1])
        return moment.replace(year=year, month=month_index + 1, day=day)
    except (OverflowError, ValueError, KeyError):
        return None


def truncate(moment: datetime, unit: str) -> datetime | None:
    """The start of the calendar ``unit`` holding ``moment`` (weeks start on Monday)."""
    try:
        if unit == "millisecond":
            return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        if unit == "second":
            return moment.replace(microsecond=0)
        if unit == "minute":
            return moment.replace(second=0, microsecond=0)
        if unit == "hour":
            return moment.replace(minute=0, second=0, microsecond=0)
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        if unit == "day":
            return day
        if unit == "week":
            return day - timedelta(days=day.weekday())
        if unit == "month":
            return day.replace(day=1)
        span = {"year": 1, "decade": 10, "century": 100, "millennium": 1000}[unit]
        return day.replace(year=max(1, moment.year // span * span), month=1, day=1)
    except (OverflowError, ValueError, KeyError):
        return None


def relative_period(which: str, unit: str, now: datetime) -> Period | None:
    """``this``/``last``/``next`` ``unit`` around ``now``."""
    start = truncate(now, unit)
    if start is None:
        return None
    offset = {"this": 0, "last": -1, "next": 1}[which]
    first = shift(start, unit, offset)
    after = shift(start, unit, offset + 1)
    if first is None or after is None:
        return None
    return Period(first, after)


def time_word(word: str, now: datetime) -> Period | None:
    if word == "now":
        return Period(now, now)
    midnight = truncate(now, "day")
    if midnight is None:
        return None
    offset = {"today": 0, "yesterday": -1, "tomorrow": 1}[word]
    start = shift(midnight, "day", offset)
    end = shift(midnight, "day", offset + 1)
    if start is None or end is None:
        return None
    return Period(start, end)


def occurs_relative(
    subject: Any, op: str, amount: int, unit: str, direction: str, base: Period | None
) -> bool:
    """``subject occurs op amount unit direction base``.

    The reference ``R`` is ``amount`` units before (or after) the start of ``base``.
    ``<``/``<=`` mean "within": between ``R`` and the base. ``>``/``>=`` mean "further
    than": beyond ``R``. ``=`` means within the one unit that starts at ``R``, so
    ``= 3 days before today`` is the whole day three days ago; ``!=`` is its opposite.
    """
    moment = as_instant(subject)
    if moment is None or base is None:
        return False
    anchor = base.start
    sign = -1 if direction == "before" else 1
    reference = shift(anchor, unit, sign * amount)
    if reference is None:  # off the calendar (before year 1, after 9999): every moment is within
        if op in ("<", "<="):
            return moment <= anchor if direction == "before" else anchor <= moment
        return op == "!="  # and none beyond it, nor in a unit there
    if op in ("=", "!="):
        following = shift(reference, unit, 1)
        if following is None:
            return False
        inside = reference <= moment < following
        return inside if op == "=" else not inside
    if direction == "before":
        if op == "<":
            return reference < moment <= anchor
        if op == "<=":
            return reference <= moment <= anchor
        return moment < reference if op == ">" else moment <= reference
    if op == "<":
        return anchor <= moment < reference
    if op == "<=":
        return anchor <= moment <= reference
    return moment > reference if op == ">" else moment >= reference


def occurs_direction(subject: Any, direction: str, period: Period | None) -> bool:
    moment = as_instant(subject)
    if moment is None or period is None:
        return False
    if direction == "before":
        return moment < period.start
    if period.instant:
        return moment > period.start
    return moment >= period.end


def occurs_on(subject: Any, period: Period | None) -> bool:
    moment = as_instant(subject)
    if moment is None or period is None:
        return False
    if period.instant:
        return moment == period.start
    return period.start <= moment < period.end


def occurs_between(subject: Any, first: Period | None, last: Period | None) -> bool:
    moment = as_instant(subject)
    if moment is None or first is None or last is None:
        return False
    if last.instant:
        return first.start <= moment <= last.start
    return first.start <= moment < last.end


def date_value(year: Any, month: Any, day: Any) -> date | None:
    if not all(isinstance(part, int) and not isinstance(part, bool) for part in (year, month, day)):
        return None
    try:
        return date(year, month, day)
    except (ValueError, OverflowError):
        return None


def date_part(value: Any, part: str) -> int | None:
    time = as_time(value)
    if time is None:
        return None
    value_of: int = getattr(time, part)
    return value_of


# Comparison


def _looks_like_time(text: str) -> bool:
    return len(text) >= 10 and _DATE_ONLY.match(text) is not None


def _time_order(left: Any, right: Any) -> int | None:
    first, second = as_time(left), as_time(right)
    if first is None or second is None:
        return None
    if isinstance(first, datetime) != isinstance(second, datetime):
        # A date against a timestamp compares whole days.
        first = first.date() if isinstance(first, datetime) else first
        second = second.date() if isinstance(second, datetime) else second
    if first < second:
        return -1
    return 1 if first > second else 0


def _order(left: Any, right: Any) -> int | None:
    """-1, 0 or 1 when the two values can be ordered; ``None`` when they cannot."""
    if is_number(left) and is_number(right):
        if left < right:
            return -1
        if left > right:
            return 1
        return 0 if left == right else None
    if isinstance(left, date) or isinstance(right, date):
        return _time_order(left, right)
    if isinstance(left, str) and isinstance(right, str):
        if _looks_like_time(left) and _looks_like_time(right):
            order = _time_order(left, right)
            if order is not None:
                return order
        return -1 if left < right else (1 if left > right else 0)
    return None


def equal(left: Any, right: Any) -> bool:
    if left is None or right is None:
        return False
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if is_number(left) and is_number(right):
        return bool(left == right)
    if isinstance(left, str) and isinstance(right, str):
        if left == right:
            return True
        return _looks_like_time(left) and _looks_like_time(right) and _time_order(left, right) == 0
    if isinstance(left, date) or isinstance(right, date):
        return _time_order(left, right) == 0
    if is_array(left) and is_array(right):
        return len(left) == len(right) and all(equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(equal(left[key], right[key]) for key in left)
    if isinstance(left, MapEntry) and isinstance(right, MapEntry):
        return equal(left.key, right.key) and equal(left.value, right.value)
    return False


def compare(op: str, left: Any, right: Any) -> bool:
    """A comparison; anything compared with null is false, ``!=`` included."""
    if left is None or right is None:
        return False
    if op == "=":
        return equal(left, right)
    if op == "!=":
        return not equal(left, right)
    order = _order(left, right)
    if order is None:
        return False
    if op == "<":
        return order < 0
    if op == "<=":
        return order <= 0
    if op == ">":
        return order > 0
    return order >= 0


def member(item: Any, items: Any) -> bool:
    return is_array(items) and any(equal(item, candidate) for candidate in items)


def in_list(item: Any, items: Any) -> bool:
    return item is not None and member(item, items)


def not_in_list(item: Any, items: Any) -> bool:
    """``notIn`` also requires both sides to be present, so it is not the negation of ``in``."""
    return item is not None and is_array(items) and not member(item, items)


# Arithmetic


def arithmetic(op: str, left: Any, right: Any) -> Any:
    """Numbers only; null, other types, division by zero and overflow give null."""
    if not (is_number(left) and is_number(right)):
        return None
    try:
        result: int | float
        if op == "+":
            result = left + right
        elif op == "-":
            result = left - right
        elif op == "*":
            result = left * right
        elif op == "/":
            if right == 0:
                return None
            result = left / right
        else:
            if right == 0:
                return None
            # Remainder takes the sign of the dividend, as on the JVM.
            if isinstance(left, int) and isinstance(right, int):
                result = abs(left) % abs(right) * (-1 if left < 0 else 1)
            else:
                result = math.fmod(left, right)
    except (OverflowError, ValueError, ZeroDivisionError):
        return None
    if isinstance(result, float) and not math.isfinite(result):
        return None
    return result


def negate(value: Any) -> Any:
    return -value if is_number(value) else None


# Strings


def like_pattern(pattern: str) -> re.Pattern[str]:
    """SQL ``like``: ``%`` is any run of characters, ``_`` exactly one."""
    parts = [".*" if char == "%" else "." if char == "_" else re.escape(char) for char in pattern]
    return re.compile("".join(parts), re.DOTALL)


@lru_cache(maxsize=256)
def like_pattern_cached(pattern: str) -> re.Pattern[str]:
    return like_pattern(pattern)


def like(text: Any, pattern: Any, compiled: re.Pattern[str] | None = None) -> bool:
    if not isinstance(text, str) or not isinstance(pattern, str):
        return False
    regex = compiled if compiled is not None else like_pattern_cached(pattern)
    return regex.fullmatch(text) is not None


def compile_regex(pattern: str) -> re.Pattern[str] | str:
    """The compiled pattern, or the reason it does not compile."""
    try:
        return re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as error:
        return str(error)


@lru_cache(maxsize=256)
def _regex_cached(pattern: str) -> re.Pattern[str] | None:
    compiled = compile_regex(pattern)
    return compiled if isinstance(compiled, re.Pattern) else None


def regex_for(pattern: Any) -> re.Pattern[str] | None:
    return _regex_cached(pattern) if isinstance(pattern, str) else None


def matches(text: Any, regex: re.Pattern[str] | None) -> bool:
    """``matches`` finds the pattern anywhere; anchor it with ``^``/``$`` to match the whole."""
    if not isinstance(text, str) or regex is None:
        return False
    return regex.search(text) is not None


def regex_group(text: Any, regex: re.Pattern[str] | None, group: Any) -> Any:
    if not isinstance(text, str) or regex is None:
        return None
    if not isinstance(group, int) or isinstance(group, bool):
        return None
    found = regex.search(text)
    if found is None:
        return None
    try:
        return found.group(group)
    except IndexError:
        return None


_STRING_TESTS: dict[str, Callable[[str, str], bool]] = {
    "startsWith": lambda text, part: text.startswith(part),
    "doesNotStartWith": lambda text, part: not text.startswith(part),
    "endsWith": lambda text, part: text.endswith(part),
    "doesNotEndWith": lambda text, part: not text.endswith(part),
    "contains": lambda text, part: part in text,
    "doesNotContain": lambda text, part: part not in text,
    "equals": lambda text, part: text == part,
    "notEqualTo": lambda text, part: text != part,
}
STRING_TESTS = frozenset(_STRING_TESTS)


def string_test(name: str, text: Any, part: Any, case_sensitive: Any) -> bool:
    """The string functions; all are false when either side is not a string."""
    if not isinstance(text, str) or not isinstance(part, str) or not isinstance(case_sensitive, bool):
        return False
    if not case_sensitive:
        text, part = text.casefold(), part.casefold()
    return _STRING_TESTS[name](text, part)


# Arrays, maps and aggregation


def _key(value: Any) -> tuple[str, Any] | None:
    """A hashable identity agreeing with ``equal`` for scalars; ``None`` for the rest."""
    if value is None:
        return ("null", None)
    if isinstance(value, bool):
        return ("bool", value)
    if is_number(value):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    return None


def distinct(items: Any) -> Any:
    if not is_array(items):
        return None
    seen: set[tuple[str, Any]] = set()
    others: list[Any] = []
    result: list[Any] = []
    for item in items:
        key = _key(item)
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        elif any(equal(item, other) for other in others):
            continue
        else:
            others.append(item)
        result.append(item)
    return result


def intersects(left: Any, right: Any) -> bool:
    return is_array(left) and is_array(right) and any(member(item, right) for item in left)


def intersection(left: Any, right: Any) -> Any:
    if not (is_array(left) and is_array(right)):
        return None
    return distinct([item for item in left if member(item, right)])


def subset_of(left: Any, right: Any) -> bool:
    return is_array(left) and is_array(right) and all(member(item, right) for item in left)


def head(items: Any) -> Any:
    return items[0] if is_array(items) and items else None


def keys(value: Any) -> Any:
    return list(value.keys()) if isinstance(value, Mapping) else None


def values(value: Any) -> Any:
    return list(value.values()) if isinstance(value, Mapping) else None


def map_get(value: Any, key: Any) -> Any:
    if isinstance(value, Mapping) and isinstance(key, str | int | float | bool) and key is not None:
        try:
            return value.get(key)
        except TypeError:
            return None
    return None


def count(items: Any) -> Any:
    """A missing array has no items; a value that is not an array has no count."""
    if items is None:
        return 0
    return len(items) if is_array(items) else None


def _numbers(items: Iterable[Any]) -> list[int | float]:
    return [item for item in items if is_number(item) and not (isinstance(item, float) and math.isnan(item))]


def total(items: Sequence[Any] | None) -> Any:
    if items is None:
        return 0
    try:
        result = sum(_numbers(items))
    except OverflowError:
        return None
    if isinstance(result, float) and not math.isfinite(result):
        return None
    return result


def average(items: Sequence[Any] | None) -> Any:
    numbers = _numbers(items or ())
    if not numbers:
        return None
    try:
        result = math.fsum(numbers) / len(numbers)
    except OverflowError:
        return None
    return result if math.isfinite(result) else None


def extreme(items: Sequence[Any] | None, largest: bool) -> Any:
    """``min``/``max`` over numbers, or over timestamps when there are no numbers."""
    pick = max if largest else min
    numbers = _numbers(items or ())
    if numbers:
        return pick(numbers)
    times = [(as_instant(item), item) for item in items or () if isinstance(item, str)]
    dated = [(moment, item) for moment, item in times if moment is not None]
    if not dated:
        return None
    return pick(dated, key=lambda pair: pair[0])[1]


def ranked(items: Sequence[Any], scores: Sequence[Any], amount: Any, highest: bool) -> Any:
    """``topN``/``bottomN``: the ``amount`` items with the highest (lowest) numeric score."""
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        return None
    scored = [
        (score, index, item)
        for index, (item, score) in enumerate(zip(items, scores, strict=True))
        if is_number(score) and not (isinstance(score, float) and math.isnan(score))
    ]
    scored.sort(key=lambda entry: (-entry[0] if highest else entry[0], entry[1]))
    return [item for _, _, item in scored[:amount]]


def group_key(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, str | bool) or is_number(value):
        return value  # type: ignore[no-any-return]
    return None


def entries_to_map(results: Sequence[Any]) -> Any:
    """``map`` over a map: entries built with ``mapEntry`` make a map, anything else a list."""
    if results and all(isinstance(result, MapEntry) for result in results):
        built: dict[Any, Any] = {}
        for entry in results:
            key = group_key(entry.key)
            if key is not None:
                built[key] = entry.value
        return built
    return list(results)
