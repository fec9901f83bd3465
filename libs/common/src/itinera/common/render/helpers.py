"""The helper functions of AJO's personalization language, by name.

Each helper takes plain values (``None``, booleans, numbers, text, lists, dicts and the
``datetime`` values the date helpers make) and never raises on them: an argument of the
wrong type gives ``null`` (``false`` for the tests). ``HELPERS`` lists them with their
arities; the compiler refuses any other name, and an arity that does not fit, with the
call's position.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Protocol
from urllib.parse import quote_plus, unquote_plus, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from itinera.common.render import dates
from itinera.common.render.values import is_number, same, to_text, truthy


class Env(Protocol):
    """What helpers may read besides their arguments: the render's clock and random source."""

    now: datetime

    def random(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Helper:
    fn: Callable[..., Any]
    minimum: int
    maximum: int
    env: bool = False
    """The helper takes the render's ``Env`` before its arguments."""
    pattern: int | None = None
    """The argument that is a regular expression (or a ``like`` pattern): a string literal,
    compiled once with the template; data never supplies a pattern."""
    item_path: int | None = None
    """The argument naming a key of each item (``topN(orders, price, 5)``)."""


# Strings


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _string_test(test: Callable[[str, str], bool], negate: bool = False) -> Callable[..., bool]:
    def run(text: Any, other: Any, case_sensitive: Any = True) -> bool:
        if not (isinstance(text, str) and isinstance(other, str)):
            return False
        if case_sensitive is False:
            text, other = text.casefold(), other.casefold()
        return test(text, other) != negate

    return run


def _words(text: Any, rest: Callable[[str], str]) -> str | None:
    if not isinstance(text, str):
        return None
    return re.sub(r"\S+", lambda word: word.group()[:1].upper() + rest(word.group()[1:]), text)


def camel_case(text: Any) -> str | None:
    return _words(text, lambda rest: rest)


def title_case(text: Any) -> str | None:
    return _words(text, str.lower)


def char_code_at(text: Any, index: Any) -> int | None:
    if isinstance(text, str) and type(index) is int and 0 <= index < len(text):
        return ord(text[index])
    return None


def concat(*parts: Any) -> str | None:
    if len(parts) == 1 and isinstance(parts[0], list):
        parts = tuple(parts[0])
    return "".join(to_text(part) or "" for part in parts)


def encode64(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    return base64.b64encode(text.encode()).decode("ascii")


def equals(left: Any, right: Any) -> bool:
    return isinstance(left, str) and isinstance(right, str) and left == right


def equals_ignore_case(left: Any, right: Any) -> bool:
    return isinstance(left, str) and isinstance(right, str) and left.casefold() == right.casefold()


def not_equal_to(left: Any, right: Any) -> bool:
    return isinstance(left, str) and isinstance(right, str) and left != right


def not_equal_ignore_case(left: Any, right: Any) -> bool:
    return isinstance(left, str) and isinstance(right, str) and left.casefold() != right.casefold()


def extract_email_domain(text: Any) -> str | None:
    if not isinstance(text, str) or "@" not in text:
        return None
    return text.rsplit("@", 1)[1]


def _url_part(part: str) -> Callable[[Any], str | None]:
    def run(text: Any) -> str | None:
        if not isinstance(text, str):
            return None
        try:
            split = urlsplit(text)
        except ValueError:
            return None
        if part == "host":
            return split.hostname
        if part == "path":
            return split.path
        return split.scheme or None

    return run


def index_of(text: Any, other: Any) -> int | None:
    if isinstance(text, str) and isinstance(other, str):
        return text.find(other)
    return None


def last_index_of(text: Any, other: Any) -> int | None:
    if isinstance(text, str) and isinstance(other, str):
        return text.rfind(other)
    return None


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)


def is_not_empty(value: Any) -> bool:
    return not is_empty(value)


def length(value: Any) -> int | None:
    if isinstance(value, str | list | dict):
        return len(value)
    return None


def like_pattern(pattern: str) -> re.Pattern[str]:
    """A SQL ``like`` pattern (``%`` any run, ``_`` one character) as a whole-text regex."""
    parts = [".*" if char == "%" else "." if char == "_" else re.escape(char) for char in pattern]
    return re.compile("".join(parts), re.DOTALL)


def like(text: Any, pattern: re.Pattern[str]) -> bool:
    return isinstance(text, str) and pattern.fullmatch(text) is not None


def matches(text: Any, pattern: re.Pattern[str]) -> bool:
    return isinstance(text, str) and pattern.search(text) is not None


def regex_group(text: Any, pattern: re.Pattern[str], group: Any = 0) -> str | None:
    if not isinstance(text, str) or type(group) is not int:
        return None
    match = pattern.search(text)
    if match is None or not 0 <= group <= pattern.groups:
        return None
    return match.group(group)


def replace_all(text: Any, pattern: re.Pattern[str], replacement: Any) -> str | None:
    if not (isinstance(text, str) and isinstance(replacement, str)):
        return None
    return pattern.sub(lambda _: replacement, text)


def replace(text: Any, target: Any, replacement: Any) -> str | None:
    if isinstance(text, str) and isinstance(target, str) and isinstance(replacement, str) and target:
        return text.replace(target, replacement)
    return _str(text)


def mask(text: Any, keep_start: Any, keep_end: Any) -> str | None:
    if not (isinstance(text, str) and type(keep_start) is int and type(keep_end) is int):
        return None
    first: int = max(keep_start, 0)
    last: int = max(keep_end, 0)
    if first + last >= len(text):
        return text
    return text[:first] + "X" * (len(text) - first - last) + text[len(text) - last :]


def _digest(name: str) -> Callable[[Any], str | None]:
    def run(text: Any) -> str | None:
        if not isinstance(text, str):
            return None
        return str(hashlib.new(name, text.encode()).hexdigest())

    return run


def split(text: Any, separator: Any) -> list[str] | None:
    if isinstance(text, str) and isinstance(separator, str) and separator:
        return text.split(separator)
    return None


def substr(text: Any, start: Any, end: Any = None) -> str | None:
    if not isinstance(text, str) or type(start) is not int:
        return None
    if end is None:
        return text[max(start, 0) :]
    if type(end) is not int:
        return None
    return text[max(start, 0) : max(end, 0)]


def _strip(how: str) -> Callable[[Any], str | None]:
    def run(text: Any) -> str | None:
        if not isinstance(text, str):
            return None
        return text.strip() if how == "both" else text.lstrip() if how == "left" else text.rstrip()

    return run


def lower_case(text: Any) -> str | None:
    return text.lower() if isinstance(text, str) else None


def upper_case(text: Any) -> str | None:
    return text.upper() if isinstance(text, str) else None


def url_encode(text: Any) -> str | None:
    return quote_plus(text, safe="*") if isinstance(text, str) else None


def url_decode(text: Any) -> str | None:
    return unquote_plus(text) if isinstance(text, str) else None


def string_to_number(text: Any) -> Any:
    if not isinstance(text, str):
        return text if is_number(text) else None
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def string_to_integer(text: Any) -> int | None:
    if isinstance(text, str):
        try:
            return int(text.strip())
        except ValueError:
            return None
    return int(text) if is_number(text) and math.isfinite(text) else None


def to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return truthy(value)


def to_string(value: Any) -> str | None:
    return to_text(value)


# Numbers


def absolute(value: Any) -> Any:
    return abs(value) if is_number(value) else None


def round_down(value: Any) -> float | None:
    return float(math.floor(value)) if is_number(value) and math.isfinite(value) else None


def round_up(value: Any) -> float | None:
    return float(math.ceil(value)) if is_number(value) and math.isfinite(value) else None


def to_hex_string(value: Any) -> str | None:
    if not is_number(value) or not math.isfinite(value):
        return None
    number = int(value)
    if not -(2**63) <= number < 2**63:
        return None
    return format(number & (2**64 - 1), "x")


def to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if is_number(value):
        return int(value) if math.isfinite(value) and abs(value) < 2**63 else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return int(number) if math.isfinite(number) and abs(number) < 2**63 else None
    return None


def to_percentage(value: Any) -> str | None:
    if not is_number(value) or not math.isfinite(value):
        return None
    return _group(Decimal(repr(float(value))) * 100, 0, ".", ",") + "%"


def to_precision(value: Any, digits: Any) -> str | None:
    if not is_number(value) or not math.isfinite(value) or type(digits) is not int or not 1 <= digits <= 100:
        return None
    text = f"{float(value):#.{digits}g}"
    return text[:-1] if text.endswith(".") else text


_CURRENCIES: dict[str, tuple[str, str, str, int]] = {
    # locale: decimal mark, grouping mark, currency pattern, currency decimals
    "en_US": (".", ",", "${}", 2),
    "en_GB": (".", ",", "£{}", 2),
    "en_IE": (".", ",", "€{}", 2),
    "en_CA": (".", ",", "${}", 2),
    "en_AU": (".", ",", "${}", 2),
    "en_IN": (".", ",", "₹{}", 2),
    "fr_FR": (",", "\u202f", "{}\u00a0€", 2),
    "fr_CA": (",", "\u00a0", "{}\u00a0$", 2),
    "fr_CH": (",", "\u202f", "{}\u00a0CHF", 2),
    "de_DE": (",", ".", "{}\u00a0€", 2),
    "de_AT": (",", "\u00a0", "€\u00a0{}", 2),
    "de_CH": (".", "\u2019", "CHF\u00a0{}", 2),
    "es_ES": (",", ".", "{}\u00a0€", 2),
    "es_MX": (".", ",", "${}", 2),
    "it_IT": (",", ".", "{}\u00a0€", 2),
    "nl_NL": (",", ".", "€\u00a0{}", 2),
    "pt_BR": (",", ".", "R$\u00a0{}", 2),
    "pt_PT": (",", "\u00a0", "{}\u00a0€", 2),
    "ja_JP": (".", ",", "￥{}", 0),
}


def _locale(locale: Any) -> tuple[str, str, str, int]:
    if isinstance(locale, str):
        key = locale.replace("-", "_")
        if key in _CURRENCIES:
            return _CURRENCIES[key]
    return _CURRENCIES["en_US"]


def _group(number: Decimal, decimals: int, mark: str, grouping: str, trim: bool = False) -> str:
    quantum = Decimal(1).scaleb(-decimals)
    rounded = number.quantize(quantum, rounding=ROUND_HALF_EVEN)
    sign = "-" if rounded < 0 else ""
    whole, _, fraction = f"{abs(rounded):f}".partition(".")
    if trim:
        fraction = fraction.rstrip("0")
    groups: list[str] = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    text = grouping.join(groups)
    return sign + (text + mark + fraction if fraction else text)


def format_currency(value: Any, locale: Any) -> str | None:
    if not is_number(value) or not math.isfinite(value):
        return None
    mark, grouping, pattern, decimals = _locale(locale)
    try:
        text = _group(Decimal(repr(value) if isinstance(value, float) else value), decimals, mark, grouping)
    except InvalidOperation:
        return None
    if text.startswith("-"):
        return "-" + pattern.format(text[1:])
    return pattern.format(text)


def format_number(value: Any, locale: Any) -> str | None:
    if not is_number(value) or not math.isfinite(value):
        return None
    mark, grouping, _, _ = _locale(locale)
    try:
        return _group(
            Decimal(repr(value) if isinstance(value, float) else value), 3, mark, grouping, trim=True
        )
    except InvalidOperation:
        return None


def random_number(env: Env) -> float:
    return env.random()


# Arrays, maps, objects


def _list(value: Any) -> list[Any] | None:
    return value if isinstance(value, list) else None


def _numbers(value: Any) -> list[int | float] | None:
    if not isinstance(value, list):
        return None
    return [item for item in value if is_number(item) and math.isfinite(item)]


def average(values: Any) -> float | None:
    numbers = _numbers(values)
    return sum(numbers) / len(numbers) if numbers else None


def count(values: Any) -> int | None:
    return len(values) if isinstance(values, list | dict) else None


def maximum(values: Any) -> Any:
    numbers = _numbers(values)
    return max(numbers) if numbers else None


def minimum(values: Any) -> Any:
    numbers = _numbers(values)
    return min(numbers) if numbers else None


def total(values: Any) -> Any:
    numbers = _numbers(values)
    return sum(numbers) if numbers is not None else None


def count_only_null(values: Any) -> int | None:
    return sum(1 for item in values if item is None) if isinstance(values, list) else None


def distinct(values: Any) -> list[Any] | None:
    if not isinstance(values, list):
        return None
    kept: list[Any] = []
    for item in values:
        if not any(same(item, other) for other in kept):
            kept.append(item)
    return kept


def distinct_count_with_null(values: Any) -> int | None:
    kept = distinct(values)
    return None if kept is None else len(kept)


def head(values: Any) -> Any:
    return values[0] if isinstance(values, list) and values else None


def _contains(values: list[Any], item: Any) -> bool:
    return any(same(item, other) for other in values)


def in_(item: Any, values: Any) -> bool:
    return isinstance(values, list) and _contains(values, item)


def not_in(item: Any, values: Any) -> bool:
    if item is None or not isinstance(values, list) or any(other is None for other in values):
        return False
    return not _contains(values, item)


def includes(values: Any, item: Any) -> bool:
    return isinstance(values, list) and _contains(values, item)


def intersects(left: Any, right: Any) -> bool:
    return isinstance(left, list) and isinstance(right, list) and any(_contains(right, item) for item in left)


def subset_of(left: Any, right: Any) -> bool:
    return isinstance(left, list) and isinstance(right, list) and all(_contains(right, item) for item in left)


def superset_of(left: Any, right: Any) -> bool:
    return subset_of(right, left)


def _read(item: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(item, dict):
            return None
        item = item.get(key)
    return item


def _ranked(values: Any, path: Sequence[str], amount: Any, descending: bool) -> list[Any] | None:
    if not isinstance(values, list) or type(amount) is not int:
        return None
    scored = [(score, item) for item in values if is_number(score := _read(item, path))]
    scored.sort(key=lambda pair: pair[0], reverse=descending)
    return [item for _, item in scored[: max(amount, 0)]]


def top_n(values: Any, path: Sequence[str], amount: Any) -> list[Any] | None:
    return _ranked(values, path, amount, descending=True)


def bottom_n(values: Any, path: Sequence[str], amount: Any) -> list[Any] | None:
    return _ranked(values, path, amount, descending=False)


def get(mapping: Any, key: Any) -> Any:
    if isinstance(mapping, dict) and isinstance(key, str):
        return mapping.get(key)
    return None


def keys(mapping: Any) -> list[str] | None:
    return list(mapping) if isinstance(mapping, dict) else None


def values(mapping: Any) -> list[Any] | None:
    return list(mapping.values()) if isinstance(mapping, dict) else None


def is_null(value: Any) -> bool:
    return value is None


def is_not_null(value: Any) -> bool:
    return value is not None


# Dates


def _date(value: Any) -> datetime | None:
    return dates.as_datetime(value)


def _shift(unit: str) -> Callable[[Any, Any], datetime | None]:
    def run(value: Any, amount: Any) -> datetime | None:
        moment = _date(value)
        if moment is None or type(amount) is not int:
            return None
        try:
            if unit == "months":
                return dates.add_months(moment, amount)
            if unit == "years":
                return dates.add_months(moment, amount * 12)
            return moment + timedelta(**{unit: amount})
        except (OverflowError, ValueError):
            return None

    return run


def _diff(seconds: int) -> Callable[[Any, Any], int | None]:
    def run(end: Any, start: Any) -> int | None:
        later, earlier = _date(end), _date(start)
        if later is None or earlier is None:
            return None
        return (
            int((later - earlier).total_seconds() // seconds)
            if later >= earlier
            else -int((earlier - later).total_seconds() // seconds)
        )

    return run


def diff_in_months(end: Any, start: Any) -> int | None:
    later, earlier = _date(end), _date(start)
    if later is None or earlier is None:
        return None
    return dates.months_between(later, earlier.astimezone(later.tzinfo))


def diff_in_years(end: Any, start: Any) -> int | None:
    months = diff_in_months(end, start)
    return None if months is None else int(months / 12)


def date_diff(first: Any, second: Any) -> int | None:
    return _diff(86400)(second, first)


def age(env: Env, value: Any) -> int | None:
    return diff_in_years(env.now, value)


def age_in_days(env: Env, value: Any) -> int | None:
    return _diff(86400)(env.now, value)


def age_in_months(env: Env, value: Any) -> int | None:
    return diff_in_months(env.now, value)


def compare_dates(first: Any, second: Any) -> int | None:
    left, right = _date(first), _date(second)
    if left is None or right is None:
        return None
    return (left > right) - (left < right)


def convert_zoned(value: Any, zone: Any) -> datetime | None:
    moment = _date(value)
    if moment is None or not isinstance(zone, str):
        return None
    try:
        return moment.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return None


def current_millis(env: Env) -> int:
    return int(env.now.timestamp() * 1000)


def current_zoned(env: Env) -> datetime:
    return env.now


def _part(read: Callable[[datetime], int]) -> Callable[[Any], int | None]:
    def run(value: Any) -> int | None:
        moment = _date(value)
        return None if moment is None else read(moment)

    return run


def format_date(value: Any, pattern: Any, locale: Any = None) -> str | None:
    moment = _date(value)
    if moment is None or not isinstance(pattern, str):
        return None
    return dates.format_date(moment, pattern, locale)


def _setter(field: str) -> Callable[[Any, Any], datetime | None]:
    def run(value: Any, number: Any) -> datetime | None:
        moment = _date(value)
        if moment is None or type(number) is not int:
            return None
        try:
            return moment.replace(day=number) if field == "day" else moment.replace(hour=number)
        except ValueError:
            return None

    return run


def string_to_date(text: Any, pattern: Any = None) -> datetime | None:
    if not isinstance(text, str):
        return _date(text)
    if pattern is None:
        return _date(text)
    return dates.parse_date(text, pattern) if isinstance(pattern, str) else None


def to_date_time(value: Any, pattern: Any = None) -> datetime:
    """Like ``stringToDate``; epoch milliseconds are read too, and what cannot be read is the epoch."""
    if is_number(value) and math.isfinite(value) and abs(value) < 2**53:
        try:
            return dates.EPOCH + timedelta(milliseconds=value)
        except OverflowError:
            return dates.EPOCH
    return string_to_date(value, pattern) or dates.EPOCH


def to_utc(value: Any) -> datetime | None:
    moment = _date(value)
    return None if moment is None else moment.astimezone(UTC)


def _truncate(period: str) -> Callable[[Any], datetime | None]:
    def run(value: Any) -> datetime | None:
        moment = _date(value)
        if moment is None:
            return None
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        if period == "week":
            return day - timedelta(days=day.weekday())
        if period == "quarter":
            return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
        if period == "year":
            return day.replace(month=1, day=1)
        return day

    return run


HELPERS: dict[str, Helper] = {
    # Aggregation
    "average": Helper(average, 1, 1),
    "count": Helper(count, 1, 1),
    "max": Helper(maximum, 1, 1),
    "min": Helper(minimum, 1, 1),
    "sum": Helper(total, 1, 1),
    # Arrays and lists
    "countOnlyNull": Helper(count_only_null, 1, 1),
    "countWithNull": Helper(count, 1, 1),
    "distinct": Helper(distinct, 1, 1),
    "distinctCountWithNull": Helper(distinct_count_with_null, 1, 1),
    "head": Helper(head, 1, 1),
    "topN": Helper(top_n, 3, 3, item_path=1),
    "bottomN": Helper(bottom_n, 3, 3, item_path=1),
    "in": Helper(in_, 2, 2),
    "notIn": Helper(not_in, 2, 2),
    "includes": Helper(includes, 2, 2),
    "intersects": Helper(intersects, 2, 2),
    "subsetOf": Helper(subset_of, 2, 2),
    "supersetOf": Helper(superset_of, 2, 2),
    # Dates and times
    "addDays": Helper(_shift("days"), 2, 2),
    "addHours": Helper(_shift("hours"), 2, 2),
    "addMinutes": Helper(_shift("minutes"), 2, 2),
    "addMonths": Helper(_shift("months"), 2, 2),
    "addSeconds": Helper(_shift("seconds"), 2, 2),
    "addYears": Helper(_shift("years"), 2, 2),
    "age": Helper(age, 1, 1, env=True),
    "ageInDays": Helper(age_in_days, 1, 1, env=True),
    "ageInMonths": Helper(age_in_months, 1, 1, env=True),
    "compareDates": Helper(compare_dates, 2, 2),
    "convertZonedDateTime": Helper(convert_zoned, 2, 2),
    "currentTimeInMillis": Helper(current_millis, 0, 0, env=True),
    "dateDiff": Helper(date_diff, 2, 2),
    "dayOfMonth": Helper(_part(lambda moment: moment.day), 1, 1),
    "dayOfWeek": Helper(_part(lambda moment: moment.isoweekday()), 1, 1),
    "dayOfYear": Helper(_part(lambda moment: moment.timetuple().tm_yday), 1, 1),
    "diffInSeconds": Helper(_diff(1), 2, 2),
    "diffInMinutes": Helper(_diff(60), 2, 2),
    "diffInHours": Helper(_diff(3600), 2, 2),
    "diffInMonths": Helper(diff_in_months, 2, 2),
    "diffInYears": Helper(diff_in_years, 2, 2),
    "extractHours": Helper(_part(lambda moment: moment.hour), 1, 1),
    "extractMinutes": Helper(_part(lambda moment: moment.minute), 1, 1),
    "extractMonth": Helper(_part(lambda moment: moment.month), 1, 1),
    "extractMonths": Helper(_part(lambda moment: moment.month), 1, 1),
    "extractSeconds": Helper(_part(lambda moment: moment.second), 1, 1),
    "formatDate": Helper(format_date, 2, 3),
    "getCurrentZonedDateTime": Helper(current_zoned, 0, 0, env=True),
    "setDays": Helper(_setter("day"), 2, 2),
    "setHours": Helper(_setter("hour"), 2, 2),
    "stringToDate": Helper(string_to_date, 1, 2),
    "toDateTime": Helper(to_date_time, 1, 2),
    "toDateTimeOnly": Helper(to_date_time, 1, 1),
    "toUTC": Helper(to_utc, 1, 1),
    "truncateToStartOfDay": Helper(_truncate("day"), 1, 1),
    "truncateToStartOfWeek": Helper(_truncate("week"), 1, 1),
    "truncateToStartOfQuarter": Helper(_truncate("quarter"), 1, 1),
    "truncateToStartOfYear": Helper(_truncate("year"), 1, 1),
    "weekOfYear": Helper(_part(lambda moment: moment.isocalendar().week), 1, 1),
    # Maps and objects
    "get": Helper(get, 2, 2),
    "keys": Helper(keys, 1, 1),
    "values": Helper(values, 1, 1),
    "isNull": Helper(is_null, 1, 1),
    "isNotNull": Helper(is_not_null, 1, 1),
    # Math
    "absolute": Helper(absolute, 1, 1),
    "formatNumber": Helper(format_number, 2, 2),
    "random": Helper(random_number, 0, 0, env=True),
    "roundDown": Helper(round_down, 1, 1),
    "roundUp": Helper(round_up, 1, 1),
    "toHexString": Helper(to_hex_string, 1, 1),
    "toInt": Helper(to_int, 1, 1),
    "toPercentage": Helper(to_percentage, 1, 1),
    "toPrecision": Helper(to_precision, 2, 2),
    "toString": Helper(to_string, 1, 1),
    # Strings
    "camelCase": Helper(camel_case, 1, 1),
    "charCodeAt": Helper(char_code_at, 2, 2),
    "concat": Helper(concat, 1, 64),
    "contains": Helper(_string_test(lambda a, b: b in a), 2, 3),
    "doesNotContain": Helper(_string_test(lambda a, b: b in a, negate=True), 2, 3),
    "startsWith": Helper(_string_test(str.startswith), 2, 3),
    "doesNotStartWith": Helper(_string_test(str.startswith, negate=True), 2, 3),
    "endsWith": Helper(_string_test(str.endswith), 2, 3),
    "doesNotEndWith": Helper(_string_test(str.endswith, negate=True), 2, 3),
    "encode64": Helper(encode64, 1, 1),
    "equals": Helper(equals, 2, 2),
    "equalsIgnoreCase": Helper(equals_ignore_case, 2, 2),
    "notEqualTo": Helper(not_equal_to, 2, 2),
    "notEqualWithIgnoreCase": Helper(not_equal_ignore_case, 2, 2),
    "extractEmailDomain": Helper(extract_email_domain, 1, 1),
    "formatCurrency": Helper(format_currency, 2, 2),
    "getUrlHost": Helper(_url_part("host"), 1, 1),
    "getUrlPath": Helper(_url_part("path"), 1, 1),
    "getUrlProtocol": Helper(_url_part("protocol"), 1, 1),
    "indexOf": Helper(index_of, 2, 2),
    "lastIndexOf": Helper(last_index_of, 2, 2),
    "isEmpty": Helper(is_empty, 1, 1),
    "isNotEmpty": Helper(is_not_empty, 1, 1),
    "leftTrim": Helper(_strip("left"), 1, 1),
    "rightTrim": Helper(_strip("right"), 1, 1),
    "trim": Helper(_strip("both"), 1, 1),
    "length": Helper(length, 1, 1),
    "like": Helper(like, 2, 2, pattern=1),
    "lowerCase": Helper(lower_case, 1, 1),
    "upperCase": Helper(upper_case, 1, 1),
    "matches": Helper(matches, 2, 2, pattern=1),
    "mask": Helper(mask, 3, 3),
    "md5": Helper(_digest("md5"), 1, 1),
    "sha256": Helper(_digest("sha256"), 1, 1),
    "regexGroup": Helper(regex_group, 2, 3, pattern=1),
    "replace": Helper(replace, 3, 3),
    "replaceAll": Helper(replace_all, 3, 3, pattern=1),
    "split": Helper(split, 2, 2),
    "stringToInteger": Helper(string_to_integer, 1, 1),
    "string_to_integer": Helper(string_to_integer, 1, 1),
    "stringToNumber": Helper(string_to_number, 1, 1),
    "substr": Helper(substr, 2, 3),
    "titleCase": Helper(title_case, 1, 1),
    "toBool": Helper(to_bool, 1, 1),
    "urlDecode": Helper(url_decode, 1, 1),
    "urlEncode": Helper(url_encode, 1, 1),
}
