"""Campaigns on the real broker and database: scheduled and API-triggered campaigns
(``/v1/campaigns``), AJO's execution API (``/ajo/im/executions``), the audience members
kept from ``itinera.audiences.v1`` (as segmentation publishes them), and the message
requests that come out on ``itinera.messages.v1`` through the outbox. Each test has a
sandbox of its own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import orjson
import pytest
from fastapi import FastAPI
from jsonschema import Draft202012Validator, FormatChecker

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.kafka import topics
from itinera.common.kafka.consumer import Record
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.testing import StackInfo, client_for, eventually, topic_reader
from itinera.journeys.campaigns import executions, repository
from itinera.journeys.config import JourneysSettings
from itinera.journeys.definitions.schemas import CronSchedule, Every, Once
from itinera.journeys.schedules import first_run, next_run

CAMPAIGNS = "/v1/campaigns"
UNITARY = "/ajo/im/executions/unitary"
AUDIENCE = "/ajo/im/executions/audience"
SCHEDULES = "/ajo/im/executions/schedules"
MESSAGE_SCHEMA = Draft202012Validator(
    json.loads(
        (Path(__file__).resolve().parents[3] / "schemas/topics/messages.v1.schema.json").read_text("utf-8")
    ),
    format_checker=FormatChecker(),
)


@pytest.fixture
def sandbox() -> str:
    return f"cmp-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def api(
    journeys_app: FastAPI, journeys_settings: JourneysSettings, sandbox: str
) -> AsyncIterator[httpx.AsyncClient]:
    token = mint_token(journeys_settings, scopes=ALL_SCOPES, sandbox=sandbox)
    async with client_for(journeys_app, token) as client:
        yield client


def of(records: list[Record], sandbox: str) -> list[dict[str, Any]]:
    found = []
    for record in records:
        data = orjson.loads(record.value or b"{}")
        if data.get("sandbox") == sandbox:
            found.append(data)
    return found


def campaign_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"campaign {uuid.uuid4().hex[:8]}",
        "type": "api",
        "channel": "email",
        "templateId": "spring-sale",
    }
    return body | fields


async def live_campaign(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    """A campaign, activated; its answer."""
    created = await api.post(CAMPAIGNS, json=campaign_body(**fields))
    assert created.status_code == 201, created.text
    activated = await api.post(f"{CAMPAIGNS}/{created.json()['id']}/activate")
    assert activated.status_code == 200, activated.text
    found: dict[str, Any] = activated.json()
    return found


async def membership(producer: Producer, sandbox: str, profile: str, audience: str, status: str) -> None:
    """An audience entry or exit, as segmentation announces it."""
    data = {
        "sandbox": sandbox,
        "profileId": profile,
        "audienceId": audience,
        "status": status,
        "previousStatus": None,
        "at": datetime.now(UTC).isoformat(),
        "evaluation": "streaming",
    }
    envelope = Envelope(
        type="com.itinera.audience.membership.v1", source="/t", data=data, sandbox=sandbox, key=profile
    )
    await producer.publish(topics.AUDIENCES.name, [envelope])


async def members_of(pool: asyncpg.Pool, sandbox: str, audience: str, count: int) -> None:
    """Wait until the campaigns' consumer has ``count`` members of the audience."""

    async def recorded() -> bool:
        async with pool.acquire() as conn:
            found = await repository.members_after(conn, sandbox, audience, None, 10_000)
        return len(found) == count

    await eventually(recorded, timeout_s=30)


async def audience_of(
    producer: Producer, pool: asyncpg.Pool, sandbox: str, size: int
) -> tuple[str, list[str]]:
    """An audience of ``size`` members (and one who entered and left); its id and members."""
    audience = str(uuid.uuid4())
    members = sorted(str(uuid.uuid4()) for _ in range(size))
    for member in members:
        await membership(producer, sandbox, member, audience, "realized")
    gone = str(uuid.uuid4())
    await membership(producer, sandbox, gone, audience, "realized")
    await membership(producer, sandbox, gone, audience, "exited")
    await membership(producer, sandbox, str(uuid.uuid4()), str(uuid.uuid4()), "realized")  # another audience
    await members_of(pool, sandbox, audience, size)
    return audience, members


async def known_profile(
    producer: Producer, pool: asyncpg.Pool, sandbox: str, snapshot: dict[str, Any]
) -> str:
    """A profile the journeys service has seen (through one of its events); its id."""
    profile = str(uuid.uuid4())
    event = {"_id": str(uuid.uuid4()), "timestamp": datetime.now(UTC).isoformat(), "eventType": "page.viewed"}
    data = {"sandbox": sandbox, "profileId": profile, "event": event, "profile": snapshot}
    envelope = Envelope(
        type="com.itinera.profile.event.v1", source="/t", data=data, sandbox=sandbox, key=profile
    )
    await producer.publish(topics.PROFILE_EVENTS.name, [envelope])

    async def stored() -> bool:
        async with pool.acquire() as conn:
            found = await conn.fetchval(
                "SELECT 1 FROM profiles WHERE sandbox = $1 AND profile_id = $2", sandbox, uuid.UUID(profile)
            )
        return found is not None

    await eventually(stored, timeout_s=30)
    return profile


async def execution_status(api: httpx.AsyncClient, execution_id: str, wanted: str) -> dict[str, Any]:
    """Wait until the execution has the status; its answer."""
    found: dict[str, Any] = {}

    async def reached() -> bool:
        nonlocal found
        answer = await api.get(f"{AUDIENCE}/{execution_id}")
        found = answer.json()
        return answer.status_code == 200 and found["status"] == wanted

    await eventually(reached, timeout_s=30)
    return found


def errors_of(response: httpx.Response) -> dict[str, str]:
    return {e["path"]: e["code"] for e in response.json()["errors"]}


JANE = {
    "person": {"name": {"firstName": "Jane"}},
    "identityMap": {"Email": [{"id": "Jane@Example.com"}], "ECID": [{"id": "8211"}]},
}


class TestSchedules:
    NOW = datetime(2026, 3, 27, 10, 30, tzinfo=UTC)  # a Friday; Paris is at UTC+1 until the 29th

    def test_a_one_shot_runs_at_its_time_or_at_once_and_never_again(self) -> None:
        at = self.NOW + timedelta(hours=2)
        assert first_run(Once(frequency="once", at=at), self.NOW, None) == at
        assert first_run(Once(frequency="once"), self.NOW, None) == self.NOW
        assert next_run(Once(frequency="once", at=at), self.NOW, at, None) is None

    def test_a_cron_schedule_is_read_in_its_time_zone_across_a_daylight_saving_change(self) -> None:
        mondays = CronSchedule(frequency="cron", expression="0 9 * * MON", timeZone="Europe/Paris")
        first = first_run(mondays, self.NOW, None)
        assert first == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # 09:00 in Paris, now UTC+2
        assert next_run(mondays, self.NOW, first or self.NOW, None) == datetime(2026, 4, 6, 7, 0, tzinfo=UTC)

    def test_an_interval_counts_from_its_start_and_skips_what_was_missed(self) -> None:
        hourly = Every(frequency="every", interval=1, unit="hours", startAt=self.NOW - timedelta(minutes=90))
        assert first_run(hourly, self.NOW, None) == self.NOW + timedelta(minutes=30)
        later = self.NOW + timedelta(hours=5, minutes=10)  # the worker was away
        assert next_run(hourly, self.NOW, later, None) == self.NOW + timedelta(hours=5, minutes=30)
        daily = Every(frequency="every", interval=2, unit="days")
        assert first_run(daily, self.NOW, None) == self.NOW
        assert next_run(daily, self.NOW, self.NOW, None) == self.NOW + timedelta(days=2)

    def test_no_occurrence_comes_after_the_end(self) -> None:
        daily = Every(frequency="every", interval=1, unit="days", startAt=self.NOW)
        end = self.NOW + timedelta(days=1, hours=1)
        assert next_run(daily, self.NOW, self.NOW, end) == self.NOW + timedelta(days=1)
        assert next_run(daily, self.NOW, self.NOW + timedelta(days=1), end) is None


class TestCampaigns:
    async def test_a_campaign_is_created_listed_replaced_activated_and_stopped(
        self, api: httpx.AsyncClient
    ) -> None:
        audience = str(uuid.uuid4())
        at = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
        body = campaign_body(
            type="scheduled",
            audienceId=audience,
            schedule={"frequency": "once", "at": at.isoformat()},
            context={"code": '"SPRING25"', "name": "person.name.firstName", "offer": {"value": {"pct": 25}}},
        )
        created = await api.post(CAMPAIGNS, json=body)
        assert created.status_code == 201, created.text
        campaign = created.json()
        assert created.headers["Location"] == f"{CAMPAIGNS}/{campaign['id']}"
        assert (campaign["status"], campaign["rate"], campaign["category"], campaign["mode"]) == (
            "draft",
            5000,
            "marketing",
            None,
        )
        one = f"{CAMPAIGNS}/{campaign['id']}"
        assert (await api.get(one)).json() == campaign
        replaced = await api.put(one, json=body | {"name": "Spring sale", "rate": 100})
        assert replaced.status_code == 200, replaced.text
        assert (replaced.json()["name"], replaced.json()["rate"]) == ("Spring sale", 100)
        listed = (await api.get(CAMPAIGNS, params={"type": "scheduled"})).json()
        assert [c["id"] for c in listed["items"]] == [campaign["id"]]
        assert listed["page"]["totalCount"] == 1
        assert (await api.get(CAMPAIGNS, params={"status": "live"})).json()["items"] == []

        activated = await api.post(f"{one}/activate")
        assert activated.status_code == 200, activated.text
        assert activated.json()["status"] == "live"
        assert datetime.fromisoformat(activated.json()["nextRunAt"]) == at
        refused = await api.put(one, json=body)
        assert (refused.status_code, refused.json()["status"]) == (409, "live")
        assert (await api.post(f"{one}/activate")).status_code == 409
        stopped = await api.post(f"{one}/stop")
        assert (stopped.json()["status"], stopped.json()["nextRunAt"]) == ("stopped", None)
        assert (await api.post(f"{one}/stop")).status_code == 409

    async def test_writes_with_a_stale_tag_are_refused(self, api: httpx.AsyncClient) -> None:
        created = await api.post(CAMPAIGNS, json=campaign_body())
        one, first = f"{CAMPAIGNS}/{created.json()['id']}", created.headers["etag"]
        assert (await api.get(one)).headers["etag"] == first == created.json()["etag"]
        saved = await api.put(one, json=campaign_body(rate=100), headers={"If-Match": first})
        assert saved.status_code == 200, saved.text
        second = saved.headers["etag"]
        assert second != first
        assert (await api.put(one, json=campaign_body(), headers={"If-Match": first})).status_code == 412
        assert (await api.post(f"{one}/activate", headers={"If-Match": first})).status_code == 412
        assert (await api.get(one)).json()["status"] == "draft"
        assert (await api.post(f"{one}/activate", headers={"If-Match": second})).status_code == 200
        assert (await api.post(f"{one}/stop", headers={"If-Match": second})).status_code == 412
        live = (await api.get(one)).headers["etag"]
        assert (await api.post(f"{one}/stop", headers={"If-Match": live})).status_code == 200

    async def test_a_campaign_that_is_not_live_and_sends_no_more_can_be_deleted(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
    ) -> None:
        draft = (await api.post(CAMPAIGNS, json=campaign_body())).json()
        assert (await api.delete(f"{CAMPAIGNS}/{draft['id']}")).status_code == 204
        assert (await api.get(f"{CAMPAIGNS}/{draft['id']}")).status_code == 404

        campaign = await live_campaign(api)
        one = f"{CAMPAIGNS}/{campaign['id']}"
        refused = await api.delete(one)
        assert (refused.status_code, refused.json()["status"]) == (409, "live")
        assert (await api.post(f"{one}/stop")).status_code == 200
        await pool.execute(  # an execution still sending (as a completed campaign's last may be)
            """INSERT INTO campaign_executions (sandbox, id, campaign_id, kind, status, execute_at, due_at)
               VALUES ($1, $2, $3, 'audience', 'InProgress', now(), now() + interval '1 day')""",
            sandbox,
            uuid.uuid4(),
            uuid.UUID(campaign["id"]),
        )
        sending = await api.delete(one)
        assert (sending.status_code, sending.json()["unfinishedExecutions"]) == (409, 1)
        await pool.execute(
            "UPDATE campaign_executions SET status = 'Failed', due_at = NULL WHERE sandbox = $1", sandbox
        )
        assert (await api.delete(one)).status_code == 204
        assert not await pool.fetchval("SELECT count(*) FROM campaign_executions WHERE sandbox = $1", sandbox)

    async def test_another_sandbox_sees_nothing(
        self, api: httpx.AsyncClient, fresh: httpx.AsyncClient
    ) -> None:
        campaign = await live_campaign(api)
        assert (await fresh.get(f"{CAMPAIGNS}/{campaign['id']}")).status_code == 404
        assert (await fresh.get(f"{CAMPAIGNS}/not-an-id")).status_code == 404
        assert (await fresh.post(f"{CAMPAIGNS}/{campaign['id']}/stop")).status_code == 404


class TestRefusals:
    async def test_what_the_values_mean_is_checked_with_every_problem_and_its_path(
        self, api: httpx.AsyncClient
    ) -> None:
        body = campaign_body(
            type="scheduled",
            category="transactional",
            templateId="not a template",
            context={"broken": "person.name.firstName = ", "odd": 12, "also": {"value": 1, "more": 2}},
            schedule={"frequency": "cron", "expression": "61 * * * *", "timeZone": "Mars/Olympus"},
            rate=50_000,
        )
        refused = await api.post(CAMPAIGNS, json=body)
        assert refused.status_code == 400, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert errors_of(refused) == {
            "/templateId": "template",
            "/context/broken": "pql",
            "/context/odd": "type",
            "/context/also": "type",
            "/rate": "range",
            "/category": "transactional",
            "/audienceId": "required",
            "/schedule/expression": "cron",
            "/schedule/timeZone": "time-zone",
        }
        (pql,) = [p for p in refused.json()["problems"] if p["code"] == "pql"]
        assert pql["position"]["line"] == 1
        unitary = campaign_body(audienceId="a", schedule={"frequency": "once"})
        assert errors_of(await api.post(CAMPAIGNS, json=unitary)) == {
            "/schedule": "not-scheduled",
            "/audienceId": "unitary",
        }
        audience = campaign_body(mode="audience", category="transactional")
        assert errors_of(await api.post(CAMPAIGNS, json=audience)) == {"/category": "transactional"}
        assert (await api.get(CAMPAIGNS)).json()["items"] == []

    async def test_a_wrong_shape_is_a_422_with_body_paths(self, api: httpx.AsyncClient) -> None:
        body = campaign_body(channel="fax", rate=0, colour="blue", context={"1st": "x"})
        refused = await api.post(CAMPAIGNS, json=body)
        assert refused.status_code == 422
        paths = {e["path"] for e in refused.json()["errors"]}
        assert {"/body/channel", "/body/rate", "/body/colour"} <= paths
        assert any(p.startswith("/body/context/1st") for p in paths)
        too_early = campaign_body(type="scheduled", endAt="0001-01-01T00:00:00+14:00")
        assert {e["path"] for e in (await api.post(CAMPAIGNS, json=too_early)).json()["errors"]} == {
            "/body/endAt"
        }

    async def test_a_one_shot_time_already_past_cannot_be_activated(self, api: httpx.AsyncClient) -> None:
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        body = campaign_body(type="scheduled", audienceId="a", schedule={"frequency": "once", "at": past})
        created = await api.post(CAMPAIGNS, json=body)
        refused = await api.post(f"{CAMPAIGNS}/{created.json()['id']}/activate")
        assert refused.status_code == 400
        assert errors_of(refused) == {"/schedule/at": "past"}
        assert (await api.get(f"{CAMPAIGNS}/{created.json()['id']}")).json()["status"] == "draft"


class TestScopes:
    async def test_reads_need_journeys_read_and_writes_journeys_write(
        self, journeys_app: FastAPI, journeys_settings: JourneysSettings, api: httpx.AsyncClient, sandbox: str
    ) -> None:
        campaign = await live_campaign(api)
        calls = [
            ("POST", CAMPAIGNS, "journeys:write"),
            ("PUT", f"{CAMPAIGNS}/{campaign['id']}", "journeys:write"),
            ("POST", f"{CAMPAIGNS}/{campaign['id']}/stop", "journeys:write"),
            ("POST", UNITARY, "journeys:write"),
            ("POST", AUDIENCE, "journeys:write"),
            ("DELETE", f"{SCHEDULES}/{uuid.uuid4()}", "journeys:write"),
            ("GET", CAMPAIGNS, "journeys:read"),
            ("GET", f"{CAMPAIGNS}/{campaign['id']}/executions", "journeys:read"),
            ("GET", f"{AUDIENCE}/{uuid.uuid4()}", "journeys:read"),
            ("GET", f"{SCHEDULES}/{uuid.uuid4()}", "journeys:read"),
        ]
        for method, path, scope in calls:
            other = "journeys:read" if scope == "journeys:write" else "journeys:write"
            token = mint_token(journeys_settings, scopes=[other], sandbox=sandbox)
            async with client_for(journeys_app, token) as client:
                refused = await client.request(method, path, json={})
            assert refused.status_code == 403, (method, path)
            assert refused.json()["requiredScope"] == scope
            async with client_for(journeys_app) as anonymous:
                assert (await anonymous.request(method, path, json={})).status_code == 401
        wrong = await api.get(CAMPAIGNS, headers={"x-sandbox-name": "elsewhere"})
        assert wrong.status_code == 403


class TestUnitary:
    async def test_each_recipient_gets_one_message_with_its_context_once_per_request_id(
        self,
        api: httpx.AsyncClient,
        producer: Producer,
        pool: asyncpg.Pool,
        sandbox: str,
        infrastructure: StackInfo,
    ) -> None:
        jane = await known_profile(producer, pool, sandbox, JANE)
        campaign = await live_campaign(
            api,
            category="transactional",
            context={"name": "person.name.firstName", "shop": {"value": {"city": "Lyon"}}},
        )
        request = {
            "requestId": "order-1001",
            "campaignId": campaign["id"],
            "recipients": [
                {
                    "type": "aep",
                    "namespace": "email",
                    "userId": "jane@example.COM",
                    "context": {"order": "1001"},
                },
                {
                    "type": "external",
                    "namespace": "email",
                    "userId": "Bob@Example.com",
                    "channelData": {"emailAddress": "bob@example.com"},
                    "profile": {"person": {"name": {"firstName": "Bob"}}},
                    "context": {"order": "1002", "shop": "online"},
                },
            ],
        }
        async with topic_reader(infrastructure, topics.MESSAGES.name) as messages:
            sent = await api.post(UNITARY, json=request)
            assert sent.status_code == 202, sent.text
            answer = sent.json()
            assert (answer["requestId"], answer["createdBy"]) == ("order-1001", "developer")
            again = await api.post(UNITARY, json=request)
            assert (again.status_code, again.json()["executionId"]) == (202, answer["executionId"])
            later = await api.post(
                UNITARY, json=request | {"requestId": "order-1003", "recipients": [request["recipients"][1]]}
            )
            assert later.status_code == 202
            found = await messages.wait_for(lambda r: len(of(r, sandbox)) >= 3, timeout_s=30)
        ours = of(found, sandbox)
        assert len(ours) == 3  # the repeated request sent nothing
        for message in ours:
            MESSAGE_SCHEMA.validate(message)
        first = [m for m in ours if m["origin"]["executionId"] == answer["executionId"]]
        by_profile = {m["profileId"]: m for m in first}
        assert len(by_profile) == 2
        to_jane = by_profile[jane]
        assert to_jane["profile"] == JANE
        assert to_jane["context"] == {"name": "Jane", "shop": {"city": "Lyon"}, "order": "1001"}
        assert (to_jane["channel"], to_jane["templateId"], to_jane["category"]) == (
            "email",
            "spring-sale",
            "transactional",
        )
        assert to_jane["origin"] == {
            "kind": "campaign",
            "campaignId": campaign["id"],
            "executionId": answer["executionId"],
            "execution": "unitary",
            "requestId": "order-1001",
        }
        assert to_jane["messageId"] == executions.message_id(uuid.UUID(answer["executionId"]), jane)
        (to_bob,) = [m for m in first if m["profileId"] != jane]
        assert to_bob["profile"] == {
            "identityMap": {"Email": [{"id": "Bob@Example.com"}]},
            "person": {"name": {"firstName": "Bob"}},
            "personalEmail": {"address": "bob@example.com"},
        }
        assert to_bob["context"] == {"name": "Bob", "shop": "online", "order": "1002"}
        (bob_later,) = [m for m in ours if m["origin"]["requestId"] == "order-1003"]
        assert bob_later["profileId"] == to_bob["profileId"]  # an identity always gets the same id

    async def test_a_refused_call_names_the_problem_in_ajo_s_shape(self, api: httpx.AsyncClient) -> None:
        campaign = await live_campaign(api)
        jane = {"type": "aep", "namespace": "Email", "userId": "jane@example.com"}
        body = {"requestId": "r-1", "campaignId": campaign["id"], "recipients": [jane]}
        assert (await api.post(UNITARY, json=body)).status_code == 202
        reused = await api.post(UNITARY, json=body | {"recipients": [jane | {"context": {"x": "y"}}]})
        assert reused.status_code == 400
        assert errors_of(reused) == {"/requestId": "request-reused"}
        assert reused.json()["report"] == {
            "additionalContext": {"campaignId": campaign["id"], "requestId": "r-1"}
        }
        twice = body | {"requestId": "r-2", "recipients": [jane, jane | {"userId": "JANE@example.com"}]}
        assert errors_of(await api.post(UNITARY, json=twice)) == {"/recipients/1": "duplicate"}
        unknown = await api.post(UNITARY, json=body | {"campaignId": str(uuid.uuid4())})
        assert errors_of(unknown) == {"/campaignId": "unknown-campaign"}
        audience = await live_campaign(api, mode="audience")
        assert errors_of(await api.post(UNITARY, json=body | {"campaignId": audience["id"]})) == {
            "/campaignId": "mode"
        }
        draft = (await api.post(CAMPAIGNS, json=campaign_body())).json()
        assert errors_of(await api.post(UNITARY, json=body | {"campaignId": draft["id"]})) == {
            "/campaignId": "not-live"
        }
        shapeless = await api.post(UNITARY, json=body | {"recipients": []})
        assert shapeless.status_code == 422
        assert [e["path"] for e in shapeless.json()["errors"]] == ["/body/recipients"]
        unstorable = body | {"requestId": "r-3", "recipients": [jane | {"context": {"x": "a\u0000b"}}]}
        assert errors_of(await api.post(UNITARY, json=unstorable)) == {"/recipients/0/context/x": "string"}


class TestAudienceExecutions:
    async def test_every_member_gets_exactly_one_message_and_the_status_counts_them(
        self,
        api: httpx.AsyncClient,
        producer: Producer,
        pool: asyncpg.Pool,
        sandbox: str,
        infrastructure: StackInfo,
    ) -> None:
        audience, members = await audience_of(producer, pool, sandbox, 7)
        campaign = await live_campaign(
            api, mode="audience", channel="push", context={"name": "person.name.firstName"}, rate=3
        )
        async with topic_reader(infrastructure, topics.MESSAGES.name) as messages:
            body = {"campaignId": campaign["id"], "audience": {"id": audience}, "context": {"promo": "P7"}}
            started = await api.post(AUDIENCE, json=body)
            assert started.status_code == 202, started.text
            execution_id = started.json()["executionId"]
            status = await execution_status(api, execution_id, "Succeeded")
            found = await messages.wait_for(lambda r: len(of(r, sandbox)) >= len(members), timeout_s=30)
        assert status == {
            "executionId": execution_id,
            "campaignId": campaign["id"],
            "audienceId": audience,
            "status": "Succeeded",
            "targetedProfileCount": 7,
            "createdAt": status["createdAt"],
        }
        ours = of(found, sandbox)
        assert sorted(m["profileId"] for m in ours) == members
        for message in ours:
            MESSAGE_SCHEMA.validate(message)
            assert message["messageId"] == executions.message_id(
                uuid.UUID(execution_id), message["profileId"]
            )
            assert (message["profile"], message["context"]) == ({}, {"name": None, "promo": "P7"})
            assert message["origin"]["audienceId"] == audience
        (listed,) = (await api.get(f"{CAMPAIGNS}/{campaign['id']}/executions")).json()["items"]
        assert (listed["kind"], listed["status"], listed["targetedProfileCount"]) == (
            "audience",
            "Succeeded",
            7,
        )

    async def test_an_execution_resumes_from_its_cursor_after_a_failed_chunk(
        self,
        api: httpx.AsyncClient,
        producer: Producer,
        pool: asyncpg.Pool,
        sandbox: str,
        infrastructure: StackInfo,
    ) -> None:
        audience, members = await audience_of(producer, pool, sandbox, 5)
        campaign = await live_campaign(api, mode="audience", audienceId=audience, rate=2)
        sentinel = await live_campaign(api)
        later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        async with topic_reader(infrastructure, topics.MESSAGES.name) as messages:
            asked = await api.post(
                AUDIENCE, json={"campaignId": campaign["id"], "schedule": {"executeAt": later}}
            )
            assert asked.status_code == 202, asked.text
            schedule_id = asked.json()["scheduleId"]
            assert asked.json()["scheduleStatus"] == "Scheduled"
            execution_id = uuid.UUID(schedule_id)
            far = datetime.now(UTC) + timedelta(days=2)
            async with pool.acquire() as conn:
                # The first chunk is sent as a worker would; the workers are kept away after it.
                async with conn.transaction():
                    row = await repository.get_execution(conn, sandbox, execution_id, lock=True)
                    assert row is not None
                    assert not await executions.send_chunk(conn, row, datetime.now(UTC), 500)
                    await conn.execute(
                        "UPDATE campaign_executions SET due_at = $3 WHERE sandbox = $1 AND id = $2",
                        sandbox,
                        execution_id,
                        far,
                    )

                # The second fails before its transaction commits: nothing of it remains.
                async def crashing_chunk() -> None:
                    async with conn.transaction():
                        row = await repository.get_execution(conn, sandbox, execution_id, lock=True)
                        assert row is not None
                        await executions.send_chunk(conn, row, datetime.now(UTC), 500)
                        raise RuntimeError("crash")

                with pytest.raises(RuntimeError, match="crash"):
                    await crashing_chunk()
                row = await repository.get_execution(conn, sandbox, execution_id)
                assert row is not None
                assert (row["status"], row["targeted"], str(row["cursor"])) == ("InProgress", 2, members[1])
                status = (await api.get(f"{AUDIENCE}/{schedule_id}")).json()
                assert (status["status"], status["targetedProfileCount"]) == ("InProgress", 2)
                await conn.execute(
                    "UPDATE campaign_executions SET due_at = now() WHERE sandbox = $1 AND id = $2",
                    sandbox,
                    execution_id,
                )
            done = await execution_status(api, schedule_id, "Succeeded")
            assert done["targetedProfileCount"] == 5
            # The relay publishes the outbox in order: once this last message is on the
            # topic, so is everything the execution wrote before it.
            last = {"type": "external", "namespace": "Email", "userId": "last@example.com"}
            ended = await api.post(
                UNITARY, json={"requestId": "end", "campaignId": sentinel["id"], "recipients": [last]}
            )
            assert ended.status_code == 202

            def all_read(records: list[Record]) -> bool:
                ours = of(records, sandbox)
                last_seen = any(m["origin"].get("requestId") == "end" for m in ours)
                return last_seen and sum(m["origin"]["executionId"] == schedule_id for m in ours) >= len(
                    members
                )

            found = await messages.wait_for(all_read, timeout_s=30)
        sent = [m for m in of(found, sandbox) if m["origin"]["executionId"] == schedule_id]
        assert sorted(m["profileId"] for m in sent) == members  # each once: none lost, none twice
        schedule = (await api.get(f"{SCHEDULES}/{schedule_id}")).json()
        assert (schedule["scheduleStatus"], schedule["executionDetails"]["status"]) == (
            "Triggered",
            "Succeeded",
        )

    async def test_an_execution_asked_for_later_can_be_deleted_before_it_starts(
        self, api: httpx.AsyncClient
    ) -> None:
        campaign = await live_campaign(api, mode="audience", audienceId="vip")
        later = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
        body = {
            "requestId": "q-1",
            "campaignId": campaign["id"],
            "schedule": {"executeAt": later.isoformat()},
        }
        asked = await api.post(AUDIENCE, json=body)
        assert asked.status_code == 202
        schedule = asked.json()
        assert schedule == {
            "scheduleId": schedule["scheduleId"],
            "audience": {"id": "vip"},
            "campaignId": campaign["id"],
            "executeAt": later.isoformat().replace("+00:00", "Z"),
            "scheduleStatus": "Scheduled",
            "executionDetails": None,
        }
        assert (await api.post(AUDIENCE, json=body)).json() == schedule  # the same requestId
        assert (await api.get(f"{AUDIENCE}/{schedule['scheduleId']}")).status_code == 404
        deleted = await api.delete(f"{SCHEDULES}/{schedule['scheduleId']}")
        assert (deleted.status_code, deleted.json()) == (200, {})
        assert (await api.get(f"{SCHEDULES}/{schedule['scheduleId']}")).status_code == 404
        assert (await api.delete(f"{SCHEDULES}/{schedule['scheduleId']}")).status_code == 404
        no_audience = await live_campaign(api, mode="audience")
        refused = await api.post(AUDIENCE, json={"campaignId": no_audience["id"]})
        assert errors_of(refused) == {"/audience/id": "required"}

    async def test_stopping_a_campaign_fails_its_unfinished_executions(self, api: httpx.AsyncClient) -> None:
        campaign = await live_campaign(api, mode="audience", audienceId="vip")
        later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        asked = await api.post(
            AUDIENCE, json={"campaignId": campaign["id"], "schedule": {"executeAt": later}}
        )
        assert (await api.post(f"{CAMPAIGNS}/{campaign['id']}/stop")).status_code == 200
        details = (await api.get(f"{SCHEDULES}/{asked.json()['scheduleId']}")).json()["executionDetails"]
        assert details["status"] == "Failed"
        (listed,) = (await api.get(f"{CAMPAIGNS}/{campaign['id']}/executions")).json()["items"]
        assert listed["reason"] == "campaign stopped"
        refused = await api.post(AUDIENCE, json={"campaignId": campaign["id"]})
        assert errors_of(refused) == {"/campaignId": "not-live"}


class TestScheduledCampaigns:
    async def test_a_one_shot_campaign_fires_at_its_time_and_completes(
        self,
        api: httpx.AsyncClient,
        producer: Producer,
        pool: asyncpg.Pool,
        sandbox: str,
        infrastructure: StackInfo,
    ) -> None:
        audience, members = await audience_of(producer, pool, sandbox, 3)
        at = datetime.now(UTC) + timedelta(seconds=2)
        async with topic_reader(infrastructure, topics.MESSAGES.name) as messages:
            campaign = await live_campaign(
                api,
                type="scheduled",
                audienceId=audience,
                schedule={"frequency": "once", "at": at.isoformat()},
                context={"code": '"SPRING25"'},
            )
            assert datetime.fromisoformat(campaign["nextRunAt"]) == at

            async def completed() -> bool:
                return bool((await api.get(f"{CAMPAIGNS}/{campaign['id']}")).json()["status"] == "completed")

            await eventually(completed, timeout_s=30)
            found = await messages.wait_for(lambda r: len(of(r, sandbox)) >= 3, timeout_s=30)
        ours = of(found, sandbox)
        assert sorted(m["profileId"] for m in ours) == members
        assert {m["context"]["code"] for m in ours} == {"SPRING25"}
        assert {m["origin"]["execution"] for m in ours} == {"scheduled"}
        requested = min(datetime.fromisoformat(m["requestedAt"]) for m in ours)
        assert requested >= at
        (execution,) = (await api.get(f"{CAMPAIGNS}/{campaign['id']}/executions")).json()["items"]
        assert (execution["kind"], execution["targetedProfileCount"]) == ("scheduled", 3)
        assert datetime.fromisoformat(execution["executeAt"]) == at
        assert (await api.get(f"{CAMPAIGNS}/{campaign['id']}")).json()["nextRunAt"] is None

    async def test_a_recurring_campaign_fires_and_moves_to_its_next_occurrence(
        self, api: httpx.AsyncClient
    ) -> None:
        start = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
        every = {"frequency": "every", "interval": 1, "unit": "hours", "startAt": start.isoformat()}
        campaign = await live_campaign(api, type="scheduled", audienceId="nobody", schedule=every)
        assert datetime.fromisoformat(campaign["nextRunAt"]) == start

        async def fired() -> bool:
            found = (await api.get(f"{CAMPAIGNS}/{campaign['id']}/executions")).json()["items"]
            return [e["status"] for e in found] == ["Succeeded"]

        await eventually(fired, timeout_s=30)
        after = (await api.get(f"{CAMPAIGNS}/{campaign['id']}")).json()
        assert after["status"] == "live"
        assert datetime.fromisoformat(after["nextRunAt"]) == start + timedelta(hours=1)

        mondays = {"frequency": "cron", "expression": "0 9 * * MON", "timeZone": "Europe/Paris"}
        weekly = await live_campaign(api, type="scheduled", audienceId="nobody", schedule=mondays)
        next_at = datetime.fromisoformat(weekly["nextRunAt"]).astimezone(ZoneInfo("Europe/Paris"))
        assert (next_at.weekday(), next_at.hour, next_at.minute) == (0, 9, 0)
        assert timedelta(0) < next_at - datetime.now(UTC) <= timedelta(days=7)
