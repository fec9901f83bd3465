"""The projection, fed by the profile service's topics on the real broker: what the
rules of audiences are evaluated on."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from itinera.common.kafka import topics
from itinera.common.kafka.consumer import Record
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.testing import StackInfo, TopicReader, eventually, topic_reader
from itinera.segmentation.config import SegmentationSettings

SANDBOX = "prod"


@pytest.fixture
async def producer(segmentation_settings: SegmentationSettings) -> AsyncIterator[Producer]:
    started = Producer(segmentation_settings)
    await started.start()
    yield started
    await started.stop()


async def changed(producer: Producer, profile: str, changes: dict[str, Any], **extra: Any) -> None:
    data = {
        "sandbox": SANDBOX,
        "profileId": profile,
        "changes": [{"path": p, "old": None, "new": v} for p, v in changes.items()],
        "mergedProfileIds": [],
        "changedAt": "2026-11-28T12:00:00Z",
        **extra,
    }
    envelope = Envelope(
        type="com.itinera.profile.change.v1", source="/test", data=data, sandbox=SANDBOX, key=profile
    )
    await producer.publish(topics.PROFILE_CHANGES.name, [envelope])


async def happened(producer: Producer, profile: str, event_id: str, snapshot: dict[str, Any]) -> None:
    body = {"_id": event_id, "timestamp": "2026-11-28T10:00:00Z", "eventType": "commerce.purchases"}
    data = {"sandbox": SANDBOX, "profileId": profile, "event": body, "profile": snapshot}
    envelope = Envelope(
        type="com.itinera.profile.event.v1", source="/test", data=data, sandbox=SANDBOX, key=profile
    )
    await producer.publish(topics.PROFILE_EVENTS.name, [envelope])


async def letter_for(letters: TopicReader, key: str) -> dict[str, Any]:
    """The dead letter of the record keyed ``key``, once the segmentation service wrote it."""

    def of(records: list[Record]) -> list[dict[str, Any]]:
        found = (orjson.loads(r.value or b"{}") for r in records)
        return [f for f in found if f.get("origin", {}).get("key") == key]

    return of(await letters.wait_for(lambda records: bool(of(records)), timeout_s=30))[0]


async def projected(http: httpx.AsyncClient, profile: str) -> dict[str, Any] | None:
    response = await http.get(f"/v1/projection/profiles/{profile}")
    return dict(response.json()) if response.status_code == 200 else None


class TestProjection:
    async def test_changes_and_events_build_the_profile_the_rules_read(
        self, http: httpx.AsyncClient, producer: Producer
    ) -> None:
        profile = str(uuid.uuid4())
        await changed(producer, profile, {"person.name.firstName": "Ann", "homeAddress.countryCode": "FR"})
        # The event's snapshot is the view after its batch: the two topics are not
        # ordered with each other, and either order gives the same profile.
        view = {"person": {"name": {"firstName": "Ann"}}, "homeAddress": {"countryCode": "FR"}}
        await happened(producer, profile, f"{profile}-1", view)

        async def built() -> bool:
            found = await projected(http, profile)
            return found is not None and len(found["xEvent"]) == 1

        await eventually(built, timeout_s=30)
        found = await projected(http, profile)
        assert found is not None
        assert found["attributes"] == {
            "person": {"name": {"firstName": "Ann"}},
            "homeAddress": {"countryCode": "FR"},
        }
        rule = 'homeAddress.countryCode = "FR" and xEvent[eventType = "commerce.purchases"].count() > 0'
        evaluated = await http.post("/v1/pql/evaluate", json={"expression": rule, "profileId": profile})
        assert evaluated.json()["qualifies"] is True

    async def test_a_merge_moves_attributes_and_events_to_the_survivor(
        self, http: httpx.AsyncClient, producer: Producer
    ) -> None:
        old, survivor = str(uuid.uuid4()), str(uuid.uuid4())
        await happened(producer, old, f"{old}-1", {"loyalty": {"tier": "gold"}})
        await happened(producer, survivor, f"{survivor}-1", {"person": {"name": {"firstName": "Bo"}}})

        async def both() -> bool:
            return await projected(http, old) is not None and await projected(http, survivor) is not None

        await eventually(both, timeout_s=30)
        await changed(producer, survivor, {}, mergedProfileIds=[old])

        async def merged() -> bool:
            return await projected(http, old) is None

        await eventually(merged, timeout_s=30)
        found = await projected(http, survivor)
        assert found is not None
        assert found["attributes"] == {"loyalty": {"tier": "gold"}, "person": {"name": {"firstName": "Bo"}}}
        assert len(found["xEvent"]) == 2

    async def test_a_deleted_profile_leaves_the_projection(
        self, http: httpx.AsyncClient, producer: Producer
    ) -> None:
        profile = str(uuid.uuid4())
        await happened(producer, profile, f"{profile}-1", {"a": 1})

        async def present() -> bool:
            return await projected(http, profile) is not None

        await eventually(present, timeout_s=30)
        await changed(producer, profile, {"a": None}, deleted=True)

        async def gone() -> bool:
            return await projected(http, profile) is None

        await eventually(gone, timeout_s=30)

    async def test_a_malformed_record_is_dead_lettered_with_its_reason_and_the_next_one_applied(
        self, http: httpx.AsyncClient, producer: Producer, infrastructure: StackInfo
    ) -> None:
        key = f"bad-{uuid.uuid4()}"
        async with topic_reader(infrastructure, topics.DLQ.name) as letters:
            raw = AIOKafkaProducer(bootstrap_servers=infrastructure.kafka_bootstrap)
            await raw.start()
            try:
                await raw.send_and_wait(
                    topics.PROFILE_CHANGES.name, value=b'{"profileId": "not a uuid"}', key=key.encode()
                )
            finally:
                await raw.stop()
            profile = str(uuid.uuid4())
            await changed(producer, profile, {"a": 1})

            async def applied() -> bool:
                return await projected(http, profile) is not None

            await eventually(applied, timeout_s=30)
            letter = await letter_for(letters, key)
        assert letter["origin"]["topic"] == topics.PROFILE_CHANGES.name
        assert [r["path"] for r in letter["reasons"]] == ["/profileId"]

    async def test_an_event_without_its_id_or_a_readable_time_is_dead_lettered_not_dropped(
        self, producer: Producer, infrastructure: StackInfo
    ) -> None:
        profile = str(uuid.uuid4())
        data = {"sandbox": SANDBOX, "profileId": profile, "event": {"timestamp": "yesterday"}, "profile": {}}
        envelope = Envelope(
            type="com.itinera.profile.event.v1", source="/test", data=data, sandbox=SANDBOX, key=profile
        )
        async with topic_reader(infrastructure, topics.DLQ.name) as letters:
            await producer.publish(topics.PROFILE_EVENTS.name, [envelope])
            letter = await letter_for(letters, profile)
        assert letter["origin"]["topic"] == topics.PROFILE_EVENTS.name
        assert sorted(r["path"] for r in letter["reasons"]) == ["/event/_id", "/event/timestamp"]

    async def test_evaluating_an_unknown_profile_is_a_404_and_both_forms_a_400(
        self, http: httpx.AsyncClient
    ) -> None:
        unknown = await http.post(
            "/v1/pql/evaluate", json={"expression": "true", "profileId": str(uuid.uuid4())}
        )
        assert unknown.status_code == 404
        both = await http.post(
            "/v1/pql/evaluate", json={"expression": "true", "profileId": str(uuid.uuid4()), "profile": {}}
        )
        assert both.status_code == 400
        assert both.json()["errors"][0]["path"] == "/profileId"
