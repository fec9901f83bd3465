"""Streaming evaluation: in the transaction that applied a consumed batch to the
projection, re-evaluate the streaming audiences whose rules read what changed, for
each profile the batch changed; record the memberships and announce entries and exits
on ``itinera.audiences.v1`` through the outbox.

Rules are compiled once per audience version and cached. A rule that reads events
gets the profile's events within its look-back (or the most recent
``ITINERA_SEGMENTATION_EVALUATION_EVENTS`` when it has none); ``inSegment`` reads the
profile's memberships as they were before this evaluation. Profiles merged into
another, and deleted ones, exit every audience.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import asyncpg
import orjson

from itinera.common import pql
from itinera.common.db.outbox import enqueue
from itinera.common.kafka import topics
from itinera.common.kafka.envelope import Envelope
from itinera.common.periodic import Periodic
from itinera.common.pql.compiler import Events
from itinera.common.pql.functions import shift, truncate
from itinera.common.projection import Plan, occurred_at
from itinera.segmentation.membership import repository
from itinera.segmentation.membership.repository import Audience, Change
from itinera.segmentation.membership.rules import relevant, transition

log = logging.getLogger(__name__)

SOURCE = "/itinera/segmentation"
TYPE = "com.itinera.audience.membership.v1"
_IDS = uuid.UUID("5d0f3a8e-2c41-4b7e-9f16-8a3e7c2d1b90")
_RULES: dict[tuple[str, datetime], pql.Rule] = {}


def rule_of(audience: Audience) -> pql.Rule:
    key = (audience.id, audience.updated_at)
    found = _RULES.get(key)
    if found is None:
        if len(_RULES) > 10_000:
            _RULES.clear()
        found = _RULES[key] = pql.compile_rule(audience.expression)
    return found


def announcements(sandbox: str, changes: Iterable[Change], at: datetime, evaluation: str) -> list[Envelope]:
    found = []
    for change in changes:
        if change.announced is None:
            continue
        stamp = at.isoformat()
        name = f"{sandbox}|{change.audience_id}|{change.profile_id}|{change.announced}|{stamp}"
        found.append(
            Envelope(
                type=TYPE,
                source=SOURCE,
                sandbox=sandbox,
                key=change.profile_id,
                id=str(uuid.uuid5(_IDS, name)),
                time=at,
                data={
                    "sandbox": sandbox,
                    "profileId": change.profile_id,
                    "audienceId": change.audience_id,
                    "status": change.announced,
                    "previousStatus": change.previous,
                    "at": stamp,
                    "evaluation": evaluation,
                },
            )
        )
    return found


@lru_cache(maxsize=4096)
def timing_of(expression: str) -> pql.Timing:
    """When time alone can change the value of the rule ``expression``."""
    return pql.analyse(expression).timing


def _next_start(now: datetime, unit: str) -> datetime | None:
    """The start of the calendar period after the one holding ``now``, as the engine
    counts them (UTC days, weeks from Monday, months...)."""
    start = truncate(now, unit)
    return shift(start, unit, 1) if start is not None else None


def _back(now: datetime, lookback: timedelta | None) -> datetime | None:
    """``lookback`` before ``now``; the earliest moment there is when that lies before it
    (a look-back stored before :data:`pql.analysis.LONGEST_LOOKBACK` capped them)."""
    if lookback is None:
        return None
    try:
        return now - lookback
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def next_check(audience: Audience, events: Events, now: datetime) -> datetime | None:
    """When time alone can next change the rule's answer for a profile with ``events``
    (None: it cannot), the earliest of: the start of the next period of each calendar
    unit the rule reads (``today``: UTC midnight, ``this week``: Monday...; for a period
    an event's time is tested against, only while an event lies within the look-back or
    is dated later); the moments an event's time crosses a bound anchored on now (it
    leaves the window, a future-dated one reaches now); the next UTC midnight for a rule
    reading now in another way, which is looked at daily (see :class:`pql.Timing`)."""
    if not audience.time_dependent:
        return None
    timing = timing_of(audience.expression)
    units, while_recent = set(timing.calendar), timing.event_calendar
    if audience.lookback is None:  # any event may be tested: no event is too old
        units |= while_recent
        while_recent = frozenset()
    if timing.unforeseen or timing == pql.Timing():  # (nothing found: a rule too deep to walk)
        units.add("day")
    candidates = [start for unit in units if (start := _next_start(now, unit)) is not None]
    if timing.event_offsets or while_recent:
        since = _back(now, audience.lookback)
        recent = False
        for event in events() if callable(events) else events:
            at = occurred_at(event)
            if at is None:
                continue
            recent = recent or (since is not None and at >= since)
            for offset in timing.event_offsets:
                try:
                    moment = at + offset + timedelta(milliseconds=1)
                except OverflowError:
                    continue
                if moment > now:
                    candidates.append(moment)
        if recent:
            candidates += [start for unit in while_recent if (start := _next_start(now, unit)) is not None]
    return min(candidates, default=None)


@dataclass
class Outcome:
    changes: list[Change] = field(default_factory=list)
    schedule: list[tuple[str, str, datetime | None]] = field(default_factory=list)
    """(audience, profile, next check or None) of every time-dependent rule evaluated."""
    deferred: set[str] = field(default_factory=set)
    """Profiles evaluated without their events for which a rule read them: not in
    ``changes`` nor ``schedule``, to be evaluated again with them."""


class EventsNeeded(Exception):
    """A rule read the events of a profile evaluated without them."""


def _not_read() -> list[dict[str, Any]]:
    raise EventsNeeded


def evaluate(
    audiences: Sequence[Audience],
    profiles: Mapping[str, dict[str, Any]],
    touched: Mapping[str, set[str] | None],
    events: Mapping[str, Events] | None,
    memberships: Mapping[str, Mapping[str, str]],
    now: datetime,
    only: set[tuple[str, str]] | None = None,
) -> Outcome:
    """The membership changes of evaluating the relevant audiences for each profile
    (``only``: just these (audience, profile) pairs), and when to look again.
    ``events`` None: the events were not read; a profile for which a rule reads them
    is ``deferred`` instead."""
    outcome = Outcome()
    changes, schedule = outcome.changes, outcome.schedule
    rules = [(audience, rule_of(audience).qualifies) for audience in audiences]
    for profile_id, attributes in profiles.items():
        held = memberships.get(profile_id, {})
        own: Events = _not_read if events is None else events.get(profile_id, [])
        done, due = len(changes), len(schedule)
        try:
            for audience, rule in rules:
                if only is not None:
                    if (audience.id, profile_id) not in only:
                        continue
                elif touched and not relevant(audience.references, touched.get(profile_id)):
                    continue  # (nothing touched: every profile is evaluated afresh)
                qualifies = rule(attributes, now=now, events=own, segments=held)
                previous = held.get(audience.id)
                status, announced = transition(previous, qualifies)
                if status is not None and status != previous:
                    changes.append(Change(audience.id, profile_id, status, announced, previous))
                if audience.time_dependent:
                    schedule.append((audience.id, profile_id, next_check(audience, own, now)))
        except EventsNeeded:
            del changes[done:], schedule[due:]
            outcome.deferred.add(profile_id)
    return outcome


def _affected(audiences: Sequence[Audience], touched: Sequence[set[str] | None]) -> list[Audience]:
    """The audiences whose rules read something ``touched``, and those naming them."""
    ids = {a.id for a in audiences if any(relevant(a.references, t) for t in touched)}
    while True:
        more = {a.id for a in audiences if a.id not in ids and set(a.audiences) & ids}
        if not more:
            return [a for a in audiences if a.id in ids]
        ids |= more


async def evaluate_streaming(
    conn: asyncpg.Connection, sandbox: str, plan: Plan, event_limit: int, now: datetime | None = None
) -> list[Change]:
    """Evaluate the batch's changed profiles; returns the membership changes made."""
    now = now or datetime.now(UTC)
    gone = set(plan.merged) | (plan.deleted - set(plan.profiles))
    exited = await repository.exit_all(conn, sandbox, gone) if gone else []
    gone_changes = [Change(a, p, "exited", "exited", previous) for a, p, previous in exited]
    changes: list[Change] = []
    audiences = await repository.streaming_audiences(conn, sandbox)
    alive = {pid: attrs for pid, attrs in plan.profiles.items() if pid not in gone}
    wanted = _affected(audiences, [plan.touched.get(p) for p in alive])
    if wanted and alive:
        memberships = await repository.memberships_of(conn, sandbox, alive)
        outcome = await evaluate_reading_events(
            conn, sandbox, wanted, alive, plan.touched, memberships, now, event_limit
        )
        changes = outcome.changes
        await repository.schedule(conn, sandbox, outcome.schedule)
    await repository.save(conn, sandbox, changes, now)
    announced = announcements(sandbox, [*gone_changes, *changes], now, "streaming")
    await enqueue(conn, topics.AUDIENCES.name, announced)
    return [*gone_changes, *changes]


def window_start(now: datetime, lookbacks: Iterable[timedelta | None]) -> datetime | None:
    """Where the longest look-back starts (None: a rule reads all events)."""
    listed = list(lookbacks)
    if not listed or any(w is None for w in listed):
        return None
    return _back(now, max(w for w in listed if w is not None))


class StoredEvents:
    """A profile's events as read (the text of one JSON array), decoded the first time a
    rule reads them, once for every rule that does: a rule such as ``a and xEvent[...]``
    reads no event of a profile for which ``a`` is false."""

    __slots__ = ("_decoded", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._decoded: list[dict[str, Any]] | None = None

    def __call__(self) -> list[dict[str, Any]]:
        if self._decoded is None:
            self._decoded = orjson.loads(self._text)
        return self._decoded


def _event_window(audiences: Iterable[Audience], now: datetime) -> tuple[bool, datetime | None]:
    """(whether any rule reads events, where the longest look-back of those that do starts)."""
    readers = [a for a in audiences if any(r.startswith("xEvent") for r in a.references)]
    return bool(readers), window_start(now, (a.lookback for a in readers))


async def stored_events(
    conn: asyncpg.Connection,
    sandbox: str,
    audiences: Iterable[Audience],
    profiles: Iterable[str],
    now: datetime,
    limit: int,
) -> Mapping[str, StoredEvents]:
    """The profiles' events the audiences' rules read (see :func:`events_for`), each
    profile's decoded only when a rule reads them."""
    read, since = _event_window(audiences, now)
    if not read:
        return {}
    found = await repository.events_of(conn, sandbox, profiles, since, limit)
    return {profile_id: StoredEvents(text) for profile_id, text in found.items()}


async def events_for(
    conn: asyncpg.Connection,
    sandbox: str,
    audiences: Iterable[Audience],
    profiles: Iterable[str],
    now: datetime,
    limit: int,
) -> Mapping[str, list[dict[str, Any]]]:
    """The profiles' events the audiences' rules read: none when no rule reads events,
    else those within the longest look-back of the rules that do (at most ``limit``
    each, the most recent)."""
    read, since = _event_window(audiences, now)
    if not read:
        return {}
    found = await repository.events_of(conn, sandbox, profiles, since, limit)
    return {profile_id: orjson.loads(text) for profile_id, text in found.items()}


def in_order(audiences: Iterable[Audience]) -> list[list[Audience]]:
    """The audiences in rounds, each after the audiences it names with ``inSegment``
    (definitions allow no cycle; were there one, its audiences would share a round)."""
    waiting = {a.id: a for a in audiences}
    rounds: list[list[Audience]] = []
    while waiting:
        ready = [a for a in waiting.values() if not any(n != a.id and n in waiting for n in a.audiences)]
        rounds.append(ready or list(waiting.values()))
        for audience in rounds[-1]:
            del waiting[audience.id]
    return rounds


def evaluate_in_order(
    audiences: Sequence[Audience],
    profiles: Mapping[str, dict[str, Any]],
    touched: Mapping[str, set[str] | None],
    events: Mapping[str, Events] | None,
    memberships: dict[str, dict[str, str]],
    now: datetime,
    only: set[tuple[str, str]] | None = None,
) -> Outcome:
    """:func:`evaluate`, audiences named by others first: a profile entering or leaving
    one is seen by the rules that name it (``inSegment``) in the same pass, and counts as
    a change for them. ``memberships`` is updated as it goes, except for a deferred
    profile (``events`` None), whose memberships are left as they were."""
    total = Outcome()
    moved: dict[str, set[str]] = {}
    for round_ in in_order(audiences):
        more_touched: dict[str, set[str] | None] = dict(touched)
        for profile_id, left_or_joined in moved.items():
            named = [a for a in round_ if set(a.audiences) & left_or_joined]
            if named:
                more_touched[profile_id] = None
        outcome = evaluate(round_, profiles, more_touched, events, memberships, now, only)
        for change in outcome.changes:
            memberships.setdefault(change.profile_id, {})[change.audience_id] = change.status
            if change.announced is not None:
                moved.setdefault(change.profile_id, set()).add(change.audience_id)
        total.changes += outcome.changes
        total.schedule += outcome.schedule
        if outcome.deferred:
            total.deferred |= outcome.deferred
            profiles = {p: a for p, a in profiles.items() if p not in outcome.deferred}
    if total.deferred:
        # Deferred in a later round: undo what the earlier rounds did for the profile.
        for change in reversed([c for c in total.changes if c.profile_id in total.deferred]):
            held = memberships[change.profile_id]
            if change.previous is None:
                del held[change.audience_id]
            else:
                held[change.audience_id] = change.previous
        total.changes = [c for c in total.changes if c.profile_id not in total.deferred]
        total.schedule = [s for s in total.schedule if s[1] not in total.deferred]
    return total


async def evaluate_reading_events(
    conn: asyncpg.Connection,
    sandbox: str,
    audiences: Sequence[Audience],
    profiles: Mapping[str, dict[str, Any]],
    touched: Mapping[str, set[str] | None],
    memberships: dict[str, dict[str, str]],
    now: datetime,
    event_limit: int,
    only: set[tuple[str, str]] | None = None,
) -> Outcome:
    """:func:`evaluate_in_order`, reading only the events that the evaluation reads:
    every profile is first evaluated without them, then those for which a rule read
    them again with theirs (``a and xEvent[...]`` reads none when ``a`` is false). A
    rule's value can only depend on events it read, so the outcome is the same."""
    outcome = evaluate_in_order(audiences, profiles, touched, None, memberships, now, only)
    if outcome.deferred:
        later = {p: a for p, a in profiles.items() if p in outcome.deferred}
        events = await stored_events(conn, sandbox, audiences, later, now, event_limit)
        more = evaluate_in_order(audiences, later, touched, events, memberships, now, only)
        outcome = Outcome(outcome.changes + more.changes, outcome.schedule + more.schedule)
    return outcome


async def evaluate_due(conn: asyncpg.Connection, limit: int, event_limit: int) -> int:
    """Re-evaluate due (audience, profile) pairs, in the caller's transaction; how many."""
    now = datetime.now(UTC)
    due = await repository.take_due(conn, limit)
    by_sandbox: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for sandbox, audience_id, profile_id in due:
        by_sandbox[sandbox].add((audience_id, profile_id))
    for sandbox, pairs in by_sandbox.items():
        audiences = await repository.audiences_by_id(conn, sandbox, {a for a, _ in pairs})
        profiles = await repository.profiles_of(conn, sandbox, {p for _, p in pairs})
        memberships = await repository.memberships_of(conn, sandbox, profiles)
        ordered = list(audiences.values())
        outcome = await evaluate_reading_events(
            conn, sandbox, ordered, profiles, {}, memberships, now, event_limit, pairs
        )
        await repository.schedule(conn, sandbox, outcome.schedule)
        await repository.save(conn, sandbox, outcome.changes, now)
        await enqueue(conn, topics.AUDIENCES.name, announcements(sandbox, outcome.changes, now, "scheduled"))
    return len(due)


class ScheduledEvaluation(Periodic):
    """Re-evaluates profiles whose answer time alone can change, when it can. Any
    number of workers share the due rows (``FOR UPDATE SKIP LOCKED``); a crashed
    worker's rows come back when its transaction is rolled back."""

    def __init__(self, pool: asyncpg.Pool, interval_s: float, event_limit: int, batch: int = 500) -> None:
        super().__init__("segmentation:scheduled", interval_s)
        self.pool = pool
        self.event_limit = event_limit
        self.batch = batch

    async def tick(self) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            return await evaluate_due(conn, self.batch, self.event_limit) >= self.batch
