"""Streaming audiences: each profile change or event re-evaluates the streaming
audiences whose rules read what changed; entries and exits are recorded and announced
on itinera.audiences.v1, keyed by profile id."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from itinera.common.kafka import topics
from itinera.common.kafka.consumer import Record
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.testing import StackInfo, eventually, topic_reader
from itinera.segmentation.config import SegmentationSettings

DEFINITIONS = "/data/core/ups/segment/definitions"


@pytest.fixture
async def producer(segmentation_settings: SegmentationSettings) -> AsyncIterator[Producer]:
    started = Producer(segmentation_settings)
    await started.start()
    yield started
    await started.stop()


async def streaming_audience(http: httpx.AsyncClient, rule: str) -> str:
    response = await http.post(
        DEFINITIONS,
        json={
            "name": f"streaming {uuid.uuid4().hex[:8]}",
            "expression": {"type": "PQL", "format": "pql/text", "value": rule},
            "schema": {"name": "_xdm.context.profile"},
            "evaluationInfo": {"batch": {"enabled": False}, "continuous": {"enabled": True}},
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def change(producer: Producer, profile: str, **paths: Any) -> None:
    data = {
        "sandbox": "prod",
        "profileId": profile,
        "changes": [{"path": p.replace("__", "."), "old": None, "new": v} for p, v in paths.items()],
        "mergedProfileIds": [],
        "changedAt": datetime.now(UTC).isoformat(),
    }
    envelope = Envelope(
        type="com.itinera.profile.change.v1", source="/t", data=data, sandbox="prod", key=profile
    )
    await producer.publish(topics.PROFILE_CHANGES.name, [envelope])


async def happened(producer: Producer, profile: str, event_type: str, at: datetime) -> None:
    """An event of the profile, as the profile service publishes it."""
    body = {"_id": f"{profile}-{event_type}", "timestamp": at.isoformat(), "eventType": event_type}
    data = {"sandbox": "prod", "profileId": profile, "event": body, "profile": {}}
    envelope = Envelope(
        type="com.itinera.profile.event.v1", source="/t", data=data, sandbox="prod", key=profile
    )
    await producer.publish(topics.PROFILE_EVENTS.name, [envelope])


def moment(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text)


async def membership(http: httpx.AsyncClient, audience: str, profile: str) -> dict[str, Any]:
    """The profile's membership of the audience, as ``GET /v1/profiles/{id}/audiences``
    lists it; checked to be the one ``GET /v1/audiences/{id}/members`` lists."""
    listed = (await http.get(f"/v1/profiles/{profile}/audiences")).json()["audiences"]
    found: dict[str, Any]
    [found] = [a for a in listed if a["audienceId"] == audience]
    status = "exited" if found["status"] == "exited" else "members"
    page = (await http.get(f"/v1/audiences/{audience}/members", params={"status": status})).json()
    [member] = [c for c in page["children"] if c["profileId"] == profile]
    assert {k: member[k] for k in ("status", "enteredAt", "exitedAt")} == {
        k: found[k] for k in ("status", "enteredAt", "exitedAt")
    }
    return found


def announced(records: list[Record], audience: str, profile: str) -> list[str]:
    found = []
    for record in records:
        data = orjson.loads(record.value or b"{}")
        if data["audienceId"] == audience and data["profileId"] == profile:
            assert record.key == profile
            found.append(data["status"])
    return found


class TestStreamingAudiences:
    async def test_a_profile_enters_when_it_qualifies_and_exits_when_it_no_longer_does(
        self, http: httpx.AsyncClient, producer: Producer, infrastructure: StackInfo
    ) -> None:
        audience = await streaming_audience(http, 'homeAddress.countryCode = "FR"')
        profile = str(uuid.uuid4())
        async with topic_reader(infrastructure, topics.AUDIENCES.name) as reader:
            sent = datetime.now(UTC)
            await change(producer, profile, homeAddress__countryCode="FR")
            await reader.wait_for(lambda r: announced(r, audience, profile) == ["realized"], timeout_s=30)
            member = await membership(http, audience, profile)
            assert member["status"] == "realized"
            assert sent <= moment(member["enteredAt"]) <= datetime.now(UTC)
            assert member["exitedAt"] is None
            await change(producer, profile, person__name__firstName="Ann")  # not read by the rule
            left = datetime.now(UTC)
            await change(producer, profile, homeAddress__countryCode="DE")
            await reader.wait_for(
                lambda r: announced(r, audience, profile) == ["realized", "exited"], timeout_s=30
            )
        # Other tests' audiences in the sandbox may share the rule: this one's entry.
        former = await membership(http, audience, profile)
        assert former["status"] == "exited"
        assert former["enteredAt"] == member["enteredAt"]
        assert left <= moment(former["exitedAt"]) <= datetime.now(UTC)

    async def test_members_are_listed_by_audience_and_page(
        self, http: httpx.AsyncClient, producer: Producer
    ) -> None:
        audience = await streaming_audience(http, 'loyalty.tier = "gold"')
        profiles = sorted(str(uuid.uuid4()) for _ in range(3))
        for profile in profiles:
            await change(producer, profile, loyalty__tier="gold")

        async def all_in() -> bool:
            page = (await http.get(f"/v1/audiences/{audience}/members", params={"limit": 10})).json()
            return [c["profileId"] for c in page["children"]] == profiles

        await eventually(all_in, timeout_s=30)
        first = (await http.get(f"/v1/audiences/{audience}/members", params={"limit": 2})).json()
        assert [c["status"] for c in first["children"]] == ["realized", "realized"]
        rest = await http.get(
            f"/v1/audiences/{audience}/members", params={"limit": 2, "after": first["_page"]["next"]}
        )
        assert [c["profileId"] for c in rest.json()["children"]] == profiles[2:]
        assert (await http.get(f"/v1/audiences/{uuid.uuid4()}/members")).status_code == 404

    async def test_a_change_no_rule_reads_evaluates_no_rule(
        self, http: httpx.AsyncClient, producer: Producer, infrastructure: StackInfo
    ) -> None:
        # Evaluating a rule the profile still meets makes its membership existing, silently:
        # that is how an evaluation of a rule the change does not concern would show.
        gold = await streaming_audience(http, 'loyalty.tier = "gold"')
        named = await streaming_audience(http, 'person.name.firstName = "Ann"')
        profile = str(uuid.uuid4())
        async with topic_reader(infrastructure, topics.AUDIENCES.name) as reader:
            await change(producer, profile, loyalty__tier="gold")
            await reader.wait_for(lambda r: announced(r, gold, profile) == ["realized"], timeout_s=30)
            await change(producer, profile, person__name__firstName="Ann")  # read by `named` only
            await reader.wait_for(lambda r: announced(r, named, profile) == ["realized"], timeout_s=30)
        # `named` was evaluated in the transaction that would have evaluated `gold`.
        member = await membership(http, gold, profile)
        assert member["status"] == "realized"
        await change(producer, profile, loyalty__tier="gold")  # read by `gold`: evaluated again

        async def existing() -> bool:
            status: str = (await membership(http, gold, profile))["status"]
            return status == "existing"

        await eventually(existing, timeout_s=30)
        assert (await membership(http, gold, profile))["enteredAt"] == member["enteredAt"]

    async def test_an_event_within_the_window_qualifies_the_profile(
        self, http: httpx.AsyncClient, producer: Producer, infrastructure: StackInfo
    ) -> None:
        rule = 'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 24 hours before now]'
        audience = await streaming_audience(http, rule)
        profile = str(uuid.uuid4())
        async with topic_reader(infrastructure, topics.AUDIENCES.name) as reader:
            await happened(producer, profile, "commerce.purchases", datetime.now(UTC))
            await reader.wait_for(lambda r: announced(r, audience, profile) == ["realized"], timeout_s=30)

    async def test_a_deleted_profile_exits_its_audiences(
        self, http: httpx.AsyncClient, producer: Producer, infrastructure: StackInfo
    ) -> None:
        audience = await streaming_audience(http, 'person.gender = "female"')
        profile = str(uuid.uuid4())
        async with topic_reader(infrastructure, topics.AUDIENCES.name) as reader:
            await change(producer, profile, person__gender="female")
            await reader.wait_for(lambda r: announced(r, audience, profile) == ["realized"], timeout_s=30)
            data = {
                "sandbox": "prod",
                "profileId": profile,
                "changes": [],
                "mergedProfileIds": [],
                "changedAt": datetime.now(UTC).isoformat(),
                "deleted": True,
            }
            envelope = Envelope(
                type="com.itinera.profile.change.v1", source="/t", data=data, sandbox="prod", key=profile
            )
            await producer.publish(topics.PROFILE_CHANGES.name, [envelope])
            await reader.wait_for(
                lambda r: announced(r, audience, profile) == ["realized", "exited"], timeout_s=30
            )


class TestAudiencesOfAudiences:
    async def test_an_audience_naming_another_follows_it_in_the_same_pass(
        self, http: httpx.AsyncClient, producer: Producer, infrastructure: StackInfo
    ) -> None:
        gold = await streaming_audience(http, 'loyalty.tier = "gold"')
        french_gold = await streaming_audience(
            http, f'inSegment("{gold}") and homeAddress.countryCode = "FR"'
        )
        profile = str(uuid.uuid4())
        async with topic_reader(infrastructure, topics.AUDIENCES.name) as reader:
            await change(producer, profile, homeAddress__countryCode="FR")
            await change(producer, profile, loyalty__tier="gold")  # read by `gold` only
            await reader.wait_for(
                lambda r: (
                    announced(r, gold, profile) == ["realized"]
                    and announced(r, french_gold, profile) == ["realized"]
                ),
                timeout_s=30,
            )
            await change(producer, profile, loyalty__tier="silver")
            await reader.wait_for(lambda r: announced(r, french_gold, profile) == ["realized", "exited"])


class TestTimeAlone:
    async def test_a_profile_exits_when_its_event_leaves_the_window_without_any_new_event(
        self, http: httpx.AsyncClient, producer: Producer, infrastructure: StackInfo
    ) -> None:
        rule = 'xEvent[eventType = "web.visit" and timestamp occurs <= 24 hours before now]'
        audience = await streaming_audience(http, rule)
        profile = str(uuid.uuid4())
        leaves = datetime.now(UTC) - timedelta(hours=24) + timedelta(seconds=4)
        async with topic_reader(infrastructure, topics.AUDIENCES.name) as reader:
            await happened(producer, profile, "web.visit", leaves)
            await reader.wait_for(lambda r: announced(r, audience, profile) == ["realized"], timeout_s=30)
            records = await reader.wait_for(
                lambda r: announced(r, audience, profile) == ["realized", "exited"], timeout_s=30
            )
        exits = [orjson.loads(r.value or b"{}") for r in records]
        assert [e["evaluation"] for e in exits if e["profileId"] == profile] == ["streaming", "scheduled"]
        former = await membership(http, audience, profile)
        assert moment(former["enteredAt"]) < leaves + timedelta(hours=24) <= moment(former["exitedAt"])

    async def test_an_event_today_is_evaluated_again_at_midnight_not_a_day_after_it(
        self, http: httpx.AsyncClient, producer: Producer, infrastructure: StackInfo, pool: asyncpg.Pool
    ) -> None:
        rule = 'xEvent[eventType = "web.visit" and timestamp occurs today]'
        audience = await streaming_audience(http, rule)
        profile = str(uuid.uuid4())
        stamp = datetime.now(UTC)
        async with topic_reader(infrastructure, topics.AUDIENCES.name) as reader:
            await happened(producer, profile, "web.visit", stamp)
            await reader.wait_for(lambda r: announced(r, audience, profile) == ["realized"], timeout_s=30)
        entered = moment((await membership(http, audience, profile))["enteredAt"])
        async with pool.acquire() as conn:
            due = await conn.fetchval(
                """SELECT due_at FROM reevaluations
                   WHERE sandbox = 'prod' AND audience_id = $1 AND profile_id = $2""",
                audience,
                profile,
            )
        # When the event stops being today's; its one-day look-back ends hours later.
        assert due == datetime.combine(entered.date() + timedelta(days=1), time(), UTC)
