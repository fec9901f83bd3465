"""Canonical text: what ``to_text`` writes, and that it reads back to the same tree."""

from __future__ import annotations

from importlib.resources import files

import pytest
from lark.parsers.lalr_analysis import LALR_Analyzer

from itinera.common.pql import ast as pql
from itinera.common.pql import parse, to_text
from itinera.common.pql.parser import lark_parser

DOCUMENTED_RULES = [
    'homeAddress.countryISO = "CA" and person.birthYear = 1985',
    'not (homeAddress.countryISO = "CA")',
    'if(homeAddress.countryISO = "CA", 1, 2)',
    "person.birthMonth in [3, 6, 9]",
    "person.birthMonth notIn [3, 6, 9]",
    'person.favoriteColors.intersects(["red", "blue", "green"])',
    'person1.favoriteColors.intersection(person2.favoriteColors) = ["red", "blue", "green"]',
    "person.orders.storeId.distinct().count() > 1",
    "orders.topN(price, 5).head()",
    'identityMap.get("example@example.com")',
    'city like "%es%"',
    'person.name.startsWith("Joe", false)',
    'person.name.matches("(?i)^John")',
    'emailAddress.regexGroup("@(\\\\w+)", 1)',
    "person.homeAddress.isNull()",
    "person.age % 5 = 0",
    "orders.sum(order.price)",
    "person.birthMonth = currentMonth()",
    "person.birthday.getYear() in [1991, 1992, 1993, 1994, 1995]",
    "product.saleDate occurs last week",
    "product.saleDate occurs between date(2015, 1, 8) and date(2017, 7, 1)",
    "product.saleDate occurs = 3 hours before now",
    "person.birthday occurs = 3 days before today",
    'xEvent[productListItems[SKU = "PS" or ^^.person.gender = "female"]]',
    'exists E from xEvent where E.commerce.item.price > 50, I from E.productListItems where I.SKU = "PS"',
    "forall E from xEvent where E.commerce.item.price > 50",
    "let S = (sum X.commerce.order.priceTotal over X from xEvent"
    ' where X.commerce.order.currencyCode = "USD") in S > 100 and S < 1000',
    "select var1 from xEvent where var1._experience.analytics.endUser.webPageDetails.isHomePage = true",
    'CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.checkouts", false))'
    " WHEN(<= 24 hours before now)])",
    'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "homePageView") WHEN(< 24 hours before now) COUNT(5)])',
    'inSegment("e3be6d7f-1727-401f-a41e-c296b45f607a") and inSegment("9e1646bb-57ff-4309-ba59-17d6c5bab6a1")',
    'xEvent[timestamp occurs < 7 days before now and eventType = "download"].groupBy(product)'
    ".map((K, G) => mapEntry(K, G.count()))",
    "Profile => Profile.homeAddress.stateProvince = Profile.workAddress.stateProvince",
]


class TestCanonicalText:
    @pytest.mark.parametrize("text", DOCUMENTED_RULES)
    def test_documented_rules_print_as_written(self, text: str) -> None:
        assert to_text(parse(text)) == text

    @pytest.mark.parametrize(
        ("text", "canonical"),
        [
            ("!(a = 1)", "not (a = 1)"),
            ("not a", "not (a)"),
            ("exists X from xEvent : X.a = 1", "exists X from xEvent where X.a = 1"),
            ("(Profile) => Profile.a", "Profile => Profile.a"),
            (
                "chain(xEvent, timestamp, [A: when(today) what(true)])",
                "CHAIN(xEvent, timestamp, [A: WHAT(true) WHEN(today)])",
            ),
            ("x occurs on today", "x occurs today"),
            ("x occurs < 1 days before now", "x occurs < 1 day before now"),
            ("a[^b = 1]", "a[^.b = 1]"),
            ('"tab\there"', '"tab\\there"'),
            ("((a))", "a"),
        ],
    )
    def test_spellings_are_normalised(self, text: str, canonical: str) -> None:
        assert to_text(parse(text)) == canonical

    @pytest.mark.parametrize(
        ("tree", "text"),
        [
            (pql.Binary("-", pql.Name("a"), pql.Binary("-", pql.Name("b"), pql.Name("c"))), "a - (b - c)"),
            (pql.Binary("*", pql.Binary("+", pql.Name("a"), pql.Name("b")), pql.Name("c")), "(a + b) * c"),
            (
                pql.Binary("and", pql.Binary("or", pql.Name("a"), pql.Name("b")), pql.Name("c")),
                "(a or b) and c",
            ),
            (
                pql.Binary("=", pql.Binary("<", pql.Name("a"), pql.Name("b")), pql.Literal(True)),
                "(a < b) = true",
            ),
            (pql.Field(pql.Literal(-1), "x"), "(-1).x"),
            (pql.Field(pql.Binary("+", pql.Name("a"), pql.Name("b")), "x"), "(a + b).x"),
            (pql.Unary("-", pql.Unary("-", pql.Name("a"))), "--a"),
            (
                pql.Binary(
                    "and", pql.Quantifier("exists", (pql.Binding("X", pql.Name("xs")),)), pql.Name("b")
                ),
                "(exists X from xs) and b",
            ),
            (
                pql.Aggregate("sum", pql.Unary("-", pql.Name("v")), pql.Binding("X", pql.Name("xs"))),
                "sum (-v) over X from xs",
            ),
            (pql.Occurs(pql.Name("x"), pql.OccursOn(pql.Field(pql.Name("last"), "y"))), "x occurs (last.y)"),
        ],
    )
    def test_parentheses_only_where_precedence_needs_them(self, tree: pql.Expression, text: str) -> None:
        assert to_text(tree) == text
        assert parse(text) == tree

    def test_floats_keep_their_value(self) -> None:
        for value in (0.1, 1e-05, 1.5e300, 2.0, -0.5):
            assert parse(to_text(pql.Literal(value))) == pql.Literal(value)

    def test_infinite_numbers_cannot_be_written(self) -> None:
        with pytest.raises(ValueError, match="inf"):
            to_text(pql.Literal(float("inf")))


class TestTheGrammar:
    def test_is_packaged_next_to_the_code(self) -> None:
        assert files("itinera.common.pql").joinpath("grammar.lark").is_file()

    def test_has_no_conflict_lalr_would_resolve_silently(self) -> None:
        LALR_Analyzer(lark_parser().parser.parser_conf, strict=True).compute_lalr()  # type: ignore[no-untyped-call]
