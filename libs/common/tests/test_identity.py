"""Specification of AEP's identity rules (``itinera.common.xdm.identity``)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from itinera.common.xdm.identity import Identity, check, from_identity_map, primary

ECID = "0" * 18 + "12345678901234567890"
NOT_ASCII_DIGITS = st.characters(exclude_categories=["Cs"]).filter(lambda c: c not in "0123456789")


def entity(identity_map: dict[str, Any]) -> dict[str, Any]:
    return {"identityMap": identity_map}


def codes(identities: list[Identity], base_path: str = "") -> list[tuple[str, str]]:
    return [(p.path, p.code) for p in check(identities, base_path)]


class TestFromIdentityMap:
    def test_reads_every_identity_with_a_pointer_to_its_value(self) -> None:
        found = from_identity_map(
            entity(
                {
                    "Email": [
                        {"id": "a@example.com", "primary": True, "authenticatedState": "authenticated"}
                    ],
                    "ECID": [{"id": ECID}, {"id": "0" * 38}],
                }
            )
        )

        assert found == [
            Identity("Email", "a@example.com", True, "authenticated", "/identityMap/Email/0/id"),
            Identity("ECID", ECID, False, "ambiguous", "/identityMap/ECID/0/id"),
            Identity("ECID", "0" * 38, False, "ambiguous", "/identityMap/ECID/1/id"),
        ]
        assert found[0].key == "Email:a@example.com"

    def test_escapes_namespaces_in_the_pointer(self) -> None:
        [found] = from_identity_map(entity({"a/b~c": [{"id": "x"}]}))
        assert found.path == "/identityMap/a~1b~0c/0/id"

    def test_finds_nothing_without_an_identity_map(self) -> None:
        assert from_identity_map({}) == []
        assert from_identity_map({"identityMap": "nope"}) == []

    def test_primary_is_the_one_marked_else_the_first(self) -> None:
        first, marked = Identity("A", "1"), Identity("B", "2", primary=True)
        assert primary([first, marked]) == marked
        assert primary([first]) == first
        assert primary([]) is None


class TestValidIdentities:
    def test_pass(self) -> None:
        identities = from_identity_map(
            entity({"Email": [{"id": "a@example.com", "primary": True}], "ECID": [{"id": ECID}]})
        )
        assert check(identities) == []

    def test_of_twenty_pass(self) -> None:
        assert check([Identity("CRM", str(n)) for n in range(20)]) == []

    def test_of_1024_characters_pass(self) -> None:
        assert check([Identity("CRM", "x" * 1024)]) == []

    def test_marking_the_same_identity_primary_twice_pass(self) -> None:
        same = Identity("Email", "a@example.com", primary=True, path="/identityMap/Email/0/id")
        assert check([same, same]) == []

    @given(st.text(alphabet="0123456789", min_size=38, max_size=38))
    def test_any_ecid_of_38_digits_passes(self, value: str) -> None:
        assert check([Identity("ECID", value)]) == []


class TestRefusedIdentities:
    @pytest.mark.parametrize("value", ["", "   ", "null", "NULL", "anonymous", "Invalid", " null "])
    def test_empty_values_and_placeholders_are_refused(self, value: str) -> None:
        [(path, code)] = codes([Identity("CRM", value, path="/identityMap/CRM/0/id")])
        assert path == "/identityMap/CRM/0/id"
        assert code in {"identity.empty", "identity.placeholder"}

    def test_a_value_over_1024_characters_is_refused(self) -> None:
        found = check([Identity("CRM", "x" * 1025, path="/identityMap/CRM/0/id")], "/body")
        assert [(p.path, p.code) for p in found] == [("/body/identityMap/CRM/0/id", "identity.length")]
        assert "1025" in found[0].message

    @pytest.mark.parametrize(
        "value", ["1" * 37, "1" * 39, "1" * 37 + "a", "1234-5678", "\u0661" * 38, ECID + " "], ids=repr
    )
    def test_an_ecid_that_is_not_38_digits_is_refused(self, value: str) -> None:
        assert codes([Identity("ECID", value, path="/p")]) == [("/p", "identity.ecid")]

    def test_the_ecid_rule_ignores_the_namespace_case(self) -> None:
        assert codes([Identity("ecid", "123", path="/p")]) == [("/p", "identity.ecid")]

    def test_an_ecid_with_a_trailing_newline_is_refused(self) -> None:
        assert codes([Identity("ECID", ECID + "\n", path="/p")]) == [("/p", "identity.ecid")]

    @given(
        digits=st.text(alphabet="0123456789", min_size=37, max_size=37),
        intruder=NOT_ASCII_DIGITS,
        at=st.integers(min_value=0, max_value=37),
    )
    def test_any_ecid_with_a_character_that_is_not_a_digit_is_refused(
        self, digits: str, intruder: str, at: int
    ) -> None:
        value = digits[:at] + intruder + digits[at:]
        assert "identity.ecid" in {p.code for p in check([Identity("ECID", value)])}

    def test_more_than_twenty_identities_are_refused_at_the_identity_map(self) -> None:
        found = codes([Identity("CRM", str(n)) for n in range(21)], "/body/xdmEntity")
        assert found == [("/body/xdmEntity/identityMap", "identity.count")]

    def test_the_same_identity_twice_counts_once(self) -> None:
        assert check([Identity("CRM", str(n % 20)) for n in range(40)]) == []

    def test_two_different_primaries_are_refused_at_the_second(self) -> None:
        identities = from_identity_map(
            entity(
                {
                    "Email": [{"id": "a@example.com", "primary": True}],
                    "Phone": [{"id": "+15550100", "primary": False}, {"id": "+15550101", "primary": True}],
                }
            )
        )
        assert codes(identities, "/body/xdmEntity") == [
            ("/body/xdmEntity/identityMap/Phone/1/primary", "identity.primary")
        ]

    def test_an_empty_namespace_is_refused(self) -> None:
        assert codes([Identity(" ", "x", path="/p")]) == [("/p", "identity.namespace")]

    def test_every_problem_is_reported_not_only_the_first(self) -> None:
        found = codes(
            [
                Identity("ECID", "null", path="/a"),
                Identity("CRM", "y" * 2000, path="/b"),
            ]
        )
        assert found == [("/a", "identity.placeholder"), ("/a", "identity.ecid"), ("/b", "identity.length")]
