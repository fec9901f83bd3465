"""``POST /v1/templates/{id}/preview``: a version rendered for a profile and a context,
in the locale the profile reads, with the paths the data lacked and the errors met; and
``POST /v1/fragments/{id}/preview``, a fragment on its own."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.devstack import free_port
from itinera.common.testing import (
    StackInfo,
    client_for,
    running,
    serving,
    settings_for,
    stored_profile,
)
from itinera.content.app import SERVICE
from itinera.content.config import ContentSettings

from .helpers import FRAGMENTS, TEMPLATES, created, email, fragment, published

JANE = {"person": {"name": {"firstName": "Jane <3"}}, "preferredLanguage": "fr-CA"}


class TestPreview:
    async def test_renders_the_variant_of_the_profile_language(self, api: httpx.AsyncClient) -> None:
        await created(api, TEMPLATES, email())
        response = await api.post(f"{TEMPLATES}/welcome-email/preview", json={"profile": JANE})
        assert response.status_code == 200, response.text
        preview = response.json()
        assert (preview["locale"], preview["version"], preview["errors"]) == ("fr", 1, [])
        assert preview["parts"]["subject"]["text"] == "Bienvenue, Jane <3"
        assert preview["parts"]["html"]["text"] == "<p>Bonjour Jane &lt;3</p>"
        english = await api.post(
            f"{TEMPLATES}/welcome-email/preview", json={"profile": {**JANE, "preferredLanguage": "es"}}
        )
        assert english.json()["locale"] == "en"
        chosen = await api.post(f"{TEMPLATES}/welcome-email/preview", json={"profile": JANE, "locale": "EN"})
        assert chosen.json()["parts"]["text"]["text"] == "Hi Jane <3"
        unknown = await api.post(f"{TEMPLATES}/welcome-email/preview", json={"locale": "de"})
        assert (unknown.status_code, unknown.json()["errors"][0]["path"]) == (400, "/locale")

    async def test_reports_the_paths_the_data_lacks_with_their_positions(
        self, api: httpx.AsyncClient
    ) -> None:
        body = email()
        body["variants"]["en"]["text"] = "Hi {{profile.person.name.firstName}},\nyour code: {{context.code}}"
        await created(api, TEMPLATES, body)
        preview = (await api.post(f"{TEMPLATES}/welcome-email/preview", json={"profile": {}})).json()
        assert preview["locale"] == "en"
        text = preview["parts"]["text"]
        assert text["text"] == "Hi ,\nyour code: "
        assert text["undefinedPaths"] == [
            {
                "path": "profile.person.name.firstName",
                "line": 1,
                "column": 6,
                "offset": 5,
                "endOffset": 34,
                "fragment": None,
            },
            {
                "path": "context.code",
                "line": 2,
                "column": 14,
                "offset": 51,
                "endOffset": 63,
                "fragment": None,
            },
        ]
        given = (
            await api.post(
                f"{TEMPLATES}/welcome-email/preview",
                json={"profile": {"person": {"name": {"firstName": "Jo"}}}, "context": {"code": "X1"}},
            )
        ).json()
        assert (given["parts"]["text"]["text"], given["parts"]["text"]["undefinedPaths"]) == (
            "Hi Jo,\nyour code: X1",
            [],
        )

    async def test_a_draft_that_does_not_compile_shows_its_problems(self, api: httpx.AsyncClient) -> None:
        body = email()
        body["variants"]["en"]["html"] = "{{#if profile.x}}never closed"
        await created(api, TEMPLATES, body)
        preview = (await api.post(f"{TEMPLATES}/welcome-email/preview", json={})).json()
        html = preview["parts"]["html"]
        assert html["text"] is None
        assert [(e["path"], e["code"]) for e in preview["errors"]] == [("/variants/en/html", "template")]
        assert preview["parts"]["subject"]["text"] == "Welcome, "

    async def test_previews_a_chosen_version_with_published_fragments(self, api: httpx.AsyncClient) -> None:
        await fragment(api, "sign", "-- {{profile.person.name.firstName ?: 'team'}}")
        body = email()
        body["variants"]["en"]["text"] = 'v1 {{fragment id="sign"}}'
        await created(api, TEMPLATES, body)
        await published(api, TEMPLATES, "welcome-email")
        body["variants"]["en"]["text"] = "v2"
        await api.put(f"{TEMPLATES}/welcome-email", json=body)
        latest = (await api.post(f"{TEMPLATES}/welcome-email/preview", json={})).json()
        assert (latest["version"], latest["parts"]["text"]["text"]) == (2, "v2")
        first = (await api.post(f"{TEMPLATES}/welcome-email/preview", json={"version": 1})).json()
        assert first["parts"]["text"]["text"] == "v1 -- team"
        # A fragment published anew is what the next preview includes.
        await api.put(f"{FRAGMENTS}/sign", json={"name": "sign", "type": "expression", "content": "-- Shop"})
        await published(api, FRAGMENTS, "sign")
        again = (await api.post(f"{TEMPLATES}/welcome-email/preview", json={"version": 1})).json()
        assert again["parts"]["text"]["text"] == "v1 -- Shop"
        assert (await api.post(f"{TEMPLATES}/welcome-email/preview", json={"version": 9})).status_code == 404

    async def test_a_webhook_payload_must_render_as_json(self, api: httpx.AsyncClient) -> None:
        hook = {
            "payload": '{"name": "{{profile.name}}", "raw": {{{profile.raw}}}}',
            "headers": {"X-Id": "{{profile.id}}"},
        }
        await created(
            api, TEMPLATES, {"id": "hook", "name": "h", "channel": "webhook", "variants": {"en": hook}}
        )
        preview = f"{TEMPLATES}/hook/preview"
        good = (await api.post(preview, json={"profile": {"name": "Jo", "id": 7, "raw": "[1]"}})).json()
        assert (good["parts"]["payload"]["text"], good["parts"]["headers/X-Id"]["text"], good["errors"]) == (
            '{"name": "Jo", "raw": [1]}',
            "7",
            [],
        )
        # {{x}} is escaped for a JSON string: quotes, backslashes and line breaks stay JSON.
        quoted = {"name": 'say "hi"\\\n', "raw": "2"}
        escaped = (await api.post(preview, json={"profile": quoted})).json()
        assert escaped["errors"] == []
        assert json.loads(escaped["parts"]["payload"]["text"]) == {"name": 'say "hi"\\\n', "raw": 2}
        # {{{x}}} is raw: what it inserts must itself be JSON.
        bad = (await api.post(preview, json={"profile": {"name": "Jo", "raw": "not json"}})).json()
        assert [(e["path"], e["code"]) for e in bad["errors"]] == [("/variants/en/payload", "json")]


class TestFragmentPreview:
    """``POST /v1/fragments/{id}/preview``: a fragment rendered on its own, as a template
    including it would render it."""

    async def test_renders_the_draft_with_the_fragments_it_includes(self, api: httpx.AsyncClient) -> None:
        await fragment(api, "sign-off", "-- {{context.shop}}")
        await fragment(
            api,
            "greeting",
            'Hi {{profile.person.name.firstName}} {{profile.loyalty.tier}}\n{{fragment id="sign-off"}}',
            publish=False,
        )
        shown = await api.post(
            f"{FRAGMENTS}/greeting/preview", json={"profile": JANE, "context": {"shop": "Lyon"}}
        )
        assert shown.status_code == 200, shown.text
        body = shown.json()
        assert (body["fragmentId"], body["version"], body["errors"]) == ("greeting", 1, [])
        assert body["text"] == "Hi Jane <3 \n-- Lyon"  # an expression fragment: not escaped
        assert [(u["path"], u["line"]) for u in body["undefinedPaths"]] == [("profile.loyalty.tier", 1)]

    async def test_a_visual_fragment_is_escaped_as_in_html(self, api: httpx.AsyncClient) -> None:
        await fragment(api, "banner", "<b>{{profile.person.name.firstName}}</b>", "visual", publish=False)
        shown = await api.post(f"{FRAGMENTS}/banner/preview", json={"profile": JANE})
        assert shown.json()["text"] == "<b>Jane &lt;3</b>"

    async def test_problems_have_their_positions_and_a_chosen_version_is_shown(
        self, api: httpx.AsyncClient
    ) -> None:
        await fragment(api, "note", "v1 {{context.x}}")
        await api.put(
            f"{FRAGMENTS}/note", json={"name": "note", "type": "expression", "content": "v2\n {{/if}}"}
        )
        broken = (await api.post(f"{FRAGMENTS}/note/preview", json={})).json()
        assert (broken["version"], broken["text"]) == (2, None)
        assert [(e["path"], e["code"], e["position"]["line"]) for e in broken["errors"]] == [
            ("/content", "template", 2)
        ]
        first = (await api.post(f"{FRAGMENTS}/note/preview", json={"version": 1, "context": {"x": 7}})).json()
        assert (first["text"], first["errors"]) == ("v1 7", [])
        assert (await api.post(f"{FRAGMENTS}/nothing/preview", json={})).status_code == 404
        assert (await api.post(f"{FRAGMENTS}/note/preview", json={"version": 9})).status_code == 404


@pytest.fixture(scope="module")
def profile_url(topics_created: StackInfo) -> Iterator[str]:
    """A profile service of its own, in its own process."""
    with serving(topics_created, "profile", role="all") as url:
        yield url


class TestPreviewOfAStoredProfile:
    """A preview may name the profile (``profileId`` or ``identity``); the content
    service reads it from a real profile service with the caller's token."""

    @pytest.fixture
    async def reading(
        self, profile_url: str, topics_created: StackInfo, sandbox: str
    ) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
        """A content service pointed at that profile service, and a client of each."""
        settings = settings_for(topics_created, ContentSettings, profile_service_url=profile_url)
        token = mint_token(settings, scopes=ALL_SCOPES, sandbox=sandbox)
        async with (
            running(SERVICE.create_app("api", settings)) as app,
            client_for(app, token) as content,
            httpx.AsyncClient(base_url=profile_url, headers={"authorization": f"Bearer {token}"}) as profiles,
        ):
            yield content, profiles

    async def test_renders_the_profile_the_profile_service_holds(
        self, reading: tuple[httpx.AsyncClient, httpx.AsyncClient], topics_created: StackInfo, sandbox: str
    ) -> None:
        content, profiles = reading
        profile_id = await stored_profile(topics_created, profiles, sandbox, "ada@example.com", JANE)
        await created(content, TEMPLATES, email())

        by_id = await content.post(f"{TEMPLATES}/welcome-email/preview", json={"profileId": profile_id})
        assert by_id.status_code == 200, by_id.text
        assert by_id.json()["profileId"] == profile_id
        assert by_id.json()["locale"] == "fr"
        assert by_id.json()["parts"]["subject"]["text"] == "Bienvenue, Jane <3"
        by_identity = await content.post(
            f"{TEMPLATES}/welcome-email/preview", json={"identity": "email:ADA@example.com"}
        )
        assert by_identity.json()["parts"] == by_id.json()["parts"]
        await fragment(content, "hello", "Hello {{profile.person.name.firstName}}", publish=False)
        of_fragment = await content.post(
            f"{FRAGMENTS}/hello/preview", json={"identity": "Email:ada@example.com"}
        )
        assert (of_fragment.json()["profileId"], of_fragment.json()["text"]) == (profile_id, "Hello Jane <3")

    async def test_a_profile_that_does_not_exist_is_a_422_at_its_field(
        self, reading: tuple[httpx.AsyncClient, httpx.AsyncClient]
    ) -> None:
        content, _ = reading
        await created(content, TEMPLATES, email())
        missing = await content.post(
            f"{TEMPLATES}/welcome-email/preview", json={"profileId": "0b6cf8a4-7d4c-4b4e-9a35-2f4f1b1f0c11"}
        )
        assert missing.status_code == 422, missing.text
        assert [e["path"] for e in missing.json()["errors"]] == ["/profileId"]

    async def test_the_profile_is_given_or_named_once(
        self, reading: tuple[httpx.AsyncClient, httpx.AsyncClient]
    ) -> None:
        content, _ = reading
        both = await content.post(
            f"{TEMPLATES}/welcome-email/preview", json={"profile": JANE, "identity": "Email:ada@example.com"}
        )
        assert both.status_code == 400
        assert [e["path"] for e in both.json()["errors"]] == ["/identity"]

    async def test_a_caller_who_may_not_read_profiles_is_refused(
        self, profile_url: str, topics_created: StackInfo, sandbox: str
    ) -> None:
        settings = settings_for(topics_created, ContentSettings, profile_service_url=profile_url)
        token = mint_token(settings, scopes=["content:read", "content:write"], sandbox=sandbox)
        async with running(SERVICE.create_app("api", settings)) as app, client_for(app, token) as content:
            await created(content, TEMPLATES, email())
            refused = await content.post(f"{TEMPLATES}/welcome-email/preview", json={"profileId": "anyone"})
        assert refused.status_code == 403, refused.text

    async def test_an_unreachable_profile_service_is_a_503(
        self, topics_created: StackInfo, sandbox: str
    ) -> None:
        settings = settings_for(
            topics_created, ContentSettings, profile_service_url=f"http://127.0.0.1:{free_port()}"
        )
        token = mint_token(settings, scopes=ALL_SCOPES, sandbox=sandbox)
        async with running(SERVICE.create_app("api", settings)) as app, client_for(app, token) as content:
            await created(content, TEMPLATES, email())
            down = await content.post(f"{TEMPLATES}/welcome-email/preview", json={"profileId": "anyone"})
        assert down.status_code == 503, down.text
