"""What the runtime consumes (group ``itinera-journeys``): profile events and changes
(which keep each profile's view, as :mod:`itinera.common.projection` does for any
service downstream of the profile service), audience memberships, identity merges and
message feedback (the delivery outcomes of messages that message nodes with an error
branch wait for); and its timers. Each consumed batch is one transaction
per sandbox, with what it publishes (outbox); a record that is not what its topic
promises is dead-lettered with the reason.

Feedback is read in the runtime's own group because it moves instances as events and
timers do: in one transaction with the events of the same batch, under the same locks.
Most feedback records concern no journey (campaign messages, opens and clicks, which
come back as ``message.tracking`` profile events anyway); they are dropped after
parsing, before any transaction (``itinera_journeys_feedback_records`` counts what
became of each)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
from prometheus_client import Counter

from itinera.common.errors import FieldError
from itinera.common.kafka import topics
from itinera.common.kafka.consumer import PermanentError, Record
from itinera.common.periodic import Periodic
from itinera.common.projection import event_problems, plan
from itinera.journeys.runtime import repository
from itinera.journeys.runtime.service import (
    Contended,
    Instance,
    Run,
    compiled,
    event_trigger,
    journeys_of,
    membership_trigger,
)
from itinera.journeys.runtime.walker import DELIVERED, UNDELIVERED, Journey, Outcome

FEEDBACK_RECORDS = Counter(
    "itinera_journeys_feedback_records",
    "Feedback records read by the journeys runtime, by what became of them: applied (an "
    "instance went on), duplicate (applied before), late (the instance had left the node), "
    "unmatched (no instance waits for the message), skipped (not a delivery outcome of a "
    "journey's message)",
    ["outcome"],
)
_OUTCOMES = DELIVERED | UNDELIVERED


def _uuid(value: Any, path: str, problems: list[FieldError], what: str = "a profile id") -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        problems.append(FieldError(path, f"expected {what} (UUID)", "format"))
        return uuid.UUID(int=0)


def _text(data: Mapping[str, Any], name: str, problems: list[FieldError]) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        problems.append(FieldError(f"/{name}", "expected a string or null", "type"))
        return None
    return value


def _feedback(data: dict[str, Any]) -> dict[str, Any] | None:
    """A feedback record as the runtime reads it (``_message``, ``_outcome``); None when
    it is not a delivery outcome of a journey's message (an open, a campaign's message)."""
    origin = data.get("origin")
    kind = origin.get("kind") if isinstance(origin, Mapping) else None
    if data.get("status") not in _OUTCOMES or kind not in (None, "journey"):
        return None
    problems: list[FieldError] = []
    data["_message"] = _uuid(data.get("messageId"), "/messageId", problems, "a message id")
    reason, bounce = _text(data, "reason", problems), _text(data, "bounce", problems)
    if problems:
        raise PermanentError(problems)
    data["_outcome"] = Outcome(str(data["status"]), reason, bounce)
    return data


def _parsed(record: Record, default_sandbox: str) -> tuple[str, dict[str, Any] | None]:
    """The record's sandbox and data; None for feedback the runtime has no use for."""
    data = record.json()
    if not isinstance(data, dict):
        raise PermanentError([FieldError("", "expected an object", "type")])
    sandbox = str(data.get("sandbox") or record.sandbox or default_sandbox)
    if record.topic == topics.FEEDBACK.name:
        return sandbox, _feedback(data)
    problems: list[FieldError] = []
    data["_profile"] = _uuid(data.get("profileId"), "/profileId", problems)
    if record.topic == topics.PROFILE_EVENTS.name:
        problems += event_problems(data)
        if not isinstance(data.get("profile"), Mapping):
            problems.append(FieldError("/profile", "expected the profile's snapshot", "required"))
    elif record.topic == topics.PROFILE_CHANGES.name:
        changes = data.get("changes", [])
        if not isinstance(changes, list) or not all(
            isinstance(c, Mapping) and isinstance(c.get("path"), str) and c["path"] for c in changes
        ):
            problems.append(FieldError("/changes", "expected [{path, old, new}, ...]", "type"))
        merged = data.get("mergedProfileIds", [])
        if not isinstance(merged, list) or not all(isinstance(m, str) for m in merged):
            problems.append(FieldError("/mergedProfileIds", "expected a list of profile ids", "type"))
    elif record.topic == topics.AUDIENCES.name:
        if data.get("status") not in ("realized", "exited"):
            problems.append(FieldError("/status", "expected realized or exited", "enum"))
        if not isinstance(data.get("audienceId"), str):
            problems.append(FieldError("/audienceId", "expected the audience id", "required"))
    else:
        merged = data.get("mergedProfileIds")
        if not isinstance(merged, list):
            problems.append(FieldError("/mergedProfileIds", "expected a list of profile ids", "type"))
        else:
            data["_merged"] = [_uuid(m, f"/mergedProfileIds/{i}", problems) for i, m in enumerate(merged)]
    if problems:
        raise PermanentError(problems)
    return sandbox, data


class RuntimeHandler:
    """Applies a batch of profile events and changes, memberships, merges and delivery
    outcomes, in order, one transaction per sandbox."""

    def __init__(self, pool: asyncpg.Pool, default_sandbox: str) -> None:
        self.pool = pool
        self.default_sandbox = default_sandbox

    async def __call__(self, batch: list[Record]) -> None:
        by_sandbox: dict[str, list[tuple[str, dict[str, Any], str]]] = defaultdict(list)
        skipped = 0
        for record in batch:
            sandbox, data = _parsed(record, self.default_sandbox)
            if data is None:
                skipped += 1
                continue
            by_sandbox[sandbox].append(
                (record.topic, data, record.ce_id or f"{record.partition}:{record.offset}")
            )
        for sandbox, items in by_sandbox.items():
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    feedback = await self._apply(conn, sandbox, items, eager=False)
            except Contended:  # entered meanwhile by another transaction: again, one by one
                async with self.pool.acquire() as conn, conn.transaction():
                    feedback = await self._apply(conn, sandbox, items, eager=True)
            for outcome, count in feedback.items():  # once committed
                FEEDBACK_RECORDS.labels(outcome).inc(count)
        if skipped:
            FEEDBACK_RECORDS.labels("skipped").inc(skipped)

    async def _apply(
        self,
        conn: asyncpg.Connection,
        sandbox: str,
        items: list[tuple[str, dict[str, Any], str]],
        *,
        eager: bool,
    ) -> dict[str, int]:
        """Apply the sandbox's records; what became of its feedback records, by outcome.
        New instances are written with the rest at the end (``eager``: each at once;
        see :class:`Run`)."""
        run = Run(conn, sandbox, datetime.now(UTC), eager=eager)
        messages = [d["_message"] for t, d, _ in items if t == topics.FEEDBACK.name]
        events = [d for t, d, _ in items if t == topics.PROFILE_EVENTS.name]
        kept = [
            ("event" if t == topics.PROFILE_EVENTS.name else "change", d)
            for t, d, _ in items
            if t in (topics.PROFILE_EVENTS.name, topics.PROFILE_CHANGES.name)
        ]
        deleted: list[uuid.UUID] = []
        if kept:
            named = {str(d["profileId"]) for _, d in kept}
            named |= {str(m) for _, d in kept for m in d.get("mergedProfileIds") or ()}
            planned = plan(await repository.attributes_of(conn, sandbox, named), kept)
            await repository.apply_profiles(conn, sandbox, planned)
            deleted = [uuid.UUID(p) for p in sorted(planned.deleted)]
        event_types = {str(d["event"].get("eventType")) for d in events}
        audiences = {str(d["audienceId"]) for t, d, _ in items if t == topics.AUDIENCES.name}
        entries: dict[tuple[str, str], list[Journey]] = defaultdict(list)
        for kind, keys in (("event", event_types), ("audience", audiences)):
            if keys:
                for row in await repository.live_versions(conn, sandbox, kind, sorted(keys)):
                    entries[(kind, row["entry_key"])].append(compiled(row))
        members = [d["_profile"] for t, d, _ in items if t == topics.AUDIENCES.name]
        profiles = await repository.profiles_of(conn, sandbox, members) if members else {}
        waiting = await run.read_deliveries(messages)
        await run.load_live(
            [
                *deleted,
                *waiting,
                *(d["_profile"] for t, d, _ in items if "_merged" not in d and t != topics.FEEDBACK.name),
            ]
        )
        await run.lock_deliveries()
        for erased in deleted:  # a profile erased (privacy): its instances end
            for inst in list(run.live.get(erased, [])):
                await run.end(inst, "profile deleted")
        possible: list[tuple[uuid.UUID, uuid.UUID, str]] = []  # entries that may happen
        for t, d, record_id in items:
            if t == topics.PROFILE_EVENTS.name:
                versions = entries.get(("event", str(d["event"].get("eventType"))), [])
                trigger = event_trigger(d["event"])
            elif t == topics.AUDIENCES.name:
                versions = entries.get(("audience", str(d["audienceId"])), [])
                trigger = membership_trigger(record_id)
            else:
                continue
            possible.extend((d["_profile"], v.journey_id, trigger) for v in versions)
        await run.load_entries(possible)
        feedback: dict[str, int] = defaultdict(int)

        async def profile_of(profile_id: uuid.UUID) -> Mapping[str, Any]:
            key = str(profile_id)
            if key not in profiles:
                profiles.update(await repository.profiles_of(conn, sandbox, [profile_id]))
            return profiles.get(key, {})

        for topic, data, record_id in items:
            if topic == topics.FEEDBACK.name:
                outcome = await run.on_feedback(data["_message"], record_id, data["_outcome"], profile_of)
                feedback[outcome] += 1
                continue
            profile_id: uuid.UUID = data["_profile"]
            if topic == topics.PROFILE_EVENTS.name:
                event = data["event"]
                found = entries.get(("event", str(event.get("eventType"))), [])
                await run.on_event(profile_id, data["profile"], event, found)
            elif topic == topics.PROFILE_CHANGES.name:
                continue  # kept above
            elif topic == topics.AUDIENCES.name:
                audience_id = str(data["audienceId"])
                await run.on_membership(
                    profile_id,
                    profiles.get(str(profile_id), {}),
                    audience_id,
                    data["status"] == "realized",
                    entries.get(("audience", audience_id), []),
                    record_id,
                )
            else:
                await run.on_merge(profile_id, data["_merged"])
        await run.flush()
        return feedback


class TimerRunner(Periodic):
    """Fires due timers, :attr:`batch` at a time, in one transaction with what they
    cause; any number of runners share them (``SKIP LOCKED``)."""

    def __init__(self, pool: asyncpg.Pool, interval_s: float, batch: int) -> None:
        super().__init__("journeys:timers", interval_s)
        self.pool = pool
        self.batch = batch

    async def tick(self) -> bool:
        now = datetime.now(UTC)
        try:
            return await self._pass(now, eager=False)
        except Contended:  # a jump entered a profile another transaction entered meanwhile
            return await self._pass(now, eager=True)

    async def _pass(self, now: datetime, *, eager: bool) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await repository.claim_timers(conn, now, self.batch)
            due: dict[str, dict[uuid.UUID, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
            for row in rows:
                due[row["sandbox"]][row["instance_id"]][row["kind"]] = row
            for sandbox, timers in due.items():
                run = Run(conn, sandbox, now, eager=eager)
                timed = await repository.timed_instances(conn, sandbox, list(timers))
                versions = await journeys_of(conn, sandbox, timed)
                found = [r for r in timed if (r["journey_id"], r["version"]) in versions]
                profiles = await repository.profiles_of(conn, sandbox, [r["profile_id"] for r in found])
                for gone in set(timers) - {row["id"] for row in found}:  # ended meanwhile
                    for kind in timers[gone]:
                        run.forget_timer(gone, kind)
                for row in found:
                    inst = Instance.of(row, versions[(row["journey_id"], row["version"])])
                    kinds = timers[inst.id]
                    for kind in kinds:
                        run.forget_timer(inst.id, kind)
                    # An instance with both timers due (after an outage) is acted on once:
                    # the journey's timeout wins.
                    if "timeout" in kinds:
                        await run.end(inst, "timeout")
                    elif inst.node == kinds["resume"]["timer_node"]:
                        await run.resume(inst, "timer", profiles.get(str(inst.profile_id), {}))
                await run.flush()
        return len(rows) == self.batch
