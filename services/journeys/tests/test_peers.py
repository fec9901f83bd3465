"""What journeys asks the segmentation and profile services, each a real one in a process
of its own, with tokens journeys mints itself: whether the audiences a journey or a
campaign names exist, when it is published or activated and again once it is live (an
audience deleted afterwards), and the profiles of recipients this service was never told
about.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.devstack import free_port
from itinera.common.kafka import topics
from itinera.common.kafka.consumer import Record
from itinera.common.kafka.producer import Producer
from itinera.common.testing import (
    StackInfo,
    client_for,
    eventually,
    running,
    serving,
    stored_profile,
    topic_reader,
)
from itinera.journeys.app import SERVICE
from itinera.journeys.audiences import checks
from itinera.journeys.audiences import repository as audience_answers
from itinera.journeys.campaigns import executions, repository
from itinera.journeys.config import JourneysSettings
from itinera.journeys.peers import Peers

from .test_campaigns import members_of, membership, of

AUDIENCES = "/data/core/ups/audiences"
DEFINITIONS = "/data/core/ups/segment/definitions"
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

    async def delete(self, audience_id: str, path: str = AUDIENCES) -> None:
        """Deletes the audience in the segmentation service (through ``path``: AEP's
        audiences or its segment definitions)."""
        deleted = await self.segmentation.delete(f"{path}/{audience_id}")
        assert deleted.is_success, deleted.text

    async def live_journey(self, body: dict[str, Any]) -> str:
        """A journey published from ``body``; its id."""
        created = await self.journeys.post(JOURNEYS, json=body)
        assert created.status_code == 201, created.text
        journey_id = str(created.json()["id"])
        published = await self.journeys.post(f"{JOURNEYS}/{journey_id}/versions/1/publish")
        assert published.status_code == 200, published.text
        return journey_id

    @property
    def pool(self) -> asyncpg.Pool:
        found: asyncpg.Pool = self.app.state.runtime.pool
        return found

    async def check(self) -> checks.Findings:
        """The periodic check of the audiences named, as a worker runs it, for this sandbox."""
        found = await checks.check(self.pool, self.app.state.runtime.state["peers"], [self.sandbox])
        assert found is not None
        return found

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


def with_missing_audiences(sandbox: str, kind: str) -> float:
    """The gauge of live journeys or campaigns (``kind``) naming an audience found missing."""
    found = REGISTRY.get_sample_value(
        "itinera_journeys_with_missing_audiences", {"sandbox": sandbox, "kind": kind}
    )
    return found or 0.0


def tomorrow() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).isoformat()


class TestAudiencesDeletedOnceLive:
    async def test_a_live_journey_whose_audience_is_deleted_keeps_running_and_says_so(
        self, world: World, caplog: pytest.LogCaptureFixture
    ) -> None:
        kept, doomed = await world.audience(), await world.audience()
        journey_id = await world.live_journey(journey(kept, doomed))
        assert (await world.check()).missing == {world.sandbox: set()}

        await world.delete(doomed)
        with caplog.at_level(logging.WARNING, logger=checks.__name__):
            found = await world.check()

        assert found.missing == {world.sandbox: {doomed}}
        version = (await world.journeys.get(f"{JOURNEYS}/{journey_id}/versions/1")).json()
        assert version["status"] == "live"
        (warning,) = version["warnings"]
        assert (warning["path"], warning["code"], warning["audienceId"]) == (
            "/exitCriteria/0/audienceId",
            "undefined-audience",
            doomed,
        )
        assert warning["noticedAt"] is not None
        summary = (await world.journeys.get(f"{JOURNEYS}/{journey_id}")).json()
        assert (summary["status"], summary["warnings"]) == ("live", [warning | {"version": 1}])
        assert with_missing_audiences(world.sandbox, "journey") == 1
        (logged,) = [
            r.getMessage()
            for r in caplog.records
            if r.name == checks.__name__ and r.levelno == logging.WARNING
        ]
        assert doomed in logged
        assert journey_id in logged

        await world.check()
        again = (await world.journeys.get(f"{JOURNEYS}/{journey_id}/versions/1")).json()["warnings"]
        assert [w["noticedAt"] for w in again] == [warning["noticedAt"]]

    async def test_a_journey_whose_new_version_names_an_audience_that_exists_is_clear(
        self, world: World
    ) -> None:
        kept, doomed = await world.audience(), await world.audience()
        journey_id = await world.live_journey(journey(kept, doomed))
        await world.delete(doomed, DEFINITIONS)
        await world.check()
        assert with_missing_audiences(world.sandbox, "journey") == 1

        replaced = await world.journeys.put(
            f"{JOURNEYS}/{journey_id}", json=journey(kept, await world.audience())
        )
        assert replaced.status_code == 200, replaced.text
        published = await world.journeys.post(f"{JOURNEYS}/{journey_id}/versions/2/publish")
        assert published.status_code == 200, published.text
        await world.check()

        assert (await world.journeys.get(f"{JOURNEYS}/{journey_id}")).json()["warnings"] == []
        assert (await world.journeys.get(f"{JOURNEYS}/{journey_id}/versions/2")).json()["warnings"] == []
        assert with_missing_audiences(world.sandbox, "journey") == 0

    async def test_an_audience_found_again_is_cleared(self, world: World) -> None:
        kept, restored = await world.audience(), await world.audience()
        journey_id = await world.live_journey(journey(kept, restored))
        # As a check would have recorded it while the segmentation service had lost the
        # audience (restored since, from a backup: its id cannot be made again otherwise).
        async with world.pool.acquire() as conn, conn.transaction():
            await audience_answers.record(conn, world.sandbox, {restored: False}, datetime.now(UTC))
        await checks.refresh_metric(world.pool)
        assert len((await world.journeys.get(f"{JOURNEYS}/{journey_id}")).json()["warnings"]) == 1
        assert with_missing_audiences(world.sandbox, "journey") == 1

        found = await world.check()

        assert found.missing == {world.sandbox: set()}
        assert (await world.journeys.get(f"{JOURNEYS}/{journey_id}")).json()["warnings"] == []
        assert with_missing_audiences(world.sandbox, "journey") == 0

    async def test_a_recurring_campaign_whose_audience_is_deleted_stays_live_and_its_runs_fail(
        self, world: World, pool: asyncpg.Pool
    ) -> None:
        audience = await world.audience()
        created = await world.journeys.post(
            CAMPAIGNS,
            json={
                "name": "daily",
                "type": "scheduled",
                "channel": "email",
                "templateId": "daily",
                "audienceId": audience,
                "schedule": {"frequency": "every", "interval": 1, "unit": "days", "startAt": tomorrow()},
            },
        )
        campaign_id = created.json()["id"]
        assert (await world.journeys.post(f"{CAMPAIGNS}/{campaign_id}/activate")).status_code == 200
        await world.delete(audience)
        await world.check()

        campaign = (await world.journeys.get(f"{CAMPAIGNS}/{campaign_id}")).json()
        assert campaign["status"] == "live"
        assert [(w["path"], w["code"], w["audienceId"]) for w in campaign["warnings"]] == [
            ("/audienceId", "undefined-audience", audience)
        ]
        assert with_missing_audiences(world.sandbox, "campaign") == 1

        async with pool.acquire() as conn:  # its next occurrence comes (the session's workers run it)
            await conn.execute(
                "UPDATE campaigns SET next_run_at = now() WHERE sandbox = $1 AND id = $2",
                world.sandbox,
                uuid.UUID(campaign_id),
            )

        async def ended() -> bool:
            answer = await world.journeys.get(f"{CAMPAIGNS}/{campaign_id}/executions")
            return any(e["status"] != "InProgress" for e in answer.json()["items"])

        await eventually(ended, timeout_s=30)
        (execution,) = (await world.journeys.get(f"{CAMPAIGNS}/{campaign_id}/executions")).json()["items"]
        assert (execution["status"], execution["targetedProfileCount"]) == ("Failed", 0)
        assert execution["reason"].startswith("audience gone: ")
        assert audience in execution["reason"]
        after = (await world.journeys.get(f"{CAMPAIGNS}/{campaign_id}")).json()
        assert after["status"] == "live"
        assert after["nextRunAt"] is not None

    async def test_a_journey_reading_a_deleted_audience_records_why_its_read_failed(
        self, world: World, pool: asyncpg.Pool
    ) -> None:
        audience = await world.audience()
        schedule = {"frequency": "every", "interval": 1, "unit": "days", "startAt": tomorrow()}
        journey_id = await world.live_journey(
            {
                "name": "daily read",
                "nodes": [
                    {
                        "id": "read",
                        "type": "readAudience",
                        "audienceId": audience,
                        "schedule": schedule,
                        "next": "hi",
                    },
                    {"id": "hi", "type": "message", "channel": "email", "templateId": "hello"},
                ],
            }
        )
        await world.delete(audience)
        await world.check()

        async def scheduled() -> bool:  # the session's workers give the live version its schedule
            async with pool.acquire() as conn:
                moved = await conn.execute(
                    """UPDATE read_schedules SET next_run_at = now()
                        WHERE sandbox = $1 AND journey_id = $2 AND next_run_at > now()""",
                    world.sandbox,
                    uuid.UUID(journey_id),
                )
            return bool(moved == "UPDATE 1")

        await eventually(scheduled, timeout_s=30)

        async def read() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = (await world.journeys.get(f"{JOURNEYS}/{journey_id}/reads")).json()[
                "items"
            ]
            return found

        async def ended() -> bool:
            return [r["status"] for r in await read()] == ["failed"]

        await eventually(ended, timeout_s=30)
        (failed,) = await read()
        assert (failed["audienceId"], failed["membersRead"]) == (audience, 0)
        assert failed["reason"].startswith("audience gone: ")
        version = (await world.journeys.get(f"{JOURNEYS}/{journey_id}/versions/1")).json()
        assert version["status"] == "live"
        assert [w["audienceId"] for w in version["warnings"]] == [audience]


class TestReadsWithoutTheSegmentationService:
    async def test_a_draft_reports_what_the_segmentation_service_last_answered(self, world: World) -> None:
        kept, never = await world.audience(), str(uuid.uuid4())
        created = await world.journeys.post(JOURNEYS, json=journey(kept, never))
        draft = f"{JOURNEYS}/{created.json()['id']}/versions/1"

        before = (await world.journeys.get(draft)).json()
        assert before["problems"] == []
        assert {c["audienceId"]: c["found"] for c in before["audienceChecks"]} == {kept: None, never: None}

        refused = await world.journeys.post(f"{JOURNEYS}/{created.json()['id']}/versions/1/publish")
        assert problems(refused) == {"/exitCriteria/0/audienceId": "undefined-audience"}

        after = (await world.journeys.get(draft)).json()
        (problem,) = after["problems"]
        assert (problem["path"], problem["code"]) == ("/exitCriteria/0/audienceId", "undefined-audience")
        assert problem["checkedAt"] is not None
        assert {c["audienceId"]: c["found"] for c in after["audienceChecks"]} == {kept: True, never: False}

    async def test_an_unreachable_segmentation_service_marks_nothing_missing_and_drafts_still_answer(
        self, world: World
    ) -> None:
        kept, other, unasked = await world.audience(), await world.audience(), await world.audience()
        live_id = await world.live_journey(journey(kept, other))
        drafted = await world.journeys.post(JOURNEYS, json=journey(kept, unasked))
        draft = f"{JOURNEYS}/{drafted.json()['id']}/versions/1"
        settings: JourneysSettings = world.app.state.settings
        down = settings.model_copy(update={"segmentation_service_url": f"http://127.0.0.1:{free_port()}"})
        token = mint_token(down, scopes=ALL_SCOPES, sandbox=world.sandbox)

        async with running(SERVICE.create_app("api", down)) as app, client_for(app, token) as api:
            found = await checks.check(
                app.state.runtime.pool, app.state.runtime.state["peers"], [world.sandbox]
            )
            assert found is not None
            assert (found.missing, set(found.unanswered)) == ({}, {world.sandbox})
            assert "segmentation" in found.unanswered[world.sandbox]

            read = await api.get(draft)
            assert read.status_code == 200, read.text
            assert read.json()["problems"] == []
            known = {c["audienceId"]: c["found"] for c in read.json()["audienceChecks"]}
            assert known == {kept: True, unasked: None}  # kept: when the live journey was published
            assert (await api.get(f"{JOURNEYS}/{live_id}/versions/1")).json()["warnings"] == []
            publishing = await api.post(f"{draft}/publish")
            assert publishing.status_code == 503, publishing.text

        assert with_missing_audiences(world.sandbox, "journey") == 0

    async def test_another_service_at_the_segmentation_url_marks_nothing_missing(
        self, world: World, profile_url: str
    ) -> None:
        named = await world.audience()
        live_id = await world.live_journey(journey(named, named))
        settings: JourneysSettings = world.app.state.settings
        wrong = settings.model_copy(update={"segmentation_service_url": profile_url})  # answers 404

        async with running(SERVICE.create_app("api", wrong)) as app:
            found = await checks.check(
                app.state.runtime.pool, app.state.runtime.state["peers"], [world.sandbox]
            )
        assert found is not None
        assert (found.missing, set(found.unanswered)) == ({}, {world.sandbox})
        assert "is it the segmentation service?" in found.unanswered[world.sandbox]
        assert (await world.journeys.get(f"{JOURNEYS}/{live_id}/versions/1")).json()["warnings"] == []


class TestAnswersOfCalls:
    async def test_an_execution_that_finds_its_audience_clears_an_older_answer_that_it_was_missing(
        self, world: World
    ) -> None:
        audience = await world.audience()
        async with world.pool.acquire() as conn, conn.transaction():  # as a check while it was lost
            await audience_answers.record(conn, world.sandbox, {audience: False}, datetime.now(UTC))
        api = await world.journeys.post(
            CAMPAIGNS,
            json={"name": "api", "type": "api", "mode": "audience", "channel": "email", "templateId": "t"},
        )
        assert (await world.journeys.post(f"{CAMPAIGNS}/{api.json()['id']}/activate")).status_code == 200

        execution = await world.journeys.post(
            "/ajo/im/executions/audience", json={"campaignId": api.json()["id"], "audience": {"id": audience}}
        )

        assert execution.status_code in (200, 201, 202), execution.text
        async with world.pool.acquire() as conn:
            assert await audience_answers.missing(conn, world.sandbox, audience) is None
