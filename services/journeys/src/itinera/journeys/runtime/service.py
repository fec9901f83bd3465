"""The journey runtime: profiles enter live journeys, instances walk them, pause, resume
and end, in the caller's transaction, with everything they publish (steps on
``itinera.journey.steps.v1``, message requests on ``itinera.messages.v1``) written to the
outbox in that same transaction.

- **Entering** (:meth:`Run.enter`): a profile enters a live version when it is within the
  journey's start and end dates, in its test profiles when in test mode, has no live
  instance of the journey (one per profile and journey), and re-entrance allows it
  (not while an earlier instance is kept when it is not allowed, see :mod:`retention`;
  not before ``waitSeconds`` after the last entry when it is). What made it enter (an
  event id, a membership record id) is kept with the instance: the same trigger never
  enters twice, however often it is delivered.
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
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
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
    uuid5,
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
    key: str = ""
    """The id as text (every step and record of the instance names it)."""
    profile_key: str = ""
    """The profile id as text; :meth:`follow` keeps it."""

    def __post_init__(self) -> None:
        self.key, self.profile_key = str(self.id), str(self.profile_id)

    def follow(self, profile_id: uuid.UUID) -> None:
        """The instance follows another profile now (a merge)."""
        self.profile_id, self.profile_key = profile_id, str(profile_id)

    @classmethod
    def of(cls, row: Mapping[str, Any], version: Journey | None = None) -> Instance:
        """The instance of a row of ``instances``, in ``version`` (by default, the row's
        ``definition``)."""
        wait = None
        if row.get("waiting_node") is not None:
            wait = EventWait(row["event_type"], row["condition"], row["message_id"], row["reaction"])
        return cls(
            sandbox=row["sandbox"],
            id=row["id"],
            journey=version if version is not None else compiled(row),
            profile_id=row["profile_id"],
            node=row["node"],
            context=dict(row["context"]),
            steps=row["steps"],
            test_mode=row["test_mode"],
            wait=wait,
            waiting_node=row.get("waiting_node"),
        )


async def journeys_of(
    conn: asyncpg.Connection, sandbox: str, rows: Iterable[Mapping[str, Any]]
) -> dict[tuple[uuid.UUID, int], Journey]:
    """The versions of instances' rows (``journey_id``, ``version``), by (journey id,
    version): each read and compiled once, not shipped and parsed with every instance."""
    keys = {(row["journey_id"], row["version"]) for row in rows}
    if not keys:
        return {}
    found = await repository.versions(conn, sandbox, sorted(keys))
    return {(row["journey_id"], row["version"]): compiled(row) for row in found}


def event_trigger(event: Mapping[str, Any]) -> str:
    """What an event's entries are kept as having been made by."""
    return f"event:{event.get('_id')}"


def membership_trigger(record_id: str) -> str:
    """What the entries of an audience membership record are kept as having been made by."""
    return f"audience:{record_id}"


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


class Contended(Exception):
    """Entries written together at the end of a run were refused because a concurrent
    transaction made the same entry, or another entry of the profile into the journey,
    and committed first: the entries this run took for granted did not happen, so its
    transaction is to be rolled back and done again (the second time with ``eager``, as
    the runtime's consumer and timer runner do)."""


@dataclass
class Run:
    """The runtime's work within one transaction: what it publishes is collected and
    written to the outbox by :meth:`flush`, with the steps kept.

    What instances become is written behind, at :meth:`flush` (or before the run reads
    instances again): each instance's last state, its timers, waits and calls, a few
    statements for the whole run rather than several per instance. New instances are
    written then too, unless ``eager``: entries that the rows read at the start say may
    happen are taken for granted, and should a concurrent transaction have entered the
    profile first, :meth:`flush` raises :class:`Contended`. With ``eager`` each entry is
    written at once and a refused one does not happen (for callers that do not retry)."""

    conn: asyncpg.Connection
    sandbox: str
    now: datetime
    eager: bool = True
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
    taken: set[tuple[uuid.UUID, str]] = field(default_factory=set)
    """(journey, trigger) that made a profile enter, as far as this run knows."""
    # Written behind (see the class's doc): instance id -> (instance, status, end
    # reason) for every instance changed; the new ones' triggers; timers (instance,
    # kind) -> (node, due) or None to delete; event waits and calls, None to delete;
    # delivery waits to add and instances whose open delivery wait timed out.
    _rows: dict[uuid.UUID, tuple[Instance, str, str | None]] = field(default_factory=dict)
    _new: dict[uuid.UUID, str] = field(default_factory=dict)
    _timers: dict[tuple[uuid.UUID, str], tuple[str | None, datetime] | None] = field(default_factory=dict)
    _waits: dict[uuid.UUID, tuple[Instance, str, EventWait] | None] = field(default_factory=dict)
    _calls: dict[uuid.UUID, tuple[str, int, str, dict[str, Any]] | None] = field(default_factory=dict)
    _deliveries: list[tuple[uuid.UUID, uuid.UUID, str, int]] = field(default_factory=list)
    _timed_out: list[uuid.UUID] = field(default_factory=list)
    _at: str = ""

    def __post_init__(self) -> None:
        self._at = _iso(self.now)

    async def load_entries(self, keys: Sequence[tuple[uuid.UUID, uuid.UUID, str]]) -> None:
        """Read the latest instance of each (profile, journey) that may be entered, and
        whether each (journey, trigger) has made a profile enter already, in one statement
        rather than one per entry: (profile, journey, trigger id) of each entry that may
        happen."""
        missing = [k for k in dict.fromkeys(keys) if k[:2] not in self.known_entries]
        if missing:
            found, taken = await repository.last_entries(self.conn, self.sandbox, missing)
            for profile_id, journey_id, _ in missing:
                self.known_entries[(profile_id, journey_id)] = found.get((profile_id, journey_id))
            self.taken |= taken

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
        if not missing:
            return
        await self.write()
        for p in missing:
            self.live[p] = []
        rows = await repository.live_of_profiles(self.conn, self.sandbox, missing)
        versions = await journeys_of(self.conn, self.sandbox, rows)
        for row in rows:
            version = versions.get((row["journey_id"], row["version"]))
            if version is not None:
                self.live[row["profile_id"]].append(Instance.of(row, version))

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
        self.step_rows.append((inst.key, step, kind, node, node_type, reason, detail, self._at))
        data: dict[str, Any] = {
            "sandbox": self.sandbox,
            "journeyId": inst.journey.id,
            "version": inst.journey.version,
            "instanceId": inst.key,
            "profileId": inst.profile_key,
            "step": step,
            "kind": kind,
            "nodeId": node,
            "nodeType": node_type,
            "reason": reason,
            "detail": detail,
            "testMode": inst.test_mode,
            "at": self._at,
        }
        self.envelopes["steps"].append(
            Envelope(
                type=STEP_TYPE,
                source=SOURCE,
                sandbox=self.sandbox,
                key=inst.profile_key,
                id=uuid5(_STEP_IDS, f"{inst.key}|{step}"),
                time=self.now,
                data=data,
            )
        )

    async def write(self) -> None:
        """Write what instances became so far (see the class's doc); :class:`Contended`
        when a new instance was refused."""
        if self._new:
            new = [
                {
                    "id": inst.key,
                    "journey_id": inst.journey.id,
                    "version": inst.journey.version,
                    "profile_id": inst.profile_key,
                    "status": status,
                    "node": inst.node if status == "waiting" else None,
                    "context": inst.context,
                    "steps": inst.steps,
                    "trigger_id": self._new[key],
                    "test_mode": inst.test_mode,
                    "end_reason": reason,
                }
                for key, (inst, status, reason) in self._rows.items()
                if key in self._new
            ]
            new.sort(key=lambda r: (r["journey_id"], r["profile_id"]))
            written = await repository.insert_instances(self.conn, self.sandbox, self.now, new)
            if len(written) != len(new):
                raise Contended(f"{len(new) - len(written)} of {len(new)} entries were made meanwhile")
        saved = [
            {
                "id": inst.key,
                "node": inst.node if status == "waiting" else None,
                "context": inst.context,
                "steps": inst.steps,
                "ended_at": None if status == "waiting" else self.now,
                "status": status,
                "end_reason": reason,
            }
            for key, (inst, status, reason) in self._rows.items()
            if key not in self._new
        ]
        if saved:
            await repository.save_instances(self.conn, self.sandbox, saved)
        if self._timed_out:
            await repository.time_out_deliveries(self.conn, self.sandbox, self._timed_out, self.now)
        # What new instances forget was never written.
        timers = [k for k, v in self._timers.items() if v is None and k[0] not in self._new]
        waits = [k for k in self._waits if k not in self._new]
        calls = [k for k, v in self._calls.items() if v is None and k not in self._new]
        if timers or waits or calls:
            await repository.forget_waits(self.conn, self.sandbox, timers, waits, calls)
        kept = [(i, kind, *v) for (i, kind), v in self._timers.items() if v is not None]
        if kept:
            await repository.set_timers(self.conn, self.sandbox, kept)
        added = [
            {
                "instance_id": waiting[0].key,
                "profile_id": waiting[0].profile_key,
                "node": waiting[1],
                "event_type": waiting[2].event_type,
                "condition": waiting[2].condition,
                "message_id": waiting[2].message_id,
                "reaction": waiting[2].reaction,
            }
            for waiting in self._waits.values()
            if waiting is not None
        ]
        if added:
            await repository.add_event_waits(self.conn, self.sandbox, added)
        for key, call in self._calls.items():
            if call is not None:
                node, step, action_id, inputs = call
                await repository.add_call(
                    self.conn, self.sandbox, key, node, step, uuid.UUID(action_id), inputs
                )
        if self._deliveries:
            await repository.add_delivery_waits(self.conn, self.sandbox, self._deliveries, self.now)
        self._rows.clear()
        self._new.clear()
        self._timers.clear()
        self._waits.clear()
        self._calls.clear()
        self._deliveries.clear()
        self._timed_out.clear()

    async def flush(self) -> None:
        await self.write()
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
                "instanceId": inst.key,
                "nodeId": m.node,
                "step": m.step,
                "testMode": inst.test_mode,
            }
            request = MessageRequest(
                m.id, self.sandbox, inst.profile_key, m.channel, m.template_id, m.category, m.context
            )
            self.envelopes["messages"].append(request.envelope(profile, origin, self.now))
        for u in done.updates:
            self.envelopes["updates"].append(
                Envelope(
                    type=UPDATE_TYPE,
                    source=SOURCE,
                    sandbox=self.sandbox,
                    key=inst.profile_key,
                    id=u.id,
                    time=self.now,
                    data={
                        "sandbox": self.sandbox,
                        "profileId": inst.profile_key,
                        "updateId": u.id,
                        "attributes": u.attributes,
                        "origin": {
                            "kind": "journey",
                            "journeyId": inst.journey.id,
                            "version": inst.journey.version,
                            "instanceId": inst.key,
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
        self._timers[(inst.id, "resume")] = None
        self._waits[inst.id] = None
        inst.wait = inst.waiting_node = None
        if done.ended is not None:
            await self._end(inst, done.ended)
            if done.jump_to is not None:
                await self._jump(inst, done.jump_to, profile)
            return
        inst.node = done.paused_at
        self._keep_pause(inst, done)
        self._save(inst, "waiting", None)

    def _keep_pause(self, inst: Instance, done: Walk) -> None:
        """What a paused instance waits for: its resume timer, its custom action call,
        its event."""
        if done.paused_at is None:
            return
        if done.due_at is not None:
            self._timers[(inst.id, "resume")] = (done.paused_at, done.due_at)
        if done.call is not None:
            self._calls[inst.id] = (done.paused_at, done.call.step, done.call.action_id, done.call.inputs)
        if done.delivery is not None:
            self._deliveries.append(
                (uuid.UUID(done.delivery.message_id), inst.id, done.paused_at, done.delivery.step)
            )
        if done.event_wait is not None:
            self._waits[inst.id] = (inst, done.paused_at, done.event_wait)
            inst.wait, inst.waiting_node = done.event_wait, done.paused_at

    def _save(self, inst: Instance, status: str, reason: str | None) -> None:
        self._rows[inst.id] = (inst, status, reason)

    async def _end(self, inst: Instance, reason: str) -> None:
        """End a live instance with the reason (``completed``, ``failed: ...``, or why it exited)."""
        status = _status(reason)
        self.known_entries.pop((inst.profile_id, inst.journey.journey_id), None)  # read anew
        inst.steps += 1
        self._step(inst, inst.steps, "exited", inst.node, None, reason, {})
        # An ended instance waits for nothing.
        self._timers[(inst.id, "resume")] = self._timers[(inst.id, "timeout")] = None
        self._waits[inst.id] = self._calls[inst.id] = None
        self._save(inst, status, reason)
        live = self.live.get(inst.profile_id)
        if live is not None and inst in live:
            live.remove(inst)

    def forget_timer(self, instance_id: uuid.UUID, kind: str) -> None:
        """A timer that fired (or whose instance ended meanwhile) goes."""
        self._timers[(instance_id, kind)] = None

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
        journey_id = version.journey_id
        if (journey_id, trigger_id) in self.taken:
            return None
        if (profile_id, journey_id) in self.known_entries:
            last = self.known_entries[(profile_id, journey_id)]
        else:
            await self.write()  # what this run did to the profile's instances counts
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
        walked = done.steps[-1].step if done.steps else 1
        ended = done.ended
        status = "waiting" if ended is None else _status(ended)
        inst = Instance(
            self.sandbox,
            instance_id,
            version,
            profile_id,
            done.paused_at if ended is None else None,
            context,
            walked if ended is None else walked + 1,
            doc.testMode.enabled,
        )
        # The instance is written once, as the walk left it: an entry that is refused
        # (a live instance, a trigger already taken) leaves nothing behind.
        if self.eager:
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
                status=status,
                node=inst.node,
                steps=inst.steps,
                end_reason=ended,
            )
            if not inserted:
                self.known_entries.pop((profile_id, journey_id), None)  # read again if asked again
                return None
        else:
            self._new[instance_id] = trigger_id
            self._rows[instance_id] = (inst, status, ended)
        self.taken.add((journey_id, trigger_id))
        self.known_entries[(profile_id, journey_id)] = {"status": status, "entered_at": self.now}
        self._step(
            inst, 1, "entered", entry.id, entry.type, trigger_id.partition(":")[0], {"trigger": trigger_id}
        )
        self._publish(inst, done, profile)
        if ended is not None:
            self._step(inst, inst.steps, "exited", None, None, ended, {})
            if done.jump_to is not None:
                await self._jump(inst, done.jump_to, profile)
            return inst
        self.live.setdefault(profile_id, []).append(inst)
        self._timers[(instance_id, "timeout")] = (None, self.now + version.timeout)
        self._keep_pause(inst, done)
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
            self._timed_out.append(inst.id)
        done = resume(
            inst.journey,
            inst.node,
            by,
            instance_id=inst.key,
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
            instance_id=inst.key,
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
            instance_id=inst.key,
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
                await self.enter(version, profile_id, profile, event, event_trigger(event))

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
                await self.enter(version, profile_id, profile, None, membership_trigger(trigger_id))

    async def on_merge(self, survivor: uuid.UUID, merged: Sequence[uuid.UUID]) -> None:
        """Instances of merged profiles follow the survivor, but for journeys it already
        has a live instance of: those end (``merged``)."""
        await self.write()
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
                    inst.follow(survivor)
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
