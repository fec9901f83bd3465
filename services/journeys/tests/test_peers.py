"""What journeys asks the segmentation and profile services, each a real one in a process
of its own, with tokens journeys mints itself: whether the audiences a journey or a
campaign names exist, and the profiles of recipients this service was never told about.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.devstack import free_port
from itinera.common.kafka import topics
from itinera.common.kafka.consumer import Record
from itinera.common.kafka.producer import Producer
from itinera.common.testing import (
    StackInfo,
    client_for,
    running,
    serving,
    stored_profile,
    topic_reader,
)
from itinera.journeys.app import SERVICE
from itinera.journeys.campaigns import executions, repository
from itinera.journeys.config import JourneysSettings
from itinera.journeys.peers import Peers

from .test_campaigns import members_of, membership, of

AUDIENCES = "/data/core/ups/audiences"
JOURNEYS = "/v1/journeys"
CAMPAIGNS = "/v1/campaigns"
RULE = 'homeAddress.countryCode = "FR"'


@pytest.fixture(scope="module")
def profile_url(topics_created: StackInfo) -> Iterator[str]:
    with serving(topics_created, "profile", role="all") as url:
        yield url


@pytest.fixture(scope="module")
def segmentation_url(topics_created: StackInfo) -> Iterator[str]:
    with serving(topics_created, "segmentation", role="api") as url:
        yield url


@dataclass
class World:
    sandbox: str
    journeys: httpx.AsyncClient
    segmentation: httpx.AsyncClient
    profiles: httpx.AsyncClient
    app: FastAPI

    async def audience(self) -> str:
        """A new audience of the sandbox, made in the segmentation service; its id."""
        body = {
            "name": f"a {uuid.uuid4().hex[:8]}",
            "expression": {"type": "PQL", "format": "pql/text", "value": RULE},
        }
        created = await self.segmentation.post(AUDIENCES, json=body)
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    async def stored_profile(self, topics_created: StackInfo, email: str, first_name: str) -> str:
        """A profile the profile service holds (a record sent as ingestion sends it); its id."""
        record = {"person": {"name": {"firstName": first_name}}, "personalEmail": {"address": email}}
        return await stored_profile(topics_created, self.profiles, self.sandbox, email, record)


@pytest.fixture
async def world(
    journeys_settings: JourneysSettings, journeys_app: FastAPI, profile_url: str, segmentation_url: str
) -> AsyncIterator[World]:
    """A journeys API that asks those services, and a client of each, in a sandbox of its
    own. (The session's service, ``journeys_app``, relays what it asks for.)"""
    settings = journeys_settings.model_copy(
        update={
            "journeys_check_audiences": True,
            "journeys_read_profiles": True,
            "profile_service_url": profile_url,
            "segmentation_service_url": segmentation_url,
        }
    )
    sandbox = f"peer-{uuid.uuid4().hex[:10]}"
    token = mint_token(settings, scopes=ALL_SCOPES, sandbox=sandbox)
    headers = {"authorization": f"Bearer {token}"}
    async with (
        running(SERVICE.create_app("api", settings)) as app,
        client_for(app, token) as journeys,
        httpx.AsyncClient(base_url=segmentation_url, headers=headers) as segmentation,
        httpx.AsyncClient(base_url=profile_url, headers=headers) as profiles,
    ):
        yield World(sandbox, journeys, segmentation, profiles, app)


def journey(entry_audience: str, exit_audience: str) -> dict[str, Any]:
    return {
        "name": f"j {uuid.uuid4().hex[:8]}",
        "nodes": [
            {"id": "joined", "type": "audience", "audienceId": entry_audience, "next": "done"},
            {"id": "done", "type": "end"},
        ],
        "exitCriteria": [{"type": "audienceExit", "name": "left", "audienceId": exit_audience}],
    }


def problems(response: httpx.Response) -> dict[str, str]:
    return {e["path"]: e["code"] for e in response.json()["errors"]}


def ours(sandbox: str, count: int) -> Callable[[list[Record]], bool]:
    """Whether the records hold ``count`` messages of the sandbox."""
    return lambda records: len(of(records, sandbox)) >= count


class TestAudiencesNamed:
    async def test_a_journey_is_published_only_once_every_audience_it_names_exists(
        self, world: World
    ) -> None:
        real, missing = await world.audience(), str(uuid.uuid4())
        created = await world.journeys.post(JOURNEYS, json=journey(real, missing))
        assert created.status_code == 201, created.text
        journey_id = created.json()["id"]

        refused = await world.journeys.post(f"{JOURNEYS}/{journey_id}/versions/1/publish")

        assert refused.status_code == 400, refused.text
        assert problems(refused) == {"/exitCriteria/0/audienceId": "undefined-audience"}
        replaced = await world.journeys.put(
            f"{JOURNEYS}/{journey_id}", json=journey(real, await world.audience())
        )
        assert replaced.status_code == 200, replaced.text
        published = await world.journeys.post(f"{JOURNEYS}/{journey_id}/versions/1/publish")
        assert published.status_code == 200, published.text

    async def test_an_audience_of_another_sandbox_does_not_count(
        self, world: World, journeys_settings: JourneysSettings, segmentation_url: str
    ) -> None:
        token = mint_token(journeys_settings, scopes=ALL_SCOPES, sandbox=f"other-{uuid.uuid4().hex[:8]}")
        async with httpx.AsyncClient(
            base_url=segmentation_url, headers={"authorization": f"Bearer {token}"}
        ) as other:
            elsewhere = await World(
                world.sandbox, world.journeys, other, world.profiles, world.app
            ).audience()
        created = await world.journeys.post(JOURNEYS, json=journey(elsewhere, await world.audience()))

        refused = await world.journeys.post(f"{JOURNEYS}/{created.json()['id']}/versions/1/publish")

        assert problems(refused) == {"/nodes/0/audienceId": "undefined-audience"}

    async def test_campaigns_name_only_audiences_the_sandbox_has(self, world: World) -> None:
        scheduled = await world.journeys.post(
            CAMPAIGNS,
            json={
                "name": "weekly",
                "type": "scheduled",
                "channel": "email",
                "templateId": "weekly",
                "audienceId": str(uuid.uuid4()),
                "schedule": {"frequency": "once", "at": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
            },
        )
        assert scheduled.status_code == 201, scheduled.text
        refused = await world.journeys.post(f"{CAMPAIGNS}/{scheduled.json()['id']}/activate")
        assert refused.status_code == 400, refused.text
        assert problems(refused) == {"/audienceId": "undefined-audience"}

        api = await world.journeys.post(
            CAMPAIGNS,
            json={"name": "api", "type": "api", "mode": "audience", "channel": "email", "templateId": "t"},
        )
        assert (await world.journeys.post(f"{CAMPAIGNS}/{api.json()['id']}/activate")).status_code == 200
        execution = await world.journeys.post(
            "/ajo/im/executions/audience",
            json={"campaignId": api.json()["id"], "audience": {"id": str(uuid.uuid4())}},
        )
        assert execution.status_code == 400, execution.text
        assert problems(execution) == {"/audience/id": "undefined-audience"}

    async def test_an_unreachable_segmentation_service_is_a_503(
        self, journeys_settings: JourneysSettings
    ) -> None:
        settings = journeys_settings.model_copy(
            update={
                "journeys_check_audiences": True,
                "segmentation_service_url": f"http://127.0.0.1:{free_port()}",
            }
        )
        token = mint_token(settings, scopes=ALL_SCOPES, sandbox=f"down-{uuid.uuid4().hex[:8]}")
        async with running(SERVICE.create_app("api", settings)) as app, client_for(app, token) as api:
            created = await api.post(JOURNEYS, json=journey(str(uuid.uuid4()), str(uuid.uuid4())))
            answer = await api.post(f"{JOURNEYS}/{created.json()['id']}/versions/1/publish")
        assert answer.status_code == 503, answer.text
        assert "segmentation" in answer.json()["detail"]


class TestProfilesRead:
    async def test_a_unitary_recipient_known_only_to_the_profile_service_gets_its_profile(
        self, world: World, topics_created: StackInfo
    ) -> None:
        profile_id = await world.stored_profile(topics_created, "ada@example.com", "Ada")
        campaign = await world.journeys.post(
            CAMPAIGNS, json={"name": "now", "type": "api", "channel": "email", "templateId": "t"}
        )
        assert (await world.journeys.post(f"{CAMPAIGNS}/{campaign.json()['id']}/activate")).status_code == 200

        async with topic_reader(topics_created, topics.MESSAGES.name) as reader:
            sent = await world.journeys.post(
                "/ajo/im/executions/unitary",
                json={
                    "campaignId": campaign.json()["id"],
                    "requestId": "welcome-ada",
                    "recipients": [{"type": "aep", "userId": "ADA@example.com", "namespace": "email"}],
                },
            )
            assert sent.status_code == 202, sent.text
            found = of(await reader.wait_for(ours(world.sandbox, 1), timeout_s=30), world.sandbox)

        (message,) = found
        assert message["profileId"] == profile_id
        assert message["profile"]["person"]["name"]["firstName"] == "Ada"

    async def test_an_audience_member_known_only_to_the_profile_service_gets_its_profile(
        self,
        world: World,
        topics_created: StackInfo,
        producer: Producer,
        pool: asyncpg.Pool,
    ) -> None:
        known = await world.stored_profile(topics_created, "grace@example.com", "Grace")
        stranger = str(uuid.uuid4())  # no service knows it: sent with no profile
        audience = await world.audience()
        for member in (known, stranger):
            await membership(producer, world.sandbox, member, audience, "realized")
        await members_of(pool, world.sandbox, audience, 2)  # the session's service keeps them
        campaign = await world.journeys.post(
            CAMPAIGNS,
            json={"name": "all", "type": "api", "mode": "audience", "channel": "email", "templateId": "t"},
        )
        assert (await world.journeys.post(f"{CAMPAIGNS}/{campaign.json()['id']}/activate")).status_code == 200
        later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        asked = await world.journeys.post(
            "/ajo/im/executions/audience",
            json={
                "campaignId": campaign.json()["id"],
                "audience": {"id": audience},
                "schedule": {"executeAt": later},
            },
        )
        assert asked.status_code == 202, asked.text
        execution_id = uuid.UUID(asked.json()["scheduleId"])
        peers: Peers = world.app.state.runtime.state["peers"]

        async with topic_reader(topics_created, topics.MESSAGES.name) as reader:
            async with pool.acquire() as conn, conn.transaction():  # the chunk, as a worker sends it
                row = await repository.get_execution(conn, world.sandbox, execution_id, lock=True)
                assert row is not None
                await executions.send_chunk(conn, row, datetime.now(UTC), 500, peers)
            records = await reader.wait_for(ours(world.sandbox, 2), timeout_s=30)
            found = {m["profileId"]: m for m in of(records, world.sandbox)}

        assert found[known]["profile"]["person"]["name"]["firstName"] == "Grace"
        assert found[stranger]["profile"] == {}
