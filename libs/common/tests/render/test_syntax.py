"""Rendering every construct: outputs, escaping, paths, blocks, variables and comments."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from itinera.common.render import compile_template

NOW = datetime(2024, 6, 12, 15, 30, tzinfo=UTC)
PROFILE: dict[str, Any] = {
    "profile": {
        "person": {"name": {"firstName": "Mark & Mary", "lastName": "o'neil"}, "birthYear": 1985},
        "homeAddress": {"countryCode": "FR", "city": "Lyon"},
        "personalEmail": {"address": "ann@school.edu"},
        "products": [
            {"productName": "Shoes", "productRating": 4, "price": 120},
            {"productName": "Bag <XL>", "productRating": 5, "price": 80},
        ],
        "tags": ["a", "b", "c"],
        "identityMap": {"email": [{"id": "x@y.z"}], "ecid": [{"id": "123"}]},
        "loyalty": {"points": 0, "tier": ""},
    },
    "context": {"journey": {"events": {"123": {"timestamp": "2024-01-02T03:04:05Z"}}}, "x": 7},
}


def render(source: str, data: dict[str, Any] | None = None, **options: Any) -> str:
    rendered = compile_template(source, **options).render(PROFILE if data is None else data, now=NOW)
    assert not rendered.errors, rendered.errors
    return rendered.text


class TestOutputs:
    def test_renders_a_profile_attribute_html_escaped(self) -> None:
        assert render("Hi {{profile.person.name.firstName}}!") == "Hi Mark &amp; Mary!"

    def test_triple_stash_outputs_raw(self) -> None:
        assert render("{{{profile.person.name.firstName}}}") == "Mark & Mary"

    def test_escapes_the_handlebars_set(self) -> None:
        data = {"x": "<a href=\"x\" title='y'>`=&</a>"}
        assert (
            render("{{x}}", data)
            == "&lt;a href&#x3D;&quot;x&quot; title&#x3D;&#x27;y&#x27;&gt;&#x60;&#x3D;&amp;&lt;/a&gt;"
        )

    def test_percent_equals_outputs_escaped_too(self) -> None:
        assert render('{%= concat(profile.person.name.lastName, "<") %}') == "o&#x27;neil&lt;"

    def test_plain_text_channels_do_not_escape(self) -> None:
        assert render("{{profile.person.name.firstName}} {%= '<b>' %}", escape=False) == "Mark & Mary <b>"

    def test_json_payloads_escape_for_json_strings_and_leave_triple_stash_raw(self) -> None:
        data = {"name": 'O"Brien \\ <b>\n\t\x01é', "items": "[1, 2]", "n": 4}
        source = '{"name": "{{name}}", "items": {{{items}}}, "n": {{n}}, "expr": "{%= name %}"}'
        text = render(source, data, escape="json")
        assert json.loads(text) == {"name": data["name"], "items": [1, 2], "n": 4, "expr": data["name"]}
        assert "<b>" in text  # not HTML-escaped

    def test_context_values(self) -> None:
        assert render("{{context.x}}") == "7"

    @pytest.mark.parametrize(
        ("value", "text"),
        [
            (None, ""),
            (True, "true"),
            (False, "false"),
            (3, "3"),
            (2.5, "2.5"),
            (89.0, "89"),
            (["a", 1], "a,1"),
        ],
    )
    def test_value_texts(self, value: object, text: str) -> None:
        assert render("{{v}}", {"v": value}) == text

    def test_a_map_renders_nothing_and_is_an_error(self) -> None:
        rendered = compile_template("[{{profile.person}}]").render(PROFILE)
        assert rendered.text == "[]"
        assert [problem.message for problem in rendered.errors] == ["a map has no text; output a key of it"]

    def test_literals(self) -> None:
        assert render('{{\'single\'}} {{"double \\"q\\""}} {{42}} {{-1.5}} {{true}} {{null}}') == (
            "single double &quot;q&quot; 42 -1.5 true "
        )

    def test_escaped_mustache_is_literal(self) -> None:
        assert render("\\{{profile.x}} {{context.x}}") == "{{profile.x}} 7"

    def test_comments_render_nothing(self) -> None:
        assert render("a{{!-- {{#if}} not parsed --}}b{{! short }}c") == "abc"

    def test_tilde_trims_whitespace(self) -> None:
        assert render("a   {{~context.x~}}   b") == "a7b"


class TestPaths:
    def test_list_index_and_bracket_segments(self) -> None:
        assert render(
            "{{profile.tags.1}} {{profile.tags.[2]}} {{context.journey.events.`123`.timestamp}}"
        ) == ("b c 2024-01-02T03:04:05Z")

    def test_reading_through_a_list_reads_every_item(self) -> None:
        assert render("{%= sum(profile.products.price) %} {{profile.products.productName}}") == (
            "200 Shoes,Bag &lt;XL&gt;"
        )

    def test_method_call_syntax(self) -> None:
        assert render(
            '{%= distinct(profile.tags).count() > 2 %} {{profile.identityMap.get("ecid").0.id}}'
        ) == ("true 123")

    def test_root_and_parent(self) -> None:
        source = "{{#with profile.homeAddress}}{{city}} {{../context.x}} {{@root.context.x}}{{/with}}"
        assert render(source) == "Lyon 7 7"


class TestConditions:
    @pytest.mark.parametrize(("country", "expected"), [("FR", "fr"), ("DE", "de"), ("US", "other")])
    def test_if_else_if_else_in_both_forms(self, country: str, expected: str) -> None:
        data = {"profile": {"homeAddress": {"countryCode": country}}}
        handlebars = (
            '{{#if profile.homeAddress.countryCode = "FR"}}fr'
            '{{else if profile.homeAddress.countryCode = "DE"}}de{{else}}other{{/if}}'
        )
        ajo = (
            '{%#if profile.homeAddress.countryCode = "FR"%}fr'
            '{%else if profile.homeAddress.countryCode = "DE"%}de{%else%}other{%/if%}'
        )
        assert render(handlebars, data) == render(ajo, data) == expected

    def test_documented_condition_with_a_helper(self) -> None:
        source = (
            '{%#if contains(profile.personalEmail.address, ".edu")%}academia'
            '{%else if contains(profile.personalEmail.address, ".org")%}non-profit{%else%}users{%/if%}'
        )
        assert render(source) == "academia"

    def test_operators(self) -> None:
        source = (
            "{%= profile.person.birthYear > 1970 and profile.person.birthYear <= 1985 %} "
            '{%= 1 = 1.0 %} {%= 1 = "1" %} {%= context.none != 1 %} {%= 7 % 5 = 2 or false %} '
            "{%= (2 + 3) * 4 - 10 / 4 %}"
        )
        assert render(source) == "true true false false true 17.5"

    def test_unless_with_else(self) -> None:
        source = '{%#unless endsWith(profile.personalEmail.address, ".edu")%}normal{%else%}edu{%/unless%}'
        assert render(source) == "edu"
        assert render("{{#unless profile.loyalty.points}}no points{{/unless}}") == "no points"

    def test_unless_with_else_if(self) -> None:
        source = "{{#unless a}}not a{{else if b}}a and b{{else}}only a{{/unless}}"
        assert render(source, {"a": 1, "b": 0}) == "only a"
        assert render(source, {"a": 1, "b": 1}) == "a and b"
        assert render(source, {}) == "not a"

    @pytest.mark.parametrize("value", [None, False, 0, 0.0, "", [], {}])
    def test_falsy_values(self, value: object) -> None:
        assert render("{{#if v}}yes{{else}}no{{/if}}", {"v": value}) == "no"

    def test_default_fallback(self) -> None:
        source = 'Hello {%=profile.person.name.middleName ?: "there" %}! {{profile.loyalty.tier ?: "none"}}'
        assert render(source) == "Hello there! none"
        assert render('{{profile.loyalty.points ?: "x"}}') == "0"


class TestEach:
    def test_each_with_this_and_index(self) -> None:
        source = "{{#each profile.products}}<li>{{@index}}:{{this.productName}}</li>{{/each}}"
        assert render(source) == "<li>0:Shoes</li><li>1:Bag &lt;XL&gt;</li>"

    def test_each_with_block_parameter_first_and_last(self) -> None:
        source = (
            "{{#each profile.products as |product|}}{{#if @first}}[{{/if}}{{product.productName}} "
            "{{product.productRating}}{{#if @last}}]{{else}}, {{/if}}{{/each}}"
        )
        assert render(source, escape=False) == "[Shoes 4, Bag <XL> 5]"

    def test_bare_names_read_the_item_then_the_data(self) -> None:
        assert render("{{#each profile.products}}{{productName}}/{{context.x}} {{/each}}", escape=False) == (
            "Shoes/7 Bag <XL>/7 "
        )

    def test_each_over_a_map_gives_keys(self) -> None:
        source = (
            "{{#each profile.identityMap as |ids namespace|}}{{namespace}}={{ids.0.id}};{{@key}} {{/each}}"
        )
        assert render(source) == "email=x@y.z;email ecid=123;ecid "

    def test_else_renders_for_no_items(self) -> None:
        assert render("{{#each profile.missing}}x{{else}}none{{/each}}") == "none"

    def test_nested_each_and_index_comparison(self) -> None:
        inner = "{{#each row as |cell|}}{{#if @index < 2}}{{cell}}{{/if}}{{/each}}"
        source = "{{#each rows as |row|}}" + inner + ";{{/each}}"
        assert render(source, {"rows": [[1, 2, 3], [4, 5]]}) == "12;45;"

    def test_documented_let_accumulator(self) -> None:
        source = (
            "{% let sum = 0%}{{#each profile.products as |p|}}{%#if p.price>100 and p.price<1000%}"
            "{%let sum = sum + p.price %}{%/if%}{{/each}}{{sum}}"
        )
        assert render(source) == "120"


class TestWith:
    def test_with_this_and_alias(self) -> None:
        assert render("{{#with profile.person.name}}{{this.lastName}}{{/with}}") == "o&#x27;neil"
        assert render(
            "{{#with profile.person.name as |name|}}Hi {{name.lastName}}{{/with}}", escape=False
        ) == ("Hi o'neil")

    def test_with_else(self) -> None:
        assert render("{{#with profile.nothing}}x{{else}}empty{{/with}}") == "empty"


class TestHandlebarsCalls:
    def test_helper_with_arguments_and_subexpression(self) -> None:
        assert render("{{upperCase profile.homeAddress.city}} {{lowerCase (concat 'A' 'B')}}") == "LYON ab"

    def test_zero_argument_helpers_need_parentheses(self) -> None:
        assert render("{{currentTimeInMillis()}}") == str(int(NOW.timestamp() * 1000))

    def test_execution_metadata_records_without_output(self) -> None:
        template = compile_template(
            'a{{executionMetadata key="firstName" value=profile.person.name.lastName}}b'
        )
        rendered = template.render(PROFILE)
        assert rendered.text == "ab"
        assert rendered.metadata == {"firstName": "o'neil"}
