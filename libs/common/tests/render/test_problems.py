"""What a template may not do: compile problems with their positions, paths the data
lacks, the sandbox around the data and the bounds on one render."""

from __future__ import annotations

from typing import Any

import pytest

from itinera.common.render import Limits, Problem, TemplateError, compile_template


def problems_of(source: str) -> list[Problem]:
    with pytest.raises(TemplateError) as raised:
        compile_template(source)
    assert raised.value.problems, "a TemplateError always says why"
    return raised.value.problems


def only_problem(source: str) -> Problem:
    problems = problems_of(source)
    assert len(problems) == 1, problems
    return problems[0]


class TestCompileProblems:
    def test_unknown_helper_points_at_its_name(self) -> None:
        problem = only_problem("Hello\n  {%= capitalize(profile.name) %}")
        assert problem.message == "unknown helper 'capitalize'"
        assert (problem.line, problem.column, problem.offset, problem.end_offset) == (2, 7, 12, 22)
        assert problem.construct == "helper"

    def test_unknown_handlebars_helper(self) -> None:
        problem = only_problem("{{shout profile.name}}")
        assert problem.message == "unknown helper 'shout'"
        assert (problem.offset, problem.end_offset) == (2, 7)

    def test_now_is_not_a_personalization_helper(self) -> None:
        assert "getCurrentZonedDateTime" in only_problem("{%= now() %}").message

    def test_wrong_number_of_arguments(self) -> None:
        problem = only_problem('{%= upperCase("a", "b") %}')
        assert problem.message == "upperCase takes 1 arguments, not 2"
        assert (problem.offset, problem.end_offset) == (4, 23)
        assert only_problem('{%= contains("a") %}').message == "contains takes 2 to 3 arguments, not 1"

    def test_block_never_closed_points_at_its_opening(self) -> None:
        problem = only_problem("a\n{{#if x}}b")
        assert problem.message == "#if is never closed"
        assert (problem.line, problem.column) == (2, 1)

    def test_mismatched_close(self) -> None:
        unclosed, mismatch = problems_of("{{#each items}}\n{{/if}}")
        assert unclosed.message == "#each is never closed"
        assert mismatch.message == "/if closes #each, opened at line 1"
        assert (mismatch.line, mismatch.column, mismatch.offset, mismatch.end_offset) == (2, 1, 16, 23)

    @pytest.mark.parametrize(
        ("source", "message"),
        [
            ("{{/if}}", "/if closes no block"),
            ("{{else}}", "else outside a block"),
            ("{{#if a}}{{else}}{{else}}{{/if}}", "#if already has an else"),
            ("{{#each a}}{{else if b}}{{/each}}", "expected {{else}} or {{else if ...}}, found 'if'"),
            (
                "{{#repeat a}}{{/repeat}}",
                "unknown block helper 'repeat'; blocks are if, unless, each or with",
            ),
            ("{{> header}}", "partials are not supported; use fragments"),
            ("{{#if}}{{/if}}", "#if needs a value"),
            ("{{a b=1}}", "unknown helper 'a'"),
            ("{{upperCase x=1}}", "upperCase takes no named arguments (x=...)"),
            ("{{a +}}", "expected a value, found the end of the tag"),
            ("{{a = 1 = 2}}", "comparisons do not chain; use and"),
            ("{{a ; b}}", "unexpected character ';'"),
            ("{{a.}}", "expected a name after '.', found the end of the tag"),
            ("{{a", "this {{ is never closed"),
            ("{% set x = 1 %}", "expected let, #if, #unless, else or a closing tag in {% %}, found 'set'"),
            ("{% let true = 1 %}", "true cannot be a variable name"),
            ("{{@index}}", "@index is only defined inside #each"),
            (
                "{{#each a}}{{@count}}{{/each}}",
                "unknown data variable @count; there are @index, @key, @first and @last",
            ),
            ("{{#with a as |x y|}}{{/with}}", "#with names one parameters"),
            ("{{#if a as |x|}}{{/if}}", "#if takes no block parameters"),
            ('{{fragment mode="inline"}}', 'a fragment needs id="..."'),
            ("{{fragment id=name}}", "a fragment id must be a string literal"),
            ('{{fragment id="x" mode="block"}}', 'the only fragment mode is "inline"'),
            ('{{executionMetadata key="k"}}', 'executionMetadata takes key="..." and value=...'),
            (
                "{%= topN(orders, 1 + 1, 2) %}",
                'the second argument of topN names a key of the items (price, or "price")',
            ),
            ("{{!a}}{{!b", "this {{ is never closed"),
        ],
    )
    def test_messages(self, source: str, message: str) -> None:
        assert [problem.message for problem in problems_of(source)] == [message]

    def test_reports_every_problem_it_finds(self) -> None:
        problems = problems_of("{{shout a}} {%= foo() %}\n{{#if x}}")
        assert [(problem.message, problem.line) for problem in problems] == [
            ("unknown helper 'shout'", 1),
            ("unknown helper 'foo'", 1),
            ("#if is never closed", 2),
        ]

    def test_deep_nesting_is_a_problem_not_a_crash(self) -> None:
        assert (
            only_problem("{{" + "(" * 500 + "a" + ")" * 500 + "}}").message
            == "the expression is nested too deeply"
        )
        blocks = "{{#if a}}" * 150 + "{{/if}}" * 150
        assert "nested too deeply" in problems_of(blocks)[0].message

    def test_problem_as_dict(self) -> None:
        assert only_problem("{{#if a}}").as_dict() == {
            "message": "#if is never closed",
            "line": 1,
            "column": 1,
            "offset": 0,
            "endOffset": 9,
            "construct": None,
            "fragment": None,
        }

    def test_a_template_must_be_text(self) -> None:
        with pytest.raises(TemplateError):
            compile_template(b"{{a}}")  # type: ignore[arg-type]


class TestUndefinedPaths:
    def test_missing_paths_render_empty_and_are_reported_with_positions(self) -> None:
        template = compile_template("Hi {{profile.person.name.firstName}},\n{{profile.x}} {{profile.x}}")
        rendered = template.render({"profile": {"person": {}}})
        assert rendered.text == "Hi ,\n "
        assert [
            (path.path, path.line, path.column, path.offset, path.end_offset)
            for path in rendered.undefined_paths
        ] == [
            ("profile.person.name.firstName", 1, 6, 5, 34),
            ("profile.x", 2, 3, 40, 49),
            ("profile.x", 2, 17, 54, 63),
        ]

    def test_reported_once_per_place_in_a_loop(self) -> None:
        rendered = compile_template("{{#each items as |i|}}{{i.name}}{{/each}}").render(
            {"items": [{}, {}, {}]}
        )
        assert [path.path for path in rendered.undefined_paths] == ["i.name"]

    def test_nulls_count_as_undefined(self) -> None:
        rendered = compile_template("{{a}}").render({"a": None})
        assert [path.as_dict()["path"] for path in rendered.undefined_paths] == ["a"]

    def test_reads_lists_the_data_paths(self) -> None:
        template = compile_template("{{profile.a.b}} {{#each context.items as |i|}}{{i.x}}{{/each}}")
        assert template.reads == {"profile.a.b", "context.items"}


class TestSandbox:
    @pytest.mark.parametrize(
        "source",
        [
            "{{profile.__class__}}",
            "{{profile.__class__.__mro__}}",
            "{{profile.keys}}",
            "{{profile.items}}",
            "{{this.__dict__}}",
            "{{profile.name.__len__}}",
            "{{@root.__init__.__globals__}}",
            '{{get(profile, "__class__")}}',
            "{{profile.name.upper}}",
        ],
    )
    def test_python_attributes_are_unreachable(self, source: str) -> None:
        rendered = compile_template(source).render({"profile": {"name": "ann"}})
        assert rendered.text == ""

    def test_objects_in_the_data_are_missing(self) -> None:
        class Secret:
            token = "s3cret"

            def __str__(self) -> str:
                return self.token

        rendered = compile_template("[{{profile.secret}}][{{profile.secret.token}}]").render(
            {"profile": {"secret": Secret()}}
        )
        assert rendered.text == "[][]"
        assert [path.path for path in rendered.undefined_paths] == ["profile.secret", "profile.secret.token"]

    def test_dict_subclass_methods_are_not_called(self) -> None:
        class Sneaky(dict[str, Any]):
            def get(self, key: str, default: Any = None) -> Any:
                raise AssertionError("the template called a method of the data")

            def __getitem__(self, key: str) -> Any:
                raise AssertionError("the template called a method of the data")

        assert compile_template("{{a.b}}").render({"a": Sneaky(b="ok")}).text == "ok"


class TestLimits:
    def test_output_is_bounded(self) -> None:
        template = compile_template("{{#each items}}{{this}}{{/each}}", limits=Limits(max_output_chars=100))
        rendered = template.render({"items": ["x" * 30] * 10})
        assert len(rendered.text) == 100
        assert rendered.errors[0].message == "the output exceeds 100 characters; rendering stopped"

    def test_iterations_are_bounded_across_loops(self) -> None:
        template = compile_template(
            "{{#each a}}{{#each ../b}}.{{/each}}{{/each}}", limits=Limits(max_iterations=50)
        )
        rendered = template.render({"a": list(range(10)), "b": list(range(10))})
        assert rendered.errors[0].message == "more than 50 iterations; rendering stopped"
        assert rendered.errors[0].construct == "each"

    def test_growing_values_are_bounded(self) -> None:
        source = '{% let s = "ab" %}{{#each n}}{% let s = concat(s, s) %}{{/each}}{{length(s)}}'
        rendered = compile_template(source, limits=Limits(max_output_chars=1000)).render(
            {"n": list(range(64))}
        )
        assert rendered.errors[0].message == "concat made a value longer than 1000; rendering stopped"

    def test_arithmetic_overflow_is_null(self) -> None:
        source = "{% let n = 2 %}{{#each k}}{% let n = n * n %}{{/each}}[{{n}}]"
        assert compile_template(source).render({"k": list(range(12))}).text == "[]"

    def test_metadata_is_bounded(self) -> None:
        template = compile_template(
            '{{executionMetadata key="k" value=v}}', limits=Limits(max_metadata_chars=10)
        )
        rendered = template.render({"v": "x" * 50})
        assert rendered.metadata == {"k": "x" * 9}
        assert "execution metadata exceeds 10 characters" in rendered.errors[0].message
