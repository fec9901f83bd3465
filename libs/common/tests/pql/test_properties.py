"""Properties over generated rules and profiles: printing round-trips, evaluating never raises."""

from __future__ import annotations

import string
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from itinera.common.pql import analyse, compile_rule, parse, to_text
from itinera.common.pql import ast as pql
from itinera.common.pql.compiler import FUNCTIONS, METHODS

NOW = datetime(2024, 6, 12, 15, 30, tzinfo=UTC)
ATTRIBUTES = ["a", "b", "name", "price", "items", "eventType", "timestamp", "person", "tags"]
VARIABLES = ["X", "Y"]
PATTERNS = ["^a", "(?i)b+", "[0-9]{2}", "@(\\w+)", "x|y"]
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Rules

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.text(max_size=8),
)
names = st.sampled_from(ATTRIBUTES + VARIABLES)
literals = scalars.map(pql.Literal)
TIME_WORDS: list[pql.TimeWord] = ["now", "today", "yesterday", "tomorrow"]
DIRECTIONS: list[pql.Direction] = ["before", "after", "from"]
OPERATORS: list[pql.BinaryOperator] = [
    "and",
    "or",
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "notIn",
    "like",
    "+",
    "-",
    "*",
    "/",
    "%",
]
time_words = st.sampled_from(TIME_WORDS).map(pql.TimeRef)
calendar_dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)).map(
    lambda day: pql.Call("date", (pql.Literal(day.year), pql.Literal(day.month), pql.Literal(day.day)))
)
leaves = st.one_of(
    literals,
    names.map(pql.Name),
    time_words,
    st.just(pql.Parameter(1)),
    st.sampled_from(["currentMonth", "currentYear", "currentDayOfMonth"]).map(
        lambda name: pql.Call(name, ())
    ),
    calendar_dates,
)
units = st.sampled_from(pql.TIME_UNITS)
periods = st.builds(pql.RelativePeriod, st.sampled_from(["this", "last", "next"]), units)


def _is_number_literal(node: pql.Expression) -> bool:
    while isinstance(node, pql.Unary) and node.op == "-":
        node = node.operand
    return (
        isinstance(node, pql.Literal)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    )


def _method(draw: st.DrawFn, children: st.SearchStrategy[pql.Expression]) -> pql.Expression:
    name = draw(st.sampled_from(sorted(METHODS)))
    signature = METHODS[name]
    count = draw(st.integers(signature.minimum, signature.maximum))
    args: list[pql.Expression] = []
    for index in range(count):
        if index in signature.element_arguments and draw(st.booleans()):
            args.append(pql.Lambda((draw(st.sampled_from(VARIABLES)),), draw(children)))
        elif name in ("matches", "regexGroup") and index == 0:
            args.append(draw(st.one_of(st.sampled_from(PATTERNS).map(pql.Literal), names.map(pql.Name))))
        else:
            args.append(draw(children))
    return pql.MethodCall(draw(children), name, tuple(args))


def _call(draw: st.DrawFn, children: st.SearchStrategy[pql.Expression]) -> pql.Expression:
    name = draw(st.sampled_from(sorted(set(FUNCTIONS) - {"date"})))
    signature = FUNCTIONS[name]
    return pql.Call(name, tuple(draw(children) for _ in range(signature.maximum)))


def _time(draw: st.DrawFn, children: st.SearchStrategy[pql.Expression]) -> pql.Expression:
    return draw(st.one_of(time_words, periods, calendar_dates, names.map(pql.Name), children))


def _spec(draw: st.DrawFn, children: st.SearchStrategy[pql.Expression]) -> pql.OccursSpec:
    kind = draw(st.sampled_from(["relative", "direction", "on", "between"]))
    directions = st.sampled_from(DIRECTIONS)
    if kind == "relative":
        return pql.OccursRelative(
            draw(st.sampled_from(pql.COMPARISONS)),
            draw(st.integers(0, 400)),
            draw(units),
            draw(directions),
            _time(draw, children),
        )
    if kind == "direction":
        return pql.OccursDirection(draw(directions), _time(draw, children))
    if kind == "on":
        return pql.OccursOn(_time(draw, children))
    return pql.OccursBetween(_time(draw, children), _time(draw, children))


def _binding(draw: st.DrawFn, children: st.SearchStrategy[pql.Expression]) -> pql.Binding:
    condition = draw(st.one_of(st.none(), children))
    return pql.Binding(draw(st.sampled_from(VARIABLES)), draw(children), condition)


def _chain(draw: st.DrawFn, children: st.SearchStrategy[pql.Expression]) -> pql.Expression:
    labels = draw(st.lists(st.sampled_from(["A", "B", "C0", "C1"]), min_size=1, max_size=3, unique=True))
    steps = tuple(
        pql.ChainStep(
            label,
            draw(children),
            draw(st.one_of(st.none(), children)),
            _spec(draw, children) if draw(st.booleans()) else None,
            draw(st.one_of(st.none(), st.integers(1, 5))),
        )
        for label in labels
    )
    return pql.Chain(draw(children), ("timestamp",), steps)


@st.composite
def _compound(draw: st.DrawFn, children: st.SearchStrategy[pql.Expression]) -> pql.Expression:
    kind = draw(
        st.sampled_from(
            [
                "list",
                "field",
                "method",
                "call",
                "filter",
                "not",
                "negate",
                "binary",
                "occurs",
                "exists",
                "select",
                "aggregate",
                "let",
                "chain",
            ]
        )
    )
    if kind == "list":
        return pql.ListExpr(tuple(draw(st.lists(children, max_size=3))))
    if kind == "field":
        return pql.Field(draw(children), draw(names))
    if kind == "method":
        return _method(draw, children)
    if kind == "call":
        return _call(draw, children)
    if kind == "filter":
        return pql.Filter(draw(children), draw(children))
    if kind == "not":
        return pql.Unary("not", draw(children))
    if kind == "negate":
        return pql.Unary("-", draw(children.filter(lambda node: not _is_number_literal(node))))
    if kind == "binary":
        op = draw(st.sampled_from(OPERATORS))
        return pql.Binary(op, draw(children), draw(children))
    if kind == "occurs":
        return pql.Occurs(draw(children), _spec(draw, children))
    if kind == "exists":
        bindings = tuple(_binding(draw, children) for _ in range(draw(st.integers(1, 2))))
        return pql.Quantifier(draw(st.sampled_from(["exists", "forall"])), bindings)
    if kind == "select":
        return pql.Select(_binding(draw, children))
    if kind == "aggregate":
        function = draw(st.sampled_from(["sum", "count", "average", "min", "max"]))
        return pql.Aggregate(function, draw(children), _binding(draw, children))
    if kind == "let":
        return pql.Let(draw(st.sampled_from(VARIABLES)), draw(children), draw(children))
    return _chain(draw, children)


rules = st.recursive(leaves, lambda children: _compound(children), max_leaves=10)

# Profiles

keys = st.sampled_from([*ATTRIBUTES, "xEvent", "segmentMembership", "ups", "status", "other"])
START = datetime(2024, 5, 1, tzinfo=UTC)
timestamps = st.one_of(
    st.integers(0, 62 * 86400).map(lambda seconds: (START + timedelta(seconds=seconds)).isoformat()),
    st.integers(0, 62 * 86400).map(
        lambda seconds: (START + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ),
    st.dates().map(lambda day: day.isoformat()),
    st.sampled_from(
        ["", "2024-13-01", "2024-06-12T25:00:00Z", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"]
    ),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=string.printable, max_size=6),
    timestamps,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=15,
)
events = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"timestamp": timestamps, "eventType": st.sampled_from(["a", "b", "commerce.checkouts"])},
            optional={"price": json_values, "items": json_values, "name": json_values},
        ),
        json_values,
    ),
    max_size=5,
)
profiles = st.dictionaries(keys, json_values, max_size=6).flatmap(
    lambda profile: events.map(lambda found: {**profile, "xEvent": found})
)
segment_maps = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(["a", "b", "X"]), st.sampled_from(["realized", "existing", "exited"])),
)


class TestPrintingRoundTrips:
    @SETTINGS
    @given(rules)
    def test_printing_a_tree_and_parsing_it_again_gives_the_same_tree(self, tree: pql.Expression) -> None:
        text = to_text(tree)
        assert parse(text) == tree, text
        assert to_text(parse(text)) == text

    @SETTINGS
    @given(rules)
    def test_a_printed_rule_analyses_without_problems(self, tree: pql.Expression) -> None:
        assert analyse(to_text(tree)).problems == []


class TestEvaluationNeverRaises:
    @SETTINGS
    @given(rules, profiles, segment_maps)
    def test_on_profiles_of_any_shape(
        self, tree: pql.Expression, profile: dict[str, Any], segments: dict[str, str] | None
    ) -> None:
        rule = compile_rule(tree)
        rule.evaluate(profile, now=NOW, segments=segments)
        rule.qualifies(profile, now=NOW)


class TestAnalyseNeverRaises:
    @SETTINGS
    @given(st.text(alphabet=string.printable + "éλ", max_size=60))
    def test_on_any_text(self, text: str) -> None:
        analyse(text)

    @SETTINGS
    @given(
        st.lists(
            st.sampled_from(
                [
                    '"x"',
                    "a",
                    ".",
                    "(",
                    ")",
                    "[",
                    "]",
                    "=",
                    "and",
                    "not",
                    "occurs",
                    "today",
                    "3",
                    "days",
                    "before",
                    ",",
                    "exists",
                    "X",
                    "from",
                    "where",
                    "CHAIN",
                    ":",
                    "WHAT",
                    "=>",
                ]
            ),
            max_size=20,
        )
    )
    def test_on_near_miss_token_soup(self, tokens: list[str]) -> None:
        analyse(" ".join(tokens))
