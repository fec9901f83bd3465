"""Merging fragments into one view."""

from __future__ import annotations

from datetime import UTC, datetime

from itinera.profile.profiles.merge import Fragment, diff, merge


def at(hour: int) -> datetime:
    return datetime(2026, 11, 28, hour, tzinfo=UTC)


crm = Fragment(
    "crm", at(9), {"person": {"name": {"firstName": "Jane", "lastName": "Doe"}}, "loyalty": {"tier": "gold"}}
)
web = Fragment("web", at(11), {"person": {"name": {"firstName": "Janet"}}, "homeAddress": {"city": "Lyon"}})


class TestTimestampOrdered:
    def test_the_newest_value_of_each_attribute_wins(self) -> None:
        assert merge([crm, web]) == {
            "person": {"name": {"firstName": "Janet", "lastName": "Doe"}},
            "loyalty": {"tier": "gold"},
            "homeAddress": {"city": "Lyon"},
        }

    def test_the_order_fragments_come_in_does_not_matter(self) -> None:
        assert merge([crm, web]) == merge([web, crm])

    def test_an_array_is_one_value(self) -> None:
        old = Fragment("a", at(1), {"tags": ["x", "y"]})
        new = Fragment("b", at(2), {"tags": ["z"]})
        assert merge([old, new]) == {"tags": ["z"]}

    def test_a_newer_scalar_does_not_clobber_an_older_object_partially(self) -> None:
        old = Fragment("a", at(1), {"address": {"city": "Lyon"}})
        new = Fragment("b", at(2), {"address": "unknown"})
        assert merge([old, new]) == {"address": "unknown"}
        assert merge(
            [Fragment("a", at(2), {"address": {"city": "Lyon"}}), Fragment("b", at(1), {"address": "x"})]
        ) == {"address": {"city": "Lyon"}}


class TestDatasetPrecedence:
    def test_datasets_earlier_in_the_order_win_whatever_their_time(self) -> None:
        assert merge([crm, web], "dataSetPrecedence", ["crm", "web"])["person"]["name"]["firstName"] == "Jane"

    def test_datasets_not_in_the_order_come_last(self) -> None:
        other = Fragment("other", at(23), {"person": {"name": {"firstName": "Zed"}}})
        assert merge([crm, other], "dataSetPrecedence", ["crm"])["person"]["name"]["firstName"] == "Jane"


def test_identity_maps_are_united() -> None:
    a = Fragment("a", at(1), {"identityMap": {"Email": [{"id": "j@example.com"}]}})
    b = Fragment("b", at(2), {"identityMap": {"Email": [{"id": "j@example.com"}], "CRMID": [{"id": "c1"}]}})
    assert merge([a, b])["identityMap"] == {"Email": [{"id": "j@example.com"}], "CRMID": [{"id": "c1"}]}


class TestDiff:
    def test_changes_are_leaf_paths_with_old_and_new_values(self) -> None:
        before = {"person": {"name": "Jane", "age": 30}, "tags": ["a"]}
        after = {"person": {"name": "Jane", "age": 31}, "tags": ["a", "b"], "loyalty": {}}
        assert diff(before, after) == [
            {"path": "loyalty", "old": None, "new": {}},
            {"path": "person.age", "old": 30, "new": 31},
            {"path": "tags", "old": ["a"], "new": ["a", "b"]},
        ]

    def test_a_profile_with_no_attributes_yet_has_no_root_path(self) -> None:
        assert diff({}, {"person": {"name": "Jane"}}) == [{"path": "person.name", "old": None, "new": "Jane"}]
        assert diff({"person": {"name": "Jane"}}, {}) == [{"path": "person.name", "old": "Jane", "new": None}]
        assert diff({}, {}) == []
