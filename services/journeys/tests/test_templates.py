"""Publishing checks a message node's template against the templates the content
service has published in the sandbox (``itinera.content.v1``, kept by the journeys
service): it must exist, not be deleted, and be for the node's channel."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.kafka import topics
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.testing import client_for, eventually, running
from itinera.journeys.app import SERVICE
from itinera.journeys.config import JourneysSettings

from .test_campaigns import CAMPAIGNS, campaign_body
from .test_journeys_api import JOURNEYS, create, welcome


@pytest.fixture
async def checking(
    journeys_app: FastAPI, journeys_settings: JourneysSettings, sandbox: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The API of a journeys service that checks templates (the session's service keeps
    the templates it hears of, in the database both read)."""
    settings = journeys_settings.model_copy(update={"journeys_check_templates": True})
    token = mint_token(settings, scopes=ALL_SCOPES, sandbox=sandbox)
    async with running(SERVICE.create_app("api", settings)) as app, client_for(app, token) as client:
        yield client


async def announce(
    settings: JourneysSettings, sandbox: str, template: str, version: int, **fields: Any
) -> None:
    """What the content service publishes when a template is published or deleted."""
    producer = Producer(settings)
    await producer.start()
    try:
        data = {"sandbox": sandbox, "kind": "template", "id": template, "version": version, **fields}
        envelope = Envelope(
            type="com.itinera.content.version.v1",
            source="/t",
            data=data,
            sandbox=sandbox,
            key=f"template:{template}",
        )
        await producer.publish(topics.CONTENT.name, [envelope])
    finally:
        await producer.stop()


async def problems(http: httpx.AsyncClient, journey: str) -> set[tuple[str, str]]:
    version = (await http.get(f"{JOURNEYS}/{journey}/versions/1")).json()
    return {(p["path"], p["code"]) for p in version["problems"]}


class TestTemplatesArePublished:
    async def test_a_template_must_be_published_for_the_nodes_channel(
        self, checking: httpx.AsyncClient, journeys_settings: JourneysSettings, sandbox: str
    ) -> None:
        hello, nudge = f"hello-{uuid.uuid4().hex[:8]}", f"nudge-{uuid.uuid4().hex[:8]}"
        body = welcome()
        body["nodes"][1]["templateId"], body["nodes"][4]["templateId"] = hello, nudge
        journey = (await create(checking, body))["id"]
        assert await problems(checking, journey) == {
            ("/nodes/1/templateId", "undefined-template"),
            ("/nodes/4/templateId", "undefined-template"),
        }
        refused = await checking.post(f"{JOURNEYS}/{journey}/versions/1/publish")
        assert refused.status_code == 400
        assert {e["path"] for e in refused.json()["errors"]} == {"/nodes/1/templateId", "/nodes/4/templateId"}

        await announce(journeys_settings, sandbox, hello, 1, deleted=False, channel="sms")
        await announce(journeys_settings, sandbox, nudge, 1, deleted=False, channel="sms")

        async def heard() -> bool:
            return await problems(checking, journey) == {("/nodes/1/templateId", "template-channel")}

        await eventually(heard, timeout_s=30)
        await announce(journeys_settings, sandbox, hello, 2, deleted=False, channel="email")

        async def fixed() -> bool:
            return await problems(checking, journey) == set()

        await eventually(fixed, timeout_s=30)
        published = await checking.post(f"{JOURNEYS}/{journey}/versions/1/publish")
        assert published.status_code == 200, published.text

    async def test_a_deleted_template_is_undefined_and_an_older_version_changes_nothing(
        self, checking: httpx.AsyncClient, journeys_settings: JourneysSettings, sandbox: str
    ) -> None:
        hello = f"hello-{uuid.uuid4().hex[:8]}"
        body = welcome()
        body["nodes"][1]["templateId"] = hello
        body["nodes"][4]["templateId"] = hello
        body["nodes"][4]["channel"] = "email"
        journey = (await create(checking, body))["id"]
        await announce(journeys_settings, sandbox, hello, 2, deleted=False, channel="email")

        async def known() -> bool:
            return await problems(checking, journey) == set()

        await eventually(known, timeout_s=30)
        await announce(journeys_settings, sandbox, hello, 3, deleted=True)
        await announce(journeys_settings, sandbox, hello, 1, deleted=False, channel="email")  # late, older

        async def gone() -> bool:
            return await problems(checking, journey) == {
                ("/nodes/1/templateId", "undefined-template"),
                ("/nodes/4/templateId", "undefined-template"),
            }

        await eventually(gone, timeout_s=30)

    async def test_templates_of_another_sandbox_do_not_count(
        self, checking: httpx.AsyncClient, journeys_settings: JourneysSettings, sandbox: str
    ) -> None:
        hello, other = f"hello-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:6]}"
        body = welcome()
        body["nodes"][1]["templateId"] = body["nodes"][4]["templateId"] = hello
        body["nodes"][4]["channel"] = "email"
        journey = (await create(checking, body))["id"]
        settings = journeys_settings.model_copy(update={"journeys_check_templates": True})
        token = mint_token(settings, scopes=ALL_SCOPES, sandbox=other)
        async with running(SERVICE.create_app("api", settings)) as app, client_for(app, token) as elsewhere:
            theirs = (await create(elsewhere, body))["id"]
            await announce(journeys_settings, other, hello, 1, deleted=False, channel="email")

            async def known_there() -> bool:
                return await problems(elsewhere, theirs) == set()

            await eventually(known_there, timeout_s=30)
        assert await problems(checking, journey) == {
            ("/nodes/1/templateId", "undefined-template"),
            ("/nodes/4/templateId", "undefined-template"),
        }


class TestCampaignTemplates:
    async def test_a_campaign_is_activated_once_its_template_is_published_for_its_channel(
        self, checking: httpx.AsyncClient, journeys_settings: JourneysSettings, sandbox: str
    ) -> None:
        sale = f"sale-{uuid.uuid4().hex[:8]}"
        created = await checking.post(CAMPAIGNS, json=campaign_body(templateId=sale))
        assert created.status_code == 201, created.text
        activate = f"{CAMPAIGNS}/{created.json()['id']}/activate"
        refused = await checking.post(activate)
        assert refused.status_code == 400
        assert [(p["path"], p["code"]) for p in refused.json()["problems"]] == [
            ("/templateId", "undefined-template")
        ]
        await announce(journeys_settings, sandbox, sale, 1, deleted=False, channel="sms")

        async def for_sms() -> bool:
            answer = await checking.post(activate)
            return [p["code"] for p in answer.json().get("problems", [])] == ["template-channel"]

        await eventually(for_sms, timeout_s=30)
        await announce(journeys_settings, sandbox, sale, 2, deleted=False, channel="email")

        async def activated() -> bool:
            return (await checking.post(activate)).status_code == 200

        await eventually(activated, timeout_s=30)
