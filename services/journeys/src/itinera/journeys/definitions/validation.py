"""Whether a journey version can be published: every problem, each at its path.

``validate`` is a pure function of the document, what the sandbox holds that the
document names (``Known``: custom actions, journeys) and the time; it never stops at the
first problem. Paths are JSON Pointers into the journey document
(``/nodes/3/branches/1/condition``); a PQL problem also carries its position in the
expression. The rules:

- **Entry**: exactly one entry node (``event``, ``audience``, ``readAudience``), and no
  link leads to it.
- **Links**: every link names a node of the journey; node ids are unique.
- **Branches**: a declared branch is connected: each ``condition`` branch's ``next``, a
  ``waitForEvent``'s ``timeoutNext`` once it has a ``timeout`` (and no ``timeoutNext``
  without one), a ``message``'s or ``action``'s ``errorNext`` once ``errorPath`` is
  set (and ``errorNext`` only then). A missing ``next`` (or ``otherwise``) is an
  implicit end, as in AJO: the profile's path ends there, as at an ``end`` node.
- **Reachability**: every node is reached from the entry.
- **Cycles**: a profile may loop only through a ``wait`` or ``waitForEvent``: a cycle
  without one is reported at the link that closes it.
- **Expressions** parse as PQL (each problem with its line, column and offsets), within
  the configured length; ``_journey.actions.<node>.<field>`` names an ``action`` node
  before this one and a response field its action declares.
- **References**: the custom action exists in the sandbox and gets exactly the inputs
  its URL, headers and body use; a template id has the shape of one and, unless the
  check is off, names a template the content service published in the sandbox for the
  node's channel (``Known.templates``, kept from ``itinera.content.v1``); a jump
  leads to another journey of the sandbox; an audience (of an entry or an exit
  criterion), unless the check is off, is one the segmentation service has in the
  sandbox (``Known.audiences``); a reaction waits on an earlier ``message`` node of a
  channel that has that reaction.
- **Times**: durations within the journey's timeout (at most 91 days), a message's
  timeout (how long it waits for its delivery outcome) more than 0, valid time
  zones and cron expressions, ``endAt`` after ``startAt`` and not past, a one-shot
  audience read not in the past.
- **Test mode** names its test profiles.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from itinera.common import pql
from itinera.common.errors import FieldError
from itinera.journeys.definitions import graph
from itinera.journeys.definitions.graph import Edge
from itinera.journeys.definitions.schemas import (
    ENTRY_TYPES,
    GLOBAL_TIMEOUT_MAX_S,
    PAUSE_TYPES,
    ActionNode,
    AudienceEntry,
    AudienceExit,
    ConditionNode,
    CronSchedule,
    EventEntry,
    EventExit,
    JourneyIn,
    JumpNode,
    MessageNode,
    Node,
    Once,
    ReadAudienceEntry,
    UpdateProfileNode,
    WaitForEventNode,
    WaitNode,
)
from itinera.journeys.definitions.timing import duration_seconds, parse_cron

TEMPLATE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
"""A template id: a UUID or a slug (``welcome-email``, ``lib:promo.v2``)."""
JOURNEY_NAMESPACE = "_journey"
REACTIONS = {
    "email": {"opened", "clicked"},
    "push": {"opened", "clicked"},
    "sms": {"clicked"},
    "webhook": set(),
}
READ_ONLY_ATTRIBUTES = frozenset({"_id", "identityMap", "_journey", "xEvent"})


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a version cannot be published."""

    path: str
    message: str
    code: str
    position: pql.Problem | None = None
    """Where in the expression at ``path``, for a PQL problem."""
    checked_at: str | None = None
    """When the answer it rests on was given, for a problem found from another service's
    answer recorded earlier (an audience missing, on a draft's read)."""

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"path": self.path, "message": self.message, "code": self.code}
        if self.position is not None:
            body["position"] = self.position.as_dict()
        if self.checked_at is not None:
            body["checkedAt"] = self.checked_at
        return body

    def field_error(self) -> FieldError:
        return FieldError(self.path, self.message, self.code)


@dataclass(frozen=True, slots=True)
class ActionFacts:
    """What a journey needs to know of a custom action."""

    parameters: frozenset[str]
    response_fields: frozenset[str]


@dataclass(frozen=True)
class Known:
    """What the sandbox holds of what the journey names."""

    journey_id: str
    actions: Mapping[str, ActionFacts] = field(default_factory=dict)
    journeys: frozenset[str] = frozenset()
    templates: Mapping[str, str] | None = None
    """Template id -> channel of the sandbox's published templates that the journey
    names; None: templates are not checked (``ITINERA_JOURNEYS_CHECK_TEMPLATES``)."""
    audiences: frozenset[str] | None = None
    """The audiences the journey names that the sandbox has; None: audiences are not
    checked (``ITINERA_JOURNEYS_CHECK_AUDIENCES``)."""


def validate(
    definition: JourneyIn, known: Known, *, now: datetime, max_expression_length: int
) -> list[Problem]:
    """Every problem that keeps ``definition`` from being published; none: it can be."""
    return _Check(definition, known, now, max_expression_length).run()


class _Check:
    def __init__(self, definition: JourneyIn, known: Known, now: datetime, max_length: int) -> None:
        self.journey = definition
        self.known = known
        self.now = now
        self.max_length = max_length
        self.problems: list[Problem] = []
        self.nodes = definition.nodes
        self.index: dict[str, int] = {}
        self.edges: list[Edge] = []
        self._ancestors: dict[int, set[int]] = {}

    def add(self, path: str, message: str, code: str, position: pql.Problem | None = None) -> None:
        self.problems.append(Problem(path, message, code, position))

    def run(self) -> list[Problem]:
        self._index()
        self._links()
        self._entry_and_reachability()
        self._cycles()
        for position, node in enumerate(self.nodes):
            self._node(f"/nodes/{position}", position, node)
        self._journey()
        return self.problems

    # The graph

    def _index(self) -> None:
        for position, node in enumerate(self.nodes):
            if node.id in self.index:
                first = self.index[node.id]
                self.add(
                    f"/nodes/{position}/id", f"node {first} already has the id {node.id!r}", "duplicate-id"
                )
            else:
                self.index[node.id] = position

    def _links(self) -> None:
        for position, node in enumerate(self.nodes):
            for path, target in _links_of(f"/nodes/{position}", node):
                if target not in self.index:
                    self.add(path, f"no node has the id {target!r}", "unknown-node")
                    continue
                found = self.index[target]
                if self.nodes[found].type in ENTRY_TYPES:
                    self.add(
                        path, f"{target!r} is the journey's entry; no link may lead to it", "entry-target"
                    )
                self.edges.append(Edge(position, found, path))

    def _entry_and_reachability(self) -> None:
        entries = [p for p, node in enumerate(self.nodes) if node.type in ENTRY_TYPES]
        if not entries:
            self.add(
                "/nodes",
                "a journey needs one entry node: event, audience or readAudience",
                "no-entry",
            )
            return
        first = self.nodes[entries[0]].id
        for extra in entries[1:]:
            self.add(
                f"/nodes/{extra}",
                f"a journey has one entry, and {first!r} is already one",
                "multiple-entries",
            )
        reached = graph.reachable(len(self.nodes), self.edges, entries)
        for position, node in enumerate(self.nodes):
            if position not in reached:
                self.add(f"/nodes/{position}", f"no path from the entry leads to {node.id!r}", "unreachable")

    def _cycles(self) -> None:
        pauses = {p for p, node in enumerate(self.nodes) if node.type in PAUSE_TYPES}
        for cycle in graph.unpaused_cycles(len(self.nodes), self.edges, pauses):
            names = [self.nodes[edge.source].id for edge in cycle] + [self.nodes[cycle[0].source].id]
            self.add(
                cycle[-1].path,
                f"this link closes a cycle with no wait on it: {' -> '.join(names)}",
                "cycle",
            )

    def _before(self, position: int) -> set[int]:
        """The nodes a path leads from to the node at ``position`` (none for the journey's
        own properties, at position -1)."""
        if position < 0:
            return set()
        if position not in self._ancestors:
            self._ancestors[position] = graph.before(len(self.nodes), self.edges, position)
        return self._ancestors[position]

    # Nodes

    def _node(self, path: str, position: int, node: Node) -> None:
        match node:
            case EventEntry():
                self._expression(f"{path}/condition", node.condition, position, required=False)
            case AudienceEntry():
                self._audience(f"{path}/audienceId", node.audienceId)
            case ReadAudienceEntry():
                self._audience(f"{path}/audienceId", node.audienceId)
                self._schedule(f"{path}/schedule", node)
            case ConditionNode():
                self._condition(path, position, node)
            case WaitNode():
                self._wait(path, position, node)
            case WaitForEventNode():
                self._wait_for_event(path, position, node)
            case MessageNode():
                self._message(path, position, node)
            case ActionNode():
                self._action(path, position, node)
            case UpdateProfileNode():
                self._update(path, position, node)
            case JumpNode():
                self._jump(path, node)

    def _condition(self, path: str, position: int, node: ConditionNode) -> None:
        if not node.branches:
            self.add(f"{path}/branches", "a condition needs one branch at least", "required")
        names: dict[str, int] = {}
        for number, branch in enumerate(node.branches):
            at = f"{path}/branches/{number}"
            self._expression(f"{at}/condition", branch.condition, position)
            if branch.next is None:
                self.add(f"{at}/next", f"the branch {branch.name!r} leads nowhere", "missing-branch")
            if branch.name in names:
                self.add(f"{at}/name", f"branch {names[branch.name]} has this name", "duplicate-name")
            names.setdefault(branch.name, number)

    def _wait(self, path: str, position: int, node: WaitNode) -> None:
        if (node.duration is None) == (node.until is None):
            self.add(path, "a wait has either a duration or an until", "one-of")
        if node.duration is not None:
            self._within_timeout(f"{path}/duration", node.duration)
            if node.timeZone is not None:
                self.add(f"{path}/timeZone", "a time zone applies to until only", "time-zone")
        if node.until is not None and not _is_datetime(node.until):
            self._expression(f"{path}/until", node.until, position)
        if node.timeZone is not None and node.timeZone != "profile":
            self._time_zone(f"{path}/timeZone", node.timeZone)

    def _wait_for_event(self, path: str, position: int, node: WaitForEventNode) -> None:
        if (node.reaction is None) == (node.event is None):
            self.add(path, "wait for either a reaction to a message or an event", "one-of")
        if node.reaction is not None:
            at = f"{path}/reaction/messageNode"
            target = self.index.get(node.reaction.messageNode)
            if target is None:
                self.add(at, f"no node has the id {node.reaction.messageNode!r}", "unknown-node")
            elif not isinstance(message := self.nodes[target], MessageNode):
                self.add(at, f"{message.id!r} is a {message.type} node, not a message", "not-a-message")
            else:
                if target not in self._before(position):
                    self.add(at, f"the message {message.id!r} does not come before this node", "not-earlier")
                if node.reaction.on not in REACTIONS[message.channel]:
                    self.add(
                        f"{path}/reaction/on",
                        f"{message.channel} messages have no {node.reaction.on!r} reaction",
                        "reaction",
                    )
        if node.event is not None:
            if node.event.eventType is None and node.event.condition is None:
                self.add(f"{path}/event", "name the event type, a condition, or both", "required")
            self._expression(f"{path}/event/condition", node.event.condition, position, required=False)
        if node.timeout is not None:
            self._within_timeout(f"{path}/timeout", node.timeout)
            if node.timeoutNext is None:
                self.add(f"{path}/timeoutNext", "the timeout branch leads nowhere", "missing-branch")
        elif node.timeoutNext is not None:
            self.add(f"{path}/timeout", "a timeout branch needs a timeout", "required")

    def _audience(self, path: str, audience_id: str) -> None:
        if self.known.audiences is not None and audience_id not in self.known.audiences:
            self.add(path, f"the sandbox has no audience {audience_id!r}", "undefined-audience")

    def _message(self, path: str, position: int, node: MessageNode) -> None:
        if node.templateId is None:
            self.add(f"{path}/templateId", "a message needs a template", "required")
        elif not TEMPLATE_ID.fullmatch(node.templateId):
            self.add(
                f"{path}/templateId",
                "a template id is a UUID or a slug of letters, digits and _ . : -",
                "template",
            )
        elif self.known.templates is not None:
            channel = self.known.templates.get(node.templateId)
            if channel is None:
                self.add(
                    f"{path}/templateId",
                    f"the content service has published no template {node.templateId!r} in this sandbox",
                    "undefined-template",
                )
            elif channel != node.channel:
                self.add(
                    f"{path}/templateId",
                    f"template {node.templateId!r} is a {channel} template; this node sends {node.channel}",
                    "template-channel",
                )
        for name, expression in node.context.items():
            self._expression(f"{path}/context/{name}", expression, position)
        if node.timeout is not None:
            self._within_timeout(f"{path}/timeout", node.timeout)
            if duration_seconds(node.timeout) == 0:
                self.add(f"{path}/timeout", "a message waits more than 0 s for its delivery outcome", "range")
        self._error_path(path, node.errorPath, node.errorNext)

    def _action(self, path: str, position: int, node: ActionNode) -> None:
        if node.actionId is None:
            self.add(f"{path}/actionId", "name the custom action to call", "required")
        else:
            facts = self.known.actions.get(node.actionId.lower())
            if facts is None:
                self.add(
                    f"{path}/actionId",
                    f"no custom action {node.actionId!r} in this sandbox",
                    "unknown-action",
                )
            else:
                missing = sorted(facts.parameters - set(node.inputs))
                if missing:
                    self.add(f"{path}/inputs", f"the action needs {', '.join(missing)}", "missing-input")
                for name in sorted(set(node.inputs) - facts.parameters):
                    self.add(f"{path}/inputs/{name}", "the action has no such parameter", "unknown-input")
        for name, expression in node.inputs.items():
            self._expression(f"{path}/inputs/{name}", expression, position)
        self._error_path(path, node.errorPath, node.errorNext)

    def _update(self, path: str, position: int, node: UpdateProfileNode) -> None:
        if not node.updates:
            self.add(f"{path}/updates", "name one attribute to update at least", "required")
        for number, update in enumerate(node.updates):
            if update.path.split(".")[0] in READ_ONLY_ATTRIBUTES:
                self.add(f"{path}/updates/{number}/path", f"{update.path} cannot be updated", "read-only")
            self._expression(f"{path}/updates/{number}/value", update.value, position)

    def _jump(self, path: str, node: JumpNode) -> None:
        if node.journeyId is None:
            self.add(f"{path}/journeyId", "name the journey to jump to", "required")
        elif node.journeyId.lower() == self.known.journey_id.lower():
            self.add(f"{path}/journeyId", "a journey cannot jump to itself", "self-jump")
        elif node.journeyId.lower() not in self.known.journeys:
            self.add(f"{path}/journeyId", f"no journey {node.journeyId!r} in this sandbox", "unknown-journey")

    def _schedule(self, path: str, node: ReadAudienceEntry) -> None:
        schedule = node.schedule
        if isinstance(schedule, Once):
            if schedule.at is not None and schedule.at <= self.now:
                self.add(f"{path}/at", "the time has passed", "past")
        elif isinstance(schedule, CronSchedule):
            try:
                parse_cron(schedule.expression)
            except ValueError as exc:
                self.add(f"{path}/expression", str(exc), "cron")
            self._time_zone(f"{path}/timeZone", schedule.timeZone)

    def _error_path(self, path: str, declared: bool, target: str | None) -> None:
        if declared and target is None:
            self.add(f"{path}/errorNext", "the error and timeout branch leads nowhere", "missing-branch")
        elif target is not None and not declared:
            self.add(
                f"{path}/errorPath",
                "set errorPath for failures and timeouts to take errorNext",
                "undeclared-branch",
            )

    # Values

    def _expression(self, path: str, text: str | None, position: int, *, required: bool = True) -> None:
        if text is None:
            if required:
                self.add(path, "an expression is required", "required")
            return
        if len(text) > self.max_length:
            self.add(path, f"{len(text)} characters; at most {self.max_length}", "maxLength")
            return
        analysis = pql.analyse(text)
        for problem in analysis.problems:
            self.add(path, str(problem), "pql", problem)
        if not analysis.problems:
            for reference in analysis.references:
                self._journey_reference(path, reference, position)

    def _journey_reference(self, path: str, reference: str, position: int) -> None:
        parts = reference.split(".")
        if parts[0] != JOURNEY_NAMESPACE:
            return
        if len(parts) >= 2 and parts[1] == "event":
            return
        if len(parts) < 4 or parts[1] != "actions":
            self.add(
                path,
                f"{reference}: a journey reads _journey.event... or _journey.actions.<node>.<field>",
                "journey-field",
            )
            return
        node_id, response_field = parts[2], parts[3]
        target = self.index.get(node_id)
        if target is None or not isinstance(action := self.nodes[target], ActionNode):
            self.add(
                path, f"{reference}: {node_id!r} is not an action node of the journey", "action-response"
            )
            return
        if target not in self._before(position):
            self.add(path, f"{reference}: the action {node_id!r} does not come before", "action-response")
            return
        facts = self.known.actions.get((action.actionId or "").lower())
        if facts is not None and response_field not in facts.response_fields:
            self.add(
                path, f"{reference}: the action's response has no field {response_field!r}", "action-response"
            )

    def _within_timeout(self, path: str, value: int | str) -> None:
        seconds = duration_seconds(value)
        limit = min(duration_seconds(self.journey.timeout), GLOBAL_TIMEOUT_MAX_S)
        if seconds > limit:
            self.add(
                path, f"{seconds:g} seconds is longer than the journey's timeout ({limit:g})", "too-long"
            )

    def _time_zone(self, path: str, name: str) -> None:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            self.add(path, f"{name!r} is not an IANA time zone (Europe/Paris, UTC...)", "time-zone")

    # The journey's own properties

    def _journey(self) -> None:
        journey = self.journey
        timeout = duration_seconds(journey.timeout)
        if not 0 < timeout <= GLOBAL_TIMEOUT_MAX_S:
            self.add(
                "/timeout",
                f"the journey's timeout is more than 0 and at most {GLOBAL_TIMEOUT_MAX_S} s",
                "range",
            )
        if journey.startAt is not None and journey.endAt is not None and journey.endAt <= journey.startAt:
            self.add("/endAt", "the journey must end after it starts", "dates")
        if journey.endAt is not None and journey.endAt <= self.now:
            self.add("/endAt", "the end date has passed", "past")
        for number, criterion in enumerate(journey.exitCriteria):
            if isinstance(criterion, AudienceExit):
                self._audience(f"/exitCriteria/{number}/audienceId", criterion.audienceId)
            if isinstance(criterion, EventExit):
                at = f"/exitCriteria/{number}"
                if criterion.eventType is None and criterion.condition is None:
                    self.add(at, "name the event type, a condition, or both", "required")
                self._expression(f"{at}/condition", criterion.condition, -1, required=False)
        if journey.testMode.enabled and not journey.testMode.testProfiles:
            self.add("/testMode/testProfiles", "test mode needs test profiles", "required")


def _links_of(path: str, node: Node) -> list[tuple[str, str]]:
    """The links a node writes, as (path, target id)."""
    links: list[tuple[str, str]] = []
    if isinstance(node, ConditionNode):
        links += [(f"{path}/branches/{i}/next", b.next) for i, b in enumerate(node.branches) if b.next]
        if node.otherwise is not None:
            links.append((f"{path}/otherwise", node.otherwise))
    for name in ("next", "timeoutNext", "errorNext"):
        target = getattr(node, name, None)
        if target is not None:
            links.append((f"{path}/{name}", target))
    return links


def _is_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True
