"""Message feedback back into the platform: ``itinera.feedback.v1`` records become XDM
experience events on ``itinera.events.v1``, so that profiles, audiences and journeys
react to what became of a message and to what its recipient did with it.

- ``opened``, ``clicked``, ``unsubscribed``, ``complained`` become ``message.tracking``
  events (``messageInteraction.interactionType`` ``open``, ``click``, ``unsubscribe``,
  ``spam_complaint``; the link followed in ``url``), the shape journeys wait for;
- ``sent``, ``delivered``, ``bounced``, ``failed``, ``excluded`` become
  ``message.feedback`` events (``messageDeliveryfeedback``, the reason kept as sent).

Both carry ``messageExecution`` (``messageExecutionID`` is the message id, with the
journey or campaign that sent it) and ``messageProfile`` (the channel). The event's
``_id`` is derived from the message id, the status, the link and the time, so the same
fact delivered twice is the same event and the profile store keeps it once.

The profile id of a feedback record is the profile service's own id, not an identity,
so the event's identity is the address the message went to, under the namespace of
its channel (email: ``Email``; sms: ``Phone``; push: a namespace only if configured,
since no standard namespace holds push tokens; webhook: none). Feedback of a channel
without a namespace is expected and skipped (counted as ``skipped``); a record without
a usable address, or whose event would not be valid XDM, can never succeed: it is
refused with :class:`PermanentError` and the consumer loop dead-letters it.

Every event goes to the system dataset ``itinera-message-feedback`` (not in the
catalogue) and is validated against the global experience event schema, the class
with every standard field group (``itinera_schema`` is the class id).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from itinera.common.errors import FieldError
from itinera.common.kafka import topics
from itinera.common.kafka.consumer import PermanentError, Record
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.xdm import identity as identities
from itinera.common.xdm.identity import Identity
from itinera.common.xdm.schemas import EXPERIENCE_EVENT, CompiledSchema, SchemaLibrary
from itinera.ingestion.collection.service import EVENT_TYPE, MESSAGES

DATASET: Final = "itinera-message-feedback"
"""The system dataset of feedback events: what ``itinera_dataset`` says, and what an
event time-to-live in the profile service is set on."""
SOURCE: Final = "/itinera/ingestion"
FEEDBACK_SCHEMA: Final = "topics/feedback.v1.schema.json"

TRACKING: Final = {
    "opened": "open",
    "clicked": "click",
    "unsubscribed": "unsubscribe",
    "complained": "spam_complaint",
}
DELIVERY: Final = {
    "sent": "sent",
    "delivered": "delivered",
    "bounced": "bounce",
    "failed": "error",
    "excluded": "exclude",
}
_IDS: Final = uuid.UUID("9c4e2a71-3b58-5f0d-a6e1-7d2b4c8f1e93")


def event_id(feedback: Mapping[str, Any]) -> str:
    """The event's ``_id``: one fact, one id, however often it is delivered."""
    url = feedback.get("url") or ""
    return str(uuid.uuid5(_IDS, f"{feedback['messageId']}|{feedback['status']}|{url}|{feedback['at']}"))


def namespace_of(channel: str, push_namespace: str | None) -> str | None:
    """The identity namespace of a channel's addresses, if it has one."""
    if channel == "email":
        return "Email"
    if channel == "sms":
        return "Phone"
    if channel == "push":
        return push_namespace
    return None


def identity_of(feedback: Mapping[str, Any], push_namespace: str | None) -> Identity:
    """The address as the event's primary identity; :class:`PermanentError` if unusable."""
    channel = feedback["channel"]
    namespace = namespace_of(channel, push_namespace)
    if namespace is None:
        why = (
            "no identity namespace is configured for push tokens (ITINERA_INGESTION_FEEDBACK_PUSH_NAMESPACE)"
            if channel == "push"
            else f"{channel} addresses are not identities"
        )
        raise PermanentError([FieldError("/channel", f"no usable identity: {why}", "identity.missing")])
    address = feedback.get("address")
    if not isinstance(address, str) or not address.strip():
        raise PermanentError(
            [FieldError("/address", "no usable identity: the record has no address", "identity.missing")]
        )
    found = Identity(namespace, address, primary=True, path="/address")
    problems = identities.check([found])
    if problems:
        raise PermanentError(problems)
    return found


def to_event(feedback: Mapping[str, Any], identity: Identity) -> dict[str, Any]:
    """The XDM experience event of one (schema-valid) feedback record."""
    status = feedback["status"]
    channel = feedback["channel"]
    journey: dict[str, Any] = {
        "messageExecution": _execution(feedback),
        "messageProfile": _message_profile(feedback),
    }
    context = _channel_context(channel, identity)
    if context is not None:
        journey[context[0]] = context[1]
    if status in TRACKING:
        event_type = "message.tracking"
        interaction: dict[str, Any] = {"interactionType": TRACKING[status]}
        if feedback.get("url"):
            interaction["url"] = feedback["url"]
        journey["messageInteraction"] = interaction
    else:
        event_type = "message.feedback"
        journey["messageDeliveryfeedback"] = _delivery(feedback)
    return {
        "_id": event_id(feedback),
        "timestamp": feedback["at"],
        "eventType": event_type,
        "producedBy": "system",
        "identityMap": {identity.namespace: [{"id": identity.id, "primary": True}]},
        "_experience": {"customerJourneyManagement": journey},
    }


def _execution(feedback: Mapping[str, Any]) -> dict[str, Any]:
    execution: dict[str, Any] = {"messageExecutionID": feedback["messageId"]}
    origin = feedback.get("origin") or {}
    if origin.get("kind") == "journey":
        if origin.get("journeyId") and origin.get("version") is not None:
            # Versions have no id of their own: the journeys API's path names one.
            execution["journeyVersionID"] = f"{origin['journeyId']}/versions/{origin['version']}"
        if origin.get("instanceId"):
            execution["journeyVersionInstanceID"] = str(origin["instanceId"])
        if origin.get("nodeId"):
            execution["journeyVersionNodeID"] = str(origin["nodeId"])
    elif origin.get("kind") == "campaign":
        if origin.get("campaignId"):
            execution["campaignID"] = str(origin["campaignId"])
        if origin.get("executionId"):
            execution["batchInstanceID"] = str(origin["executionId"])
    category = origin.get("category")
    if category in ("marketing", "transactional"):
        execution["messageType"] = category
    return execution


def _message_profile(feedback: Mapping[str, Any]) -> dict[str, Any]:
    name = feedback["channel"]
    profile: dict[str, Any] = {
        "messageProfileID": feedback["messageId"],
        "channel": {
            "_id": f"https://ns.adobe.com/xdm/channels/{name}",
            "_type": f"https://ns.adobe.com/xdm/channel-types/{name}",
        },
    }
    if (feedback.get("origin") or {}).get("testMode") is True:
        profile["isTestExecution"] = True
    return profile


def _channel_context(channel: str, identity: Identity) -> tuple[str, dict[str, Any]] | None:
    if channel == "email":
        domain = identity.id.rpartition("@")[2]
        context = {"address": identity.id, "namespace": identity.namespace, "domain": domain}
        return "emailChannelContext", context
    if channel == "sms":
        return "smsChannelContext", {"profileNumber": identity.id}
    if channel == "push":
        return "pushChannelContext", {"token": identity.id}
    return None


def _delivery(feedback: Mapping[str, Any]) -> dict[str, Any]:
    status = feedback["status"]
    delivery: dict[str, Any] = {"feedbackStatus": DELIVERY[status]}
    reason = feedback.get("reason")
    if status in ("bounced", "failed"):
        failure: dict[str, Any] = {}
        if feedback.get("bounce"):
            failure["type"] = feedback["bounce"]
        if reason is not None:
            failure["reason"] = reason
        if failure:
            delivery["messageFailure"] = failure
    elif status == "excluded" and reason is not None:
        delivery["messageExclusion"] = {"reason": reason}
    return delivery


class FeedbackConverter:
    """Feedback records to experience event envelopes, with both ends validated: the
    record against ``feedback.v1.schema.json``, the event against the global experience
    event schema. The validators are compiled once."""

    def __init__(self, library: SchemaLibrary, schemas_dir: Path, push_namespace: str | None) -> None:
        self.push_namespace = push_namespace
        document = json.loads((schemas_dir / FEEDBACK_SCHEMA).read_text(encoding="utf-8"))
        self.records: CompiledSchema = library.compile(document)
        self.events: CompiledSchema = library.compile(library.union_schema(EXPERIENCE_EVENT))

    def envelope(self, record: Record) -> Envelope | None:
        """The event of one record; None for a channel whose addresses are no identity
        (webhook, push without a configured namespace): that feedback is expected, not
        wrong, and is counted rather than dead-lettered; :class:`PermanentError` with
        every reason when the record cannot become an event."""
        feedback = record.json()
        if not self.records.is_valid(feedback):
            raise PermanentError(self.records.errors(feedback))
        if namespace_of(str(feedback.get("channel")), self.push_namespace) is None:
            return None
        identity = identity_of(feedback, self.push_namespace)
        event = to_event(feedback, identity)
        if not self.events.is_valid(event):
            raise PermanentError(
                [
                    FieldError(p.path, f"in the experience event: {p.message}", p.code)
                    for p in self.events.errors(event)
                ]
            )
        trace = {k: v for k, v in record.headers.items() if k in ("traceparent", "tracestate")}
        return Envelope(
            type=EVENT_TYPE,
            source=SOURCE,
            data=event,
            sandbox=feedback["sandbox"],
            key=identity.key,
            id=event["_id"],
            time=_utc(feedback["at"]),
            extensions={"itinera_dataset": DATASET, "itinera_schema": EXPERIENCE_EVENT, **trace},
        )


class FeedbackIngestor:
    """Publishes the events of a batch of feedback records. The batch is published only
    when every record of it converts: if one cannot, the consumer loop retries the
    records one by one, and each good record is then published once, not twice."""

    def __init__(self, converter: FeedbackConverter, producer: Producer) -> None:
        self.converter = converter
        self.producer = producer

    async def ingest(self, batch: Sequence[Record]) -> None:
        converted = [self.converter.envelope(record) for record in batch]
        envelopes = [e for e in converted if e is not None]
        await self.producer.publish(topics.EVENTS.name, envelopes)
        MESSAGES.labels("accepted", "feedback").inc(len(envelopes))
        MESSAGES.labels("skipped", "feedback").inc(len(converted) - len(envelopes))


def _utc(value: str) -> datetime:
    """``at`` as an aware UTC datetime (the schema checked it is RFC 3339)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        problem = FieldError("/at", f"not a date-time Python reads: {value!r}", "format")
        raise PermanentError([problem]) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
