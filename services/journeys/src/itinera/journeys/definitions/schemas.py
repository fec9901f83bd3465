"""The journey document, ``/v1/journeys`` bodies and answers.

A journey is a graph of nodes, each with an ``id`` (a name PQL can read: letters, digits
and ``_``) and a ``type``; nodes name the nodes that follow them by id (``next``,
``branches[].next``, ``otherwise``, ``timeoutNext``, ``errorNext``). One node is the
entry (``event``, ``audience`` or ``readAudience``); the others are activities.

Requests are checked for shape here: a wrong type, an unknown field or node type, a
malformed duration is a 422 with ``/body/...`` paths, and nothing is stored. A draft may
be incomplete (a branch without its target, a message without its template): what the
values mean is checked when a version is published (``validation``), which answers 400
with every problem at once, its path in this document (``/nodes/3/branches/1/condition``).

Expressions are PQL, read by the engine in ``itinera.common.pql``. Besides the profile's
attributes, an expression in a journey reads ``_journey.event`` (the event that made the
profile enter, or the one a ``waitForEvent`` node received) and
``_journey.actions.<nodeId>.<field>`` (a response field of an earlier ``action`` node).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, StringConstraints

from itinera.common.web.problems import documented
from itinera.journeys.definitions.timing import duration_seconds
from itinera.journeys.values import Description, Identifier, Name, Reference, Storable, Strict, Text

GLOBAL_TIMEOUT_DEFAULT = "P91D"
GLOBAL_TIMEOUT_MAX_S = 91 * 86_400
"""A journey's instances end after 91 days at most, as in AJO."""
MESSAGE_TIMEOUT_DEFAULT = "PT5M"
"""How long a message node with an error branch waits for its delivery outcome when its
``timeout`` is not given. The channels report within seconds when they keep up; five
minutes also covers their first retries of a soft failure (30 s, then doubling), without
holding the profile long. An outcome that comes later is ignored: the error branch was
taken."""
MAX_BRANCHES = 50
MAX_MAPPINGS = 100


def _duration(value: int | str) -> int | str:
    duration_seconds(value)
    return value


Duration = Annotated[int | str, AfterValidator(_duration)]
"""Seconds, or an ISO-8601 duration (``PT30M``, ``P2D``, ``P1W``)."""
Expression = Annotated[str, StringConstraints(max_length=64 * 1024), Storable]
"""A PQL expression (checked when the version is published)."""
Link = Identifier | None
"""The id of the node that follows; ``null``: none (see each field)."""
AttributePath = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,31}$")
]


class _Node(Strict):
    id: Identifier = Field(description="Unique in the journey; other nodes name it in `next`...")
    name: Name | None = Field(default=None, description="A label for people")


# Entries


class EventEntry(_Node):
    """Profiles enter when they send an event of ``eventType`` for which ``condition``
    (over ``_journey.event`` and the profile) holds."""

    type: Literal["event"]
    eventType: Reference
    condition: Expression | None = None
    next: Link = None


class AudienceEntry(_Node):
    """Profiles enter as they enter (or exit) the audience, announced on ``itinera.audiences.v1``."""

    type: Literal["audience"]
    audienceId: Reference
    on: Literal["entered", "exited"] = "entered"
    next: Link = None


def _bounded(value: datetime) -> datetime:
    """A time that stays a time in UTC and leaves room for schedules after it."""
    try:
        in_utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range") from None
    if not 2000 <= in_utc.year <= 9000:
        raise ValueError("a time between the years 2000 and 9000 is expected")
    return in_utc


Moment = Annotated[AwareDatetime, AfterValidator(_bounded)]
"""An ISO-8601 date-time with an offset, kept in UTC."""


class Once(Strict):
    frequency: Literal["once"]
    at: Moment | None = Field(
        default=None, description="When; `null`: as soon as it starts (published, activated)"
    )


class CronSchedule(Strict):
    frequency: Literal["cron"]
    expression: Text = Field(description="Five fields: minute hour day-of-month month day-of-week")
    timeZone: Text = Field(default="UTC", description="An IANA time zone the expression is read in")


class Every(Strict):
    frequency: Literal["every"]
    interval: int = Field(ge=1, le=10_000)
    unit: Literal["hours", "days"]
    startAt: Moment | None = Field(default=None, description="The first time; `null`: when it starts")


Schedule = Annotated[Once | CronSchedule | Every, Field(discriminator="frequency")]


class ReadAudienceEntry(_Node):
    """Every member of the audience enters, once or on a schedule, ``rate`` profiles a second."""

    type: Literal["readAudience"]
    audienceId: Reference
    schedule: Schedule = Field(default_factory=lambda: Once(frequency="once"))
    rate: int = Field(default=5000, ge=1, le=20_000, description="Profiles entering per second")
    next: Link = None


# Activities


class Branch(Strict):
    name: Name
    condition: Expression | None = None
    next: Link = None


class ConditionNode(_Node):
    """The first branch whose condition holds is taken; none holding, ``otherwise``
    (``null``: the profile's path ends)."""

    type: Literal["condition"]
    branches: list[Branch] = Field(default_factory=list, max_length=MAX_BRANCHES)
    otherwise: Link = None


class WaitNode(_Node):
    """Waits ``duration``, or ``until`` a time: an ISO-8601 date-time (read in ``timeZone``
    when it has no offset) or a PQL expression of a time. ``timeZone`` is ``profile`` (the
    profile's own, UTC when it has none) or an IANA name; UTC when not given."""

    type: Literal["wait"]
    duration: Duration | None = None
    until: Expression | None = None
    timeZone: Text | None = None
    next: Link = None


class Reaction(Strict):
    messageNode: Identifier = Field(description="An earlier `message` node")
    on: Literal["opened", "clicked"]


class EventMatch(Strict):
    eventType: Reference | None = None
    condition: Expression | None = Field(default=None, description="Over `_journey.event` and the profile")


class WaitForEventNode(_Node):
    """Waits for a reaction to an earlier message or for an event; after ``timeout``
    without one, the path continues at ``timeoutNext``."""

    type: Literal["waitForEvent"]
    reaction: Reaction | None = None
    event: EventMatch | None = None
    timeout: Duration | None = None
    timeoutNext: Link = None
    next: Link = None


class MessageNode(_Node):
    """A message of the channel's template, personalised with ``context`` (name: PQL).

    Without an error branch the path goes on once the message is requested. With one
    (``errorPath``), the instance waits for the delivery outcome the channels report:
    ``sent`` or ``delivered`` goes on at ``next``; ``failed``, ``bounced`` or
    ``excluded``, or no outcome within ``timeout`` (:data:`MESSAGE_TIMEOUT_DEFAULT` when
    not given), takes ``errorNext``."""

    type: Literal["message"]
    channel: Literal["email", "sms", "push", "webhook"]
    templateId: Reference | None = None
    context: dict[Identifier, Expression] = Field(default_factory=dict, max_length=MAX_MAPPINGS)
    category: Literal["marketing", "transactional"] = "marketing"
    timeout: Duration | None = Field(
        default=None,
        description="With `errorPath`: how long to wait for the delivery outcome (`PT5M` when not given)",
    )
    errorPath: bool = Field(
        default=False, description="Whether delivery failures and timeouts take `errorNext`"
    )
    errorNext: Link = None
    next: Link = None


class ActionNode(_Node):
    """Calls a custom action (``/v1/actions``) with ``inputs`` (parameter: PQL); its
    response fields are read downstream as ``_journey.actions.<id>.<field>``."""

    type: Literal["action"]
    actionId: Reference | None = None
    inputs: dict[Identifier, Expression] = Field(default_factory=dict, max_length=MAX_MAPPINGS)
    errorPath: bool = Field(default=False, description="Whether failures and timeouts take `errorNext`")
    errorNext: Link = None
    next: Link = None


class Update(Strict):
    path: AttributePath = Field(description="A profile attribute, `person.name.firstName`")
    value: Expression = Field(description="PQL; a string is quoted")


class UpdateProfileNode(_Node):
    type: Literal["updateProfile"]
    updates: list[Update] = Field(default_factory=list, max_length=MAX_MAPPINGS)
    next: Link = None


class JumpNode(_Node):
    """The profile leaves this journey and enters ``journeyId`` (its live version)."""

    type: Literal["jump"]
    journeyId: Reference | None = None


class EndNode(_Node):
    type: Literal["end"]


Node = Annotated[
    EventEntry
    | AudienceEntry
    | ReadAudienceEntry
    | ConditionNode
    | WaitNode
    | WaitForEventNode
    | MessageNode
    | ActionNode
    | UpdateProfileNode
    | JumpNode
    | EndNode,
    Field(discriminator="type"),
]
ENTRY_TYPES = frozenset({"event", "audience", "readAudience"})
PAUSE_TYPES = frozenset({"wait", "waitForEvent"})


# Journey properties


class Reentrance(Strict):
    allowed: bool = False
    waitSeconds: int = Field(
        default=300, ge=0, le=GLOBAL_TIMEOUT_MAX_S, description="Before a profile may enter again"
    )


class EventExit(Strict):
    type: Literal["event"]
    name: Name
    eventType: Reference | None = None
    condition: Expression | None = None


class AudienceExit(Strict):
    type: Literal["audienceExit"]
    name: Name
    audienceId: Reference


ExitCriterion = Annotated[EventExit | AudienceExit, Field(discriminator="type")]


class Trial(Strict):
    """Test mode: only ``testProfiles`` enter, and waits are shortened."""

    enabled: bool = False
    testProfiles: list[Reference] = Field(
        default_factory=list, max_length=100, description="Identities (`Email:jane@example.com`)"
    )
    waitFactor: float = Field(default=0.01, gt=0, le=1, description="Waits are multiplied by it")


class JourneyIn(Strict):
    """A journey version's document: what ``POST`` and ``PUT`` send and versions hold."""

    name: Name
    description: Description = ""
    nodes: list[Node] = Field(default_factory=list, max_length=10_000)
    reentrance: Reentrance = Field(default_factory=Reentrance)
    exitCriteria: list[ExitCriterion] = Field(default_factory=list, max_length=MAX_BRANCHES)
    timeout: Duration = Field(default=GLOBAL_TIMEOUT_DEFAULT, description="Instances end after it")
    startAt: AwareDatetime | None = None
    endAt: AwareDatetime | None = None
    testMode: Trial = Field(default_factory=Trial)
    dryRun: bool = Field(default=False, description="Walk the journey without sending or calling")


class ListQuery(BaseModel):
    start: int = Field(default=0, ge=0, le=10**9, description="The offset of the first journey")
    limit: int = Field(default=100, ge=1, le=1000)
    status: Literal["draft", "live", "stopped", "closed"] | None = Field(
        default=None, description="Only journeys in this status"
    )


# Answers


class WarningOut(BaseModel):
    """Something wrong with what is running, found after it went live."""

    path: str = Field(description="Where the document names it (JSON Pointer)")
    code: Literal["undefined-audience"]
    message: str
    audienceId: str
    noticedAt: str | None = Field(description="When the audience was first found missing")
    checkedAt: str | None = Field(description="When the segmentation service was last asked")
    version: int | None = Field(default=None, description="On a journey: its live version's number")


class VersionSummary(BaseModel):
    version: int
    status: Literal["draft", "live", "stopped", "closed"]
    createdAt: str
    updatedAt: str
    publishedAt: str | None
    stoppedAt: str | None
    closedAt: str | None


class JourneyOut(BaseModel):
    id: str
    name: str
    description: str
    status: Literal["draft", "live", "stopped", "closed"] = Field(
        description="`live` while a version is live, else the latest version's status"
    )
    latestVersion: int
    liveVersion: int | None
    draftVersion: int | None
    createdAt: str
    updatedAt: str
    etag: str = Field(
        description="The ETag header's value: as If-Match, a write goes only if nothing changed"
    )
    versions: list[VersionSummary] | None = None
    warnings: list[WarningOut] | None = Field(
        default=None,
        description="The live version's audiences that the segmentation service last found missing "
        "(`undefined-audience`, with the `version`); the journey keeps running",
    )


class PageOut(BaseModel):
    totalCount: int
    start: int
    limit: int
    pageSize: int


class LinkOut(BaseModel):
    next: str | None = None


class JourneyPage(BaseModel):
    items: list[JourneyOut]
    page: PageOut
    link: LinkOut


class EntryOut(BaseModel):
    nodeId: str
    type: str
    key: str = Field(description="The event type or the audience id")


class ReferencesOut(BaseModel):
    templates: list[str]
    audiences: list[str]
    actions: list[str]
    journeys: list[str]


class ProblemOut(BaseModel):
    path: str
    message: str
    code: str
    position: dict[str, Any] | None = None
    checkedAt: str | None = Field(
        default=None,
        description="An `undefined-audience` problem of a draft: when the segmentation service "
        "answered that the audience was missing",
    )


class AudienceCheckOut(BaseModel):
    audienceId: str
    found: bool | None = Field(description="As last answered by the segmentation service; null: never asked")
    checkedAt: str | None
    missingSince: str | None


class VersionOut(VersionSummary):
    journeyId: str
    definition: dict[str, Any]
    entry: EntryOut | None
    references: ReferencesOut
    problems: list[ProblemOut] | None = Field(
        default=None,
        description="Drafts: what publishing would refuse now, found without asking another service "
        "(audiences as last answered: see `audienceChecks`)",
    )
    audienceChecks: list[AudienceCheckOut] | None = Field(
        default=None,
        description="Drafts, when audiences are checked: what the segmentation service last answered "
        "about each audience named (publishing asks it again)",
    )
    warnings: list[WarningOut] | None = Field(
        default=None,
        description="Live versions: audiences named that the segmentation service last found missing",
    )


PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: documented("The journey cannot be published: every problem, with its path (`problems`)"),
    401: documented("Missing or invalid bearer token"),
    403: documented("Missing scope, or the sandbox differs from the token's"),
    404: documented("No such journey or version in this sandbox"),
    422: documented("The request does not have the expected shape"),
    503: documented("The database is unavailable; retry with backoff"),
}
