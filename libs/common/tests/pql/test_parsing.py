"""Reading PQL text: the trees it gives, and the problems it reports with their positions."""

from __future__ import annotations

import pytest

from itinera.common.pql import PqlError, Problem, compile_rule, parse
from itinera.common.pql import ast as pql


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(PqlError) as raised:
        parse(text)
    assert raised.value.problems, "a PqlError always says why"
    return raised.value.problems


def only_problem(text: str) -> Problem:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


class TestLiterals:
    @pytest.mark.parametrize(
        ("text", "value"),
        [
            ('"pizza"', "pizza"),
            ('"say \\"hi\\"\\n"', 'say "hi"\n'),
            ('"\\u00e9t\\u00e9"', "été"),
            ('"@(\\\\w+)"', "@(\\w+)"),
            ('"@(\\w+)"', "@(\\w+)"),
            ("true", True),
            ("false", False),
            ("null", None),
            ("412", 412),
            ("-201", -201),
            ("3.14", 3.14),
            ("-51.24", -51.24),
            ("1e3", 1000.0),
        ],
    )
    def test_scalars(self, text: str, value: object) -> None:
        assert parse(text) == pql.Literal(value)  # type: ignore[arg-type]

    def test_arrays(self) -> None:
        assert parse("[1, 4, 7]") == pql.ListExpr((pql.Literal(1), pql.Literal(4), pql.Literal(7)))
        assert parse("[]") == pql.ListExpr(())

    def test_relative_time_words(self) -> None:
        assert parse("now") == pql.TimeRef("now")
        assert parse("yesterday") == pql.TimeRef("yesterday")


class TestTheTreeOfARule:
    def test_an_attribute_path(self) -> None:
        assert parse("person.name.firstName") == pql.Field(pql.Field(pql.Name("person"), "name"), "firstName")

    def test_precedence_of_operators(self) -> None:
        tree = parse("a = 1 or b + 2 * c > 3 and not d")
        assert tree == pql.Binary(
            "or",
            pql.Binary("=", pql.Name("a"), pql.Literal(1)),
            pql.Binary(
                "and",
                pql.Binary(
                    ">",
                    pql.Binary("+", pql.Name("b"), pql.Binary("*", pql.Literal(2), pql.Name("c"))),
                    pql.Literal(3),
                ),
                pql.Unary("not", pql.Name("d")),
            ),
        )

    def test_nodes_remember_where_they_came_from(self) -> None:
        tree = parse('a = 1 and\n  person.name = "x"')
        assert isinstance(tree, pql.Binary)
        right = tree.right
        assert right.span is not None
        assert (right.span.line, right.span.column, right.span.offset) == (2, 3, 12)

    def test_equality_ignores_positions(self) -> None:
        assert parse("a  =  1") == parse("a = 1")

    def test_keywords_are_names_where_a_name_is_expected(self) -> None:
        tree = parse("order.in.last = person.from")
        assert tree == pql.Binary(
            "=",
            pql.Field(pql.Field(pql.Name("order"), "in"), "last"),
            pql.Field(pql.Name("person"), "from"),
        )
        assert parse("count > 3") == pql.Binary(">", pql.Name("count"), pql.Literal(3))
        assert parse("nothing") == pql.Name("nothing")

    def test_occurs_forms(self) -> None:
        tree = parse("X.timestamp occurs <= 3 days before now")
        assert isinstance(tree, pql.Occurs)
        assert tree.spec == pql.OccursRelative("<=", 3, "day", "before", pql.TimeRef("now"))
        assert parse("x occurs last month") == pql.Occurs(
            pql.Name("x"), pql.OccursOn(pql.RelativePeriod("last", "month"))
        )
        assert parse("x occurs on today") == parse("x occurs today")
        assert parse("x occurs = 2 centuries from now") == pql.Occurs(
            pql.Name("x"), pql.OccursRelative("=", 2, "century", "from", pql.TimeRef("now"))
        )

    def test_exists_with_where_and_colon_are_the_same(self) -> None:
        assert parse("exists X from xEvent : X.a = 1") == parse("exists X from xEvent where X.a = 1")

    def test_a_chain(self) -> None:
        tree = parse(
            'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "a") WHEN(today) COUNT(3), C1: WHAT(true)])'
        )
        assert isinstance(tree, pql.Chain)
        assert tree.time_field == ("timestamp",)
        assert [step.label for step in tree.steps] == ["C0", "C1"]
        assert tree.steps[0].count == 3
        assert tree.steps[0].when == pql.OccursOn(pql.TimeRef("today"))

    def test_chain_keywords_ignore_case(self) -> None:
        assert parse("chain(xEvent, timestamp, [A: what(true) when(today)])") == parse(
            "CHAIN(xEvent, timestamp, [A: WHAT(true) WHEN(today)])"
        )

    def test_lambdas(self) -> None:
        assert parse("items.map(x => x + 1)") == pql.MethodCall(
            pql.Name("items"), "map", (pql.Lambda(("x",), pql.Binary("+", pql.Name("x"), pql.Literal(1))),)
        )
        tree = parse("m.map((K, G) => mapEntry(K, G.count()))")
        assert isinstance(tree, pql.MethodCall)
        assert tree.args[0] == pql.Lambda(
            ("K", "G"), pql.Call("mapEntry", (pql.Name("K"), pql.MethodCall(pql.Name("G"), "count", ())))
        )

    def test_sum_over(self) -> None:
        tree = parse("sum X.price over X from xEvent where X.price > 1")
        assert tree == pql.Aggregate(
            "sum",
            pql.Field(pql.Name("X"), "price"),
            pql.Binding(
                "X", pql.Name("xEvent"), pql.Binary(">", pql.Field(pql.Name("X"), "price"), pql.Literal(1))
            ),
        )

    def test_up_operator(self) -> None:
        assert parse("a[b[^^.c = 1]]") == parse("a[b[^^c = 1]]")


class TestSyntaxErrorsSayWhereAndWhatWasExpected:
    def test_a_missing_operand(self) -> None:
        problem = only_problem("person.age > ")
        assert (problem.line, problem.column, problem.offset) == (1, 14, 13)
        assert "ends too early" in problem.message
        assert "a number" in problem.message

    def test_an_unexpected_token(self) -> None:
        problem = only_problem('homeAddress.countryISO = "CA" "US"')
        assert (problem.line, problem.column, problem.offset, problem.end_offset) == (1, 31, 30, 34)
        assert "unexpected" in problem.message
        assert "'and'" in problem.message

    def test_an_unknown_character(self) -> None:
        problem = only_problem("a = 1 # comment")
        assert (problem.column, problem.offset) == (7, 6)
        assert "'#'" in problem.message

    def test_on_a_later_line(self) -> None:
        problem = only_problem("a = 1 and\nb = = 2")
        assert (problem.line, problem.column) == (2, 5)

    def test_an_unclosed_string(self) -> None:
        problem = only_problem('name = "Jo')
        assert problem.offset == 7

    def test_empty_rules(self) -> None:
        assert "empty" in only_problem("   ").message

    def test_comparisons_do_not_chain(self) -> None:
        assert only_problem("1 < a < 3").offset == 6

    def test_occurs_needs_a_unit(self) -> None:
        problem = only_problem("x occurs < 3 before now")
        assert "time unit" in problem.message


class TestUnsupportedConstructsAreNamed:
    @pytest.mark.parametrize(
        ("text", "construct", "offset"),
        [
            ('person.name.toUpperCase() = "JO"', "function toUpperCase", 12),
            ("size(items) > 1", "function size", 0),
            ("a.startsWith()", "function startsWith", 2),
            ("items.topN(price)", "function topN", 6),
            ('inSegment("a", "b")', "function inSegment", 0),
            ("date(2020, 2, 30)", "function date", 0),
            ('name.matches("(unclosed")', "function matches", 13),
            ('name.regexGroup("[", 1)', "function regexGroup", 16),
            ("$2.name = 1", "$2", 0),
            ("(a, b) => a.x = b.x", "lambda", 0),
            ("^.name = 1", "^", 0),
            ("items[^^.x = 1]", "^", 6),
            ("a = (x => 1)", "lambda", 5),
            ("CHAIN(xEvent, timestamp, [A: WHAT(true) COUNT(0)])", "CHAIN", 46),
            ("CHAIN(xEvent, timestamp, [A: WHAT(true) COUNT(2.5)])", "CHAIN", 46),
            ("CHAIN(xEvent, timestamp, [A: WHEN(today)])", "CHAIN", 26),
            ("CHAIN(xEvent, timestamp, [A: WHAT(true) WHAT(false)])", "CHAIN", 40),
            ("CHAIN(xEvent, timestamp, [A: WHAT(true), A: WHAT(false)])", "CHAIN", 26),
            ("x occurs < 1.5 days before now", "occurs", 11),
        ],
    )
    def test_with_its_position(self, text: str, construct: str, offset: int) -> None:
        problem = only_problem(text)
        assert problem.construct == construct
        assert problem.offset == offset
        assert problem.line == 1
        assert problem.column == offset + 1
        assert problem.end_offset > problem.offset

    def test_every_problem_is_reported_at_once(self) -> None:
        problems = problems_of("foo(1) and bar.baz() and $3")
        assert [problem.construct for problem in problems] == ["function foo", "function baz", "$3"]

    def test_relative_periods_only_follow_occurs(self) -> None:
        tree = pql.Binary("=", pql.Name("a"), pql.RelativePeriod("last", "week"))
        with pytest.raises(PqlError) as raised:
            compile_rule(tree)
        assert raised.value.problems[0].construct == "occurs"

    def test_compile_rule_reports_the_same_problems_as_parse(self) -> None:
        with pytest.raises(PqlError) as raised:
            compile_rule("foo()")
        assert raised.value.problems[0].construct == "function foo"
        assert "unknown function foo" in str(raised.value)

    def test_a_deeply_nested_rule_is_a_problem_not_a_crash(self) -> None:
        text = "[" * 5000 + "]" * 5000
        with pytest.raises(PqlError):
            parse(text)
