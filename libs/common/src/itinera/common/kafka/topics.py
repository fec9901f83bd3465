"""The one declared catalogue of Kafka topics.

Topic creation (``itinera topics create``), the AsyncAPI document and the services all
read this list, so a topic exists in exactly one place. A test checks that every
topic here is described in ``schemas/asyncapi.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    description: str
    key: str
    payload_schema: str
    """Path under ``schemas/`` of the JSON Schema of the record value."""
    partitions: int = 8
    retention_ms: int = 7 * DAY_MS
    config: dict[str, str] = field(default_factory=dict)

    def topic_config(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), **self.config}


INBOUND = Topic(
    name="itinera.inbound.v1",
    description=(
        "Messages from any producer, in the shape of the AEP streaming API "
        "(one message with header and body, or a bare XDM entity with the "
        "itinera_connection or itinera_dataset header). Validated by ingestion."
    ),
    key="primary identity namespace:id if the producer knows it, else any",
    payload_schema="topics/inbound.v1.schema.json",
)
EVENTS = Topic(
    name="itinera.events.v1",
    description="Valid XDM experience events, as accepted by ingestion.",
    key="primary identity namespace:id",
    payload_schema="xdm/classes/experienceevent.schema.json",
)
RECORDS = Topic(
    name="itinera.records.v1",
    description=(
        "Valid XDM profile records, as accepted by ingestion, and the people of audiences "
        "uploaded to segmentation."
    ),
    key="primary identity namespace:id",
    payload_schema="xdm/classes/profile.schema.json",
)
DLQ = Topic(
    name="itinera.dlq.v1",
    description=(
        "Dead letters: messages refused by validation and records a consumer failed "
        "to process after its retries, each with every reason."
    ),
    key="the key of the original record, or the connection id",
    payload_schema="topics/dlq.v1.schema.json",
    partitions=4,
    retention_ms=30 * DAY_MS,
)

IDENTITY_MERGES = Topic(
    name="itinera.identity.merges.v1",
    description=(
        "Profiles that stopped existing because their identity graph joined another: "
        "the surviving profile id and the ids merged into it."
    ),
    key="the surviving profile id",
    payload_schema="topics/identity-merges.v1.schema.json",
    retention_ms=30 * DAY_MS,
)

PROFILE_EVENTS = Topic(
    name="itinera.profile.events.v1",
    description=(
        "Every experience event the profile store took, with its profile id and a snapshot of "
        "the profile's merged view (default merge policy)."
    ),
    key="profile id",
    payload_schema="topics/profile-events.v1.schema.json",
)
PROFILE_CHANGES = Topic(
    name="itinera.profile.changes.v1",
    description=(
        "Changes to a profile's merged view (default merge policy): the attribute paths that "
        "changed with old and new values, and the profile ids merged into it."
    ),
    key="profile id",
    payload_schema="topics/profile-changes.v1.schema.json",
)

AUDIENCES = Topic(
    name="itinera.audiences.v1",
    description=(
        "Audience membership changes: a profile entered (realized) or exited an audience, "
        "from streaming or batch evaluation."
    ),
    key="profile id",
    payload_schema="topics/audiences.v1.schema.json",
)

PROFILE_UPDATES = Topic(
    name="itinera.profile.updates.v1",
    description=(
        "Attribute updates for the profile store from other services (journeys' update "
        "profile action), applied as the profile API's PATCH of attributes is."
    ),
    key="profile id",
    payload_schema="topics/profile-updates.v1.schema.json",
)
MESSAGES = Topic(
    name="itinera.messages.v1",
    description=(
        "Message requests from journeys and campaigns: a channel, a template, the context "
        "and a snapshot of the profile, with a deterministic message id (the channels' "
        "idempotency key)."
    ),
    key="profile id",
    payload_schema="topics/messages.v1.schema.json",
)
JOURNEY_STEPS = Topic(
    name="itinera.journey.steps.v1",
    description=(
        "What journey instances do: a profile entered, a step started, finished or failed, "
        "the profile exited, each with its reason; what reporting reads."
    ),
    key="profile id",
    payload_schema="topics/journey-steps.v1.schema.json",
)

CONTENT = Topic(
    name="itinera.content.v1",
    description=(
        "Published templates and fragments, each record the whole current version of one "
        "of them (or its deletion), so that the channels keep what they render with."
    ),
    key="template:<id> or fragment:<id>",
    payload_schema="topics/content.v1.schema.json",
    retention_ms=3650 * DAY_MS,  # what a channels worker rebuilds its store from
)
FEEDBACK = Topic(
    name="itinera.feedback.v1",
    description=(
        "What became of each message: sent, delivered, bounced, failed or excluded (with "
        "the reason), and what the recipient did (opened, clicked, unsubscribed, complained)."
    ),
    key="profile id",
    payload_schema="topics/feedback.v1.schema.json",
)

CATALOGUE: tuple[Topic, ...] = (
    INBOUND,
    EVENTS,
    RECORDS,
    DLQ,
    IDENTITY_MERGES,
    PROFILE_EVENTS,
    PROFILE_CHANGES,
    AUDIENCES,
    PROFILE_UPDATES,
    MESSAGES,
    JOURNEY_STEPS,
    CONTENT,
    FEEDBACK,
)


def by_name(name: str) -> Topic:
    for topic in CATALOGUE:
        if topic.name == name:
            return topic
    raise KeyError(name)
