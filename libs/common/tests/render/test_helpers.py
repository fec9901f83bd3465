"""Every helper AJO documents, with the examples of its documentation where it gives one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from itinera.common.render import HELPERS, TemplateError, compile_template

NOW = datetime(2025, 1, 7, 6, 47, 10, tzinfo=UTC)
DATA: dict[str, Any] = {
    "orders": [{"price": 10, "id": "a"}, {"price": 30, "id": "b"}, {"price": 20, "id": "c"}, {"id": "d"}],
    "person": {"favoriteColors": ["red", "green"], "birthMonth": 6, "name": "John Smith"},
    "map": {"k": "v", "n": 1},
    "when": "2024-11-01T17:19:51Z",
}


def value(expression: str) -> str:
    rendered = compile_template(f"{{%= {expression} %}}", escape=False).render(DATA, now=NOW, seed=7)
    assert not rendered.errors, rendered.errors
    return rendered.text


CASES = [
    # Aggregation
    ("average(orders.price)", "20"),
    ("count(orders)", "4"),
    ("max(orders.price)", "30"),
    ("min(orders.price)", "10"),
    ("sum(orders.price)", "60"),
    ("sum([])", "0"),
    ("average([])", ""),
    # Arrays
    ("countOnlyNull([4, null, 1, null])", "2"),
    ("countWithNull([4, null, 1])", "3"),
    ('distinct([1, 2, 1, "1", true])', "1,2,1,true"),
    ("distinctCountWithNull([10, 2, 10, null])", "3"),
    ("head(orders).id", "a"),
    ("head([])", ""),
    ("topN(orders, price, 2).id", "b,c"),
    ('bottomN(orders, "price", 5).id', "a,c,b"),
    ("in(person.birthMonth, [3, 6, 9])", "true"),
    ("notIn(person.birthMonth, [3, 6, 9])", "false"),
    ("notIn(4, [3, null])", "false"),
    ('includes(person.favoriteColors, "red")', "true"),
    ('intersects(person.favoriteColors, ["red", "blue"])', "true"),
    ('subsetOf(person.favoriteColors, ["red", "green", "blue"])', "true"),
    ('supersetOf(person.favoriteColors, ["red", "blue"])', "false"),
    # Dates (the documentation's inputs and outputs)
    ('addDays(stringToDate("2024-11-01T17:19:51Z"), 10)', "2024-11-11T17:19:51Z"),
    ('addHours(stringToDate("2024-11-01T17:19:51Z"), 1)', "2024-11-01T18:19:51Z"),
    ('addMinutes(stringToDate("2024-11-01T17:59:51Z"), 10)', "2024-11-01T18:09:51Z"),
    ('addMonths(stringToDate("2024-11-01T17:19:51Z"), 2)', "2025-01-01T17:19:51Z"),
    ('addMonths("2024-01-31", 1)', "2024-02-29T00:00:00Z"),
    ('addSeconds(stringToDate("2024-11-01T17:19:51Z"), 10)', "2024-11-01T17:20:01Z"),
    ('addYears(stringToDate("2024-11-01T17:19:51Z"), 2)', "2026-11-01T17:19:51Z"),
    ('age("1990-01-08")', "34"),
    ('ageInDays(stringToDate("2025-01-01T17:19:51Z"))', "5"),
    ('ageInMonths(stringToDate("2024-01-01T00:00:00Z"))', "12"),
    ('compareDates(stringToDate("2024-12-02T00:00:00Z"), stringToDate("2024-12-03T00:00:00Z"))', "-1"),
    (
        'convertZonedDateTime(stringToDate("2019-02-19T08:09:00Z"), "Asia/Tehran")',
        "2019-02-19T11:39:00+03:30",
    ),
    ("currentTimeInMillis()", str(int(NOW.timestamp() * 1000))),
    ('dateDiff("2024-11-01", "2024-11-11")', "10"),
    ('dayOfMonth(stringToDate("2024-11-05T17:19:51Z"))', "5"),
    ('dayOfWeek("2024-11-04")', "1"),
    ('dayOfYear("2024-02-01")', "32"),
    ('diffInSeconds(stringToDate("2024-11-01T17:19:51Z"), stringToDate("2024-11-01T17:19:01Z"))', "50"),
    ('diffInHours(stringToDate("2024-11-01T17:19:51Z"), stringToDate("2024-11-01T07:19:51Z"))', "10"),
    ('diffInMinutes(stringToDate("2024-11-01T17:19:51Z"), stringToDate("2024-11-01T16:19:51Z"))', "60"),
    ('diffInMonths(stringToDate("2024-11-01T17:19:51Z"), stringToDate("2024-08-01T17:19:51Z"))', "3"),
    ('diffInYears(stringToDate("2024-11-01T17:19:51Z"), stringToDate("2019-10-01T17:19:51Z"))', "5"),
    ('extractHours(stringToDate("2024-11-01T17:19:51Z"))', "17"),
    ('extractMinutes(stringToDate("2024-11-01T17:19:51Z"))', "19"),
    ('extractMonth(stringToDate("2024-11-01T17:19:51Z"))', "11"),
    ("extractMonths(when)", "11"),
    ('extractSeconds(stringToDate("2024-11-01T17:19:51Z"))', "51"),
    ('formatDate(when, "MM/dd/yy")', "11/01/24"),
    ('formatDate(when, "EEEE MMMM dd yyyy HH:mm:ss a")', "Friday November 01 2024 17:19:51 PM"),
    ('formatDate(when, "EEE d MMMM", "fr_FR")', "ven 1 novembre"),
    ('formatDate("2023-12-31T10:15:30Z", "Y-ww D")', "2024-01 365"),
    ("formatDate(when, \"'at' h 'o''clock' XXX\")", "at 5 o'clock Z"),
    ('formatDate(when, "bad pattern {")', "2024-11-01T17:19:51Z"),
    ("getCurrentZonedDateTime()", "2025-01-07T06:47:10Z"),
    ("setDays(when, 3)", "2024-11-03T17:19:51Z"),
    ("setHours(when, 3)", "2024-11-01T03:19:51Z"),
    ('stringToDate("2023-01-10 23:13:26", "yyyy-MM-dd HH:mm:ss")', "2023-01-10T23:13:26Z"),
    ('stringToDate("10 Jan 2023", "dd MMM yyyy")', "2023-01-10T00:00:00Z"),
    ('stringToDate("nope", "yyyy")', ""),
    ('toDateTime("2024-11-01T17:19:51Z")', "2024-11-01T17:19:51Z"),
    ('toDateTime("not a date")', "1970-01-01T00:00:00Z"),
    ("toDateTimeOnly(1000)", "1970-01-01T00:00:01Z"),
    ('toUTC("2024-11-01T17:19:51+02:00")', "2024-11-01T15:19:51Z"),
    ('truncateToStartOfDay(stringToDate("2024-11-01T17:19:51Z"))', "2024-11-01T00:00:00Z"),
    ('truncateToStartOfQuarter(stringToDate("2024-11-01T17:19:51Z"))', "2024-10-01T00:00:00Z"),
    ('truncateToStartOfWeek(stringToDate("2024-11-19T17:19:51Z"))', "2024-11-18T00:00:00Z"),
    ('truncateToStartOfYear(stringToDate("2024-11-01T17:19:51Z"))', "2024-01-01T00:00:00Z"),
    ('weekOfYear("2024-11-01")', "44"),
    ('stringToDate("2024-11-01T17:19:51Z") > "2024-01-01"', "true"),
    # Maps and objects
    ('get(map, "k")', "v"),
    ("keys(map)", "k,n"),
    ("values(map)", "v,1"),
    ("isNull(person.none)", "true"),
    ("isNotNull(person)", "true"),
    # Math
    ("absolute(-3)", "3"),
    ('formatNumber(123456.789, "en_US")', "123,456.789"),
    ('formatNumber(1234.5, "de_DE")', "1.234,5"),
    ("roundDown(4.7)", "4"),
    ("roundUp(4.2)", "5"),
    ("toHexString(158)", "9e"),
    ("toHexString(-1)", "ffffffffffffffff"),
    ("toInt(42.6)", "42"),
    ('toInt("12")', "12"),
    ("toPercentage(0.456)", "46%"),
    ("toPrecision(3.14159, 3)", "3.14"),
    ("toPrecision(1.5, 3)", "1.50"),
    ("toString(12)", "12"),
    # Strings
    ('camelCase("washington high STREET")', "Washington High STREET"),
    ('titleCase("washington high STREET")', "Washington High Street"),
    ('charCodeAt("some", 1)', "111"),
    ('concat("Lyon", ", ", "FR")', "Lyon, FR"),
    ('concat(["Hello", " ", "World"])', "Hello World"),
    ('contains(person.name, "smith", false)', "true"),
    ('contains(person.name, "smith")', "false"),
    ('doesNotContain(person.name, "Joe")', "true"),
    ('doesNotEndWith("a@b.com", ".com")', "false"),
    ('doesNotStartWith(person.name, "Joe")', "true"),
    ('startsWith(person.name, "John")', "true"),
    ('encode64("hello")', "aGVsbG8="),
    ('endsWith("a@b.COM", ".com", false)', "true"),
    ('equals(person.name, "John Smith")', "true"),
    ('equalsIgnoreCase(person.name, "john smith")', "true"),
    ('notEqualTo(person.name, "John")', "true"),
    ('notEqualWithIgnoreCase(person.name, "JOHN SMITH")', "false"),
    ('extractEmailDomain("ann@example.org")', "example.org"),
    ('formatCurrency(56L, "en_GB")', "£56.00"),
    ('formatCurrency(-1234.5, "fr_FR")', "-1\u202f234,50\u00a0€"),
    ('formatCurrency(1234, "ja_JP")', "￥1,234"),
    ('getUrlHost("https://www.myurl.com/contact")', "www.myurl.com"),
    ('getUrlPath("https://www.myurl.com/contact.html")', "/contact.html"),
    ('getUrlProtocol("https://www.myurl.com/contact.html")', "https"),
    ('indexOf("hello world", "world")', "6"),
    ('lastIndexOf("hello world", "o")', "7"),
    ('isEmpty("")', "true"),
    ("isEmpty(person.none)", "true"),
    ('isNotEmpty("x")', "true"),
    ('leftTrim("  a  ")', "a  "),
    ('rightTrim("  a  ")', "  a"),
    ('trim("  a  ")', "a"),
    ("length(person.name)", "10"),
    ('like("Marseille", "%se%")', "true"),
    ('like("Lyon", "L_o")', "false"),
    ('lowerCase("ABC")', "abc"),
    ('upperCase("abc")', "ABC"),
    ('matches(person.name, "(?i)^john")', "true"),
    ('mask("123456789", 1, 2)', "1XXXXXX89"),
    ('md5("hello world")', "5eb63bbbe01eeed093cb22bb8f5acdc3"),
    ('sha256("Eliechxh")', "0b0b207880b999adaad6231026abf87caa30760b6f326b21727b61139332257d"),
    ('regexGroup("ann@example.org", "@(\\\\w+)", 1)', "example"),
    (
        'replace("Hello John, here is your monthly newsletter!", "John", "Mark")',
        ("Hello Mark, here is your monthly newsletter!"),
    ),
    ('replaceAll("aaa", "aa", "$1b")', "$1ba"),
    ('split("a,b,c", ",")', "a,b,c"),
    ('count(split("a|b|c", "|"))', "3"),
    ('stringToInteger("42")', "42"),
    ('string_to_integer("x")', ""),
    ('stringToNumber("4.5")', "4.5"),
    ('stringToNumber("abc")', "abc"),
    ('substr("hello world", 0, 5)', "hello"),
    ('toBool("TRUE")', "true"),
    ("toBool(0)", "false"),
    ('urlEncode("a b&c=d/é")', "a+b%26c%3Dd%2F%C3%A9"),
    ('urlDecode("a+b%26c")', "a b&c"),
]


@pytest.mark.parametrize(("expression", "expected"), CASES)
def test_helper(expression: str, expected: str) -> None:
    assert value(expression) == expected


def test_every_helper_is_exercised() -> None:
    used = {name for name in HELPERS if any(f"{name}(" in expression for expression, _ in CASES)}
    assert used | {"random"} == set(HELPERS)


def test_random_is_repeatable_with_a_seed() -> None:
    template = compile_template("{%= random() %} {%= random() %}")
    first = template.render({}, seed=3).text
    assert first == template.render({}, seed=3).text
    numbers = [float(part) for part in first.split()]
    assert all(0 <= number < 1 for number in numbers)


@pytest.mark.parametrize(
    "expression",
    ["upperCase(12)", 'addDays("x", 1)', "sum(3)", "mask(1, 2, 3)", 'formatDate(3, "yyyy")', "toInt([1])"],
)
def test_wrong_types_give_null(expression: str) -> None:
    assert value(expression) == ""


def test_string_tests_are_false_unless_both_sides_are_text() -> None:
    assert value('contains(null, "a")') == "false"
    assert value('doesNotContain(null, "a")') == "false"


class TestPatterns:
    def test_pattern_must_be_a_literal(self) -> None:
        with pytest.raises(TemplateError) as raised:
            compile_template("{%= matches(name, pattern) %}")
        problem = raised.value.problems[0]
        assert problem.message == "the pattern of matches must be a string literal"
        assert (problem.offset, problem.end_offset) == (18, 25)

    def test_invalid_regular_expression(self) -> None:
        with pytest.raises(TemplateError) as raised:
            compile_template('{%= replaceAll(name, "(", "") %}')
        assert raised.value.problems[0].message.startswith("invalid regular expression")
