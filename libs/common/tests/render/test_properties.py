"""Properties over generated data and templates: rendering never raises, escaped output
never carries markup from the data, and compiling either succeeds or says why."""

from __future__ import annotations

import string
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from itinera.common.render import Problem, TemplateError, compile_template

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
KEYS = ["profile", "context", "name", "items", "price", "a", "b", "__class__", "0"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.datetimes(),
)
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.sampled_from(KEYS), children, max_size=4)
    ),
    max_leaves=25,
)
data = st.dictionaries(st.sampled_from(KEYS), json_like, max_size=5)

TEMPLATE = """
{{profile.name}} {{{profile.name}}} {%= profile.name ?: "x" %} {{profile.__class__}} {{a.b.0.price}}
{{#if profile.a = 1 and context.b}}yes{{else if a > b}}gt{{else}}no{{/if}}
{{#each items as |item key|}}{{@index}}{{key}}:{{item}}{{item.price}}{{#if @last}}.{{/if}}
{{else}}none{{/each}}
{{#with profile as |p|}}{{p.name}}{{/with}}{{#unless a}}!{{/unless}}
{% let total = sum(items.price) %}{{total}} {%= a + b * 2 - a / b %} {%= a % b %}
{%= upperCase(profile.name) %} {%= formatDate(a, "yyyy-MM-dd EEE") %} {%= addDays(b, 3) %}
{%= contains(name, "a", false) %} {%= count(items) %} {%= distinct(items) %} {%= topN(items, price, 2) %}
{%= concat(name, a, b) %} {%= replaceAll(name, "[aeiou]", "*") %} {%= mask(name, 1, 1) %}
{%= formatCurrency(a, "fr_FR") %} {%= toInt(a) %} {%= toPrecision(a, 3) %} {%= split(name, ",") %}
{%= diffInDays ?: dateDiff(a, b) %} {%= keys(profile) %} {%= get(profile, "name") %} {%= length(items) %}
"""


@SETTINGS
@given(data)
def test_rendering_never_raises_on_any_data(values: dict[str, Any]) -> None:
    rendered = compile_template(TEMPLATE).render(values)
    assert isinstance(rendered.text, str)


markup = st.text(alphabet=string.ascii_letters + "<>&\"'`= /", max_size=30)


@SETTINGS
@given(st.recursive(markup, lambda children: st.lists(children, max_size=3), max_leaves=8), markup)
def test_escaped_output_never_carries_markup_from_the_data(value: Any, name: str) -> None:
    source = "<p title='{{v}}'>{{v}} {%= v %} {{upperCase name}} {{#each v}}{{this}}{{/each}}</p>"
    text = compile_template(source).render({"v": value, "name": name}).text
    inner = text.removeprefix("<p title='").removesuffix("</p>")
    assert not any(char in inner.replace("'>", "", 1) for char in "<>\"'`")


tag_parts = st.sampled_from(
    [
        "{{",
        "}}",
        "{{{",
        "}}}",
        "{%",
        "%}",
        "{%=",
        "#if",
        "#each",
        "/if",
        "/each",
        "else",
        "as |x|",
        "a",
        "b.c",
        "(",
        ")",
        '"s"',
        "1",
        "=",
        "and",
        "?:",
        "upperCase",
        ",",
        "@index",
        "let",
        "~",
        "\\",
        "!--",
        "--",
    ]
)


@SETTINGS
@given(st.lists(st.one_of(tag_parts, st.text(max_size=3)), max_size=25).map(" ".join))
@example("{{²}}")  # a character str.isdigit() calls a digit that no number starts with
@example("{{ ٣ }}")
def test_compiling_any_text_succeeds_or_explains(source: str) -> None:
    problems: list[Problem] = []
    try:
        template = compile_template(source)
    except TemplateError as error:
        problems = error.problems
    else:
        template.render({"a": [1, "<"], "b": {"c": "x"}})
        return
    assert problems
    for problem in problems:
        assert 0 <= problem.offset <= problem.end_offset <= len(source)
        assert problem.line >= 1
        assert problem.column >= 1
