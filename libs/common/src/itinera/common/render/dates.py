"""Date-times for the date helpers: reading them from data, Java-style patterns both ways.

Data holds XDM timestamps as ISO-8601 text (``2024-11-01T17:19:51Z``; read as UTC when
it carries no offset) and dates as ``YYYY-MM-DD`` (midnight UTC). Helpers work on
timezone-aware ``datetime`` values. ``formatDate`` and ``stringToDate`` take the pattern
letters of Java's ``DateTimeFormatter`` (``yyyy-MM-dd HH:mm:ss``, ``EEEE MMMM dd``...);
month and day names exist for English, French, German, Spanish, Italian, Portuguese
and Dutch (short names are the first three letters), other locales get English.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

_MONTHS = {
    "en": "January February March April May June July August September October November December",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",
    "it": "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre dicembre",
    "pt": "janeiro fevereiro março abril maio junho julho agosto setembro outubro novembro dezembro",
    "nl": "januari februari maart april mei juni juli augustus september oktober november december",
}
_DAYS = {
    "en": "Monday Tuesday Wednesday Thursday Friday Saturday Sunday",
    "fr": "lundi mardi mercredi jeudi vendredi samedi dimanche",
    "de": "Montag Dienstag Mittwoch Donnerstag Freitag Samstag Sonntag",
    "es": "lunes martes miércoles jueves viernes sábado domingo",
    "it": "lunedì martedì mercoledì giovedì venerdì sabato domenica",
    "pt": "segunda-feira terça-feira quarta-feira quinta-feira sexta-feira sábado domingo",
    "nl": "maandag dinsdag woensdag donderdag vrijdag zaterdag zondag",
}
MONTHS = {language: names.split() for language, names in _MONTHS.items()}
DAYS = {language: names.split() for language, names in _DAYS.items()}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PATTERN_LETTERS = set("GyuYMLdDEaAhHkKmsSnzZXxVQqw")


def language(locale: Any) -> str:
    if isinstance(locale, str):
        code = locale.replace("-", "_").split("_")[0].lower()
        if code in MONTHS:
            return code
    return "en"


def as_datetime(value: Any) -> datetime | None:
    """A timezone-aware date-time from a helper result or ISO-8601 text; ``None`` otherwise."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str) and 10 <= len(value) <= 40:
        text = value.strip()
        try:
            if len(text) == 10:
                return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
            parsed = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return None


def iso(value: datetime) -> str:
    """ISO-8601 text: ``Z`` for UTC, fractions only when there are some."""
    text = value.isoformat()
    if value.utcoffset() == timedelta(0) and value.tzinfo is not None:
        text = text.replace("+00:00", "Z")
    return text


def _runs(pattern: str) -> list[tuple[str, int] | str]:
    """Pattern letters as (letter, count) runs; literal text as plain strings."""
    out: list[tuple[str, int] | str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "'":
            if pattern.startswith("''", i):
                out.append("'")
                i += 2
                continue
            literal: list[str] = []
            i += 1
            while True:
                close = pattern.find("'", i)
                if close < 0:
                    raise ValueError("unclosed quote")
                literal.append(pattern[i:close])
                if pattern.startswith("''", close):
                    literal.append("'")
                    i = close + 2
                    continue
                i = close + 1
                break
            out.append("".join(literal))
        elif char.isascii() and char.isalpha():
            if char not in _PATTERN_LETTERS:
                raise ValueError(f"unknown pattern letter {char}")
            j = i
            while j < len(pattern) and pattern[j] == char:
                j += 1
            out.append((char, j - i))
            i = j
        elif char in "[]{}#":
            raise ValueError(f"reserved pattern character {char}")
        else:
            out.append(char)
            i += 1
    return out


def _offset(value: datetime, colon: bool, z_for_zero: bool) -> str:
    delta = value.utcoffset() or timedelta(0)
    if z_for_zero and delta == timedelta(0):
        return "Z"
    minutes = int(delta.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}" if colon else f"{sign}{hours:02d}{minutes:02d}"


def format_date(value: datetime, pattern: str, locale: Any = None) -> str:
    """``value`` written with a Java ``DateTimeFormatter`` pattern; ISO-8601 when the pattern is invalid."""
    try:
        runs = _runs(pattern)
    except ValueError:
        return iso(value)
    lang = language(locale)
    out: list[str] = []
    for run in runs:
        if isinstance(run, str):
            out.append(run)
            continue
        letter, count = run
        out.append(_field(value, letter, count, lang))
    return "".join(out)


def _week(value: datetime) -> tuple[int, int]:
    """Week-based year and week as Java's default (US) locale counts them: weeks start on
    Sunday and week 1 is the one holding January 1st (so 2023-12-31 is in 2024's week 1)."""
    day = value.date()
    start = day - timedelta(days=(day.weekday() + 1) % 7)
    if (start + timedelta(days=6)).year > day.year:
        return day.year + 1, 1
    january = date(day.year, 1, 1)
    first = january - timedelta(days=(january.weekday() + 1) % 7)
    return day.year, (start - first).days // 7 + 1


def _number(number: int, count: int) -> str:
    return str(number).zfill(count)


def _field(value: datetime, letter: str, count: int, lang: str) -> str:
    if letter in "yu":
        return _number(value.year % 100, 2) if count == 2 else _number(value.year, count)
    if letter == "Y":
        year = _week(value)[0]
        return _number(year % 100, 2) if count == 2 else _number(year, count)
    if letter in "ML":
        if count >= 4:
            return MONTHS[lang][value.month - 1]
        if count == 3:
            return MONTHS[lang][value.month - 1][:3]
        return _number(value.month, count)
    if letter == "d":
        return _number(value.day, count)
    if letter == "D":
        return _number(value.timetuple().tm_yday, count)
    if letter == "E":
        name = DAYS[lang][value.weekday()]
        return name if count >= 4 else name[:3]
    if letter in "aA":
        return "AM" if value.hour < 12 else "PM"
    if letter == "h":
        return _number((value.hour % 12) or 12, count)
    if letter == "K":
        return _number(value.hour % 12, count)
    if letter == "H":
        return _number(value.hour, count)
    if letter == "k":
        return _number(value.hour or 24, count)
    if letter == "m":
        return _number(value.minute, count)
    if letter == "s":
        return _number(value.second, count)
    if letter == "S":
        return f"{value.microsecond:06d}{'0' * max(0, count - 6)}"[:count]
    if letter == "n":
        return str(value.microsecond * 1000)
    if letter in "Qq":
        return str((value.month - 1) // 3 + 1)
    if letter == "w":
        return _number(_week(value)[1], count)
    if letter == "G":
        return "AD"
    if letter == "z":
        return value.tzname() or "UTC"
    if letter == "V":
        return str(getattr(value.tzinfo, "key", None) or value.tzname() or "UTC")
    if letter == "Z":
        return _offset(value, colon=count >= 4, z_for_zero=count >= 5)
    if letter == "X":
        return _offset(value, colon=count >= 3, z_for_zero=True)
    return _offset(value, colon=count >= 3, z_for_zero=False)  # x


_PARSE_FIELDS = {
    "y": r"(?P<y>\d{4})",
    "yy": r"(?P<yy>\d{2})",
    "M": r"(?P<M>\d{1,2})",
    "d": r"(?P<d>\d{1,2})",
    "H": r"(?P<H>\d{1,2})",
    "h": r"(?P<h>\d{1,2})",
    "m": r"(?P<m>\d{1,2})",
    "s": r"(?P<s>\d{1,2})",
    "S": r"(?P<S>\d{1,9})",
    "a": r"(?P<a>AM|PM|am|pm)",
    "X": r"(?P<X>Z|[+-]\d{2}(?::?\d{2})?)",
}


def parse_date(text: str, pattern: str) -> datetime | None:
    """``text`` read with a Java pattern (numbers, English month names, offsets); ``None`` if no match."""
    try:
        runs = _runs(pattern)
    except ValueError:
        return None
    regex: list[str] = []
    for run in runs:
        if isinstance(run, str):
            regex.append(re.escape(run))
            continue
        letter, count = run
        if letter in "yu":
            regex.append(_PARSE_FIELDS["yy" if count == 2 else "y"])
        elif letter == "M" and count >= 3:
            regex.append(r"(?P<MMM>[A-Za-z]+)")
        elif letter in "MdHhmsSa":
            regex.append(_PARSE_FIELDS[letter])
        elif letter in "XxZ":
            regex.append(_PARSE_FIELDS["X"])
        elif letter == "E":
            regex.append(r"[A-Za-z]+")
        else:
            return None
    try:
        match = re.fullmatch("".join(regex), text.strip())
    except re.error:
        return None
    if match is None:
        return None
    groups = match.groupdict()
    try:
        year = int(groups["y"]) if groups.get("y") else 2000 + int(groups.get("yy") or 70) - 30
        if groups.get("MMM"):
            names = [name.lower() for name in MONTHS["en"]]
            month = next(i for i, name in enumerate(names, 1) if name.startswith(groups["MMM"].lower()))
        else:
            month = int(groups.get("M") or 1)
        hour = int(groups.get("H") or groups.get("h") or 0)
        if groups.get("a") and groups["a"].upper() == "PM" and hour < 12:
            hour += 12
        fraction = (groups.get("S") or "0").ljust(6, "0")[:6]
        zone: tzinfo = UTC
        if groups.get("X") and groups["X"] != "Z":
            raw = groups["X"].replace(":", "")
            minutes = int(raw[1:3]) * 60 + int(raw[3:5] or 0)
            zone = _fixed(minutes if raw[0] == "+" else -minutes)
        return datetime(
            year,
            month,
            int(groups.get("d") or 1),
            hour,
            int(groups.get("m") or 0),
            int(groups.get("s") or 0),
            int(fraction),
            tzinfo=zone,
        )
    except (ValueError, StopIteration):
        return None


def _fixed(minutes: int) -> tzinfo:
    from datetime import timezone

    return timezone(timedelta(minutes=minutes))


def add_months(value: datetime, months: int) -> datetime:
    """Calendar months later (earlier when negative), the day clamped to the month's length."""
    index = value.year * 12 + value.month - 1 + months
    year, month = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise OverflowError("year out of range")
    import calendar

    day = min(value.day, calendar.monthrange(year, month + 1)[1])
    return value.replace(year=year, month=month + 1, day=day)


def months_between(end: datetime, start: datetime) -> int:
    """Whole calendar months from ``start`` to ``end`` (negative when ``end`` is earlier)."""
    months = (end.year - start.year) * 12 + end.month - start.month
    end_rest = (end.day, end.time())
    start_rest = (start.day, start.time())
    if months > 0 and end_rest < start_rest:
        months -= 1
    elif months < 0 and end_rest > start_rest:
        months += 1
    return months
