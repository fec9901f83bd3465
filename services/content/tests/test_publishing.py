"""Publishing templates and fragments: every problem with its path and position, the
fragments templates include, cycles, deletions refused, and the records the channels
receive on ``itinera.content.v1``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import orjson
import pytest

from itinera.common.kafka import topics
from itinera.common.testing import StackInfo, topic_reader

from .helpers import FRAGMENTS, TEMPLATES, created, email, fragment, published


def problems(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"].endswith("/validation-failed")
    assert [(e["path"], e["code"]) for e in body["errors"]] == [
        (p["path"], p["code"]) for p in body["problems"]
    ]
    return [(p["path"], p["code"]) for p in body["problems"]]


class TestTemplateChecks:
    async def test_every_problem_is_reported_with_its_path_and_position(self, api: httpx.AsyncClient) -> None:
        body = email(defaultLocale="de")
        body["variants"]["en"]["html"] = "Hi {{nosuch 1}}"
        body["variants"]["fr"]["subject"] = "line one\n{{#if x}}open"
        del body["variants"]["fr"]["sender"]
        body["variants"]["fr"]["html"] = ""
        await created(api, TEMPLATES, body)
        response = await api.post(f"{TEMPLATES}/welcome-email/publish")
        assert problems(response) == [
            ("/defaultLocale", "default-locale"),
            ("/variants/en/html", "template"),
            ("/variants/fr/html", "required"),
            ("/variants/fr/sender", "required"),
            ("/variants/fr/subject", "template"),
        ]
        found = {p["path"]: p for p in response.json()["problems"]}
        assert found["/variants/en/html"]["message"] == "unknown helper 'nosuch'"
        assert found["/variants/en/html"]["position"] == {
            "line": 1,
            "column": 6,
            "offset": 5,
            "endOffset": 11,
            "construct": None,
            "fragment": None,
        }
        assert found["/variants/fr/subject"]["position"]["line"] == 2
        assert found["/variants/fr/subject"]["position"]["offset"] == 9
        # Nothing was published; the draft shows the same problems.
        template = (await api.get(f"{TEMPLATES}/welcome-email")).json()
        assert (template["status"], template["publishedVersion"]) == ("draft", None)
        draft = (await api.get(f"{TEMPLATES}/welcome-email/versions/1")).json()
        assert draft["problems"] == response.json()["problems"]

    @pytest.mark.parametrize(
        ("template", "missing"),
        [
            ({"channel": "sms", "variants": {"en": {"text": " "}}}, ["/variants/en/text"]),
            (
                {"channel": "push", "variants": {"en": {"data": {"a": "x"}}}},
                ["/variants/en/title", "/variants/en/body"],
            ),
            ({"channel": "webhook", "variants": {"en": {}}}, ["/variants/en/payload"]),
            ({"channel": "sms", "variants": {}}, ["/variants"]),
        ],
    )
    async def test_each_channel_needs_its_parts(
        self, api: httpx.AsyncClient, template: dict[str, Any], missing: list[str]
    ) -> None:
        await created(api, TEMPLATES, {"id": "t", "name": "t", **template})
        found = problems(await api.post(f"{TEMPLATES}/t/publish"))
        assert found == [(path, "required") for path in missing]

    async def test_push_data_and_webhook_headers_are_templates_too(self, api: httpx.AsyncClient) -> None:
        push = {"title": "t", "body": "b", "data": {"url": "{{#each}}"}}
        await created(api, TEMPLATES, {"id": "p", "name": "p", "channel": "push", "variants": {"en": push}})
        assert (
            problems(await api.post(f"{TEMPLATES}/p/publish")) == [("/variants/en/data/url", "template")] * 2
        )
        hook = {"payload": '{"id": "{{profile._id}}"}', "headers": {"X-Token": "{{unknown 1 2}}"}}
        await created(
            api, TEMPLATES, {"id": "w", "name": "w", "channel": "webhook", "variants": {"en": hook}}
        )
        assert problems(await api.post(f"{TEMPLATES}/w/publish")) == [
            ("/variants/en/headers/X-Token", "template")
        ]


class TestFragments:
    async def test_a_template_includes_published_fragments_only(self, api: httpx.AsyncClient) -> None:
        await fragment(api, "greeting", "Hello {{profile.person.name.firstName}}")
        await fragment(api, "footer", "<footer>Shop</footer>", "visual", publish=False)
        body = email()
        body["variants"]["en"]["html"] = (
            '{{fragment id="greeting"}} {{fragment id="footer"}} {{fragment id="nope"}}'
        )
        template = await created(api, TEMPLATES, body)
        assert template["fragments"] == ["footer", "greeting", "nope"]
        response = await api.post(f"{TEMPLATES}/welcome-email/publish")
        assert problems(response) == [("/variants/en/html", "fragment"), ("/variants/en/html", "fragment")]
        messages = [p["message"] for p in response.json()["problems"]]
        assert messages == [
            "fragment 'footer' could not be loaded: it has no published version",
            "unknown fragment 'nope'",
        ]
        assert response.json()["problems"][1]["position"]["offset"] == 52
        await published(api, FRAGMENTS, "footer")
        body["variants"]["en"]["html"] = '{{fragment id="greeting"}} {{fragment id="footer"}}'
        await api.put(f"{TEMPLATES}/welcome-email", json=body)
        assert (await published(api, TEMPLATES, "welcome-email"))["fragments"] == ["footer", "greeting"]

    async def test_visual_fragments_go_in_an_email_html_only(self, api: httpx.AsyncClient) -> None:
        await fragment(api, "banner", "<img src='b.png'>", "visual")
        body = email()
        body["variants"]["en"]["subject"] = 'Hi {{fragment id="banner"}}'
        await created(api, TEMPLATES, body)
        assert problems(await api.post(f"{TEMPLATES}/welcome-email/publish")) == [
            ("/variants/en/subject", "visual-fragment")
        ]
        await created(
            api,
            FRAGMENTS,
            {"id": "expr", "name": "e", "type": "expression", "content": '{{fragment id="banner"}}'},
        )
        assert problems(await api.post(f"{FRAGMENTS}/expr/publish")) == [("/content", "visual-fragment")]

    async def test_a_fragment_is_checked_as_a_template_would_include_it(self, api: httpx.AsyncClient) -> None:
        await created(api, FRAGMENTS, {"name": "empty", "id": "empty", "type": "expression"})
        assert problems(await api.post(f"{FRAGMENTS}/empty/publish")) == [("/content", "required")]
        await created(
            api, FRAGMENTS, {"name": "bad", "id": "bad", "type": "expression", "content": "x\n {{/if}}"}
        )
        response = await api.post(f"{FRAGMENTS}/bad/publish")
        assert problems(response) == [("/content", "template")]
        assert response.json()["problems"][0]["position"]["line"] == 2
        assert response.json()["problems"][0]["position"]["fragment"] is None

    async def test_cycles_are_refused_at_the_tag_that_closes_them(self, api: httpx.AsyncClient) -> None:
        await fragment(api, "a", "A")
        await fragment(api, "b", 'B {{fragment id="a"}}')
        # a would include b, which includes a.
        await api.put(
            f"{FRAGMENTS}/a", json={"name": "a", "type": "expression", "content": 'A {{fragment id="b"}}'}
        )
        response = await api.post(f"{FRAGMENTS}/a/publish")
        assert problems(response) == [("/content", "cycle")]
        problem = response.json()["problems"][0]
        assert problem["message"] == "fragment 'a' includes itself: a → b → a"
        assert (problem["position"]["fragment"], problem["position"]["offset"]) == ("b", 2)
        await api.put(
            f"{FRAGMENTS}/a", json={"name": "a", "type": "expression", "content": 'A {{fragment id="a"}}'}
        )
        itself = await api.post(f"{FRAGMENTS}/a/publish")
        assert problems(itself) == [("/content", "cycle")]
        assert itself.json()["problems"][0]["position"]["fragment"] is None

    async def test_a_new_version_is_refused_when_it_would_break_a_published_template(
        self, api: httpx.AsyncClient
    ) -> None:
        """Templates include a fragment's latest published version, so a version that
        would nest a template's fragments too deep (the renderer allows three levels) is
        refused on publication, naming the template; on its own it was fine."""
        await fragment(api, "f4", "four")
        await fragment(api, "f3", '{{fragment id="f4"}}')
        await fragment(api, "f2", "two")
        await fragment(api, "f1", '{{fragment id="f2"}}')
        body = email()
        body["variants"]["en"]["text"] = 'Hi {{fragment id="f1"}}'
        await created(api, TEMPLATES, body)
        await published(api, TEMPLATES, "welcome-email")

        deeper = {"name": "f2", "type": "expression", "content": '{{fragment id="f3"}}'}
        assert (await api.put(f"{FRAGMENTS}/f2", json=deeper)).status_code == 200
        refused = await api.post(f"{FRAGMENTS}/f2/publish")
        assert problems(refused) == [("/content", "used-by")]
        message = refused.json()["problems"][0]["message"]
        assert message.startswith(
            "template 'welcome-email' v1 includes this fragment and would not compile at "
        )
        assert "/variants/en/text: fragments are nested more than 3 deep" in message
        assert (await api.get(f"{FRAGMENTS}/f2")).json()["publishedVersion"] == 1

        # Once the template no longer reaches it so deep, the same version is published.
        body["variants"]["en"]["text"] = 'Hi {{fragment id="f2"}}'
        await api.put(f"{TEMPLATES}/welcome-email", json=body)
        await published(api, TEMPLATES, "welcome-email")
        assert (await published(api, FRAGMENTS, "f2"))["version"] == 2

    async def test_a_fragment_in_use_cannot_be_deleted(self, api: httpx.AsyncClient) -> None:
        await fragment(api, "inner", "in")
        await fragment(api, "outer", 'out {{fragment id="inner"}}')
        await fragment(api, "lonely", "alone")
        body = email()
        body["variants"]["fr"]["text"] = '{{fragment id="outer"}}'
        await created(api, TEMPLATES, body)
        await published(api, TEMPLATES, "welcome-email")
        refused = await api.delete(f"{FRAGMENTS}/inner")
        assert refused.status_code == 409
        assert refused.json()["usedBy"] == [
            {"kind": "template", "id": "welcome-email", "version": 1},
            {"kind": "fragment", "id": "outer", "version": 1},
        ]
        assert (await api.get(f"{FRAGMENTS}/inner")).json()["usedBy"] == refused.json()["usedBy"]
        assert (await api.delete(f"{FRAGMENTS}/lonely")).status_code == 204
        # Once the template no longer includes it, outer still does.
        body["variants"]["fr"]["text"] = "plain"
        await api.put(f"{TEMPLATES}/welcome-email", json=body)
        await published(api, TEMPLATES, "welcome-email")
        still = await api.delete(f"{FRAGMENTS}/inner")
        assert still.json()["usedBy"] == [{"kind": "fragment", "id": "outer", "version": 1}]
        assert (await api.delete(f"{FRAGMENTS}/outer")).status_code == 204
        assert (await api.delete(f"{FRAGMENTS}/inner")).status_code == 204

    async def test_fragments_are_listed_and_versioned(self, api: httpx.AsyncClient) -> None:
        await fragment(api, "one", "1")
        await fragment(api, "two", "<b>2</b>", "visual", publish=False)
        await api.put(f"{FRAGMENTS}/one", json={"name": "one", "type": "expression", "content": "uno"})
        one = (await api.get(f"{FRAGMENTS}/one")).json()
        assert (one["content"], one["latestVersion"], one["publishedVersion"], one["draftVersion"]) == (
            "uno",
            2,
            1,
            2,
        )
        assert (await api.get(f"{FRAGMENTS}/one/versions/1")).json()["content"] == "1"
        visual = (await api.get(FRAGMENTS, params={"type": "visual"})).json()
        assert [f["id"] for f in visual["items"]] == ["two"]
        changed = await api.put(
            f"{FRAGMENTS}/two", json={"name": "two", "type": "expression", "content": "2"}
        )
        assert (changed.status_code, changed.json()["errors"][0]["path"]) == (409, "/type")


RECORD_SCHEMA = Path(__file__).parents[3] / "schemas" / topics.CONTENT.payload_schema


def records_of(reader: Any, sandbox: str) -> list[tuple[str | None, dict[str, Any], dict[str, str]]]:
    return [
        (r.key, orjson.loads(r.value or b"null"), r.headers)
        for r in reader.records
        if r.headers.get("itinera_sandbox") == sandbox
    ]


class TestRecords:
    async def test_publishing_and_deleting_send_records_to_the_channels(
        self, api: httpx.AsyncClient, sandbox: str, topics_created: StackInfo
    ) -> None:
        async with topic_reader(topics_created, topics.CONTENT.name) as reader:
            await fragment(api, "sign", "-- {{profile.person.name.firstName}}")
            body = email()
            body["variants"]["en"]["text"] = 'Hi {{fragment id="sign"}}'
            await created(api, TEMPLATES, body)
            await api.post(f"{TEMPLATES}/welcome-email/publish")
            await api.put(f"{TEMPLATES}/welcome-email", json=body)  # a draft: no record
            assert (await api.delete(f"{TEMPLATES}/welcome-email")).status_code == 204
            await created(api, TEMPLATES, email("never-published"))
            await api.delete(f"{TEMPLATES}/never-published")
            await reader.wait_for(lambda _: len(records_of(reader, sandbox)) >= 3)
        # Keys share no partition, so only each key's own records come in order.
        found = sorted(records_of(reader, sandbox), key=lambda record: str(record[0]))
        assert [(key, value["version"], value["deleted"]) for key, value, _ in found] == [
            ("fragment:sign", 1, False),
            ("template:welcome-email", 1, False),
            ("template:welcome-email", 2, True),
        ]
        schema = jsonschema_rs.Draft202012Validator(orjson.loads(RECORD_SCHEMA.read_bytes()))
        for _, value, _ in found:
            schema.validate(value)
        _, sign, headers = found[0]
        assert (headers["ce_type"], headers["ce_source"]) == ("com.itinera.content.v1", "/itinera/content")
        assert sign["fragmentType"] == "expression"
        assert sign["variants"] == {"und": {"content": "-- {{profile.person.name.firstName}}"}}
        _, template, _ = found[1]
        assert (template["sandbox"], template["kind"], template["channel"]) == (sandbox, "template", "email")
        assert template["variants"]["en"]["text"] == 'Hi {{fragment id="sign"}}'
        assert template["variants"]["en"]["sender"] == {"name": "Shop", "address": "hello@shop.example"}
        assert template["fragments"] == ["sign"]
        assert template["tracking"] == {"opens": True, "clicks": True}  # the default
        assert found[2][1] == {
            "sandbox": sandbox,
            "kind": "template",
            "id": "welcome-email",
            "version": 2,
            "deleted": True,
        }
