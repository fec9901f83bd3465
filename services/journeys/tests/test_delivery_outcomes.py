"""A message node with an error branch waits for its delivery outcome, on the real broker
and database: the channels' feedback (``itinera.feedback.v1``, published here as the
channels publish it) finds the instance by the message id; ``sent`` or ``delivered``
goes on at ``next``, ``failed``, ``bounced`` or ``excluded`` takes ``errorNext`` with the
reason kept in the step, and no outcome within the node's timeout takes ``errorNext``
too. A record delivered again, or an outcome for a node the instance has left, changes
nothing; a message node without an error branch does not wait. Each test has a sandbox
of its own.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from prometheus_client import REGISTRY

from itinera.common.kafka import topics
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.testing import StackInfo, eventually, topic_reader

from .test_runtime import JANE, JOURNEYS, instances, of


def welcome(**hello: Any) -> list[dict[str, Any]]:
    """A sign-up, a welcome email (``hello``, with these fields), then ``done``; its error
    branch, when it has one, sends an SMS instead (``fallback``)."""
    email = {"id": "hello", "type": "message", "channel": "email", "templateId": "welcome", "next": "done"}
    nodes: list[dict[str, Any]] = [
        {"id": "signup", "type": "event", "eventType": "account.created", "next": "hello"},
        email | hello,
        {"id": "done", "type": "end"},
    ]
    if "errorNext" in hello:
        nodes.append({"id": "fallback", "type": "message", "channel": "sms", "templateId": "welcome-sms"})
    return nodes


WAITS_AN_HOUR = welcome(errorPath=True, errorNext="fallback", timeout="PT1H")


async def live(api: httpx.AsyncClient, nodes: list[dict[str, Any]]) -> str:
    """A journey, published; its id."""
    created = await api.post(JOURNEYS, json={"name": f"journey {uuid.uuid4().hex[:8]}", "nodes": nodes})
    assert created.status_code == 201, created.text
    journey_id = str(created.json()["id"])
    published = await api.post(f"{JOURNEYS}/{journey_id}/versions/1/publish")
    assert published.status_code == 200, published.text
    return journey_id


async def signed_up(producer: Producer, sandbox: str, profile: str) -> None:
    """The profile's sign-up, as the profile service publishes its events."""
    event = {
        "_id": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(),
        "eventType": "account.created",
    }
    data = {"sandbox": sandbox, "profileId": profile, "event": event, "profile": JANE}
    await producer.publish(
        topics.PROFILE_EVENTS.name,
        [Envelope(type="com.itinera.profile.event.v1", source="/t", data=data, sandbox=sandbox, key=profile)],
    )


async def requests_for(
    infrastructure: StackInfo, producer: Producer, sandbox: str, profiles: list[str]
) -> dict[str, dict[str, Any]]:
    """Each profile signs up; the message request of each, by profile."""
    async with topic_reader(infrastructure, topics.MESSAGES.name) as messages:
        for profile in profiles:
            await signed_up(producer, sandbox, profile)
        found = await messages.wait_for(lambda r: len(of(r, sandbox)) == len(profiles), timeout_s=30)
    return {request["profileId"]: request for request in of(found, sandbox)}


async def report(
    producer: Producer,
    request: dict[str, Any],
    status: str,
    *,
    reason: str | None = None,
    bounce: str | None = None,
    record_id: str | None = None,
) -> str:
    """What became of a requested message, as the channels report it; the record's ce_id."""
    record_id = record_id or str(uuid.uuid4())
    data = {
        "sandbox": request["sandbox"],
        "messageId": request["messageId"],
        "profileId": request["profileId"],
        "channel": request["channel"],
        "status": status,
        "reason": reason,
        "bounce": bounce,
        "address": "jane@example.com",
        "url": None,
        "origin": request["origin"],
        "at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    envelope = Envelope(
        type="com.itinera.message.feedback.v1",
        source="/itinera/channels",
        data=data,
        sandbox=request["sandbox"],
        key=request["profileId"],
        id=record_id,
    )
    await producer.publish(topics.FEEDBACK.name, [envelope])
    return record_id


async def history(
    api: httpx.AsyncClient, journey_id: str, profile: str
) -> list[tuple[str, str | None, str | None]]:
    """The profile's instance's steps as (kind, node, reason)."""
    (instance,) = await instances(api, journey_id, profileId=profile)
    response = await api.get(f"{JOURNEYS}/{journey_id}/instances/{instance['instanceId']}")
    assert response.status_code == 200, response.text
    return [(s["kind"], s["nodeId"], s["reason"]) for s in response.json()["history"]]


async def all_waiting_at_hello(api: httpx.AsyncClient, journey_id: str, count: int) -> None:
    async def waiting() -> bool:
        return [i["node"] for i in await instances(api, journey_id, status="waiting")] == ["hello"] * count

    await eventually(waiting, timeout_s=30)


async def all_ended(api: httpx.AsyncClient, journey_id: str) -> None:
    async def ended() -> bool:
        return not await instances(api, journey_id, status="waiting")

    await eventually(ended, timeout_s=30)


async def delivery_wait(pool: asyncpg.Pool, sandbox: str) -> tuple[str, str, str | None, int]:
    """The sandbox's one delivery wait: its node, message id and status, and the seconds
    from its start to its timer."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            """SELECT t.node, d.message_id, d.status, t.due_at - d.created_at AS waits
                 FROM delivery_waits d
                 JOIN timers t
                   ON t.sandbox = d.sandbox AND t.instance_id = d.instance_id AND t.kind = 'resume'
                WHERE d.sandbox = $1""",
            sandbox,
        )
    assert row is not None
    return row["node"], str(row["message_id"]), row["status"], round(row["waits"].total_seconds())


def counted(outcome: str) -> float:
    """Feedback records the runtime has read with this outcome, in this process."""
    value = REGISTRY.get_sample_value("itinera_journeys_feedback_records_total", {"outcome": outcome})
    return value or 0.0


async def counted_more(outcomes: dict[str, float]) -> None:
    """Wait until each outcome's count has grown past the value given."""

    async def grown() -> bool:
        return all(counted(outcome) > before for outcome, before in outcomes.items())

    await eventually(grown, timeout_s=30)


STARTED = [("entered", "signup", "event"), ("started", "hello", None)]
TO_FALLBACK = [
    ("started", "fallback", None),
    ("finished", "fallback", "requested"),
    ("exited", "hello", "completed"),
]


class TestDeliveryOutcomes:
    async def test_a_message_that_was_not_delivered_takes_the_error_branch_with_the_reason(
        self, api: httpx.AsyncClient, producer: Producer, sandbox: str, infrastructure: StackInfo
    ) -> None:
        journey_id = await live(api, WAITS_AN_HOUR)
        failed, bounced, excluded = (str(uuid.uuid4()) for _ in range(3))
        requests = await requests_for(infrastructure, producer, sandbox, [failed, bounced, excluded])
        await all_waiting_at_hello(api, journey_id, 3)
        assert await history(api, journey_id, failed) == STARTED

        async with (
            topic_reader(infrastructure, topics.MESSAGES.name) as messages,
            topic_reader(infrastructure, topics.JOURNEY_STEPS.name) as steps,
        ):
            await report(producer, requests[failed], "failed", reason="421 4.7.0 try again later")
            await report(
                producer, requests[bounced], "bounced", reason="550 5.1.1 no such user", bounce="hard"
            )
            await report(producer, requests[excluded], "excluded", reason="consent")
            fallbacks = await messages.wait_for(lambda r: len(of(r, sandbox)) == 3, timeout_s=30)
            published = await steps.wait_for(
                lambda r: sum(s["kind"] == "failed" for s in of(r, sandbox)) == 3, timeout_s=30
            )
        await all_ended(api, journey_id)

        assert {(m["profileId"], m["channel"], m["templateId"]) for m in of(fallbacks, sandbox)} == {
            (profile, "sms", "welcome-sms") for profile in (failed, bounced, excluded)
        }
        assert await history(api, journey_id, failed) == [
            *STARTED,
            ("failed", "hello", "failed: 421 4.7.0 try again later"),
            *TO_FALLBACK,
        ]
        assert ("failed", "hello", "bounced: 550 5.1.1 no such user") in await history(
            api, journey_id, bounced
        )
        assert ("failed", "hello", "excluded: consent") in await history(api, journey_id, excluded)
        (step,) = [s for s in of(published, sandbox) if s["kind"] == "failed" and s["profileId"] == bounced]
        assert (step["nodeId"], step["reason"]) == ("hello", "bounced: 550 5.1.1 no such user")
        assert step["detail"] == {
            "messageId": requests[bounced]["messageId"],
            "status": "bounced",
            "bounce": "hard",
        }

    async def test_a_message_sent_or_delivered_goes_on_at_next(
        self, api: httpx.AsyncClient, producer: Producer, sandbox: str, infrastructure: StackInfo
    ) -> None:
        journey_id = await live(api, WAITS_AN_HOUR)
        sent, delivered = str(uuid.uuid4()), str(uuid.uuid4())
        requests = await requests_for(infrastructure, producer, sandbox, [sent, delivered])
        await all_waiting_at_hello(api, journey_id, 2)

        await report(producer, requests[sent], "opened")  # not a delivery outcome: nothing to do
        await report(producer, requests[sent], "sent")
        await report(producer, requests[delivered], "delivered")
        await all_ended(api, journey_id)

        for profile, status in ((sent, "sent"), (delivered, "delivered")):
            assert await history(api, journey_id, profile) == [
                *STARTED,
                ("finished", "hello", status),
                ("started", "done", None),
                ("finished", "done", "end"),
                ("exited", "hello", "completed"),
            ]

    async def test_no_outcome_within_the_timeout_takes_the_error_branch_and_a_late_one_changes_nothing(
        self,
        api: httpx.AsyncClient,
        producer: Producer,
        sandbox: str,
        infrastructure: StackInfo,
        pool: asyncpg.Pool,
    ) -> None:
        journey_id = await live(api, WAITS_AN_HOUR)
        profile = str(uuid.uuid4())
        request = (await requests_for(infrastructure, producer, sandbox, [profile]))[profile]
        await all_waiting_at_hello(api, journey_id, 1)
        # The wait is kept as rows, a timer among the others: a restart loses nothing.
        assert await delivery_wait(pool, sandbox) == ("hello", request["messageId"], None, 3600)

        async with pool.acquire() as conn:  # an hour later
            await conn.execute(
                "UPDATE timers SET due_at = now() - interval '1 s' WHERE sandbox = $1 AND kind = 'resume'",
                sandbox,
            )
        await all_ended(api, journey_id)
        timed_out = [*STARTED, ("failed", "hello", "timed out"), *TO_FALLBACK]
        assert await history(api, journey_id, profile) == timed_out

        before = counted("late")
        await report(producer, request, "sent")
        await counted_more({"late": before})
        assert await history(api, journey_id, profile) == timed_out

    async def test_the_delivery_outcome_is_awaited_five_minutes_by_default(
        self,
        api: httpx.AsyncClient,
        producer: Producer,
        sandbox: str,
        infrastructure: StackInfo,
        pool: asyncpg.Pool,
    ) -> None:
        journey_id = await live(api, welcome(errorPath=True, errorNext="fallback"))
        profile = str(uuid.uuid4())
        request = (await requests_for(infrastructure, producer, sandbox, [profile]))[profile]
        await all_waiting_at_hello(api, journey_id, 1)
        assert await delivery_wait(pool, sandbox) == ("hello", request["messageId"], None, 300)

    async def test_the_same_feedback_record_twice_or_a_second_outcome_changes_nothing(
        self, api: httpx.AsyncClient, producer: Producer, sandbox: str, infrastructure: StackInfo
    ) -> None:
        journey_id = await live(api, WAITS_AN_HOUR)
        profile = str(uuid.uuid4())
        request = (await requests_for(infrastructure, producer, sandbox, [profile]))[profile]
        await all_waiting_at_hello(api, journey_id, 1)

        before = {outcome: counted(outcome) for outcome in ("applied", "duplicate", "late")}
        async with topic_reader(infrastructure, topics.MESSAGES.name) as messages:
            record_id = await report(producer, request, "failed", reason="mailbox full")
            await report(producer, request, "failed", reason="mailbox full", record_id=record_id)
            await report(producer, request, "sent")
            await counted_more(before)
            await messages.wait_for(lambda r: len(of(r, sandbox)) >= 1, timeout_s=30)
        assert [m["templateId"] for m in of(messages.records, sandbox)] == ["welcome-sms"]
        assert await history(api, journey_id, profile) == [
            *STARTED,
            ("failed", "hello", "failed: mailbox full"),
            *TO_FALLBACK,
        ]

    async def test_a_message_node_without_an_error_branch_does_not_wait(
        self,
        api: httpx.AsyncClient,
        producer: Producer,
        sandbox: str,
        infrastructure: StackInfo,
        pool: asyncpg.Pool,
    ) -> None:
        journey_id = await live(api, welcome(timeout="PT1H"))
        profile = str(uuid.uuid4())
        request = (await requests_for(infrastructure, producer, sandbox, [profile]))[profile]
        await all_ended(api, journey_id)
        completed = [
            *STARTED,
            ("finished", "hello", "requested"),
            ("started", "done", None),
            ("finished", "done", "end"),
            ("exited", None, "completed"),
        ]
        assert await history(api, journey_id, profile) == completed

        before = counted("unmatched")
        await report(producer, request, "failed", reason="mailbox full")
        await counted_more({"unmatched": before})
        assert await history(api, journey_id, profile) == completed
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM delivery_waits WHERE sandbox = $1", sandbox) == 0
