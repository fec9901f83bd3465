"""What PQL rules mean: each family of AEP's documented functions, run on small profiles."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

import pytest

from itinera.common.pql import compile_rule, parse

NOW = datetime(2024, 6, 12, 15, 30, tzinfo=UTC)  # a Wednesday


def run(rule: str, profile: dict[str, Any] | None = None, **options: Any) -> Any:
    options.setdefault("now", NOW)
    return compile_rule(rule).evaluate(profile or {}, **options)


def event(timestamp: str, event_type: str = "web.webpagedetails.pageViews", **fields: Any) -> dict[str, Any]:
    return {"timestamp": timestamp, "eventType": event_type, **fields}


class TestComparisonsCompareValuesOfTheSameType:
    def test_equals_and_not_equals_on_the_home_country(self) -> None:
        canadian = {"homeAddress": {"countryISO": "CA"}}
        assert run('homeAddress.countryISO = "CA"', canadian) is True
        assert run('homeAddress.countryISO != "CA"', canadian) is False
        assert run('homeAddress.countryISO != "CA"', {"homeAddress": {"countryISO": "US"}}) is True

    @pytest.mark.parametrize(
        ("rule", "expected"),
        [
            ("person.birthMonth > 2", True),
            ("person.birthMonth >= 3", True),
            ("person.birthMonth < 2", False),
            ("person.birthMonth <= 2", False),
            ("person.birthMonth <= 3", True),
        ],
    )
    def test_orderings_on_a_birth_month(self, rule: str, expected: bool) -> None:
        assert run(rule, {"person": {"birthMonth": 3}}) is expected

    def test_integers_and_doubles_compare_as_numbers(self) -> None:
        assert run("price = 3.0", {"price": 3}) is True

    def test_values_of_different_types_are_never_equal(self) -> None:
        assert run('age = "30"', {"age": 30}) is False
        assert run('age != "30"', {"age": 30}) is True
        assert run("flag = 1", {"flag": True}) is False
        assert run('age < "40"', {"age": 30}) is False

    def test_a_missing_attribute_makes_every_comparison_false(self) -> None:
        for op in ("=", "!=", "<", "<=", ">", ">="):
            assert run(f"person.birthMonth {op} 3", {}) is False

    def test_timestamps_compare_as_moments_whatever_their_offsets(self) -> None:
        profile = {"a": "2024-06-12T10:00:00Z", "b": "2024-06-12T12:00:00+02:00", "c": "2024-06-12T11:00:00Z"}
        assert run("a = b", profile) is True
        assert run("a < c", profile) is True

    def test_a_date_against_a_timestamp_compares_whole_days(self) -> None:
        profile = {"seen": "2024-06-12T23:59:00Z"}
        assert run("seen = date(2024, 6, 12)", profile) is True
        assert run("seen > date(2024, 6, 11)", profile) is True
        assert run("seen < date(2024, 6, 13)", profile) is True

    def test_arrays_are_equal_item_by_item(self) -> None:
        assert run('colors = ["red", "blue"]', {"colors": ["red", "blue"]}) is True
        assert run('colors = ["blue", "red"]', {"colors": ["red", "blue"]}) is False


class TestBooleanFunctions:
    profile: ClassVar[dict[str, Any]] = {"homeAddress": {"countryISO": "CA"}, "person": {"birthYear": 1985}}

    def test_and_needs_both(self) -> None:
        assert run('homeAddress.countryISO = "CA" and person.birthYear = 1985', self.profile) is True
        assert run('homeAddress.countryISO = "CA" and person.birthYear = 1990', self.profile) is False

    def test_or_needs_either(self) -> None:
        assert run('homeAddress.countryISO = "US" or person.birthYear = 1985', self.profile) is True
        assert run('homeAddress.countryISO = "US" or person.birthYear = 1990', self.profile) is False

    def test_not_is_written_with_the_word_or_an_exclamation_mark(self) -> None:
        assert run('not (homeAddress.countryISO = "CA")', self.profile) is False
        assert run('!(homeAddress.countryISO = "US")', self.profile) is True

    def test_if_picks_a_value_by_its_test(self) -> None:
        assert run('if (homeAddress.countryISO = "CA", 1, 2)', self.profile) == 1
        assert run('if (homeAddress.countryISO = "CA", 1, 2)', {}) == 2

    def test_and_binds_tighter_than_or(self) -> None:
        assert run("true or false and false") is True
        assert run("(true or false) and false") is False

    def test_a_non_empty_array_counts_as_true(self) -> None:
        assert run("items and true", {"items": [1]}) is True
        assert run("items and true", {"items": []}) is False
        assert run("name and true", {"name": "x"}) is False


class TestArrayFunctions:
    def test_in_and_notin_test_membership(self) -> None:
        assert run("person.birthMonth in [3, 6, 9]", {"person": {"birthMonth": 6}}) is True
        assert run("person.birthMonth notIn [3, 6, 9]", {"person": {"birthMonth": 6}}) is False
        assert run("person.birthMonth notIn [3, 6, 9]", {"person": {"birthMonth": 7}}) is True

    def test_notin_is_false_for_a_missing_value_so_it_is_not_the_negation_of_in(self) -> None:
        assert run("person.birthMonth in [3, 6, 9]", {}) is False
        assert run("person.birthMonth notIn [3, 6, 9]", {}) is False

    def test_intersects_needs_one_shared_item(self) -> None:
        rule = 'person.favoriteColors.intersects(["red", "blue", "green"])'
        assert run(rule, {"person": {"favoriteColors": ["green", "gold"]}}) is True
        assert run(rule, {"person": {"favoriteColors": ["gold"]}}) is False

    def test_intersection_lists_the_shared_items(self) -> None:
        profile = {
            "person1": {"favoriteColors": ["red", "blue", "gold"]},
            "person2": {"favoriteColors": ["blue", "red"]},
        }
        rule = 'person1.favoriteColors.intersection(person2.favoriteColors) = ["red", "blue"]'
        assert run(rule, profile) is True

    def test_subset_and_superset(self) -> None:
        profile = {
            "person": {
                "favoriteCities": ["Oslo"],
                "visitedCities": ["Oslo", "Rome"],
                "eatenFoods": ["pizza", "sushi", "pho"],
            }
        }
        assert run("person.favoriteCities.subsetOf(person.visitedCities)", profile) is True
        assert run("person.visitedCities.subsetOf(person.favoriteCities)", profile) is False
        assert run('person.eatenFoods.supersetOf(["sushi", "pizza"])', profile) is True
        assert run('person.eatenFoods.supersetOf(["sushi", "tacos"])', profile) is False

    def test_includes_looks_for_one_item(self) -> None:
        assert run('person.favoriteColors.includes("red")', {"person": {"favoriteColors": ["red"]}}) is True
        assert run('person.favoriteColors.includes("red")', {"person": {"favoriteColors": "red"}}) is False

    def test_distinct_counts_stores_ordered_from(self) -> None:
        rule = "person.orders.storeId.distinct().count() > 1"
        one_store = {"person": {"orders": [{"storeId": "s1"}, {"storeId": "s1"}]}}
        two_stores = {"person": {"orders": [{"storeId": "s1"}, {"storeId": "s2"}, {"storeId": "s1"}]}}
        assert run(rule, one_store) is False
        assert run(rule, two_stores) is True
        assert run("person.orders.storeId.distinct()", two_stores) == ["s1", "s2"]

    def test_filter_keeps_the_items_a_condition_holds_for(self) -> None:
        people = {"people": [{"age": 30}, {"age": 18}, {"age": 21}]}
        assert run("people.filter(age >= 21)", people) == [{"age": 30}, {"age": 21}]
        assert run("people.filter(p => p.age >= 21).count()", people) == 2

    def test_map_builds_a_new_array(self) -> None:
        assert run("numbers.map(n => n * n)", {"numbers": [1, 2, 3]}) == [1, 4, 9]
        assert run("orders.map(price)", {"orders": [{"price": 5}, {}]}) == [5, None]

    def test_topn_and_bottomn_rank_by_a_numeric_expression(self) -> None:
        orders = {"orders": [{"id": 1, "price": 10}, {"id": 2, "price": 30}, {"id": 3, "price": 20}]}
        assert run("orders.topN(price, 2).map(id)", orders) == [2, 3]
        assert run("orders.bottomN(price, 1).map(id)", orders) == [1]
        assert run("orders.topN(price, 5).head().id", orders) == 2

    def test_head_is_the_first_item(self) -> None:
        assert run("items.head()", {"items": [4, 5]}) == 4
        assert run("items.head()", {"items": []}) is None

    def test_group_by_partitions_items_by_a_key(self) -> None:
        orders = {"orders": [{"storeId": "a", "n": 1}, {"storeId": "b", "n": 2}, {"storeId": "a", "n": 3}]}
        assert run("orders.groupBy(storeId)", orders) == {
            "a": [{"storeId": "a", "n": 1}, {"storeId": "a", "n": 3}],
            "b": [{"storeId": "b", "n": 2}],
        }
        assert run("orders.groupBy(storeId).map((K, G) => mapEntry(K, G.count()))", orders) == {
            "a": 2,
            "b": 1,
        }

    def test_exists_and_forall_as_functions_over_an_array(self) -> None:
        items = {"productListItems": [{"name": "iPhone 15 Pro"}, {"name": "Case"}]}
        assert run('productListItems.exists(name.equals("iphone 15 pro", false))', items) is True
        assert run('productListItems.forall(name.equals("Case"))', items) is False
        assert run('productListItems.forall(i => i.name.contains("e"))', items) is True

    def test_an_attribute_of_an_array_is_read_from_every_item(self) -> None:
        profile = {
            "xEvent": [{"commerce": {"purchases": {"value": 1}}}, {"commerce": {"purchases": {"value": 2}}}]
        }
        assert run("xEvent.commerce.purchases.value", profile) == [1, 2]
        assert run("xEvent.commerce.purchases.value.sum()", profile) == 3


class TestMapFunctions:
    profile: ClassVar[dict[str, Any]] = {
        "identityMap": {"Email": [{"id": "jo@example.com"}], "ECID": [{"id": "1" * 38}]},
        "segmentMembership": {"ups": {"a1": {"status": "realized"}}},
    }

    def test_get_reads_one_key(self) -> None:
        assert run('identityMap.get("Email").id', self.profile) == ["jo@example.com"]
        assert run('identityMap.get("Phone")', self.profile) is None

    def test_keys_and_values(self) -> None:
        assert run("identityMap.keys()", self.profile) == ["Email", "ECID"]
        assert run("identityMap.values().count()", self.profile) == 2

    def test_segment_membership_is_a_map_of_maps(self) -> None:
        rule = 'segmentMembership.get("ups").get("a1").status in ["realized", "existing"]'
        assert run(rule, self.profile) is True

    def test_map_functions_on_something_else_are_null(self) -> None:
        assert run('name.get("x")', {"name": "Jo"}) is None
        assert run("name.keys()", {"name": "Jo"}) is None


class TestStringFunctions:
    @pytest.mark.parametrize(
        ("rule", "expected"),
        [
            ('city like "%es%"', True),
            ('city like "D_s Moines"', True),
            ('city like "des%"', False),
            ('person.name.startsWith("Joe")', True),
            ('person.name.startsWith("joe")', False),
            ('person.name.startsWith("joe", false)', True),
            ('person.name.doesNotStartWith("Joe")', False),
            ('person.emailAddress.endsWith(".com")', True),
            ('person.emailAddress.doesNotEndWith(".com")', False),
            ('person.emailAddress.contains("2010@gm")', True),
            ('person.emailAddress.contains("2010@GM", false)', True),
            ('person.emailAddress.doesNotContain("2010@gm")', False),
            ('person.name.equals("Joe Smith")', True),
            ('person.name.equals("joe smith", false)', True),
            ('person.name.notEqualTo("John")', True),
            ('person.name.matches("(?i)^joe")', True),
            ('person.name.matches("^Smith")', False),
        ],
    )
    def test_documented_examples(self, rule: str, expected: bool) -> None:
        profile = {"city": "Des Moines", "person": {"name": "Joe Smith", "emailAddress": "joe2010@gmail.com"}}
        assert run(rule, profile) is expected

    def test_regex_group_extracts_the_email_domain(self) -> None:
        rule = 'emailAddress.regexGroup("@(\\\\w+)", 1)'
        assert run(rule, {"emailAddress": "jo@example.com"}) == "example"
        assert run(rule, {"emailAddress": "no address"}) is None
        assert run('emailAddress.regexGroup("@\\\\w+")', {"emailAddress": "jo@example.com"}) == "@example"

    def test_string_functions_on_other_types_are_false(self) -> None:
        for name in ("startsWith", "doesNotStartWith", "contains", "doesNotContain", "equals", "notEqualTo"):
            assert run(f'value.{name}("1")', {"value": 12}) is False
            assert run(f'value.{name}("1")', {}) is False
        assert run('value like "1%"', {"value": 12}) is False
        assert run('value.matches("1")', {"value": 12}) is False

    def test_patterns_computed_at_evaluation_still_work(self) -> None:
        profile = {"name": "Joe", "pattern": "^J", "bad": "("}
        assert run("name.matches(pattern)", profile) is True
        assert run("name.matches(bad)", profile) is False
        assert run("name like pattern", {"name": "Joe", "pattern": "J%"}) is True


class TestObjectFunctions:
    def test_isnull_and_isnotnull(self) -> None:
        assert run("person.homeAddress.isNull()", {"person": {}}) is True
        assert run("person.homeAddress.isNotNull()", {"person": {"homeAddress": {"city": "Oslo"}}}) is True
        assert run("person.homeAddress.isNull()", {"person": "not an object"}) is True


class TestArithmetic:
    profile: ClassVar[dict[str, Any]] = {
        "product1": {"price": 10},
        "product2": {"price": 4},
        "person": {"age": 35},
    }

    @pytest.mark.parametrize(
        ("rule", "expected"),
        [
            ("product1.price + product2.price", 14),
            ("product1.price - product2.price", 6),
            ("product1.price * product2.price", 40),
            ("product1.price / product2.price", 2.5),
            ("person.age % 5 = 0", True),
            ("1 + 2 * 3", 7),
            ("(1 + 2) * 3", 9),
            ("-7 % 3", -1),
            ("-(2 - 5)", 3),
        ],
    )
    def test_operators(self, rule: str, expected: Any) -> None:
        assert run(rule, self.profile) == expected

    def test_null_wrong_types_and_division_by_zero_give_null(self) -> None:
        assert run("missing + 1", self.profile) is None
        assert run('"a" + 1', self.profile) is None
        assert run("true + 1", self.profile) is None
        assert run("person.age / 0", self.profile) is None
        assert run("person.age % 0", self.profile) is None


class TestAggregationFunctions:
    orders: ClassVar[dict[str, Any]] = {
        "orders": [{"order": {"price": 10}}, {"order": {"price": 30}}, {"order": {}}]
    }

    def test_count(self) -> None:
        assert run("orders.count()", self.orders) == 3
        assert run("missing.count()", self.orders) == 0

    def test_sum_average_min_max_of_a_value_of_each_item(self) -> None:
        assert run("orders.sum(order.price)", self.orders) == 40
        assert run("orders.average(order.price)", self.orders) == 20
        assert run("orders.min(order.price)", self.orders) == 10
        assert run("orders.max(order.price)", self.orders) == 30

    def test_aggregations_of_plain_numbers(self) -> None:
        assert run("values.sum()", {"values": [1, 2, 3.5]}) == 6.5
        assert run("values.max()", {"values": []}) is None
        assert run("values.average()", {"values": ["a", None]}) is None

    def test_event_aggregates_over_a_filtered_window(self) -> None:
        profile = {
            "xEvent": [
                event(
                    "2024-06-10T10:00:00Z",
                    "transaction",
                    category="sporting goods",
                    commerce={"order": {"priceTotal": 60}},
                ),
                event(
                    "2024-06-11T10:00:00Z",
                    "transaction",
                    category="sporting goods",
                    commerce={"order": {"priceTotal": 70}},
                ),
                event(
                    "2024-05-01T10:00:00Z",
                    "transaction",
                    category="sporting goods",
                    commerce={"order": {"priceTotal": 500}},
                ),
                event(
                    "2024-06-11T11:00:00Z",
                    "transaction",
                    category="books",
                    commerce={"order": {"priceTotal": 9}},
                ),
            ]
        }
        window = (
            'xEvent[(timestamp occurs < 7 days before now) and eventType = "transaction"'
            ' and category = "sporting goods"]'
        )
        assert run(f"{window}.count()", profile) == 2
        assert run(f"{window}.sum(commerce.order.priceTotal)", profile) == 130
        assert run(f"{window}.max(commerce.order.priceTotal)", profile) == 70
        assert run(f"{window}.sum(commerce.order.priceTotal) > 100", profile) is True

    def test_sum_over_a_binding(self) -> None:
        profile = {
            "xEvent": [
                {"commerce": {"order": {"priceTotal": 120, "currencyCode": "USD"}}},
                {"commerce": {"order": {"priceTotal": 80, "currencyCode": "USD"}}},
                {"commerce": {"order": {"priceTotal": 5000, "currencyCode": "EUR"}}},
            ]
        }
        rule = (
            "let S = (sum X.commerce.order.priceTotal over X from xEvent"
            ' where X.commerce.order.currencyCode = "USD") in (S > 100 and S < 1000)'
        )
        assert run(rule, profile) is True
        assert run('count X over X from xEvent where X.commerce.order.currencyCode = "USD"', profile) == 2


class TestDatesAndTimes:
    def test_current_date_parts_come_from_now(self) -> None:
        assert run("currentMonth()") == 6
        assert run("currentYear()") == 2024
        assert run("currentDayOfMonth()") == 12

    def test_date_parts_of_a_stored_date_or_timestamp(self) -> None:
        profile = {"person": {"birthdate": "1991-06-03", "seen": "2024-01-31T23:30:00-02:00"}}
        assert run("person.birthdate.getMonth() = 6", profile) is True
        assert run("person.birthdate.getYear() in [1991, 1992, 1993]", profile) is True
        assert run("person.birthdate.getDayOfMonth() <= 15", profile) is True
        # Read in UTC: 23:30 at -02:00 is already 1 February.
        assert run("person.seen.getMonth()", profile) == 2
        assert run("person.name.getMonth()", {"person": {"name": "Jo"}}) is None

    def test_date_builds_a_date(self) -> None:
        assert run("date(2020, 3, 14)") == date(2020, 3, 14)

    def test_now_and_today(self) -> None:
        assert run("now") == NOW
        assert run("today") == date(2024, 6, 12)

    def test_now_defaults_to_the_current_time_and_naive_times_are_utc(self) -> None:
        assert run("currentYear()", now=None) == datetime.now(UTC).year
        naive = datetime(2024, 1, 1, 12, tzinfo=UTC).replace(tzinfo=None)
        assert run("now", now=naive) == datetime(2024, 1, 1, 12, tzinfo=UTC)

    @pytest.mark.parametrize(
        ("moment", "rule", "expected"),
        [
            ("2024-06-12T12:30:00Z", "occurs = 3 hours before now", True),
            ("2024-06-12T11:30:00Z", "occurs = 3 hours before now", False),
            ("2024-06-09T20:00:00Z", "occurs = 3 days before today", True),
            ("2024-06-10T00:00:00Z", "occurs = 3 days before today", False),
            ("2024-06-09T20:00:00Z", "occurs <= 3 days before now", True),
            ("2024-06-09T15:00:00Z", "occurs <= 3 days before now", False),
            ("2024-06-01T00:00:00Z", "occurs > 3 days before now", True),
            ("2024-06-13T00:00:00Z", "occurs < 7 days before now", False),
            ("2024-06-13T10:00:00Z", "occurs <= 24 hours after now", True),
            ("2024-06-14T10:00:00Z", "occurs <= 24 hours after now", False),
            ("2024-06-11T10:00:00Z", "occurs before today", True),
            ("2024-06-12T00:00:00Z", "occurs before today", False),
            ("2024-06-13T00:00:00Z", "occurs after today", True),
            ("2024-06-12T01:00:00Z", "occurs today", True),
            ("2024-06-11T23:59:00Z", "occurs yesterday", True),
            ("2024-06-13T08:00:00Z", "occurs tomorrow", True),
            ("2024-06-10T00:00:00Z", "occurs this week", True),
            ("2024-06-09T23:00:00Z", "occurs this week", False),
            ("2024-06-09T23:00:00Z", "occurs last week", True),
            ("2024-05-31T23:00:00Z", "occurs last month", True),
            ("2024-07-01T00:00:00Z", "occurs next month", True),
            ("2024-01-01T00:00:00Z", "occurs this year", True),
            ("2016-03-01T00:00:00Z", "occurs between date(2015, 1, 8) and date(2017, 7, 1)", True),
            ("2017-07-01T23:00:00Z", "occurs between date(2015, 1, 8) and date(2017, 7, 1)", True),
            ("2017-07-02T00:00:00Z", "occurs between date(2015, 1, 8) and date(2017, 7, 1)", False),
            ("2019-12-31T12:00:00Z", "occurs on date(2019, 12, 31)", True),
            ("2019-12-31T12:00:00Z", "occurs date(2019, 12, 31)", True),
            ("2019-12-30T12:00:00Z", "occurs before other", True),
            ("2019-12-31T12:00:00Z", "occurs != 1 day before other", False),
            # A reference off the calendar (before year 1, after 9999): every moment lies
            # within it, none beyond it or in the unit there.
            ("0001-01-01T00:00:00Z", "occurs <= 5000 years before now", True),
            ("2024-06-13T00:00:00Z", "occurs <= 5000 years before now", False),
            ("2024-06-13T00:00:00Z", "occurs < 9000 years after now", True),
            ("2001-01-01T00:00:00Z", "occurs > 5000 years before now", False),
            ("2001-01-01T00:00:00Z", "occurs = 5000 years before now", False),
            ("2001-01-01T00:00:00Z", "occurs != 5000 years before now", True),
        ],
    )
    def test_occurs(self, moment: str, rule: str, expected: bool) -> None:
        profile = {"product": {"saleDate": moment}, "other": "2020-01-01"}
        assert run(f"product.saleDate {rule}", profile) is expected

    def test_occurs_on_a_stored_date_covers_the_day(self) -> None:
        assert (
            run("person.birthday occurs = 3 days before today", {"person": {"birthday": "2024-06-09"}})
            is True
        )

    def test_occurs_on_something_that_is_not_a_time_is_false(self) -> None:
        assert run("x occurs today", {"x": "soon"}) is False
        assert run("x occurs today", {"x": 5}) is False
        assert run("x occurs < 2 days before y", {"x": "2024-06-12T00:00:00Z", "y": "never"}) is False


class TestFiltersOnArrays:
    profile: ClassVar[dict[str, Any]] = {
        "person": {"gender": "female"},
        "xEvent": [
            event("2024-06-12T10:00:00Z", productListItems=[{"SKU": "PS"}, {"SKU": "XB"}]),
            event("2024-06-12T11:00:00Z", productListItems=[{"SKU": "XB"}]),
        ],
    }

    def test_a_filter_keeps_events_with_an_item_of_the_sku(self) -> None:
        found = run('xEvent[productListItems[SKU = "PS"]]', self.profile)
        assert [e["timestamp"] for e in found] == ["2024-06-12T10:00:00Z"]

    def test_the_up_operator_reads_the_enclosing_contexts(self) -> None:
        rule = 'xEvent[productListItems[SKU = "PS" or ^^.person.gender = "female"]]'
        assert len(run(rule, self.profile)) == 2
        assert (
            run('xEvent[productListItems[^.timestamp = "2024-06-12T11:00:00Z"]].count()', self.profile) == 1
        )
        assert run('xEvent[productListItems[^^person.gender = "male"]]', self.profile) == []

    def test_events_can_be_given_apart_from_the_profile(self) -> None:
        events = [event("2024-06-12T10:00:00Z", "commerce.checkouts")]
        assert run('xEvent[eventType = "commerce.checkouts"].count()', {}, events=events) == 1


class TestLogicalQuantifiers:
    profile: ClassVar[dict[str, Any]] = {
        "xEvent": [
            {"commerce": {"item": {"price": 20}}, "productListItems": [{"SKU": "PS"}]},
            {"commerce": {"item": {"price": 80}}, "productListItems": [{"SKU": "XB"}]},
        ]
    }

    def test_exists_with_two_bindings(self) -> None:
        rule = (
            "exists E from xEvent where (E.commerce.item.price > 50),"
            ' I from E.productListItems where I.SKU = "XB"'
        )
        assert run(rule, self.profile) is True
        assert run(rule.replace('"XB"', '"PS"'), self.profile) is False

    def test_exists_with_a_colon(self) -> None:
        assert run("exists E from xEvent : E.commerce.item.price > 50", self.profile) is True
        assert run("exists E from xEvent", {"xEvent": []}) is False

    def test_forall_holds_when_every_item_does(self) -> None:
        assert run("forall E from xEvent where E.commerce.item.price > 10", self.profile) is True
        assert run("forall E from xEvent where E.commerce.item.price > 50", self.profile) is False
        assert run("forall E from xEvent where E.commerce.item.price > 50", {"xEvent": []}) is True

    def test_select_returns_the_matching_items(self) -> None:
        rule = "select var1 from xEvent where var1.commerce.item.price > 50"
        assert run(rule, self.profile) == [self.profile["xEvent"][1]]
        assert compile_rule(rule).qualifies(self.profile, now=NOW) is True
        assert compile_rule(rule).qualifies({"xEvent": []}, now=NOW) is False


class TestLetAndLambdas:
    def test_let_names_a_value(self) -> None:
        assert run("let total = a + b in total * 2", {"a": 1, "b": 2}) == 6

    def test_a_rule_may_name_its_profile(self) -> None:
        rule = "(Profile) => Profile.homeAddress.stateProvince = Profile.workAddress.stateProvince"
        same = {"homeAddress": {"stateProvince": "ON"}, "workAddress": {"stateProvince": "ON"}}
        assert run(rule, same) is True
        assert run("$1.homeAddress.stateProvince = workAddress.stateProvince", same) is True


class TestChainMatchesEventsInTimeOrder:
    events: ClassVar[list[dict[str, Any]]] = [
        event("2024-06-12T09:00:00Z", "commerce.productViews"),
        event("2024-06-12T10:00:00Z", "commerce.productListAdds"),
        event("2024-06-12T11:00:00Z", "commerce.checkouts"),
        event("2024-06-01T11:00:00Z", "commerce.checkouts"),
    ]

    def chain(self, steps: str) -> Any:
        return run(f"CHAIN(xEvent, timestamp, [{steps}])", {"xEvent": self.events})

    def test_a_single_event(self) -> None:
        assert self.chain('A: WHAT(eventType = "commerce.checkouts")') is True
        assert self.chain('A: WHAT(eventType = "commerce.purchases")') is False

    def test_steps_must_happen_in_order(self) -> None:
        view, add = (
            'A: WHAT(eventType = "commerce.productViews")',
            'B: WHAT(eventType = "commerce.productListAdds")',
        )
        assert self.chain(f"{view}, {add}") is True
        assert self.chain(f"{add}, {view}") is False

    def test_when_limits_the_time_of_a_step(self) -> None:
        checkout = 'C0: WHAT(eventType.equals("commerce.checkouts", false))'
        assert self.chain(f"{checkout} WHEN(today)") is True
        assert self.chain(f"{checkout} WHEN(<= 24 hours before now)") is True
        assert self.chain('C0: WHAT(eventType = "commerce.productViews") WHEN(< 6 hours before now)') is False

    def test_count_needs_that_many_matching_events(self) -> None:
        assert self.chain('A: WHAT(eventType = "commerce.checkouts") COUNT(2)') is True
        assert self.chain('A: WHAT(eventType = "commerce.checkouts") WHEN(today) COUNT(2)') is False

    def test_where_adds_a_condition(self) -> None:
        assert (
            self.chain('A: WHAT(eventType = "commerce.checkouts") WHERE(timestamp occurs yesterday)') is False
        )

    def test_a_later_step_may_refer_to_an_earlier_one(self) -> None:
        rule = (
            'A: WHAT(eventType = "commerce.checkouts"), '
            "B: WHAT(eventType = A.eventType) WHEN(<= 1 day after A.timestamp)"
        )
        assert self.chain(rule) is False
        events = [*self.events, event("2024-06-02T09:00:00Z", "commerce.checkouts")]
        assert run(f"CHAIN(xEvent, timestamp, [{rule}])", {"xEvent": events}) is True

    def test_an_earlier_step_is_matched_again_when_a_later_one_needs_it(self) -> None:
        events = [
            event("2024-06-01T08:00:00Z", "commerce.checkouts"),
            event("2024-06-10T08:00:00Z", "commerce.checkouts"),
            event("2024-06-10T20:00:00Z", "commerce.checkouts"),
        ]
        rule = (
            'CHAIN(xEvent, timestamp, [A: WHAT(eventType = "commerce.checkouts"), '
            'B: WHAT(eventType = "commerce.checkouts") WHEN(<= 12 hours after A.timestamp)])'
        )
        assert run(rule, {"xEvent": events}) is True
        assert run(rule, {"xEvent": events[:2]}) is False

    def test_negated_chain(self) -> None:
        assert (
            run(
                'not(chain(xEvent, timestamp, [A: WHAT(eventType = "homePageView")]))',
                {"xEvent": self.events},
            )
            is True
        )

    def test_events_without_a_readable_time_are_left_out(self) -> None:
        events = [{"eventType": "x"}, {"eventType": "x", "timestamp": "yesterday"}, "not an event"]
        assert run('CHAIN(xEvent, timestamp, [A: WHAT(eventType = "x")])', {"xEvent": events}) is False


class TestAudienceMembership:
    profile: ClassVar[dict[str, Any]] = {
        "segmentMembership": {
            "ups": {
                "gold": {"status": "realized"},
                "silver": {"status": "existing"},
                "bronze": {"status": "exited"},
            },
            "aam": {"partner": {"status": "realized"}},
        }
    }

    def test_in_segment_reads_the_profile_membership(self) -> None:
        assert run('inSegment("gold")', self.profile) is True
        assert run('inSegment("silver")', self.profile) is True
        assert run('inSegment("bronze")', self.profile) is False
        assert run('inSegment("partner")', self.profile) is True
        assert run('inSegment("unknown")', self.profile) is False

    def test_explicit_memberships_replace_the_profile_ones(self) -> None:
        assert run('inSegment("bronze")', self.profile, segments={"bronze": "realized"}) is True
        assert run('inSegment("gold")', self.profile, segments={}) is False
        rule = 'segmentMembership.get("ups").get("bronze").status = "realized"'
        assert run(rule, self.profile, segments={"bronze": "realized"}) is True

    def test_segment_of_segments(self) -> None:
        assert run('inSegment("gold") and not (inSegment("bronze"))', self.profile) is True


class TestEvaluationOnProfilesOfTheWrongShape:
    @pytest.mark.parametrize(
        "profile",
        [
            {"person": "a string"},
            {"person": ["a", {"name": 3}]},
            {"person": {"name": {"firstName": ["x"]}}},
            {"xEvent": "not a list"},
            {"xEvent": [1, None, {"timestamp": 5}]},
            {"segmentMembership": ["ups"]},
            {"orders": {"price": "ten"}},
        ],
    )
    @pytest.mark.parametrize(
        "rule",
        [
            'person.name.firstName.startsWith("J")',
            "person.name.firstName > 3",
            "orders.sum(price) + 1",
            'xEvent[eventType = "x"].count()',
            "CHAIN(xEvent, timestamp, [A: WHAT(true) WHEN(today)])",
            'inSegment("a")',
            "exists X from person where X.name = 3",
            "orders.topN(price, 2)",
            "person.name.firstName occurs last week",
        ],
    )
    def test_never_raises(self, profile: dict[str, Any], rule: str) -> None:
        compile_rule(rule).evaluate(profile, now=NOW)

    def test_a_profile_that_is_not_a_map_reads_as_empty(self) -> None:
        assert run("person.isNull()", "not a profile") is True  # type: ignore[arg-type]


class TestCompiledRules:
    def test_a_rule_keeps_its_tree_and_compiles_from_text_or_tree(self) -> None:
        tree = parse('homeAddress.countryCode = "US"')
        assert compile_rule('homeAddress.countryCode = "US"').expression == tree
        assert compile_rule(tree).evaluate({"homeAddress": {"countryCode": "US"}}) is True
        assert repr(compile_rule(tree)) == "Rule('homeAddress.countryCode = \"US\"')"

    def test_qualifies_applies_pql_truth_to_the_value(self) -> None:
        assert compile_rule('xEvent[eventType = "a"]').qualifies({"xEvent": [{"eventType": "a"}]}) is True
        assert compile_rule("person.age").qualifies({"person": {"age": 40}}) is False

    def test_one_rule_evaluates_many_profiles_independently(self) -> None:
        rule = compile_rule("exists X from orders where X.price > limit")
        assert rule.evaluate({"orders": [{"price": 5}], "limit": 3}) is True
        assert rule.evaluate({"orders": [{"price": 5}], "limit": 8}) is False
