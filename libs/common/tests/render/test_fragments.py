"""Fragments: included through the loader, with variables in and out, cycles refused;
and the cache of compiled templates."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from itinera.common.render import Limits, TemplateCache, TemplateError, compile_cached, compile_template


def loader(fragments: dict[str, str]) -> Callable[[str], str | None]:
    return fragments.get


class TestFragments:
    def test_includes_a_fragment_and_reads_the_data(self) -> None:
        fragments = loader({"ajo:hero": "<h1>Hi {{profile.name}}</h1>"})
        template = compile_template('{{fragment id="ajo:hero" mode="inline"}}!', fragments=fragments)
        assert template.render({"profile": {"name": "Ann & co"}}).text == "<h1>Hi Ann &amp; co</h1>!"

    def test_let_variables_flow_in_and_out_but_loop_parameters_do_not(self) -> None:
        fragments = loader(
            {
                "discount": "[{{globalDiscount}}% {{product.name}}]{% let shown = true %}",
                "utm": '{% let utm_campaign = "launch" %}',
            }
        )
        source = (
            '{% let globalDiscount = 15 %}{{#each items as |product|}}{{fragment id="discount"}}{{/each}}'
            '{{shown}} {{fragment id="utm" render=false}}?utm_campaign={{utm_campaign}}'
        )
        rendered = compile_template(source, fragments=fragments).render(
            {"items": [{"name": "a"}, {"name": "b"}]}
        )
        assert rendered.text == "[15% ][15% ]true ?utm_campaign=launch"
        assert [(path.path, path.fragment) for path in rendered.undefined_paths] == [
            ("product.name", "discount")
        ]

    def test_named_arguments_override_editable_fields_while_it_runs(self) -> None:
        fragments = loader({"sport": '{%= sport ?: "running" %}'})
        source = '{{fragment id="sport"}} {{fragment id="sport" sport="yoga"}} [{{sport}}]'
        assert compile_template(source, fragments=fragments).render({}).text == "running yoga []"

    def test_nested_fragments(self) -> None:
        fragments = loader({"outer": '<div>{{fragment id="inner"}}</div>', "inner": "{{x}}"})
        assert (
            compile_template('{{fragment id="outer"}}', fragments=fragments).render({"x": 1}).text
            == "<div>1</div>"
        )

    def test_a_cycle_does_not_compile(self) -> None:
        fragments = loader({"a": 'A{{fragment id="b"}}', "b": 'B{{fragment id="a"}}'})
        with pytest.raises(TemplateError) as raised:
            compile_template('{{fragment id="a"}}', fragments=fragments)
        (problem,) = raised.value.problems
        assert problem.message == "fragment 'a' includes itself: a → b → a"
        assert (problem.fragment, problem.offset, problem.construct) == ("b", 1, "fragment")

    def test_a_fragment_including_itself(self) -> None:
        with pytest.raises(TemplateError) as raised:
            compile_template('{{fragment id="a"}}', fragments=loader({"a": '{{fragment id="a"}}'}))
        assert raised.value.problems[0].message == "fragment 'a' includes itself: a → a"

    def test_depth_is_bounded(self) -> None:
        fragments = loader({f"f{i}": f'{{{{fragment id="f{i + 1}"}}}}' for i in range(10)})
        with pytest.raises(TemplateError) as raised:
            compile_template('{{fragment id="f0"}}', fragments=fragments, limits=Limits(max_fragment_depth=3))
        assert raised.value.problems[0].message == "fragments are nested more than 2 deep"

    def test_unknown_fragment_and_no_loader(self) -> None:
        with pytest.raises(TemplateError) as raised:
            compile_template('x {{fragment id="gone"}}', fragments=loader({}))
        problem = raised.value.problems[0]
        assert (problem.message, problem.offset, problem.end_offset) == ("unknown fragment 'gone'", 2, 24)
        with pytest.raises(TemplateError) as raised:
            compile_template('{{fragment id="x"}}')
        assert "no fragment loader" in raised.value.problems[0].message

    def test_problems_inside_a_fragment_name_it(self) -> None:
        with pytest.raises(TemplateError) as raised:
            compile_template('{{fragment id="f"}}', fragments=loader({"f": "ok\n{{shout x}}"}))
        problem = raised.value.problems[0]
        assert (problem.fragment, problem.line, problem.column) == ("f", 2, 3)
        assert str(problem) == "fragment 'f', line 2, column 3: unknown helper 'shout'"

    def test_a_failing_loader_is_a_problem(self) -> None:
        def broken(fragment_id: str) -> str | None:
            raise OSError("database down")

        with pytest.raises(TemplateError) as raised:
            compile_template('{{fragment id="f"}}', fragments=broken)
        assert raised.value.problems[0].message == "fragment 'f' could not be loaded: database down"

    def test_each_fragment_is_loaded_once_per_compile(self) -> None:
        calls: list[str] = []

        def counting(fragment_id: str) -> str:
            calls.append(fragment_id)
            return "[{{x}}]"

        template = compile_template('{{fragment id="f"}}{{fragment id="f"}}', fragments=counting)
        assert template.render({"x": 1}).text == "[1][1]"
        assert calls == ["f"]


class TestCache:
    def test_compiles_once_per_key(self) -> None:
        cache = TemplateCache(size=2)
        first = cache.get("{{a}}", ("t1", 1))
        assert cache.get("{{a}}", ("t1", 1)) is first
        assert cache.get("{{b}}", ("t1", 2)) is not first

    def test_keys_by_source_hash_without_a_key(self) -> None:
        cache = TemplateCache()
        assert cache.get("{{a}}") is cache.get("{{a}}")
        assert cache.get("{{a}}", escape=False) is not cache.get("{{a}}")

    def test_drops_the_least_recently_used(self) -> None:
        cache = TemplateCache(size=2)
        a = cache.get("a", "a")
        cache.get("b", "b")
        cache.get("a", "a")
        cache.get("c", "c")
        assert len(cache) == 2
        assert cache.get("a", "a") is a
        assert cache.get("b", "b") is not None

    def test_failures_are_not_kept(self) -> None:
        cache = TemplateCache()
        with pytest.raises(TemplateError):
            cache.get("{{#if}}", "bad")
        assert len(cache) == 0

    def test_process_wide_cache(self) -> None:
        assert compile_cached("{{x}}", ("test", 1)) is compile_cached("{{x}}", ("test", 1))
