"""Schedules (AEP's /data/core/ups/config/schedules): a segment job every day at a set
time, UTC; and the segment job that saving a rule creates. Each test has a sandbox of
its own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from itinera.common.auth import mint_token
from itinera.common.projection import Plan
from itinera.common.testing import client_for, eventually
from itinera.segmentation.config import SegmentationSettings
from itinera.segmentation.projection import repository as projection
from itinera.segmentation.schedules import cron
from itinera.segmentation.schedules.service import fire_due

DEFINITIONS = "/data/core/ups/segment/definitions"
JOBS = "/data/core/ups/segment/jobs"
SCHEDULES = "/data/core/ups/config/schedules"
FRENCH = 'homeAddress.countryCode = "FR"'
MIDNIGHT = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)  # a Saturday


async def audience(api: httpx.AsyncClient, rule: str = FRENCH, *, batch: bool = True) -> str:
    body: dict[str, Any] = {
        "name": f"audience {uuid.uuid4().hex[:8]}",
        "expression": {"type": "PQL", "format": "pql/text", "value": rule},
        "schema": {"name": "_xdm.context.profile"},
    }
    if not batch:
        body["evaluationInfo"] = {"batch": {"enabled": False}, "continuous": {"enabled": True}}
    response = await api.post(DEFINITIONS, json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def schedule(api: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    body = {
        "name": "daily",
        "type": "batch_segmentation",
        "properties": {"segments": ["*"]},
        "schedule": "0 30 13 * * ?",
        **fields,
    }
    return await api.post(SCHEDULES, json=body)


async def jobs_of(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await api.get(JOBS)
    assert response.status_code == 200, response.text
    children: list[dict[str, Any]] = response.json()["children"]
    return children


def problems(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 400, response.text
    return {e["path"]: e["code"] for e in response.json()["errors"]}


class TestCron:
    def test_a_daily_expression_fires_every_day_at_its_time_in_utc(self) -> None:
        daily = cron.parse("0 30 13 * * ?")
        assert daily.next_after(MIDNIGHT) == MIDNIGHT.replace(hour=13, minute=30)
        assert daily.next_after(MIDNIGHT.replace(hour=13, minute=30)) == datetime(
            2026, 11, 29, 13, 30, tzinfo=UTC
        )

    def test_days_of_the_week_and_of_the_month_months_and_years_narrow_it(self) -> None:
        assert cron.parse("0 0 2 ? * MON-FRI").next_after(MIDNIGHT) == datetime(2026, 11, 30, 2, tzinfo=UTC)
        assert cron.parse("0 0 2 ? * 1").next_after(MIDNIGHT) == datetime(
            2026, 11, 29, 2, tzinfo=UTC
        )  # Sunday
        assert cron.parse("0 0 2 1,15 * ?").next_after(MIDNIGHT) == datetime(2026, 12, 1, 2, tzinfo=UTC)
        assert cron.parse("0 0 2 */10 JAN ?").next_after(MIDNIGHT) == datetime(2027, 1, 1, 2, tzinfo=UTC)
        assert cron.parse("0 0 2 29 FEB ? *").next_after(MIDNIGHT) == datetime(2028, 2, 29, 2, tzinfo=UTC)
        assert cron.parse("0 0 2 * * ? 2025").next_after(MIDNIGHT) is None
        assert cron.parse("0 0 2 31 2 ?").next_after(MIDNIGHT) is None

    @pytest.mark.parametrize(
        ("expression", "words"),
        [
            ("0 */5 13 * * ?", "minutes: '*/5' must be one number"),
            ("0 0 24 * * ?", "hours: 24 is not from 0 to 23"),
            ("0 0 1 L * ?", "'L'"),
            ("0 0 1 15W * ?", "'W'"),
            ("0 0 1 ? * 6#3", "'#'"),
            ("0 0 1 1 * MON", "cannot both be given"),
            ("0 0 1 * *", "6 or 7 fields"),
            ("0 0 1 * 13 ?", "month: 13 is not from 1 to 12"),
            ("0 0 1 20-10 * ?", "ends before it starts"),
        ],
    )
    def test_what_is_not_a_daily_schedule_is_refused_with_the_reason(
        self, expression: str, words: str
    ) -> None:
        with pytest.raises(cron.CronError, match=words.replace("*", r"\*").replace("(", r"\(")):
            cron.parse(expression)


class TestScheduleApi:
    async def test_a_schedule_is_created_inactive_read_listed_changed_and_deleted(
        self, api: httpx.AsyncClient
    ) -> None:
        created = await schedule(api)
        assert created.status_code == 200, created.text
        body = created.json()
        assert body["state"] == "inactive"
        assert body["properties"] == {"segments": ["*"]}
        assert "nextRunTime" not in body["itinera"]
        one = f"{SCHEDULES}/{body['id']}"
        assert (await api.get(one)).json() == body

        listing = (await api.get(SCHEDULES)).json()
        assert listing["_page"] == {"totalCount": 1, "pageSize": 1}
        assert [s["id"] for s in listing["children"]] == [body["id"]]

        changed = await api.patch(
            one,
            json=[
                {"op": "add", "path": "/state", "value": "active"},
                {"op": "add", "path": "/schedule", "value": "0 0 2 * * ?"},
            ],
        )
        assert changed.status_code == 204, changed.text
        after = (await api.get(one)).json()
        assert (after["state"], after["schedule"]) == ("active", "0 0 2 * * ?")
        next_run = datetime.fromisoformat(after["itinera"]["nextRunTime"])
        assert (next_run.hour, next_run.minute, next_run.second) == (2, 0, 0)
        assert timedelta(0) < next_run - datetime.now(UTC) <= timedelta(days=1)

        assert (await api.delete(one)).status_code == 204
        assert (await api.get(one)).status_code == 404
        assert (await api.delete(one)).status_code == 404

    async def test_every_problem_of_a_schedule_is_reported_with_its_path(
        self, api: httpx.AsyncClient
    ) -> None:
        french = await audience(api)
        bad = await schedule(
            api,
            type="export",
            properties={"segments": [french, str(uuid.uuid4()), "not an id"]},
            schedule="0 */5 * * * ?",
        )
        assert problems(bad) == {
            "/type": "enum",
            "/properties/segments/1": "exists",
            "/properties/segments/2": "exists",
            "/schedule": "cron",
        }
        assert problems(await schedule(api, properties={"segments": ["*", french]})) == {
            "/properties/segments": "every"
        }
        assert problems(await schedule(api, schedule="0 0 2 31 2 ?")) == {"/schedule": "cron"}
        assert (await schedule(api, state="paused")).status_code == 422

        one = f"{SCHEDULES}/{(await schedule(api)).json()['id']}"
        refused = await api.patch(
            one,
            json=[
                {"op": "add", "path": "/state", "value": "on"},
                {"op": "add", "path": "/schedule", "value": "* * * * * ?"},
            ],
        )
        assert problems(refused) == {"/0/value": "enum", "/1/value": "cron"}
        assert (await api.get(one)).json()["state"] == "inactive"  # nothing applied
        assert (await api.patch(one, json=[{"op": "remove", "path": "/state"}])).status_code == 422

    async def test_reading_needs_audiences_read_and_writing_audiences_write(
        self, segmentation_app: FastAPI, segmentation_settings: SegmentationSettings
    ) -> None:
        token = mint_token(segmentation_settings, scopes=["audiences:read"])
        async with client_for(segmentation_app, token) as reader:
            assert (await reader.get(SCHEDULES)).status_code == 200
            assert (await schedule(reader)).status_code == 403
            assert (await reader.delete(f"{SCHEDULES}/{uuid.uuid4()}")).status_code == 403


class TestFiring:
    async def test_an_active_schedule_fires_at_its_time_creating_a_job_over_every_batch_audience(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
    ) -> None:
        french = await audience(api)
        german = await audience(api, 'homeAddress.countryCode = "DE"')
        await audience(api, 'homeAddress.countryCode = "IT"', batch=False)
        profile = str(uuid.uuid4())
        async with pool.acquire() as conn, conn.transaction():
            await projection.apply(
                conn, sandbox, Plan(profiles={profile: {"homeAddress": {"countryCode": "FR"}}})
            )
        soon = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
        created = await schedule(
            api, schedule=f"{soon.second} {soon.minute} {soon.hour} * * ?", state="active"
        )
        assert created.status_code == 200, created.text
        one = f"{SCHEDULES}/{created.json()['id']}"

        async def fired() -> bool:
            return "lastJobId" in (await api.get(one)).json()["itinera"]

        await eventually(fired, timeout_s=30)
        after = (await api.get(one)).json()
        assert datetime.fromisoformat(after["itinera"]["nextRunTime"]) - soon == timedelta(days=1)
        job_id = after["itinera"]["lastJobId"]

        async def succeeded() -> bool:
            return bool((await api.get(f"{JOBS}/{job_id}")).json()["status"] == "SUCCEEDED")

        await eventually(succeeded, timeout_s=30)
        job = (await api.get(f"{JOBS}/{job_id}")).json()
        assert [s["segmentId"] for s in job["segments"]] == [french, german]  # batch ones only
        assert job["itinera"]["trigger"] == "scheduled"
        assert job["itinera"]["scheduleId"] == created.json()["id"]
        assert job["metrics"]["segmentedProfileCounter"] == {french: 1, german: 0}

    async def test_an_occurrence_fires_once_however_late_and_skips_deleted_audiences(
        self, api: httpx.AsyncClient, pool: asyncpg.Pool
    ) -> None:
        french, german = await audience(api), await audience(api, 'homeAddress.countryCode = "DE"')
        created = (await schedule(api, properties={"segments": [french, german]}, state="active")).json()
        due = datetime.fromisoformat(created["itinera"]["nextRunTime"])
        assert (await api.delete(f"{DEFINITIONS}/{german}")).status_code == 200
        three_days_late = due + timedelta(days=3, minutes=1)
        async with pool.acquire() as conn, conn.transaction():
            assert await fire_due(conn, three_days_late, limit=1000) >= 1
        async with pool.acquire() as conn, conn.transaction():
            await fire_due(conn, three_days_late, limit=1000)  # nothing of this schedule is due again
        jobs = await jobs_of(api)
        assert len(jobs) == 1
        assert [s["segmentId"] for s in jobs[0]["segments"]] == [french]
        after = (await api.get(f"{SCHEDULES}/{created['id']}")).json()
        assert datetime.fromisoformat(after["itinera"]["nextRunTime"]) == due + timedelta(days=4)

    async def test_an_inactive_schedule_never_fires(self, api: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
        await audience(api)
        created = (await schedule(api)).json()
        async with pool.acquire() as conn, conn.transaction():
            await fire_due(conn, datetime.now(UTC) + timedelta(days=2), limit=1000)
        assert await jobs_of(api) == []
        assert "lastRunTime" not in (await api.get(f"{SCHEDULES}/{created['id']}")).json()["itinera"]


class TestSavingARule:
    async def test_a_new_rule_and_a_changed_one_are_evaluated_over_every_profile_with_those_naming_it(
        self, saving_api: httpx.AsyncClient, pool: asyncpg.Pool, sandbox: str
    ) -> None:
        api = saving_api
        french_person, german_person = str(uuid.uuid4()), str(uuid.uuid4())
        async with pool.acquire() as conn, conn.transaction():
            await projection.apply(
                conn,
                sandbox,
                Plan(
                    profiles={
                        french_person: {"homeAddress": {"countryCode": "FR"}},
                        german_person: {"homeAddress": {"countryCode": "DE"}},
                    }
                ),
            )
        french = await audience(api)
        named = await audience(api, f'inSegment("{french}")')
        await audience(api, 'homeAddress.countryCode = "IT"')  # unrelated to the change below

        async def all_succeeded(count: int) -> list[dict[str, Any]]:
            async def done() -> bool:
                jobs = await jobs_of(api)
                return len(jobs) == count and all(j["status"] == "SUCCEEDED" for j in jobs)

            await eventually(done, timeout_s=60)
            return await jobs_of(api)

        jobs = await all_succeeded(3)
        assert {j["itinera"]["trigger"] for j in jobs} == {"saved"}

        async def members(audience_id: str) -> list[str]:
            response = await api.get(f"/v1/audiences/{audience_id}/members")
            return [m["profileId"] for m in response.json()["children"]]

        assert await members(french) == [french_person]
        assert await members(named) == [french_person]

        patched = await api.patch(
            f"{DEFINITIONS}/{french}",
            json={
                "expression": {"type": "PQL", "format": "pql/text", "value": 'homeAddress.countryCode = "DE"'}
            },
        )
        assert patched.status_code == 200, patched.text
        newest = (await all_succeeded(4))[0]
        assert [s["segmentId"] for s in newest["segments"]] == [french, named]
        assert await members(french) == [german_person]
        assert await members(named) == [german_person]

        renamed = await api.patch(f"{DEFINITIONS}/{french}", json={"name": "Germans now"})
        assert renamed.status_code == 200, renamed.text
        assert len(await jobs_of(api)) == 4  # a new name changes no membership
