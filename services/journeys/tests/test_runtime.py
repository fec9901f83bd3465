"""The journey runtime, on the real broker and database: profile events (as the profile
service publishes them) and audience memberships (as segmentation does) enter live
journeys; instances walk, pause on timers and events, and end; message requests and
steps come out on their topics, through the outbox. Each test has a sandbox of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson

from itinera.common.kafka import topics
from itinera.common.kafka.consumer import Record
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.testing import StackInfo, eventually, topic_reader

JOURNEYS = "/v1/journeys"
JANE = {"person": {"name": {"firstName": "Jane"}}, "identityMap": {"Email": [{"id": "jane@example.com"}]}}


async def live(api: httpx.AsyncClient, nodes: list[dict[str, Any]], **properties: Any) -> str:
    """A journey, published; its id."""
    body = {"name": f"journey {uuid.uuid4().hex[:8]}", "nodes": nodes, **properties}
    created = await api.post(JOURNEYS, json=body)
    assert created.status_code == 201, created.text
    journey_id = str(created.json()["id"])
    published = await api.post(f"{JOURNEYS}/{journey_id}/versions/1/publish")
    assert published.status_code == 200, published.text
    return journey_id


async def happened(
    producer: Producer,
    sandbox: str,
    profile: str,
    event_type: str,
    snapshot: dict[str, Any] | None = None,
    **fields: Any,
) -> str:
    """An event of the profile, as the profile service publishes it; its id."""
    event_id = str(uuid.uuid4())
    event = {"_id": event_id, "timestamp": datetime.now(UTC).isoformat(), "eventType": event_type, **fields}
    data = {"sandbox": sandbox, "profileId": profile, "event": event, "profile": snapshot or JANE}
    envelope = Envelope(
        type="com.itinera.profile.event.v1", source="/t", data=data, sandbox=sandbox, key=profile
    )
    await producer.publish(topics.PROFILE_EVENTS.name, [envelope])
    return event_id


def of(records: list[Record], sandbox: str) -> list[dict[str, Any]]:
    found = []
    for record in records:
        data = orjson.loads(record.value or b"{}")
        if data.get("sandbox") == sandbox:
            found.append(data)
    return found


async def instances(api: httpx.AsyncClient, journey_id: str, **params: Any) -> list[dict[str, Any]]:
    response = await api.get(f"{JOURNEYS}/{journey_id}/instances", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def history(
    api: httpx.AsyncClient, journey_id: str, instance_id: str
) -> list[tuple[str, str | None, str | None]]:
    response = await api.get(f"{JOURNEYS}/{journey_id}/instances/{instance_id}")
    assert response.status_code == 200, response.text
    return [(s["kind"], s["nodeId"], s["reason"]) for s in response.json()["history"]]


WELCOME: list[dict[str, Any]] = [
    {"id": "signup", "type": "event", "eventType": "account.created", "next": "hello"},
    {
        "id": "hello",
        "type": "message",
        "channel": "email",
        "templateId": "welcome",
        "context": {"name": "person.name.firstName", "source": "_journey.event.channel"},
        "next": "done",
    },
    {"id": "done", "type": "end"},
]


class TestEntering:
    async def test_an_event_enters_the_journey_and_its_message_is_requested_once(
        self, api: httpx.AsyncClient, producer: Producer, sandbox: str, infrastructure: StackInfo
    ) -> None:
        journey_id = await live(api, WELCOME)
        profile = str(uuid.uuid4())
        async with topic_reader(infrastructure, topics.MESSAGES.name) as messages:
            await happened(producer, sandbox, profile, "account.created", channel="web")
            await happened(producer, sandbox, profile, "page.viewed")
            found = await messages.wait_for(lambda r: len(of(r, sandbox)) == 1, timeout_s=30)
        message = of(found, sandbox)[0]
        assert message["profileId"] == profile
        assert (message["channel"], message["templateId"], message["category"]) == (
            "email",
            "welcome",
            "marketing",
        )
        assert message["context"] == {"name": "Jane", "source": "web"}
        assert message["profile"] == JANE
        assert message["origin"]["journeyId"] == journey_id
        assert message["origin"]["nodeId"] == "hello"
        assert found[0].key == profile

        (instance,) = await instances(api, journey_id)
        assert (instance["status"], instance["endReason"]) == ("completed", "completed")
        assert instance["messages"] == {"hello": message["messageId"]}
        assert await history(api, journey_id, instance["instanceId"]) == [
            ("entered", "signup", "event"),
            ("started", "hello", None),
            ("finished", "hello", "requested"),
            ("started", "done", None),
            ("finished", "done", "end"),
            ("exited", None, "completed"),
        ]

    async def test_an_entry_condition_reads_the_event_and_the_profile(
        self, api: httpx.AsyncClient, producer: Producer, sandbox: str
    ) -> None:
        nodes: list[dict[str, Any]] = [
            dict(WELCOME[0], condition='_journey.event.channel = "app" and person.name.firstName = "Jane"')
        ]
        nodes += WELCOME[1:]
        journey_id = await live(api, nodes)
        web, app = str(uuid.uuid4()), str(uuid.uuid4())
        await happened(producer, sandbox, web, "account.created", channel="web")
        await happened(producer, sandbox, app, "account.created", channel="app")

        async def entered() -> bool:
            return len(await instances(api, journey_id)) >= 1

        await eventually(entered, timeout_s=30)
        assert [i["profileId"] for i in await instances(api, journey_id)] == [app]

    async def test_one_live_instance_per_profile_and_no_re_entry_unless_allowed(
        self, api: httpx.AsyncClient, producer: Producer, sandbox: str, pool: asyncpg.Pool
    ) -> None:
        waiting: list[dict[str, Any]] = [
            {"id": "start", "type": "event", "eventType": "cart.abandoned", "next": "pause"},
            {"id": "pause", "type": "wait", "duration": "P1D"},
        ]
        once = await live(api, waiting)
        quick = [dict(WELCOME[0], next="done"), WELCOME[2]]
        again = await live(api, quick, reentrance={"allowed": True, "waitSeconds": 0})
        never = await live(api, quick)
        profile = str(uuid.uuid4())
        for _ in range(3):
            await happened(producer, sandbox, profile, "cart.abandoned")
            await happened(producer, sandbox, profile, "account.created")

        async def all_seen() -> bool:
            return len(await instances(api, again)) == 3

        await eventually(all_seen, timeout_s=30)
        assert [i["status"] for i in await instances(api, once)] == ["waiting"]
        assert [i["status"] for i in await instances(api, never)] == ["completed"]


class TestPausing:
    async def test_a_wait_fires_on_time_and_the_path_goes_on(
        self, api: httpx.AsyncClient, producer: Producer, sandbox: str, infrastructure: StackInfo
    ) -> None:
        nodes: list[dict[str, Any]] = [
            {"id": "start", "type": "event", "eventType": "cart.abandoned", "next": "pause"},
            {"id": "pause", "type": "wait", "duration": "PT2S", "next": "remind"},
            {"id": "remind", "type": "message", "channel": "sms", "templateId": "cart", "next": None},
        ]
        journey_id = await live(api, nodes)
        profile = str(uuid.uuid4())
        async with topic_reader(infrastructure, topics.MESSAGES.name) as messages:
            sent_at = datetime.now(UTC)
            await happened(producer, sandbox, profile, "cart.abandoned")

            async def waiting() -> bool:
                return [i["node"] for i in await instances(api, journey_id)] == ["pause"]

            await eventually(waiting, timeout_s=30)
            found = await messages.wait_for(lambda r: len(of(r, sandbox)) == 1, timeout_s=30)
        requested = datetime.fromisoformat(of(found, sandbox)[0]["requestedAt"])
        assert requested - sent_at >= timedelta(seconds=2)
        (instance,) = await instances(api, journey_id)
        assert instance["status"] == "completed"
        assert ("finished", "pause", "waited") in await history(api, journey_id, instance["instanceId"])

    async def test_waiting_for_an_event_resumes_on_it_or_takes_the_timeout_branch(
        self, api: httpx.AsyncClient, producer: Producer, sandbox: str
    ) -> None:
        nodes: list[dict[str, Any]] = [
            {"id": "start", "type": "event", "eventType": "cart.abandoned", "next": "watch"},
            {
                "id": "watch",
                "type": "waitForEvent",
                "event": {"eventType": "commerce.purchases", "condition": "_journey.event.total > 10"},
                "timeout": "PT2S",
                "timeoutNext": "gave_up",
                "next": "bought",
            },
            {"id": "bought", "type": "end"},
            {"id": "gave_up", "type": "end"},
        ]
        journey_id = await live(api, nodes)
        buyer, idler = str(uuid.uuid4()), str(uuid.uuid4())
        await happened(producer, sandbox, buyer, "cart.abandoned")
        await happened(producer, sandbox, idler, "cart.abandoned")

        async def both_waiting() -> bool:
            return [i["node"] for i in await instances(api, journey_id, status="waiting")] == [
                "watch",
                "watch",
            ]

        await eventually(both_waiting, timeout_s=30)
        await happened(producer, sandbox, buyer, "commerce.purchases", total=5)  # not what it waits for
        await happened(producer, sandbox, buyer, "commerce.purchases", total=50)

        async def both_done() -> bool:
            return not await instances(api, journey_id, status="waiting")

        await eventually(both_done, timeout_s=30)
        ends = {}
        for instance in await instances(api, journey_id):
            steps = await history(api, journey_id, instance["instanceId"])
            ends[instance["profileId"]] = [s for s in steps if s[0] == "finished"]
        assert ends == {
            buyer: [("finished", "watch", "event received"), ("finished", "bought", "end")],
            idler: [("finished", "watch", "timed out"), ("finished", "gave_up", "end")],
        }

    async def test_a_reaction_to_a_message_resumes_the_instance_that_sent_it(
        self, api: httpx.AsyncClient, producer: Producer, sandbox: str, infrastructure: StackInfo
    ) -> None:
        nodes: list[dict[str, Any]] = [
            {"id": "start", "type": "event", "eventType": "account.created", "next": "hello"},
            {"id": "hello", "type": "message", "channel": "email", "templateId": "welcome", "next": "opened"},
            {
                "id": "opened",
                "type": "waitForEvent",
                "reaction": {"messageNode": "hello", "on": "opened"},
                "timeout": "PT1H",
                "timeoutNext": "sms",
                "next": None,
            },
            {"id": "sms", "type": "message", "channel": "sms", "templateId": "nudge"},
        ]
        journey_id = await live(api, nodes)
        profile = str(uuid.uuid4())
        async with topic_reader(infrastructure, topics.MESSAGES.name) as messages:
            await happened(producer, sandbox, profile, "account.created")
            found = await messages.wait_for(lambda r: len(of(r, sandbox)) == 1, timeout_s=30)
        message_id = of(found, sandbox)[0]["messageId"]

        def tracking(execution: str, interaction: str) -> dict[str, Any]:
            return {
                "_experience": {
                    "customerJourneyManagement": {
                        "messageExecution": {"messageExecutionID": execution},
                        "messageInteraction": {"interactionType": interaction},
                    }
                }
            }

        await happened(producer, sandbox, profile, "message.tracking", **tracking(str(uuid.uuid4()), "open"))
        await happened(producer, sandbox, profile, "message.tracking", **tracking(message_id, "click"))
        await happened(producer, sandbox, profile, "message.tracking", **tracking(message_id, "open"))

        async def completed() -> bool:
            return [i["status"] for i in await instances(api, journey_id)] == ["completed"]

        await eventually(completed, timeout_s=30)
        (instance,) = await instances(api, journey_id)
        assert ("finished", "opened", "event received") in await history(
            api, journey_id, instance["instanceId"]
        )


class TestEnding:
    async def test_exit_criteria_stopping_and_the_global_timeout_end_instances(
        self, api: httpx.AsyncClient, producer: Producer, sandbox: str
    ) -> None:
        waiting: list[dict[str, Any]] = [
            {"id": "start", "type": "event", "eventType": "cart.abandoned", "next": "pause"},
            {"id": "pause", "type": "wait", "duration": "PT10M"},
        ]
        exits = await live(
            api,
            waiting,
            exitCriteria=[{"type": "event", "name": "bought", "eventType": "commerce.purchases"}],
        )
        stops = await live(api, waiting)
        forever = {"id": "pause", "type": "waitForEvent", "event": {"eventType": "never.sent"}}
        times_out = await live(api, [waiting[0], forever], timeout="PT2S")
        profile = str(uuid.uuid4())
        await happened(producer, sandbox, profile, "cart.abandoned")

        async def all_waiting() -> bool:
            return all([await instances(api, j, status="waiting") for j in (exits, stops, times_out)])

        await eventually(all_waiting, timeout_s=30)
        await happened(producer, sandbox, profile, "commerce.purchases")
        assert (await api.post(f"{JOURNEYS}/{stops}/versions/1/stop")).status_code == 200

        def ended(journey_id: str, reason: str) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                found = await instances(api, journey_id)
                return [(i["status"], i["endReason"]) for i in found] == [("exited", reason)]

            return check

        await eventually(ended(exits, "exit criteria: bought"), timeout_s=30)
        await eventually(ended(stops, "stopped"), timeout_s=30)
        await eventually(ended(times_out, "timeout"), timeout_s=30)

    async def test_a_profile_merged_into_another_brings_its_instances_along(
        self, api: httpx.AsyncClient, producer: Producer, sandbox: str
    ) -> None:
        waiting: list[dict[str, Any]] = [
            {"id": "start", "type": "event", "eventType": "cart.abandoned", "next": "pause"},
            {"id": "pause", "type": "wait", "duration": "PT10M"},
        ]
        both = await live(api, waiting)
        only_merged = await live(api, [dict(waiting[0], eventType="app.installed"), waiting[1]])
        survivor, merged = str(uuid.uuid4()), str(uuid.uuid4())
        await happened(producer, sandbox, survivor, "cart.abandoned")
        await happened(producer, sandbox, merged, "cart.abandoned")
        await happened(producer, sandbox, merged, "app.installed")

        async def three_waiting() -> bool:
            return len(await instances(api, both, status="waiting") + await instances(api, only_merged)) == 3

        await eventually(three_waiting, timeout_s=30)
        data = {
            "sandbox": sandbox,
            "profileId": survivor,
            "mergedProfileIds": [merged],
            "mergedAt": "2026-11-28T10:00:00Z",
        }
        await producer.publish(
            topics.IDENTITY_MERGES.name,
            [
                Envelope(
                    type="com.itinera.identity.merge.v1",
                    source="/t",
                    data=data,
                    sandbox=sandbox,
                    key=survivor,
                )
            ],
        )

        async def moved() -> bool:
            return [i["profileId"] for i in await instances(api, only_merged, status="waiting")] == [survivor]

        await eventually(moved, timeout_s=30)
        assert [(i["profileId"], i["status"]) for i in await instances(api, both, status="waiting")] == [
            (survivor, "waiting")
        ]
        (ended,) = await instances(api, both, status="exited")
        assert ended["profileId"] == merged


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


class TestAudiences:
    async def test_entering_an_audience_enters_the_journey_with_the_profile_last_seen(
        self,
        api: httpx.AsyncClient,
        producer: Producer,
        sandbox: str,
        infrastructure: StackInfo,
        pool: asyncpg.Pool,
    ) -> None:
        vip, churners = str(uuid.uuid4()), str(uuid.uuid4())
        nodes: list[dict[str, Any]] = [
            {"id": "joined", "type": "audience", "audienceId": vip, "on": "entered", "next": "hello"},
            {"id": "hello", "type": "message", "channel": "push", "templateId": "vip", "next": "pause"},
            {"id": "pause", "type": "wait", "duration": "P1D"},
        ]
        journey_id = await live(
            api, nodes, exitCriteria=[{"type": "audienceExit", "name": "gone", "audienceId": vip}]
        )
        leaving = await live(
            api, [{"id": "left", "type": "audience", "audienceId": churners, "on": "exited"}]
        )
        profile = str(uuid.uuid4())
        await happened(producer, sandbox, profile, "page.viewed")

        async def known() -> bool:  # journeys keep the profile as its events show it
            async with pool.acquire() as conn:
                found = await conn.fetchval(
                    "SELECT 1 FROM profiles WHERE sandbox = $1 AND profile_id = $2",
                    sandbox,
                    uuid.UUID(profile),
                )
            return found is not None

        await eventually(known, timeout_s=30)
        async with topic_reader(infrastructure, topics.MESSAGES.name) as messages:
            await membership(producer, sandbox, profile, vip, "realized")
            found = await messages.wait_for(lambda r: len(of(r, sandbox)) == 1, timeout_s=30)
        assert of(found, sandbox)[0]["profile"] == JANE
        await membership(producer, sandbox, profile, churners, "realized")  # entering it enters nothing
        await membership(producer, sandbox, profile, churners, "exited")
        await membership(producer, sandbox, profile, vip, "exited")

        async def settled() -> bool:
            ours = await instances(api, journey_id)
            return [i["endReason"] for i in ours] == ["exit criteria: left audience " + vip] and bool(
                await instances(api, leaving)
            )

        await eventually(settled, timeout_s=30)
        assert [i["status"] for i in await instances(api, leaving)] == ["completed"]


class TestUpdatingProfiles:
    async def test_an_update_profile_step_asks_the_profile_service_to_set_the_attributes(
        self, api: httpx.AsyncClient, producer: Producer, sandbox: str, infrastructure: StackInfo
    ) -> None:
        nodes: list[dict[str, Any]] = [
            {"id": "start", "type": "event", "eventType": "commerce.purchases", "next": "promote"},
            {
                "id": "promote",
                "type": "updateProfile",
                "updates": [
                    {"path": "loyalty.tier", "value": '"gold"'},
                    {"path": "loyalty.since", "value": "_journey.event.timestamp"},
                    {"path": "person.nickname", "value": "person.name.firstName"},
                ],
            },
        ]
        journey_id = await live(api, nodes)
        profile = str(uuid.uuid4())
        async with topic_reader(infrastructure, topics.PROFILE_UPDATES.name) as updates:
            await happened(producer, sandbox, profile, "commerce.purchases")
            found = await updates.wait_for(lambda r: len(of(r, sandbox)) == 1, timeout_s=30)
        (update,) = of(found, sandbox)
        assert found[0].key == profile
        assert update["profileId"] == profile
        assert update["attributes"]["loyalty"]["tier"] == "gold"
        assert update["attributes"]["loyalty"]["since"]
        assert update["attributes"]["person"] == {"nickname": "Jane"}
        (instance,) = await instances(api, journey_id)
        assert instance["status"] == "completed"
        assert ("finished", "promote", "requested") in await history(api, journey_id, instance["instanceId"])


class TestReadingAudiences:
    async def test_every_member_of_the_audience_enters_at_the_entrys_rate(
        self, api: httpx.AsyncClient, producer: Producer, sandbox: str, pool: asyncpg.Pool
    ) -> None:
        audience = str(uuid.uuid4())
        people = sorted(str(uuid.uuid4()) for _ in range(5))
        for person in people:
            await membership(producer, sandbox, person, audience, "realized")
        await membership(producer, sandbox, people[-1], audience, "exited")

        async def known() -> bool:
            async with pool.acquire() as conn:
                count = await conn.fetchval(
                    """SELECT count(*) FROM audience_members
                        WHERE sandbox = $1 AND audience_id = $2 AND NOT member""",
                    sandbox,
                    audience,
                )
            return bool(count == 1)

        await eventually(known, timeout_s=30)
        nodes: list[dict[str, Any]] = [
            {"id": "read", "type": "readAudience", "audienceId": audience, "rate": 2, "next": "hello"},
            {"id": "hello", "type": "message", "channel": "email", "templateId": "news"},
        ]
        started = datetime.now(UTC)
        journey_id = await live(api, nodes)

        async def all_entered() -> bool:
            return len(await instances(api, journey_id)) == 4

        await eventually(all_entered, timeout_s=30)
        found = await instances(api, journey_id)
        assert sorted(i["profileId"] for i in found) == people[:-1]
        assert {i["status"] for i in found} == {"completed"}
        entered = sorted(datetime.fromisoformat(i["enteredAt"]) for i in found)
        assert entered[-1] - entered[0] >= timedelta(seconds=0.9)  # 4 members at 2 a second
        assert entered[0] >= started


class TestTimers:
    async def test_an_instance_whose_wait_and_timeout_are_both_overdue_is_acted_on_once(
        self, api: httpx.AsyncClient, producer: Producer, sandbox: str, pool: asyncpg.Pool
    ) -> None:
        nodes: list[dict[str, Any]] = [
            {"id": "start", "type": "event", "eventType": "cart.abandoned", "next": "pause"},
            {"id": "pause", "type": "wait", "duration": "PT1H", "next": "done"},
            {"id": "done", "type": "end"},
        ]
        journey_id = await live(api, nodes, timeout="P1D")
        stuck, healthy = str(uuid.uuid4()), str(uuid.uuid4())
        await happened(producer, sandbox, stuck, "cart.abandoned")
        await happened(producer, sandbox, healthy, "cart.abandoned")

        async def both_waiting() -> bool:
            return len(await instances(api, journey_id, status="waiting")) == 2

        await eventually(both_waiting, timeout_s=30)
        past = datetime.now(UTC) - timedelta(minutes=1)
        async with pool.acquire() as conn:  # as after an outage: everything is overdue
            await conn.execute(
                """UPDATE timers SET due_at = $3 WHERE sandbox = $1 AND instance_id IN
                   (SELECT id FROM instances WHERE sandbox = $1 AND profile_id = $2)""",
                sandbox,
                uuid.UUID(stuck),
                past,
            )
            await conn.execute(
                """UPDATE timers SET due_at = $3 WHERE sandbox = $1 AND kind = 'resume' AND instance_id IN
                   (SELECT id FROM instances WHERE sandbox = $1 AND profile_id = $2)""",
                sandbox,
                uuid.UUID(healthy),
                past,
            )

        async def both_ended() -> bool:
            return not await instances(api, journey_id, status="waiting")

        await eventually(both_ended, timeout_s=30)
        ends = {i["profileId"]: (i["status"], i["endReason"]) for i in await instances(api, journey_id)}
        assert ends == {stuck: ("exited", "timeout"), healthy: ("completed", "completed")}


async def changed(producer: Producer, sandbox: str, profile: str, **fields: Any) -> None:
    """A change of the profile's view, as the profile service publishes it."""
    data = {
        "sandbox": sandbox,
        "profileId": profile,
        "changes": [{"path": p, "old": None, "new": v} for p, v in fields.get("paths", {}).items()],
        "mergedProfileIds": [],
        "changedAt": datetime.now(UTC).isoformat(),
        **({"deleted": True} if fields.get("deleted") else {}),
    }
    envelope = Envelope(
        type="com.itinera.profile.change.v1", source="/t", data=data, sandbox=sandbox, key=profile
    )
    await producer.publish(topics.PROFILE_CHANGES.name, [envelope])


class TestFreshProfiles:
    async def test_a_step_after_a_wait_reads_the_profile_as_it_changed_meanwhile(
        self, api: httpx.AsyncClient, producer: Producer, sandbox: str, infrastructure: StackInfo
    ) -> None:
        nodes: list[dict[str, Any]] = [
            {"id": "start", "type": "event", "eventType": "cart.abandoned", "next": "pause"},
            {"id": "pause", "type": "wait", "duration": "PT2S", "next": "tier"},
            {
                "id": "tier",
                "type": "condition",
                "branches": [{"name": "gold", "condition": 'loyalty.tier = "gold"', "next": "vip"}],
            },
            {"id": "vip", "type": "message", "channel": "email", "templateId": "vip"},
        ]
        journey_id = await live(api, nodes)
        profile = str(uuid.uuid4())
        async with topic_reader(infrastructure, topics.MESSAGES.name) as messages:
            await happened(producer, sandbox, profile, "cart.abandoned")

            async def waiting() -> bool:
                return len(await instances(api, journey_id, status="waiting")) == 1

            await eventually(waiting, timeout_s=30)
            await changed(producer, sandbox, profile, paths={"loyalty.tier": "gold"})
            found = await messages.wait_for(lambda r: len(of(r, sandbox)) == 1, timeout_s=30)
        assert of(found, sandbox)[0]["profile"]["loyalty"] == {"tier": "gold"}
        assert of(found, sandbox)[0]["profile"]["person"] == JANE["person"]

    async def test_an_erased_profile_leaves_its_journeys(
        self, api: httpx.AsyncClient, producer: Producer, sandbox: str
    ) -> None:
        nodes: list[dict[str, Any]] = [
            {"id": "start", "type": "event", "eventType": "cart.abandoned", "next": "pause"},
            {"id": "pause", "type": "wait", "duration": "P1D"},
        ]
        journey_id = await live(api, nodes)
        profile = str(uuid.uuid4())
        await happened(producer, sandbox, profile, "cart.abandoned")

        async def waiting() -> bool:
            return len(await instances(api, journey_id, status="waiting")) == 1

        await eventually(waiting, timeout_s=30)
        await changed(producer, sandbox, profile, deleted=True)

        async def erased() -> bool:
            return [i["endReason"] for i in await instances(api, journey_id)] == ["profile deleted"]

        await eventually(erased, timeout_s=30)
