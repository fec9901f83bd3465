"""Campaigns: ``/v1/campaigns`` bodies and answers, and the bodies of AJO's execution API
(``/ajo/im/executions/...``), in the shapes of Adobe's description of it.

A campaign sends one message (a channel's template, personalised with ``context``) to
many profiles:

- ``type: "scheduled"``: to the members of ``audienceId``, once or on a ``schedule``,
  ``rate`` profiles a second;
- ``type: "api"``: when the execution API asks, ``mode: "unitary"`` to the recipients a
  call names, ``mode: "audience"`` to the members of an audience (the call's, else the
  campaign's ``audienceId``), at ``rate``.

``context`` maps a name to a PQL expression evaluated over each profile (a string, as a
journey's message node writes it; a PQL literal such as ``"SPRING25"`` is a constant),
or to ``{"value": <any JSON>}``, used as is. A wrong shape is a 422 with ``/body/...``
paths; what the values mean (a PQL expression that does not parse, a scheduled campaign
without an audience...) is a 400 naming every problem with its path in the document.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from itinera.common.web.problems import documented
from itinera.journeys.definitions.schemas import Moment, Schedule, WarningOut
from itinera.journeys.values import Description, Identifier, Name, Reference, Storable, Strict, Text

DEFAULT_RATE = 5000
MAX_CONTEXT = 100
MAX_RECIPIENTS = 20
"""Recipients of one unitary call, as AJO allows."""


Channel = Literal["email", "sms", "push", "webhook"]
Category = Literal["marketing", "transactional"]


class CampaignIn(Strict):
    """A campaign: what ``POST`` and ``PUT`` send."""

    name: Name
    description: Description = ""
    type: Literal["api", "scheduled"]
    mode: Literal["unitary", "audience"] | None = Field(
        default=None, description="API-triggered campaigns: `unitary` (default) or `audience`"
    )
    channel: Channel
    templateId: Reference = Field(description="The content service's template: a UUID or a slug")
    category: Category = Field(
        default="marketing", description="Marketing messages need consent; transactional ones do not"
    )
    context: dict[Identifier, Any] = Field(
        default_factory=dict,
        max_length=MAX_CONTEXT,
        description='name: a PQL expression over the profile, or `{"value": <any JSON>}`',
    )
    audienceId: Reference | None = Field(
        default=None, description="Scheduled campaigns: whom to send to; audience API campaigns: the default"
    )
    schedule: Schedule | None = Field(default=None, description="Scheduled campaigns: when")
    rate: int = Field(default=DEFAULT_RATE, ge=1, le=10**9, description="Profiles a second, at most")
    endAt: Moment | None = Field(default=None, description="Scheduled campaigns: no occurrence after it")


class ListQuery(BaseModel):
    start: int = Field(default=0, ge=0, le=10**9, description="The offset of the first campaign")
    limit: int = Field(default=100, ge=1, le=1000)
    status: Literal["draft", "live", "stopped", "completed"] | None = None
    type: Literal["api", "scheduled"] | None = None


class ExecutionQuery(BaseModel):
    start: int = Field(default=0, ge=0, le=10**9)
    limit: int = Field(default=100, ge=1, le=1000)


# Answers


class PageOut(BaseModel):
    totalCount: int | None = None
    start: int
    limit: int
    pageSize: int


class LinkOut(BaseModel):
    next: str | None = None


class CampaignOut(BaseModel):
    id: str
    name: str
    description: str
    type: Literal["api", "scheduled"]
    mode: Literal["unitary", "audience"] | None
    channel: str
    templateId: str
    category: str
    context: dict[str, Any]
    audienceId: str | None
    schedule: dict[str, Any] | None
    rate: int
    endAt: str | None
    status: Literal["draft", "live", "stopped", "completed"]
    nextRunAt: str | None = Field(description="A live scheduled campaign's next occurrence")
    createdAt: str
    updatedAt: str
    etag: str = Field(description="The ETag header's value: as If-Match, writes go only if nothing changed")
    activatedAt: str | None
    stoppedAt: str | None
    warnings: list[WarningOut] = Field(
        default_factory=list,
        description="A live campaign's audience that the segmentation service last found missing "
        "(`undefined-audience`): the campaign stays live, and its executions fail with the reason",
    )


class CampaignPage(BaseModel):
    items: list[CampaignOut]
    page: PageOut
    link: LinkOut


class ExecutionOut(BaseModel):
    executionId: str
    campaignId: str
    kind: Literal["unitary", "audience", "scheduled"]
    status: Literal["Scheduled", "InProgress", "Succeeded", "Failed"]
    audienceId: str | None
    requestId: str | None
    executeAt: str
    targetedProfileCount: int
    reason: str | None
    createdAt: str
    startedAt: str | None
    finishedAt: str | None


class ExecutionPage(BaseModel):
    items: list[ExecutionOut]
    page: PageOut


PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: documented("The campaign is not valid: every problem, with its path (`errors`)"),
    401: documented("Missing or invalid bearer token"),
    403: documented("Missing scope, or the sandbox differs from the token's"),
    404: documented("No such campaign in this sandbox"),
    422: documented("The request does not have the expected shape"),
    503: documented("The database is unavailable; retry with backoff"),
}


# AJO's execution API (Interactive Message Execution)

RequestId = Annotated[str, StringConstraints(min_length=1, max_length=256), Storable]
Namespace = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
JsonObject = dict[str, Any]


class ChannelData(Strict):
    emailAddress: Text | None = Field(default=None, description="Read as the profile's personalEmail.address")
    mobilePhoneNumber: Text | None = Field(
        default=None, description="Read as the profile's mobilePhone.number"
    )


class Recipient(Strict):
    """``aep``: a profile, found by its identity; ``external``: someone without a profile."""

    type: Literal["aep", "external"]
    userId: Annotated[str, StringConstraints(min_length=1, max_length=1024), Storable]
    namespace: Namespace = Field(description="An identity namespace: Email, Phone, ECID, CRMID...")
    mergePolicyName: Text | None = None
    mergePolicySchema: Text | None = None
    channelData: ChannelData | None = None
    profile: JsonObject | None = Field(default=None, description="Profile data over the stored profile")
    context: JsonObject | None = Field(default=None, description="Context data over the campaign's")


class UnitaryIn(Strict):
    requestId: RequestId = Field(description="The same requestId sends once: the call is idempotent")
    campaignId: Text
    recipients: list[Recipient] = Field(min_length=1, max_length=MAX_RECIPIENTS)


class AudienceRef(Strict):
    id: Reference


class ExecuteAt(Strict):
    executeAt: Moment | None = None


class AudienceIn(Strict):
    requestId: RequestId | None = Field(default=None, description="When given, the call is idempotent")
    campaignId: Text
    audience: AudienceRef | None = Field(default=None, description="Whom; else the campaign's audience")
    context: JsonObject | None = None
    schedule: ExecuteAt | None = None


class ExecutionResponse(BaseModel):
    executionId: str
    requestId: str | None
    createdAt: str
    createdBy: str
    modifiedAt: str
    modifiedBy: str


class ExecutionStatus(BaseModel):
    executionId: str
    campaignId: str
    audienceId: str | None
    status: Literal["Succeeded", "InProgress", "Failed"]
    targetedProfileCount: int
    createdAt: str


class ScheduledExecution(BaseModel):
    scheduleId: str
    audience: AudienceRef | None
    campaignId: str
    executeAt: str
    scheduleStatus: Literal["Scheduled", "Triggered"]
    executionDetails: ExecutionStatus | None = None


AJO_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: documented(
        "Refused: every problem with its path (`errors`), and `report.additionalContext` "
        "(`requestId`, `campaignId`)"
    ),
    401: documented("Missing or invalid bearer token"),
    403: documented("Missing scope, or the sandbox differs from the token's"),
    422: documented("The request does not have the expected shape"),
    503: documented("The database is unavailable; retry with backoff"),
}
