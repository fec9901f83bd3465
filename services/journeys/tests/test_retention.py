"""Ended instances are deleted with their history once past the retention; live ones are
kept whatever their age; a journey without re-entrance keeps a profile out only while
its last instance is kept."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from itinera.common.kafka.producer import Producer
from itinera.common.testing import eventually
from itinera.journeys.runtime.retention import InstanceRetention

from .test_runtime import JOURNEYS, happened, instances, live


async def test_ended_instances_go_after_the_retention_and_waiting_ones_stay(
    api: httpx.AsyncClient, producer: Producer, sandbox: str, pool: asyncpg.Pool
) -> None:
    quick = await live(  # no re-entrance (the default)
        api,
        [
            {"id": "start", "type": "event", "eventType": "shop.visited", "next": "done"},
            {"id": "done", "type": "end"},
        ],
    )
    slow = await live(
        api,
        [
            {"id": "start", "type": "event", "eventType": "shop.visited", "next": "pause"},
            {"id": "pause", "type": "wait", "duration": "P30D"},
        ],
    )
    old, recent = str(uuid.uuid4()), str(uuid.uuid4())
    for profile in (old, recent):
        await happened(producer, sandbox, profile, "shop.visited")

    async def entered() -> bool:
        return len(await instances(api, quick)) == 2 and len(await instances(api, slow)) == 2

    await eventually(entered, timeout_s=30)
    (gone_id,) = [i["instanceId"] for i in await instances(api, quick) if i["profileId"] == old]
    await pool.execute(  # the old profile's instances: entered 100 days ago, the quick one ended then
        """UPDATE instances SET entered_at = entered_at - interval '100 days',
                  ended_at = ended_at - interval '100 days'
           WHERE sandbox = $1 AND profile_id = $2""",
        sandbox,
        uuid.UUID(old),
    )

    deleted = await InstanceRetention(pool, retention_days=91, interval_s=60).sweep()

    assert deleted >= 1
    left = {(i["profileId"], i["status"]) for i in await instances(api, quick)}
    assert left == {(recent, "completed")}
    assert {i["status"] for i in await instances(api, slow)} == {"waiting"}  # both kept
    assert len(await instances(api, slow)) == 2
    assert (await api.get(f"{JOURNEYS}/{quick}/instances/{gone_id}")).status_code == 404
    assert not await pool.fetchval(
        "SELECT count(*) FROM instance_step_runs WHERE sandbox = $1 AND instance_id = $2",
        sandbox,
        uuid.UUID(gone_id),
    )

    # Without re-entrance, the old profile was kept out while its instance was kept; now
    # it may enter again, the recent one still may not.
    for profile in (old, recent):
        await happened(producer, sandbox, profile, "shop.visited")

    async def reentered() -> bool:
        return any(i["profileId"] == old for i in await instances(api, quick))

    await eventually(reentered, timeout_s=30)
    by_profile = sorted(i["profileId"] for i in await instances(api, quick))
    assert by_profile == sorted([old, recent])
    assert (await api.get(f"{JOURNEYS}/{quick}")).status_code == 200


async def test_a_sweep_with_nothing_due_deletes_nothing(pool: asyncpg.Pool) -> None:
    long_ago = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(days=91)
    assert await InstanceRetention(pool, retention_days=91, interval_s=60).sweep(now=long_ago) == 0


async def test_finished_executions_and_reads_go_after_their_retention(
    api: httpx.AsyncClient, sandbox: str, pool: asyncpg.Pool
) -> None:
    """One unitary call is one execution: kept for the history retention after it
    finished, as finished audience reads are; running reads stay whatever their age."""
    created = await api.post(
        "/v1/campaigns",
        json={"name": "receipts", "type": "api", "channel": "email", "templateId": "receipt"},
    )
    assert created.status_code == 201, created.text
    campaign = created.json()["id"]
    assert (await api.post(f"/v1/campaigns/{campaign}/activate")).status_code == 200

    def call(request_id: str) -> dict[str, object]:
        return {
            "requestId": request_id,
            "campaignId": campaign,
            "recipients": [{"type": "external", "namespace": "email", "userId": f"{request_id}@example.com"}],
        }

    executions = {}
    for request_id in ("old", "recent"):
        sent = await api.post("/ajo/im/executions/unitary", json=call(request_id))
        assert sent.status_code == 202, sent.text
        executions[request_id] = uuid.UUID(sent.json()["executionId"])
    await pool.execute(
        """UPDATE campaign_executions SET finished_at = finished_at - interval '100 days'
           WHERE sandbox = $1 AND id = $2""",
        sandbox,
        executions["old"],
    )
    journey, long_ago = uuid.uuid4(), datetime.now(UTC) - timedelta(days=100)
    for occurrence, status in ((1, "done"), (2, "cancelled"), (3, "running"), (4, "done")):
        await pool.execute(
            """INSERT INTO audience_reads
                   (sandbox, journey_id, version, occurrence, audience_id, status, due_at, created_at,
                    finished_at)
               VALUES ($1, $2, 1, $3, 'a', $4, $5, $6, $7)""",
            sandbox,
            journey,
            long_ago + timedelta(hours=occurrence),
            status,
            long_ago if status == "running" else None,
            long_ago,
            None if status == "running" else (datetime.now(UTC) if occurrence == 4 else long_ago),
        )

    counts = await InstanceRetention(pool, retention_days=91, interval_s=60).sweep_history(datetime.now(UTC))

    assert counts["execution"] >= 1
    assert counts["read"] >= 2
    kept = await pool.fetch("SELECT request_id FROM campaign_executions WHERE sandbox = $1", sandbox)
    assert [r["request_id"] for r in kept] == ["recent"]
    reads = await pool.fetch(
        "SELECT status FROM audience_reads WHERE sandbox = $1 ORDER BY occurrence", sandbox
    )
    assert [r["status"] for r in reads] == ["running", "done"]
    # Repeated after that, the call is executed again, under the same id (derived from
    # the campaign and the requestId), so its messages have the ids the channels keep.
    again = await api.post("/ajo/im/executions/unitary", json=call("old"))
    assert again.status_code == 202, again.text
    assert uuid.UUID(again.json()["executionId"]) == executions["old"]
    assert await pool.fetchval(
        "SELECT count(*) FROM campaign_executions WHERE sandbox = $1 AND id = $2", sandbox, executions["old"]
    )


async def test_deleting_a_stopped_journey_takes_its_instances_history_with_it(
    api: httpx.AsyncClient, producer: Producer, sandbox: str, pool: asyncpg.Pool
) -> None:
    journey = await live(
        api,
        [
            {"id": "start", "type": "event", "eventType": "shop.visited", "next": "pause"},
            {"id": "pause", "type": "wait", "duration": "P30D"},
        ],
    )
    await happened(producer, sandbox, str(uuid.uuid4()), "shop.visited")

    async def entered() -> bool:
        return len(await instances(api, journey)) == 1

    await eventually(entered, timeout_s=30)
    assert (await api.post(f"{JOURNEYS}/{journey}/versions/1/close")).status_code == 200
    waiting = await api.delete(f"{JOURNEYS}/{journey}")
    assert waiting.status_code == 409
    assert {r["what"] for r in waiting.json()["runningBy"]} == {"version", "instances"}
    assert (await api.post(f"{JOURNEYS}/{journey}/versions/1/stop")).status_code == 200

    assert (await api.delete(f"{JOURNEYS}/{journey}")).status_code == 204
    for table in ("instances", "instance_step_runs", "timers"):
        assert not await pool.fetchval(f"SELECT count(*) FROM {table} WHERE sandbox = $1", sandbox), table
