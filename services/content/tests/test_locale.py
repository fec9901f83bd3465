"""``choose_locale``: the variant a profile reads, by its ``preferredLanguage``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from itinera.common.render.locale import canonical, choose_locale, fallbacks

VARIANTS = ("en", "fr", "fr-CA", "de-DE", "zh-Hant")


def profile(language: Any) -> dict[str, Any]:
    return {"preferredLanguage": language, "person": {"name": {"firstName": "Jane"}}}


class TestChoice:
    @pytest.mark.parametrize(
        ("language", "expected"),
        [
            ("fr-CA", "fr-CA"),
            ("fr-BE", "fr"),
            ("fr", "fr"),
            ("FR-ca", "fr-CA"),
            ("fr_CA", "fr-CA"),
            ("zh-Hant-TW", "zh-Hant"),
            ("de", "de-DE"),
            ("de-AT", "de-DE"),
            ("es-MX", "en"),
            ("de-x-informal", "de-DE"),
        ],
    )
    def test_takes_the_tag_then_shorter_forms_then_the_language_then_the_default(
        self, language: str, expected: str
    ) -> None:
        assert choose_locale(VARIANTS, "en", profile(language)) == expected

    @pytest.mark.parametrize("value", [None, "", "  ", 42, ["fr"], "not a tag!", "f"])
    def test_a_missing_or_unreadable_language_gets_the_default(self, value: Any) -> None:
        assert choose_locale(VARIANTS, "en", profile(value)) == "en"

    def test_reads_the_language_at_the_profile_root_only(self) -> None:
        assert choose_locale(VARIANTS, "en", {"person": {"preferredLanguage": "fr"}}) == "en"
        assert choose_locale(VARIANTS, "en", {}) == "en"

    def test_answers_the_variant_as_the_template_spells_it(self) -> None:
        assert choose_locale(["EN", "Fr-ca"], "EN", profile("fr-CA")) == "Fr-ca"

    def test_the_same_language_is_chosen_in_alphabetical_order(self) -> None:
        assert choose_locale(["pt-PT", "pt-BR", "en"], "en", profile("pt")) == "pt-BR"

    @given(st.text(max_size=30), st.lists(st.sampled_from(VARIANTS), unique=True))
    def test_always_answers_a_variant_or_the_default(self, language: str, variants: list[str]) -> None:
        chosen = choose_locale(variants, "en", profile(language))
        assert chosen in variants or chosen == "en"


class TestTags:
    def test_canonical_case(self) -> None:
        assert canonical("FR-ca") == "fr-CA"
        assert canonical("zh-hant-tw") == "zh-Hant-TW"
        assert canonical("en_us") == "en-US"
        assert canonical("de-x-Informal") == "de-x-informal"

    def test_fallbacks_shorten_one_subtag_at_a_time(self) -> None:
        assert fallbacks("zh-Hant-TW") == ["zh-hant-tw", "zh-hant", "zh"]
        assert fallbacks("de-x-informal") == ["de-x-informal", "de"]
        assert fallbacks("nonsense tag") == []
