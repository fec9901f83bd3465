"""The journey runtime: profiles enter live journeys, instances walk them, pause, resume
and end, in the caller's transaction, with everything they publish (steps on
``itinera.journey.steps.v1``, message requests on ``itinera.messages.v1``) written to the
outbox in that same transaction.

- **Entering** (:meth:`Run.enter`): a profile enters a live version when it is within the
  journey's start and end dates, in its test profiles when in test mode, has no live
  instance of the journey (one per profile and journey), and re-entrance allows it
  (never after a first entry when it is not allowed; not before ``waitSeconds`` after
  the last entry when it is). What made it enter (an event id, a membership record id)
  is kept: the same trigger never enters twice, however often it is delivered.
- **Walking**: see :mod:`walker`. A pause keeps a timer (``resume``) and/or an event
  wait; each instance also has a ``timeout`` timer, the journey's global timeout.
- **Ending**: completed (a path ended), failed (a step failed without an error path),
  or exited: exit criteria (an event, an audience exit), the global timeout, a jump to
  another journey, the version stopped, or the profile merged into one that already has
  an instance of the journey.

Message tracking events resume instances waiting for a reaction: an event of type
``message.tracking`` whose
``_experience.customerJourneyManagement.messageExecution.messageExecutionID`` is the
message's id and whose ``messageInteraction.interactionType`` is ``open`` (for
``opened``) or ``click`` (for ``clicked``).

Delivery outcomes (``itinera.feedback.v1``, as the channels report them) resume instances
waiting at a message node with an error branch (:meth:`Run.on_feedback`): the message id
names the delivery wait, which names the instance and the step that requested it. The
first outcome decides, and is kept with the ``ce_id`` of its record; the same record
again, a later outcome, or one for a node the instance has left (its timeout fired, it
exited) changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson
from asyncpg import Record as Row

from itinera.common.db.outbox import enqueue
from itinera.common.kafka import topics
from itinera.common.kafka.envelope import Envelope
from itinera.journeys.definitions.schemas import AudienceExit, EventEntry, EventExit, MessageNode
from itinera.journeys.runtime import repository
from itinera.journeys.runtime.walker import (
    DELIVERED,
    MAX_REASON,
    EventWait,
    Journey,
    Outcome,
    Walk,
    called,
    delivered,
    journey,
    resume,
    view_of,
    walk,
)

SOURCE = "/itinera/journeys"
STEP_TYPE = "com.itinera.journey.step.v1"
MESSAGE_TYPE = "com.itinera.journey.message.v1"
UPDATE_TYPE = "com.itinera.profile.update.v1"
_REACTIONS = {"opened": "open", "clicked": "click"}
_STEP_IDS = uuid.UUID("2b9e61f4-0d3c-5a7e-8f12-4c6d8e0a2b35")


def compiled(row: Mapping[str, Any]) -> Journey:
    """The version of a row (``journey_id``, ``version``, ``definition``), parsed once."""
    return journey(
        str(row["journey_id"]),
        row["version"],
        orjson.dumps(row["definition"], option=orjson.OPT_SORT_KEYS).decode(),
    )


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class MessageRequest:
    """A message for the channels to deliver (``itinera.messages.v1``); ``id`` is the
    channels' idempotency key, derived from what asked for it."""

    id: str
    sandbox: str
    profile_id: str
    channel: str
    template_id: str | None
    category: str
    context: Mapping[str, Any]

    def envelope(self, profile: Mapping[str, Any], origin: Mapping[str, Any], now: datetime) -> Envelope:
        """The record, with the profile as it is now and what asked for it (``origin``:
        ``{kind: "journey", journeyId, version, instanceId, nodeId, step, testMode}`` or
        ``{kind: "campaign", ...}``)."""
        return Envelope(
            type=MESSAGE_TYPE,
            source=SOURCE,
            sandbox=self.sandbox,
            key=self.profile_id,
            id=self.id,
            time=now,
            data={
                "messageId": self.id,
                "sandbox": self.sandbox,
                "profileId": self.profile_id,
                "channel": self.channel,
                "templateId": self.template_id,
                "category": self.category,
                "context": dict(self.context),
                "profile": dict(profile),
                "origin": dict(origin),
                "requestedAt": _iso(now),
            },
        )


@dataclass(slots=True)
class Instance:
    """A live instance as the runtime holds it during a transaction."""

    sandbox: str
    id: uuid.UUID
    journey: Journey
    profile_id: uuid.UUID
    node: str | None
    context: dict[str, Any]
    steps: int
    test_mode: bool
    wait: EventWait | None = None
    waiting_node: str | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Instance:
        wait = None
        if row.get("waiting_node") is not None:
            wait = EventWait(row["event_type"], row["condition"], row["message_id"], row["reaction"])
        return cls(
            sandbox=row["sandbox"],
            id=row["id"],
            journey=compiled(row),
            profile_id=row["profile_id"],
            node=row["node"],
            context=dict(row["context"]),
            steps=row["steps"],
            test_mode=row["test_mode"],
            wait=wait,
            waiting_node=row.get("waiting_node"),
        )


def _status(reason: str) -> str:
    """An ended instance's status, by why it ended."""
    return "completed" if reason == "completed" else "failed" if reason.startswith("failed") else "exited"


def _identities(profile: Mapping[str, Any]) -> set[str]:
    """``Namespace:id`` of every identity in the profile's identity map (lower-cased)."""
    found = set()
    identity_map = profile.get("identityMap")
    if isinstance(identity_map, Mapping):
        for namespace, items in identity_map.items():
            for item in items if isinstance(items, list) else []:
                if isinstance(item, Mapping) and isinstance(item.get("id"), str):
                    found.add(f"{namespace}:{item['id']}".lower())
    return found


def _path(value: Any, *keys: str) -> Any:
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def event_matches(
    wait: EventWait, event: Mapping[str, Any], view: Mapping[str, Any], version: Journey, now: datetime
) -> bool:
    """Whether ``event`` is what an instance waits for."""
    if wait.reaction is not None:
        execution = _path(event, "_experience", "customerJourneyManagement")
        return (
            event.get("eventType") == "message.tracking"
            and wait.message_id is not None
            and _path(execution, "messageExecution", "messageExecutionID") == wait.message_id
            and _path(execution, "messageInteraction", "interactionType") == _REACTIONS.get(wait.reaction)
        )
    if wait.event_type is not None and event.get("eventType") != wait.event_type:
        return False
    return version.holds(wait.condition, view, now)


@dataclass
class Run:
    """The runtime's work within one transaction: what it publishes is collected and
    written to the outbox by :meth:`flush`, with the steps kept."""

    conn: asyncpg.Connection
    sandbox: str
    now: datetime
    envelopes: dict[str, list[Envelope]] = field(
        default_factory=lambda: {"steps": [], "messages": [], "updates": []}
    )
    step_rows: list[tuple[Any, ...]] = field(default_factory=list)
    live: dict[uuid.UUID, list[Instance]] = field(default_factory=dict)
    """Live instances by profile, as far as this run has loaded them."""
    known_entries: dict[tuple[uuid.UUID, uuid.UUID], Mapping[str, Any] | None] = field(default_factory=dict)
    """(profile, journey) -> its latest instance (``status``, ``entered_at``) or None, as
    loaded by :meth:`load_entries` and kept up to date by :meth:`enter`."""
    deliveries: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    """Message id -> its delivery wait (``instance_id``, ``node``, ``step``, ``status``,
    ``ce_id``, the instance's ``profile_id``), as read by :meth:`read_deliveries` and
    :meth:`lock_deliveries` and kept up to date by :meth:`on_feedback`."""

    async def load_entries(self, pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> None:
        """Read the latest instance of each (profile, journey) that may be entered, in one
        statement rather than one per entry."""
        missing = [p for p in dict.fromkeys(pairs) if p not in self.known_entries]
        if missing:
            found = await repository.last_entries(self.conn, self.sandbox, missing)
            for pair in missing:
                self.known_entries[pair] = found.get(pair)

    async def read_deliveries(self, message_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        """Read the delivery waits of these messages, without a lock; the profiles of the
        instances still waiting, whose live instances are to be loaded (and locked) with
        the others (:meth:`load_live`) before :meth:`lock_deliveries`."""
        if not message_ids:
            return []
        rows = await repository.delivery_waits_of(self.conn, self.sandbox, message_ids, lock=False)
        self.deliveries.update((row["message_id"], dict(row)) for row in rows)
        return [row["profile_id"] for row in rows if row["status"] is None]

    async def lock_deliveries(self) -> None:
        """Lock the delivery waits :meth:`read_deliveries` found, and read them again: once
        their instances are locked, as the timers lock them (instance, then wait)."""
        if not self.deliveries:
            return
        rows = await repository.delivery_waits_of(self.conn, self.sandbox, list(self.deliveries), lock=True)
        self.deliveries = {row["message_id"]: dict(row) for row in rows}
        # An instance merged into another profile since it was read follows that one now.
        await self.load_live([r["profile_id"] for r in rows if r["status"] is None])

    async def load_live(self, profile_ids: Sequence[uuid.UUID]) -> None:
        missing = [p for p in dict.fromkeys(profile_ids) if p not in self.live]
        for p in missing:
            self.live[p] = []
        for row in await repository.live_of_profiles(self.conn, self.sandbox, missing):
            self.live[row["profile_id"]].append(Instance.of(row))

    # Publishing

    def _step(
        self,
        inst: Instance,
        step: int,
        kind: str,
        node: str | None,
        node_type: str | None,
        reason: str | None,
        detail: dict[str, Any],
    ) -> None:
        self.step_rows.append((inst.id, step, kind, node, node_type, reason, detail, self.now))
        data: dict[str, Any] = {
            "sandbox": self.sandbox,
            "journeyId": inst.journey.id,
            "version": inst.journey.version,
            "instanceId": str(inst.id),
            "profileId": str(inst.profile_id),
            "step": step,
            "kind": kind,
            "nodeId": node,
            "nodeType": node_type,
            "reason": reason,
            "detail": detail,
            "testMode": inst.test_mode,
            "at": _iso(self.now),
        }
        self.envelopes["steps"].append(
            Envelope(
                type=STEP_TYPE,
                source=SOURCE,
                sandbox=self.sandbox,
                key=str(inst.profile_id),
                id=str(uuid.uuid5(_STEP_IDS, f"{inst.id}|{step}")),
                time=self.now,
                data=data,
            )
        )

    async def flush(self) -> None:
        await repository.add_steps(self.conn, self.sandbox, self.step_rows)
        await enqueue(self.conn, topics.JOURNEY_STEPS.name, self.envelopes["steps"])
        await enqueue(self.conn, topics.MESSAGES.name, self.envelopes["messages"])
        await enqueue(self.conn, topics.PROFILE_UPDATES.name, self.envelopes["updates"])
        self.step_rows.clear()
        self.envelopes = {"steps": [], "messages": [], "updates": []}

    # Walking

    def _publish(self, inst: Instance, done: Walk, profile: Mapping[str, Any]) -> None:
        """What a walk did, to publish: its steps, message requests and profile updates."""
        for s in done.steps:
            self._step(inst, s.step, s.kind, s.node, s.node_type, s.reason, s.detail)
        for m in done.messages:
            origin = {
                "kind": "journey",
                "journeyId": inst.journey.id,
                "version": inst.journey.version,
                "instanceId": str(inst.id),
                "nodeId": m.node,
                "step": m.step,
                "testMode": inst.test_mode,
            }
            request = MessageRequest(
                m.id, self.sandbox, str(inst.profile_id), m.channel, m.template_id, m.category, m.context
            )
            self.envelopes["messages"].append(request.envelope(profile, origin, self.now))
        for u in done.updates:
            self.envelopes["updates"].append(
                Envelope(
                    type=UPDATE_TYPE,
                    source=SOURCE,
                    sandbox=self.sandbox,
                    key=str(inst.profile_id),
                    id=u.id,
                    time=self.now,
                    data={
                        "sandbox": self.sandbox,
                        "profileId": str(inst.profile_id),
                        "updateId": u.id,
                        "attributes": u.attributes,
                        "origin": {
                            "kind": "journey",
                            "journeyId": inst.journey.id,
                            "version": inst.journey.version,
                            "instanceId": str(inst.id),
                            "nodeId": u.node,
                            "step": u.step,
                        },
                    },
                )
            )

    async def _apply(self, inst: Instance, done: Walk, profile: Mapping[str, Any]) -> None:
        """Keep what a walk of a live instance did: what it publishes, and where the
        instance is now."""
        self._publish(inst, done, profile)
        inst.steps = done.steps[-1].step if done.steps else inst.steps
        await repository.clear_waits(self.conn, self.sandbox, inst.id)
        inst.wait = inst.waiting_node = None
        if done.ended is not None:
            await self._end(inst, done.ended)
            if done.jump_to is not None:
                await self._jump(inst, done.jump_to, profile)
            return
        inst.node = done.paused_at
        await self._keep_pause(inst, done)
        await self._save(inst, "waiting", None)

    async def _keep_pause(self, inst: Instance, done: Walk) -> None:
        """What a paused instance waits for: its resume timer, its custom action call,
        its event."""
        if done.paused_at is None:
            return
        if done.due_at is not None:
            await repository.set_timer(
                self.conn, self.sandbox, inst.id, "resume", done.paused_at, done.due_at
            )
        if done.call is not None:
            await repository.add_call(
                self.conn,
                self.sandbox,
                inst.id,
                done.paused_at,
                done.call.step,
                uuid.UUID(done.call.action_id),
                done.call.inputs,
            )
        if done.delivery is not None:
            await repository.add_delivery_wait(
                self.conn,
                self.sandbox,
                uuid.UUID(done.delivery.message_id),
                inst.id,
                done.paused_at,
                done.delivery.step,
                self.now,
            )
        if done.event_wait is not None:
            w = done.event_wait
            await repository.set_event_wait(
                self.conn,
                self.sandbox,
                inst.id,
                inst.profile_id,
                done.paused_at,
                w.event_type,
                w.condition,
                w.message_id,
                w.reaction,
            )
            inst.wait, inst.waiting_node = w, done.paused_at

    async def _save(self, inst: Instance, status: str, reason: str | None) -> None:
        ended = None if status == "waiting" else self.now
        await repository.save(
            self.conn,
            self.sandbox,
            inst.id,
            node=inst.node if status == "waiting" else None,
            context=inst.context,
            steps=inst.steps,
            ended_at=ended,
            status=status,
            end_reason=reason,
        )

    async def _end(self, inst: Instance, reason: str) -> None:
        """End a live instance with the reason (``completed``, ``failed: ...``, or why it exited)."""
        status = _status(reason)
        self.known_entries.pop((inst.profile_id, uuid.UUID(inst.journey.id)), None)  # read anew
        inst.steps += 1
        self._step(inst, inst.steps, "exited", inst.node, None, reason, {})
        await repository.end_instance_rows(self.conn, self.sandbox, inst.id)
        await self._save(inst, status, reason)
        live = self.live.get(inst.profile_id)
        if live is not None and inst in live:
            live.remove(inst)

    async def end(self, inst: Instance, reason: str) -> None:
        await self._end(inst, reason)

    async def _jump(self, inst: Instance, target: str, profile: Mapping[str, Any]) -> None:
        try:
            key = uuid.UUID(target)
        except ValueError:
            return
        row = await repository.live_version_of(self.conn, self.sandbox, key)
        if row is not None:
            await self.enter(
                compiled(row), inst.profile_id, profile, inst.context.get("event"), f"jump:{inst.id}"
            )

    async def enter(
        self,
        version: Journey,
        profile_id: uuid.UUID,
        profile: Mapping[str, Any],
        event: Mapping[str, Any] | None,
        trigger_id: str,
    ) -> Instance | None:
        """Make the profile enter the version, if the journey lets it (see the module's
        doc); the new instance, walked until its first pause or its end."""
        doc = version.doc
        if (doc.startAt is not None and self.now < doc.startAt) or (
            doc.endAt is not None and self.now >= doc.endAt
        ):
            return None
        if doc.testMode.enabled and not _identities(profile) & {p.lower() for p in doc.testMode.testProfiles}:
            return None
        journey_id = uuid.UUID(version.id)
        if (profile_id, journey_id) in self.known_entries:
            last = self.known_entries[(profile_id, journey_id)]
        else:
            last = await repository.last_entry(self.conn, self.sandbox, profile_id, journey_id)
        if last is not None:
            if last["status"] == "waiting" or not doc.reentrance.allowed:
                return None
            if last["entered_at"] + timedelta(seconds=doc.reentrance.waitSeconds) > self.now:
                return None
        instance_id = uuid.uuid4()
        context: dict[str, Any] = {"event": dict(event) if event is not None else None, "messages": {}}
        entry = version.entry
        done = walk(
            version,
            getattr(entry, "next", None),
            instance_id=str(instance_id),
            context=context,
            profile=profile,
            now=self.now,
            steps_before=1,
        )
        # The instance is written once, as the walk left it: an entry that is refused
        # (a live instance, a trigger already taken) leaves nothing behind.
        walked = done.steps[-1].step if done.steps else 1
        ended = done.ended
        inserted = await repository.insert_instance(
            self.conn,
            self.sandbox,
            instance_id,
            journey_id,
            version.version,
            profile_id,
            trigger_id,
            doc.testMode.enabled,
            context,
            self.now,
            status="waiting" if ended is None else _status(ended),
            node=done.paused_at if ended is None else None,
            steps=walked if ended is None else walked + 1,
            end_reason=ended,
        )
        if not inserted:
            self.known_entries.pop((profile_id, journey_id), None)  # read again if asked again
            return None
        self.known_entries[(profile_id, journey_id)] = {
            "status": "waiting" if ended is None else _status(ended),
            "entered_at": self.now,
        }
        inst = Instance(
            self.sandbox, instance_id, version, profile_id, None, context, 1, doc.testMode.enabled
        )
        self._step(
            inst, 1, "entered", entry.id, entry.type, trigger_id.partition(":")[0], {"trigger": trigger_id}
        )
        self._publish(inst, done, profile)
        inst.steps = walked
        if ended is not None:
            inst.steps += 1
            self._step(inst, inst.steps, "exited", None, None, ended, {})
            if done.jump_to is not None:
                await self._jump(inst, done.jump_to, profile)
            return inst
        inst.node = done.paused_at
        self.live.setdefault(profile_id, []).append(inst)
        await repository.set_timer(
            self.conn, self.sandbox, instance_id, "timeout", None, self.now + version.timeout
        )
        await self._keep_pause(inst, done)
        return inst

    async def resume(
        self, inst: Instance, by: str, profile: Mapping[str, Any], event: Mapping[str, Any] | None = None
    ) -> None:
        """Go on from the instance's pause: ``by`` ``event`` (what it waited for came) or
        ``timer``."""
        if inst.node is None:
            return
        if event is not None:
            inst.context["event"] = dict(event)
        if by == "timer" and isinstance(inst.journey.nodes.get(inst.node), MessageNode):
            await repository.time_out_delivery(self.conn, self.sandbox, inst.id, self.now)
        done = resume(
            inst.journey,
            inst.node,
            by,
            instance_id=str(inst.id),
            context=inst.context,
            profile=profile,
            now=self.now,
            steps_before=inst.steps,
        )
        await self._apply(inst, done, profile)

    async def after_call(
        self, inst: Instance, node: str, outcome: Mapping[str, Any] | str, profile: Mapping[str, Any]
    ) -> None:
        """Go on after a custom action's call (its response fields, or why it failed)."""
        done = called(
            inst.journey,
            node,
            outcome,
            instance_id=str(inst.id),
            context=inst.context,
            profile=profile,
            now=self.now,
            steps_before=inst.steps,
        )
        await self._apply(inst, done, profile)

    def _live_instance(self, instance_id: uuid.UUID) -> Instance | None:
        for found in self.live.values():
            for inst in found:
                if inst.id == instance_id:
                    return inst
        return None

    async def on_feedback(
        self,
        message_id: uuid.UUID,
        record_id: str,
        outcome: Outcome,
        profile_of: Callable[[uuid.UUID], Awaitable[Mapping[str, Any]]],
    ) -> str:
        """A delivery outcome of a message (its wait locked by :meth:`lock_deliveries`, its
        instance loaded by :meth:`load_live`): the instance waiting for it goes on, with
        its profile from ``profile_of``. What became of the record: ``applied``;
        ``duplicate`` (this record decided the wait already); ``late`` (another outcome or
        the timeout decided it, or the instance left the node); ``unmatched`` (no
        instance waits for this message's outcome)."""
        wait = self.deliveries.get(message_id)
        if wait is None:
            return "unmatched"
        if wait["ce_id"] == record_id:
            return "duplicate"
        if wait["status"] is not None:
            return "late"
        inst = self._live_instance(wait["instance_id"])
        if inst is None or inst.node != wait["node"] or inst.steps != wait["step"]:
            return "late"
        reason = None if outcome.status in DELIVERED or not outcome.reason else outcome.reason[:MAX_REASON]
        await repository.decide_delivery(
            self.conn, self.sandbox, message_id, outcome.status, reason, record_id, self.now
        )
        wait.update(status=outcome.status, ce_id=record_id)
        profile = await profile_of(inst.profile_id)
        done = delivered(
            inst.journey,
            str(wait["node"]),
            outcome,
            instance_id=str(inst.id),
            context=inst.context,
            profile=profile,
            now=self.now,
            steps_before=inst.steps,
        )
        await self._apply(inst, done, profile)
        return "applied"

    # What comes in

    async def on_event(
        self,
        profile_id: uuid.UUID,
        profile: Mapping[str, Any],
        event: Mapping[str, Any],
        entries: Sequence[Journey],
    ) -> None:
        """An event of a profile: exits first (exit criteria), then the instances waiting
        for it go on, then it enters the journeys whose entry is its type."""
        view = view_of(profile, {"event": event})
        for inst in list(self.live.get(profile_id, [])):
            for criterion in inst.journey.doc.exitCriteria:
                if (
                    isinstance(criterion, EventExit)
                    and (criterion.eventType is None or criterion.eventType == event.get("eventType"))
                    and inst.journey.holds(criterion.condition, view, self.now)
                ):
                    await self._end(inst, f"exit criteria: {criterion.name}")
                    break
        for inst in list(self.live.get(profile_id, [])):
            if inst.wait is not None and event_matches(inst.wait, event, view, inst.journey, self.now):
                await self.resume(inst, "event", profile, event)
        for version in entries:
            entry = version.entry
            if isinstance(entry, EventEntry) and version.holds(entry.condition, view, self.now):
                await self.enter(version, profile_id, profile, event, f"event:{event.get('_id')}")

    async def on_membership(
        self,
        profile_id: uuid.UUID,
        profile: Mapping[str, Any],
        audience_id: str,
        entered: bool,
        entries: Sequence[Journey],
        trigger_id: str,
    ) -> None:
        """A profile entered or exited an audience: audience exits, then entries."""
        if not entered:
            for inst in list(self.live.get(profile_id, [])):
                if any(
                    isinstance(c, AudienceExit) and c.audienceId == audience_id
                    for c in inst.journey.doc.exitCriteria
                ):
                    await self._end(inst, f"exit criteria: left audience {audience_id}")
        wanted = "entered" if entered else "exited"
        for version in entries:
            if getattr(version.entry, "on", None) == wanted:
                await self.enter(version, profile_id, profile, None, f"audience:{trigger_id}")

    async def on_merge(self, survivor: uuid.UUID, merged: Sequence[uuid.UUID]) -> None:
        """Instances of merged profiles follow the survivor, but for journeys it already
        has a live instance of: those end (``merged``)."""
        self.known_entries.clear()  # instances change profiles: read them anew
        await self.load_live([survivor, *merged])
        kept = {inst.journey.id for inst in self.live[survivor]}
        moving = []
        for old in merged:
            for inst in list(self.live[old]):
                if inst.journey.id in kept:
                    await self._end(inst, f"merged into {survivor}, which is in the journey already")
                else:
                    kept.add(inst.journey.id)
                    inst.profile_id = survivor
                    moving.append(inst.id)
                    self.live[survivor].append(inst)
            self.live[old] = []
        await repository.move_instances(self.conn, self.sandbox, moving, survivor)


async def stop_version(
    conn: asyncpg.Connection, sandbox: str, journey_id: uuid.UUID, version: int, now: datetime
) -> int:
    """A stopped version's live instances end now (``stopped``); how many."""
    rows = await repository.live_of_version(conn, sandbox, journey_id, version)
    if not rows:
        return 0
    definition = await repository.versions(conn, sandbox, [(journey_id, version)])
    run = Run(conn, sandbox, now)
    for row in rows:
        inst = Instance.of(_with(row, definition[0]))
        await run.end(inst, "stopped")
    await run.flush()
    return len(rows)


def _with(row: Row, version: Row) -> dict[str, Any]:
    found = dict(row)
    found["definition"] = version["definition"]
    return found
