"""Walking a journey: what an instance does from a node until it pauses or ends.

:func:`walk` is a pure function of the journey, where the instance is, its context, the
profile and the time. It returns the steps taken (each numbered, ``started`` then
``finished`` or ``failed``), the messages requested, and how the walk stopped: paused
(a ``wait`` until a time, a ``waitForEvent`` for an event and maybe a timeout) or ended
(completed, failed, or a jump to another journey). The caller stores and publishes all of
it in one transaction, so a walk replayed after a crash takes the same steps with the
same numbers, and its messages get the same ids (:func:`message_id`).

Expressions read the profile's attributes and ``_journey``: ``_journey.event`` (the event
that made the profile enter, or the one a ``waitForEvent`` received) and
``_journey.actions.<node>.<field>``. A ``condition`` node takes the first branch whose
condition holds, else ``otherwise``; a missing link ends the path (``completed``).
An ``action`` node pauses the instance while its call is made outside the transaction
(see ``runtime.actions``); :func:`called` goes on with the response or the failure.
An ``updateProfile`` node asks the profile service to set the attributes (values
evaluated now), which it does as its PATCH of attributes does.

A ``message`` node requests its message and goes on, unless it has an error branch
(``errorPath``): then the instance pauses there until the channels report the delivery
outcome (:func:`delivered`: ``sent`` or ``delivered`` goes on at ``next``, ``failed``,
``bounced`` or ``excluded`` takes ``errorNext``) or its timeout passes (:func:`resume` by
the timer: ``errorNext`` too). That timeout is not shortened in test mode: delivery takes
the time it takes.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from itinera.common import pql
from itinera.journeys.definitions.schemas import (
    MESSAGE_TIMEOUT_DEFAULT,
    ActionNode,
    ConditionNode,
    EndNode,
    JourneyIn,
    JumpNode,
    MessageNode,
    Node,
    UpdateProfileNode,
    WaitForEventNode,
    WaitNode,
)
from itinera.journeys.definitions.timing import duration_seconds

MAX_STEPS = 200
"""Nodes one walk may go through without pausing (validation refuses cycles without a
wait; this bounds a walk whatever happens)."""
_MESSAGE_IDS = uuid.UUID("8f1d2c6e-3a57-5b0e-9c41-6d7e2f0a9b13")


_VARIANT = {f"{n:x}": f"{(n & 0x3) | 0x8:x}" for n in range(16)}
"""The first hex digit of a UUID's eighth byte with the RFC 4122 variant set, by digit."""


def uuid5(namespace: uuid.UUID, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))`` without making a ``UUID`` on the way (every
    step and message of every instance gets one; this takes a third of the time)."""
    h = hashlib.sha1(namespace.bytes + name.encode(), usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def message_id(instance_id: str, step: int) -> str:
    """The id of the message a step requests: the same for the same step, always."""
    return uuid5(_MESSAGE_IDS, f"{instance_id}|{step}")


class Journey:
    """A published version, parsed once: its nodes by id and its rules, compiled once."""

    def __init__(self, journey_id: str, version: int, definition: Mapping[str, Any]) -> None:
        self.id = journey_id
        self.journey_id = uuid.UUID(journey_id)
        self.version = version
        self.doc = JourneyIn.model_validate(definition)
        self.nodes: dict[str, Node] = {node.id: node for node in self.doc.nodes}
        self.entry = next(n for n in self.doc.nodes if n.type in ("event", "audience", "readAudience"))
        self._rules: dict[str, pql.Rule] = {}
        self.wait_factor = self.doc.testMode.waitFactor if self.doc.testMode.enabled else 1.0
        self.timeout = timedelta(seconds=duration_seconds(self.doc.timeout))

    def rule(self, expression: str) -> pql.Rule:
        found = self._rules.get(expression)
        if found is None:
            found = self._rules[expression] = pql.compile_rule(expression)
        return found

    def holds(self, expression: str | None, view: Mapping[str, Any], now: datetime) -> bool:
        """Whether a condition holds (no condition: it does)."""
        return expression is None or self.rule(expression).qualifies(view, now=now)


@lru_cache(maxsize=512)
def journey(journey_id: str, version: int, definition_json: str) -> Journey:
    """A version, parsed and compiled once (versions never change once published)."""
    import orjson

    return Journey(journey_id, version, orjson.loads(definition_json))


@dataclass(frozen=True, slots=True)
class Step:
    step: int
    kind: str  # started, finished, failed
    node: str
    node_type: str
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    step: int
    node: str
    channel: str
    template_id: str | None
    category: str
    context: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EventWait:
    event_type: str | None = None
    condition: str | None = None
    message_id: str | None = None
    reaction: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryWait:
    """A message whose delivery outcome the instance waits for: its id, and the step that
    requested it."""

    message_id: str
    step: int


DELIVERED = frozenset({"sent", "delivered"})
"""Delivery outcomes that go on at the message node's ``next``."""
UNDELIVERED = frozenset({"bounced", "failed", "excluded"})
"""Delivery outcomes that take the message node's error branch."""
MAX_REASON = 500
"""The longest delivery failure reason kept in a step (providers' answers can be long)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the channels report of a message: one of :data:`DELIVERED` or
    :data:`UNDELIVERED`, with why (an exclusion's code, the provider's answer) and, for a
    bounce, ``hard`` or ``soft``."""

    status: str
    reason: str | None = None
    bounce: str | None = None


@dataclass(frozen=True, slots=True)
class ActionCall:
    """A custom action to call: the action, the inputs evaluated, the step calling it."""

    action_id: str
    inputs: dict[str, Any]
    step: int


@dataclass(frozen=True, slots=True)
class ProfileUpdate:
    """Attributes to set on the profile (``itinera.profile.updates.v1``)."""

    id: str
    step: int
    node: str
    attributes: dict[str, Any]


@dataclass(slots=True)
class Walk:
    """What a walk did, and how it stopped: ``paused_at`` a node (with a timer due at
    ``due_at`` and/or an ``event_wait``, or for its ``call`` to a custom action, or for the
    ``delivery`` outcome of its message, with a timer), or ``ended`` with a reason
    (``completed``, ``failed: ...``, ``jump``; ``jump_to`` names the journey)."""

    steps: list[Step] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    updates: list[ProfileUpdate] = field(default_factory=list)
    paused_at: str | None = None
    due_at: datetime | None = None
    event_wait: EventWait | None = None
    call: ActionCall | None = None
    delivery: DeliveryWait | None = None
    ended: str | None = None
    jump_to: str | None = None


def view_of(profile: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """What expressions read: the profile's attributes and ``_journey``."""
    return {
        **profile,
        "_journey": {"event": context.get("event") or {}, "actions": context.get("actions") or {}},
    }


def json_value(value: Any) -> Any:
    """A PQL value as JSON can carry it (dates and times as ISO-8601 text)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    return value


def _zone(name: str | None, profile: Mapping[str, Any]) -> ZoneInfo:
    if name == "profile":
        preferences = profile.get("preferences")
        name = preferences.get("timeZone") if isinstance(preferences, Mapping) else None
    try:
        return ZoneInfo(name) if isinstance(name, str) and name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _until(node: WaitNode, journey: Journey, view: Mapping[str, Any], now: datetime) -> datetime:
    """The time a ``wait ... until`` ends; ValueError when it cannot be read."""
    assert node.until is not None
    text: Any = node.until
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        value = journey.rule(node.until).evaluate(view, now=now)
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            moment = datetime.combine(value, datetime.min.time())
        elif isinstance(value, str):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            raise ValueError(f"the time to wait until is {value!r}, not a date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_zone(node.timeZone, view))
    return moment.astimezone(UTC)


class _Walker:
    def __init__(
        self,
        journey: Journey,
        instance_id: str,
        context: dict[str, Any],
        profile: Mapping[str, Any],
        now: datetime,
        steps_before: int,
    ) -> None:
        self.journey = journey
        self.instance_id = instance_id
        self.context = context
        self.profile = profile
        self.now = now
        self.count = steps_before
        self.walk = Walk()

    def _step(self, kind: str, node: Node, reason: str | None = None, **detail: Any) -> int:
        self.count += 1
        self.walk.steps.append(Step(self.count, kind, node.id, node.type, reason, detail))
        return self.count

    def _fail(
        self, node: Node, reason: str, error_next: str | None, error_path: bool, **detail: Any
    ) -> str | None:
        self._step("failed", node, reason, **detail)
        if error_path:
            return error_next  # None: the error path ends here
        self._end(f"failed: {reason}")
        return None

    def _end(self, reason: str) -> None:
        self.walk.ended = reason

    def run(self, start: str | None) -> Walk:
        current = start
        for _ in range(MAX_STEPS):
            if current is None:
                if self.walk.ended is None and self.walk.paused_at is None:
                    self._end("completed")
                return self.walk
            node = self.journey.nodes.get(current)
            if node is None:
                self._end(f"failed: no node {current!r}")
                return self.walk
            current = self._visit(node)
            if self.walk.paused_at is not None or self.walk.ended is not None:
                return self.walk
        self._end(f"failed: more than {MAX_STEPS} steps without a pause")
        return self.walk

    def _values(self, expressions: Mapping[str, str], view: Mapping[str, Any]) -> dict[str, Any]:
        """Each named expression's value, as JSON can carry it."""
        return {
            name: json_value(self.journey.rule(expression).evaluate(view, now=self.now))
            for name, expression in expressions.items()
        }

    def _view(self) -> dict[str, Any]:
        return view_of(self.profile, self.context)

    def _visit(self, node: Node) -> str | None:
        # What expressions read is made only for the nodes that have some.
        if isinstance(node, ConditionNode):
            self._step("started", node)
            view = self._view()
            for branch in node.branches:
                if self.journey.holds(branch.condition, view, self.now):
                    self._step("finished", node, f"branch: {branch.name}")
                    return branch.next
            self._step("finished", node, "otherwise")
            return node.otherwise
        if isinstance(node, WaitNode):
            self._step("started", node)
            try:
                if node.duration is not None:
                    seconds = duration_seconds(node.duration) * self.journey.wait_factor
                    due = self.now + timedelta(seconds=seconds)
                else:
                    due = _until(node, self.journey, self._view(), self.now)
            except (ValueError, OverflowError) as exc:
                return self._fail(node, f"cannot tell how long to wait: {exc}", None, False)
            if due <= self.now:
                self._step("finished", node, "already due")
                return node.next
            self.walk.paused_at, self.walk.due_at = node.id, due
            return None
        if isinstance(node, WaitForEventNode):
            self._step("started", node)
            if node.reaction is not None:
                sent = (self.context.get("messages") or {}).get(node.reaction.messageNode)
                wait = EventWait(message_id=sent, reaction=node.reaction.on)
            else:
                match = node.event
                wait = EventWait(match.eventType if match else None, match.condition if match else None)
            self.walk.paused_at, self.walk.event_wait = node.id, wait
            if node.timeout is not None:
                seconds = duration_seconds(node.timeout) * self.journey.wait_factor
                self.walk.due_at = self.now + timedelta(seconds=seconds)
            return None
        if isinstance(node, MessageNode):
            step = self._step("started", node)
            try:
                context = self._values(node.context, self._view()) if node.context else {}
            except pql.PqlError as exc:
                return self._fail(
                    node, f"the context cannot be evaluated: {exc}", node.errorNext, node.errorPath
                )
            sent = message_id(self.instance_id, step)
            if not self.journey.doc.dryRun:
                self.walk.messages.append(
                    Message(sent, step, node.id, node.channel, node.templateId, node.category, context)
                )
            self.context.setdefault("messages", {})[node.id] = sent
            if node.errorPath and not self.journey.doc.dryRun:
                self.walk.paused_at, self.walk.delivery = node.id, DeliveryWait(sent, step)
                self.walk.due_at = self.now + timedelta(seconds=message_timeout(node))
                return None
            self._step(
                "finished", node, "dry run" if self.journey.doc.dryRun else "requested", messageId=sent
            )
            return node.next
        if isinstance(node, ActionNode):
            step = self._step("started", node)
            try:
                inputs = self._values(node.inputs, self._view())
            except pql.PqlError as exc:
                return self._fail(
                    node, f"the inputs cannot be evaluated: {exc}", node.errorNext, node.errorPath
                )
            if self.journey.doc.dryRun or node.actionId is None:
                self.context.setdefault("actions", {})[node.id] = {}
                self._step("finished", node, "dry run")
                return node.next
            self.walk.paused_at = node.id
            self.walk.call = ActionCall(node.actionId, inputs, step)
            return None
        if isinstance(node, UpdateProfileNode):
            step = self._step("started", node)
            attributes: dict[str, Any] = {}
            view = self._view()
            try:
                for update in node.updates:
                    value = json_value(self.journey.rule(update.value).evaluate(view, now=self.now))
                    *parents, last = update.path.split(".")
                    target = attributes
                    for key in parents:
                        child = target.get(key)
                        target = (
                            target.setdefault(key, {}) if isinstance(child, dict) or child is None else {}
                        )
                    target[last] = value
            except pql.PqlError as exc:
                return self._fail(node, f"the values cannot be evaluated: {exc}", None, False)
            update_id = message_id(self.instance_id, step)
            if attributes and not self.journey.doc.dryRun:
                self.walk.updates.append(ProfileUpdate(update_id, step, node.id, attributes))
            self._step(
                "finished", node, "dry run" if self.journey.doc.dryRun else "requested", updateId=update_id
            )
            return node.next
        if isinstance(node, JumpNode):
            self._step("started", node)
            self._step("finished", node, "jump", journeyId=node.journeyId)
            self.walk.jump_to = node.journeyId
            self._end("jump")
            return None
        if isinstance(node, EndNode):
            self._step("started", node)
            self._step("finished", node, "end")
            self._end("completed")
            return None
        # An entry node reached by a link: validation refuses it; end rather than loop.
        self._end(f"failed: entry node {node.id!r} reached from inside the journey")
        return None


def message_timeout(node: MessageNode) -> float:
    """Seconds a message node with an error branch waits for its delivery outcome."""
    return duration_seconds(node.timeout if node.timeout is not None else MESSAGE_TIMEOUT_DEFAULT)


def walk(
    journey: Journey,
    start: str | None,
    *,
    instance_id: str,
    context: dict[str, Any],
    profile: Mapping[str, Any],
    now: datetime,
    steps_before: int,
) -> Walk:
    """Walk from ``start`` (None: the path has ended) until a pause or an end; ``context``
    is updated in place (the messages sent, by node)."""
    return _Walker(journey, instance_id, context, profile, now, steps_before).run(start)


def resume(
    journey: Journey,
    paused_at: str,
    by: str,
    *,
    instance_id: str,
    context: dict[str, Any],
    profile: Mapping[str, Any],
    now: datetime,
    steps_before: int,
) -> Walk:
    """Go on from where an instance paused: after a ``wait`` (``by`` ``timer``), a
    ``waitForEvent`` that got its event (``event``) or timed out (``timer``), or a
    ``message`` whose delivery outcome did not come in time (``timer``: its error branch).
    The paused node's step finishes (or fails) first."""
    walker = _Walker(journey, instance_id, context, profile, now, steps_before)
    node = journey.nodes.get(paused_at)
    if isinstance(node, WaitForEventNode):
        walker._step("finished", node, "event received" if by == "event" else "timed out")
        return walker.run(node.next if by == "event" else node.timeoutNext)
    if isinstance(node, WaitNode):
        walker._step("finished", node, "waited")
        return walker.run(node.next)
    if isinstance(node, MessageNode) and by == "timer":
        sent = (context.get("messages") or {}).get(node.id)
        seconds = message_timeout(node)
        return walker.run(
            walker._fail(
                node, "timed out", node.errorNext, node.errorPath, messageId=sent, timeoutSeconds=seconds
            )
        )
    walker._end(f"failed: the instance waits at {paused_at!r}, which does not wait")
    return walker.walk


def delivered(
    journey: Journey,
    node_id: str,
    outcome: Outcome,
    *,
    instance_id: str,
    context: dict[str, Any],
    profile: Mapping[str, Any],
    now: datetime,
    steps_before: int,
) -> Walk:
    """Go on after the delivery outcome of the message a ``message`` node waits on: ``sent``
    or ``delivered`` finishes the step (the outcome as its reason); ``failed``,
    ``bounced`` or ``excluded`` fails it (``<status>: <why>``) and takes the error branch."""
    walker = _Walker(journey, instance_id, context, profile, now, steps_before)
    node = journey.nodes.get(node_id)
    if not isinstance(node, MessageNode):
        walker._end(f"failed: the instance waits at {node_id!r}, which sends no message")
        return walker.walk
    sent = (context.get("messages") or {}).get(node.id)
    if outcome.status in DELIVERED:
        walker._step("finished", node, outcome.status, messageId=sent)
        return walker.run(node.next)
    why = (outcome.reason or "")[:MAX_REASON]
    detail: dict[str, Any] = {"messageId": sent, "status": outcome.status}
    if outcome.bounce is not None:
        detail["bounce"] = outcome.bounce
    reason = f"{outcome.status}: {why}" if why else outcome.status
    return walker.run(walker._fail(node, reason, node.errorNext, node.errorPath, **detail))


def called(
    journey: Journey,
    node_id: str,
    outcome: Mapping[str, Any] | str,
    *,
    instance_id: str,
    context: dict[str, Any],
    profile: Mapping[str, Any],
    now: datetime,
    steps_before: int,
) -> Walk:
    """Go on after a custom action's call: ``outcome`` is its response fields (read
    downstream as ``_journey.actions.<node>.<field>``), or why it failed (the node's
    error branch, when it has one; else the instance fails)."""
    walker = _Walker(journey, instance_id, context, profile, now, steps_before)
    node = journey.nodes.get(node_id)
    if not isinstance(node, ActionNode):
        walker._end(f"failed: the instance waits at {node_id!r}, which calls no action")
        return walker.walk
    if isinstance(outcome, str):
        return walker.run(walker._fail(node, outcome, node.errorNext, node.errorPath))
    context.setdefault("actions", {})[node.id] = dict(outcome)
    walker._step("finished", node, "called")
    return walker.run(node.next)
