"""``itinera.feedback.v1`` back into the platform: each feedback record becomes an XDM
experience event on ``itinera.events.v1`` (``message.tracking`` for what the recipient
did, ``message.feedback`` for what became of the message), keyed by the address's
identity; a record without a usable identity is dead-lettered."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import orjson
import pytest

from itinera.common.kafka import topics
from itinera.common.kafka.consumer import PermanentError, Record
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.testing import StackInfo, topic_reader
from itinera.common.xdm.schemas import EXPERIENCE_EVENT, SchemaLibrary
from itinera.ingestion.config import IngestionSettings
from itinera.ingestion.feedback import DATASET, FeedbackConverter, event_id

FEEDBACK_TYPE = "com.itinera.message.feedback.v1"
JOURNEY_ID = "54669488-03ab-4e0d-a694-37fe49e32be8"
INSTANCE_ID = "0c1f8d5e-8b8e-4a44-9d7b-9a1f0a3e7f10"


def feedback(status: str, **fields: Any) -> dict[str, Any]:
    """A feedback record as the channels publish it (``feedback.v1.schema.json``)."""
    return {
        "sandbox": "prod",
        "messageId": str(uuid.uuid4()),
        "profileId": str(uuid.uuid4()),
        "channel": "email",
        "status": status,
        "reason": None,
        "bounce": None,
        "address": "jane@example.com",
        "url": None,
        "origin": {
            "kind": "journey",
            "journeyId": JOURNEY_ID,
            "version": 3,
            "instanceId": INSTANCE_ID,
            "nodeId": "welcome",
            "step": 2,
        },
        "at": "2026-11-28T10:00:01.250000Z",
    } | fields


@pytest.fixture
async def producer(settings: IngestionSettings) -> AsyncIterator[Producer]:
    started = Producer(settings)
    await started.start()
    yield started
    await started.stop()


async def publish(producer: Producer, *records: dict[str, Any]) -> None:
    await producer.publish(
        topics.FEEDBACK.name,
        [
            Envelope(
                type=FEEDBACK_TYPE,
                source="/itinera/channels",
                data=record,
                sandbox=record["sandbox"],
                key=record["profileId"],
            )
            for record in records
        ],
    )


def execution_of(record: Record) -> Any:
    event = orjson.loads(record.value or b"")
    return event["_experience"]["customerJourneyManagement"]["messageExecution"]["messageExecutionID"]


async def events_of(infrastructure: StackInfo, producer: Producer, *sent: dict[str, Any]) -> list[Record]:
    """Publish ``sent`` and wait for one event per record; those events, in order."""
    wanted = [r["messageId"] for r in sent]
    async with topic_reader(infrastructure, topics.EVENTS.name) as reader:
        await publish(producer, *sent)
        records = await reader.wait_for(
            lambda rs: sum(1 for r in rs if execution_of_or_none(r) in wanted) >= len(sent), timeout_s=30
        )
    mine = [r for r in records if execution_of_or_none(r) in wanted]
    return sorted(mine, key=lambda r: wanted.index(execution_of(r)))


def execution_of_or_none(record: Record) -> Any:
    try:
        return execution_of(record)
    except (KeyError, TypeError, orjson.JSONDecodeError):
        return None


def experience_event_headers() -> jsonschema_rs.Validator:
    """The headers schema's definition of a record on ``itinera.events.v1``."""
    path = IngestionSettings().schemas_dir / "topics" / "headers.schema.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    document["$ref"] = "#/$defs/experienceEvent"
    return jsonschema_rs.Draft202012Validator(document, validate_formats=True)


class TestTrackingFeedback:
    async def test_an_open_becomes_a_message_tracking_event_of_the_address(
        self, app: Any, infrastructure: StackInfo, producer: Producer
    ) -> None:
        sent = feedback("opened")
        (published,) = await events_of(infrastructure, producer, sent)
        event = orjson.loads(published.value or b"")
        journey = event["_experience"]["customerJourneyManagement"]
        assert event["eventType"] == "message.tracking"
        assert event["timestamp"] == sent["at"]
        assert event["_id"] == event_id(sent)
        assert journey["messageExecution"] == {
            "messageExecutionID": sent["messageId"],
            "journeyVersionID": f"{JOURNEY_ID}/versions/3",
            "journeyVersionInstanceID": INSTANCE_ID,
            "journeyVersionNodeID": "welcome",
        }
        assert journey["messageInteraction"] == {"interactionType": "open"}
        assert event["identityMap"] == {"Email": [{"id": "jane@example.com", "primary": True}]}
        assert published.key == "Email:jane@example.com"
        assert published.sandbox == "prod"
        assert published.headers["itinera_dataset"] == DATASET
        assert published.headers["itinera_schema"] == EXPERIENCE_EVENT
        assert published.headers["ce_type"] == "com.itinera.ingestion.event.v1"
        assert published.ce_id == event["_id"]
        assert published.headers["ce_time"] == sent["at"]
        assert experience_event_headers().is_valid(published.headers)

    async def test_a_click_carries_the_link_followed(
        self, app: Any, infrastructure: StackInfo, producer: Producer
    ) -> None:
        sent = feedback("clicked", url="https://shop.example.com/offers?id=7")
        (published,) = await events_of(infrastructure, producer, sent)
        journey = orjson.loads(published.value or b"")["_experience"]["customerJourneyManagement"]
        assert journey["messageInteraction"] == {
            "interactionType": "click",
            "url": "https://shop.example.com/offers?id=7",
        }

    async def test_a_spam_complaint_is_a_tracking_event_of_its_own(
        self, app: Any, infrastructure: StackInfo, producer: Producer
    ) -> None:
        sent = feedback("complained", reason="abuse")
        (published,) = await events_of(infrastructure, producer, sent)
        event = orjson.loads(published.value or b"")
        assert event["eventType"] == "message.tracking"
        journey = event["_experience"]["customerJourneyManagement"]
        assert journey["messageInteraction"] == {"interactionType": "spam_complaint"}

    async def test_the_same_record_twice_gives_the_same_event_id(
        self, app: Any, infrastructure: StackInfo, producer: Producer
    ) -> None:
        sent = feedback("opened")
        again = dict(sent)
        first, second = await events_of(infrastructure, producer, sent, again)
        assert orjson.loads(first.value or b"")["_id"] == orjson.loads(second.value or b"")["_id"]
        assert first.ce_id == second.ce_id == event_id(sent)


class TestDeliveryFeedback:
    async def test_a_bounce_becomes_a_message_feedback_event_with_the_exact_reason(
        self, app: Any, infrastructure: StackInfo, producer: Producer
    ) -> None:
        sent = feedback("bounced", bounce="hard", reason="550 5.1.1 <jane@example.com>: user unknown")
        (published,) = await events_of(infrastructure, producer, sent)
        event = orjson.loads(published.value or b"")
        journey = event["_experience"]["customerJourneyManagement"]
        assert event["eventType"] == "message.feedback"
        assert journey["messageDeliveryfeedback"] == {
            "feedbackStatus": "bounce",
            "messageFailure": {"type": "hard", "reason": "550 5.1.1 <jane@example.com>: user unknown"},
        }
        assert "messageInteraction" not in journey
        assert published.key == "Email:jane@example.com"
        assert published.headers["itinera_dataset"] == DATASET

    async def test_an_exclusion_keeps_its_reason_and_an_sms_is_keyed_by_phone(
        self, app: Any, infrastructure: StackInfo, producer: Producer
    ) -> None:
        sent = feedback("excluded", channel="sms", address="+14155550100", reason="quiet-hours")
        (published,) = await events_of(infrastructure, producer, sent)
        journey = orjson.loads(published.value or b"")["_experience"]["customerJourneyManagement"]
        assert journey["messageDeliveryfeedback"] == {
            "feedbackStatus": "exclude",
            "messageExclusion": {"reason": "quiet-hours"},
        }
        assert journey["smsChannelContext"] == {"profileNumber": "+14155550100"}
        assert published.key == "Phone:+14155550100"


class TestUnusableFeedback:
    async def test_a_record_without_an_address_is_dead_lettered_with_the_reason(
        self, app: Any, infrastructure: StackInfo, producer: Producer
    ) -> None:
        sent = feedback("delivered", address=None)

        def letters(records: list[Record]) -> list[dict[str, Any]]:
            found = [orjson.loads(r.value or b"") for r in records]
            return [
                letter
                for letter in found
                if letter.get("origin", {}).get("topic") == topics.FEEDBACK.name
                and (letter.get("payload") or {}).get("messageId") == sent["messageId"]
            ]

        async with topic_reader(infrastructure, topics.DLQ.name) as reader:
            await publish(producer, sent)
            records = await reader.wait_for(lambda rs: bool(letters(rs)), timeout_s=30)
        (letter,) = letters(records)
        assert letter["kind"] == "processing"
        assert letter["origin"]["service"] == "ingestion"
        assert letter["reasons"] == [
            {
                "path": "/address",
                "message": "no usable identity: the record has no address",
                "code": "identity.missing",
            }
        ]
        # The consumer goes on: a good record after the bad one gets through.
        (published,) = await events_of(infrastructure, producer, feedback("sent"))
        assert orjson.loads(published.value or b"")["eventType"] == "message.feedback"


@pytest.fixture(scope="module")
def converter() -> FeedbackConverter:
    """A converter configured with a push token namespace."""
    schemas_dir = IngestionSettings().schemas_dir
    return FeedbackConverter(SchemaLibrary.load(schemas_dir), schemas_dir, "PushToken")


class TestMapping:
    """The conversion on its own, without the broker."""

    @staticmethod
    def record(value: dict[str, Any]) -> Record:
        return Record(topics.FEEDBACK.name, 0, 0, value["profileId"], orjson.dumps(value), {}, 0)

    def test_a_push_token_goes_under_the_configured_namespace(self, converter: FeedbackConverter) -> None:
        envelope = converter.envelope(self.record(feedback("delivered", channel="push", address="tok-1")))
        assert envelope is not None
        assert envelope.key == "PushToken:tok-1"
        assert envelope.data["_experience"]["customerJourneyManagement"]["pushChannelContext"] == {
            "token": "tok-1"
        }

    def test_a_webhook_has_no_identity_so_its_feedback_is_skipped_not_refused(
        self, converter: FeedbackConverter
    ) -> None:
        sent = feedback("sent", channel="webhook", address="https://hooks.example.com/x")
        assert converter.envelope(self.record(sent)) is None

    def test_a_campaign_message_names_its_campaign_and_execution(self, converter: FeedbackConverter) -> None:
        campaign, execution = str(uuid.uuid4()), str(uuid.uuid4())
        sent = feedback(
            "sent",
            origin={"kind": "campaign", "campaignId": campaign, "executionId": execution, "testMode": True},
        )
        envelope = converter.envelope(self.record(sent))
        assert envelope is not None
        data = envelope.data["_experience"]["customerJourneyManagement"]
        assert data["messageExecution"] == {
            "messageExecutionID": sent["messageId"],
            "campaignID": campaign,
            "batchInstanceID": execution,
        }
        assert data["messageProfile"]["isTestExecution"] is True

    def test_a_record_off_its_schema_is_refused_with_every_reason(self, converter: FeedbackConverter) -> None:
        with pytest.raises(PermanentError) as refused:
            converter.envelope(self.record(feedback("read", at="yesterday")))
        assert {r.path for r in refused.value.reasons} == {"/status", "/at"}

    def test_an_event_that_is_not_valid_xdm_is_refused(self, converter: FeedbackConverter) -> None:
        with pytest.raises(PermanentError) as refused:
            converter.envelope(self.record(feedback("clicked", url="not a link")))
        assert [r.path for r in refused.value.reasons] == [
            "/_experience/customerJourneyManagement/messageInteraction/url"
        ]

    def test_the_event_id_depends_on_message_status_link_and_time(self) -> None:
        sent = feedback("clicked", url="https://a.example.com/")
        assert event_id(sent) == event_id(dict(sent))
        assert event_id(sent) != event_id(sent | {"url": "https://b.example.com/"})
        assert event_id(sent) != event_id(sent | {"at": datetime(2026, 11, 29, tzinfo=UTC).isoformat()})
        assert event_id(sent) != event_id(sent | {"status": "opened"})
