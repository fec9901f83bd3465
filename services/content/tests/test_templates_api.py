"""``/v1/templates``: templates per channel and locale, saved as drafts, versioned and
published, per sandbox."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from itinera.common.auth import mint_token
from itinera.common.testing import client_for
from itinera.content.config import ContentSettings

from .helpers import FRAGMENTS, TEMPLATES, created, email, published


class TestDrafts:
    async def test_a_template_is_created_with_a_first_draft_and_read_back(
        self, api: httpx.AsyncClient
    ) -> None:
        response = await api.post(TEMPLATES, json=email())
        assert response.status_code == 201, response.text
        assert response.headers["location"] == f"{TEMPLATES}/welcome-email"
        template = response.json()
        assert (template["id"], template["channel"], template["status"]) == (
            "welcome-email",
            "email",
            "draft",
        )
        assert (template["latestVersion"], template["draftVersion"], template["publishedVersion"]) == (
            1,
            1,
            None,
        )
        assert template["variants"]["fr"]["subject"] == "Bienvenue, {{profile.person.name.firstName}}"
        assert [v["status"] for v in template["versions"]] == ["draft"]
        again = await api.get(f"{TEMPLATES}/welcome-email")
        assert again.json() == template

    async def test_an_id_is_generated_when_none_is_given(self, api: httpx.AsyncClient) -> None:
        template = await created(api, TEMPLATES, email(None))
        assert len(template["id"]) == 36
        assert (await api.get(f"{TEMPLATES}/{template['id']}")).status_code == 200

    async def test_an_id_is_unique_in_its_sandbox(self, api: httpx.AsyncClient) -> None:
        await created(api, TEMPLATES, email())
        again = await api.post(TEMPLATES, json=email())
        assert again.status_code == 409
        assert again.json()["errors"][0]["path"] == "/id"

    async def test_locales_are_kept_in_their_conventional_case(self, api: httpx.AsyncClient) -> None:
        body = email(defaultLocale="EN-us")
        body["variants"] = {"en_US": body["variants"]["en"], "FR-ca": body["variants"]["fr"]}
        template = await created(api, TEMPLATES, body)
        assert (template["defaultLocale"], sorted(template["variants"])) == ("en-US", ["en-US", "fr-CA"])

    @pytest.mark.parametrize(
        ("change", "path"),
        [
            ({"channel": "fax"}, "/body"),
            ({"id": "no spaces"}, "/body/email/id"),
            ({"defaultLocale": "english!"}, "/body/email/defaultLocale"),
            ({"variants": {"en": {"subject": "x", "body": "misplaced"}}}, "/body/email/variants/en/body"),
            (
                {"variants": {"en": {"sender": {"address": "not an address"}}}},
                "/body/email/variants/en/sender/address",
            ),
            ({"variants": {"fr-ca": {}, "FR-CA": {}}}, "/body/email/variants"),
            ({"variants": {"en": {"subject": "nul \u0000"}}}, "/body/email/variants/en/subject"),
        ],
    )
    async def test_a_wrong_shape_is_a_422_with_its_path_and_nothing_is_stored(
        self, api: httpx.AsyncClient, change: dict[str, object], path: str
    ) -> None:
        response = await api.post(TEMPLATES, json={**email(), **change})
        assert response.status_code == 422, response.text
        assert path in [e["path"] for e in response.json()["errors"]]
        assert (await api.get(TEMPLATES)).json()["page"]["totalCount"] == 0

    async def test_the_settings_bound_locales_and_part_lengths(self, api: httpx.AsyncClient) -> None:
        body = email()
        body["variants"] = {f"x{chr(97 + i)}": {} for i in range(6)}
        many = await api.post(TEMPLATES, json=body)
        assert (many.status_code, many.json()["errors"][0]["path"]) == (400, "/variants")
        long = email()
        long["variants"]["fr"]["html"] = "x" * 5000
        too_long = await api.post(TEMPLATES, json=long)
        assert (too_long.status_code, too_long.json()["errors"][0]["path"]) == (400, "/variants/fr/html")

    async def test_put_replaces_the_draft_in_place(self, api: httpx.AsyncClient) -> None:
        await created(api, TEMPLATES, email())
        response = await api.put(f"{TEMPLATES}/welcome-email", json=email(None, name="Hello"))
        assert response.status_code == 200, response.text
        template = response.json()
        assert (template["name"], template["latestVersion"], template["draftVersion"]) == ("Hello", 1, 1)

    async def test_put_after_publishing_makes_a_new_draft_version(self, api: httpx.AsyncClient) -> None:
        await created(api, TEMPLATES, email())
        await published(api, TEMPLATES, "welcome-email")
        changed = email()
        changed["variants"]["en"]["subject"] = "Hello again"
        template = (await api.put(f"{TEMPLATES}/welcome-email", json=changed)).json()
        assert (template["latestVersion"], template["draftVersion"], template["publishedVersion"]) == (
            2,
            2,
            1,
        )
        assert template["status"] == "published"
        assert [(v["version"], v["status"]) for v in template["versions"]] == [(1, "published"), (2, "draft")]
        first = (await api.get(f"{TEMPLATES}/welcome-email/versions/1")).json()
        second = (await api.get(f"{TEMPLATES}/welcome-email/versions/2")).json()
        assert first["variants"]["en"]["subject"].startswith("Welcome")
        assert "problems" not in first
        assert (second["variants"]["en"]["subject"], second["problems"]) == ("Hello again", [])
        assert (await api.get(f"{TEMPLATES}/welcome-email/versions/3")).status_code == 404

    async def test_an_email_template_says_what_of_it_is_tracked(self, api: httpx.AsyncClient) -> None:
        made = await api.post(TEMPLATES, json=email())
        assert made.json()["tracking"] == {"opens": True, "clicks": True}
        quiet = await api.put(f"{TEMPLATES}/welcome-email", json=email(tracking={"opens": False}))
        assert quiet.json()["tracking"] == {"opens": False, "clicks": True}
        version = (await api.get(f"{TEMPLATES}/welcome-email/versions/1")).json()
        assert version["tracking"] == {"opens": False, "clicks": True}
        refused = await api.put(
            f"{TEMPLATES}/welcome-email", json=email(tracking={"opens": "no", "pixels": 1})
        )
        assert refused.status_code == 422
        assert {e["path"] for e in refused.json()["errors"]} == {
            "/body/email/tracking/opens",
            "/body/email/tracking/pixels",
        }
        sms = {"id": "sms-1", "name": "s", "channel": "sms", "variants": {"en": {"text": "hi"}}}
        assert (await api.post(TEMPLATES, json=sms)).json()["tracking"] is None
        assert (await api.post(TEMPLATES, json=sms | {"id": "sms-2", "tracking": {}})).status_code == 422

    async def test_the_channel_cannot_change_nor_the_id(self, api: httpx.AsyncClient) -> None:
        await created(api, TEMPLATES, email())
        sms = {"name": "x", "channel": "sms", "variants": {"en": {"text": "hi"}}}
        refused = await api.put(f"{TEMPLATES}/welcome-email", json=sms)
        assert (refused.status_code, refused.json()["errors"][0]["path"]) == (409, "/channel")
        other = await api.put(f"{TEMPLATES}/welcome-email", json=email("another"))
        assert (other.status_code, other.json()["errors"][0]["path"]) == (400, "/id")
        assert (await api.put(f"{TEMPLATES}/missing", json=email(None))).status_code == 404
        assert (await api.get(f"{TEMPLATES}/a%00b")).status_code == 404

    async def test_publishing_without_a_draft_is_a_409(self, api: httpx.AsyncClient) -> None:
        await created(api, TEMPLATES, email())
        await published(api, TEMPLATES, "welcome-email")
        again = await api.post(f"{TEMPLATES}/welcome-email/publish")
        assert (again.status_code, again.json()["publishedVersion"]) == (409, 1)
        assert (await api.post(f"{TEMPLATES}/missing/publish")).status_code == 404


class TestListing:
    async def test_pages_most_recently_changed_first_with_filters(self, api: httpx.AsyncClient) -> None:
        for number in range(3):
            await created(api, TEMPLATES, email(f"t{number}"))
        await created(
            api, TEMPLATES, {"id": "s", "name": "s", "channel": "sms", "variants": {"en": {"text": "x"}}}
        )
        await published(api, TEMPLATES, "t1")
        first = (await api.get(TEMPLATES, params={"limit": 2})).json()
        assert [t["id"] for t in first["items"]] == ["t1", "s"]
        assert first["page"] == {"totalCount": 4, "start": 0, "limit": 2, "pageSize": 2}
        assert "variants" not in first["items"][0]
        second = (await api.get(first["link"]["next"])).json()
        assert [t["id"] for t in second["items"]] == ["t2", "t0"]
        assert second["link"] == {}
        emails = (await api.get(TEMPLATES, params={"channel": "email", "status": "draft"})).json()
        assert [t["id"] for t in emails["items"]] == ["t2", "t0"]
        assert (await api.get(TEMPLATES, params={"limit": 0})).status_code == 422


class TestDeletion:
    async def test_deletes_the_template_and_its_versions(self, api: httpx.AsyncClient) -> None:
        await created(api, TEMPLATES, email())
        assert (await api.delete(f"{TEMPLATES}/welcome-email")).status_code == 204
        assert (await api.get(f"{TEMPLATES}/welcome-email")).status_code == 404
        assert (await api.delete(f"{TEMPLATES}/welcome-email")).status_code == 404

    async def test_an_id_used_again_continues_the_version_numbers(self, api: httpx.AsyncClient) -> None:
        await created(api, TEMPLATES, email())
        await published(api, TEMPLATES, "welcome-email")
        await api.put(f"{TEMPLATES}/welcome-email", json=email())
        await api.delete(f"{TEMPLATES}/welcome-email")
        again = await created(api, TEMPLATES, email())
        assert (again["latestVersion"], [v["version"] for v in again["versions"]]) == (3, [3])


class TestConcurrentEditors:
    """Optimistic concurrency: each answer carries the template's ETag; a write sent with
    If-Match goes only while the template still has that tag, else 412 and nothing
    changes, so one editor does not overwrite another's work unseen."""

    async def test_a_write_based_on_a_stale_read_is_refused(self, api: httpx.AsyncClient) -> None:
        made = await api.post(TEMPLATES, json=email())
        first = made.headers["etag"]
        assert first == made.json()["etag"]
        read = await api.get(f"{TEMPLATES}/welcome-email")
        assert read.headers["etag"] == first

        mine = email(name="Mine")
        saved = await api.put(f"{TEMPLATES}/welcome-email", json=mine, headers={"If-Match": first})
        assert saved.status_code == 200, saved.text
        second = saved.headers["etag"]
        assert second != first
        assert saved.json()["etag"] == second

        theirs = await api.put(
            f"{TEMPLATES}/welcome-email", json=email(name="Theirs"), headers={"If-Match": first}
        )
        assert theirs.status_code == 412
        assert theirs.headers["content-type"].startswith("application/problem+json")
        assert theirs.json()["etag"] == second
        assert [e["path"] for e in theirs.json()["errors"]] == ["/header/If-Match"]
        assert (await api.get(f"{TEMPLATES}/welcome-email")).json()["name"] == "Mine"

        stale_publish = await api.post(f"{TEMPLATES}/welcome-email/publish", headers={"If-Match": first})
        assert stale_publish.status_code == 412
        listed = f'"nope", {second}'  # a list of tags matches when one of them does
        assert (
            await api.post(f"{TEMPLATES}/welcome-email/publish", headers={"If-Match": listed})
        ).status_code == 200
        after_publish = (await api.get(f"{TEMPLATES}/welcome-email")).headers["etag"]
        assert after_publish not in (first, second)

        refused = await api.delete(f"{TEMPLATES}/welcome-email", headers={"If-Match": second})
        assert refused.status_code == 412
        assert (await api.delete(f"{TEMPLATES}/welcome-email", headers={"If-Match": "*"})).status_code == 204

    async def test_an_item_made_again_under_a_deleted_one_s_id_has_a_new_tag(
        self, api: httpx.AsyncClient
    ) -> None:
        old = (await api.post(TEMPLATES, json=email())).headers["etag"]
        assert (await api.delete(f"{TEMPLATES}/welcome-email")).status_code == 204
        again = await api.post(TEMPLATES, json=email())
        assert again.headers["etag"] != old
        stale = await api.put(f"{TEMPLATES}/welcome-email", json=email(), headers={"If-Match": old})
        assert stale.status_code == 412

    async def test_fragments_have_tags_too(self, api: httpx.AsyncClient) -> None:
        body = {"id": "footer", "name": "footer", "type": "expression", "content": "Bye"}
        made = await api.post(FRAGMENTS, json=body)
        tag = made.headers["etag"]
        assert (await api.put(f"{FRAGMENTS}/footer", json=body, headers={"If-Match": tag})).status_code == 200
        assert (await api.put(f"{FRAGMENTS}/footer", json=body, headers={"If-Match": tag})).status_code == 412
        assert (await api.post(f"{FRAGMENTS}/footer/publish", headers={"If-Match": tag})).status_code == 412
        assert (await api.delete(f"{FRAGMENTS}/footer", headers={"If-Match": tag})).status_code == 412
        current = (await api.get(f"{FRAGMENTS}/footer")).headers["etag"]
        assert (await api.delete(f"{FRAGMENTS}/footer", headers={"If-Match": current})).status_code == 204


class TestAccess:
    async def test_scopes_are_required(self, content_app: FastAPI, content_settings: ContentSettings) -> None:
        reader = mint_token(content_settings, scopes=["content:read"], sandbox="scopes")
        async with client_for(content_app, reader) as http:
            assert (await http.get(TEMPLATES)).status_code == 200
            refused = await http.post(TEMPLATES, json=email())
            assert (refused.status_code, refused.json()["requiredScope"]) == (403, "content:write")
        writer = mint_token(content_settings, scopes=["content:write"], sandbox="scopes")
        async with client_for(content_app, writer) as http:
            assert (await http.get(TEMPLATES)).status_code == 403
            assert (await http.post(f"{TEMPLATES}/x/preview", json={})).status_code == 403
        async with client_for(content_app) as http:
            assert (await http.get(TEMPLATES)).status_code == 401

    async def test_another_sandbox_sees_nothing(
        self, api: httpx.AsyncClient, content_app: FastAPI, content_settings: ContentSettings
    ) -> None:
        await created(api, TEMPLATES, email())
        token = mint_token(content_settings, scopes=["content:read", "content:write"], sandbox="elsewhere-x")
        async with client_for(content_app, token) as other:
            assert (await other.get(f"{TEMPLATES}/welcome-email")).status_code == 404
            assert (await other.post(f"{TEMPLATES}/welcome-email/preview", json={})).status_code == 404
            assert (await other.delete(f"{TEMPLATES}/welcome-email")).status_code == 404
