"""Segment jobs, AEP's batch evaluation: every profile of the sandbox's projection
evaluated against some audiences, memberships recorded and entries and exits announced
on ``itinera.audiences.v1`` (``evaluation: "batch"``), whatever the audiences'
``evaluationInfo`` says.

A job goes NEW -> PROCESSING -> SUCCEEDED, or FAILED (with the reason) or CANCELLED.
Workers (:class:`SegmentJobRunner`) take it one chunk of profiles (by profile id; see
:data:`CHUNK`) at a time, each chunk in one transaction that holds the job row
(``FOR NO KEY UPDATE SKIP LOCKED``) and does everything the chunk causes: the
memberships, the time-dependent re-evaluations, the announcements (outbox) and the
job's cursor, progress and counters. A crash rolls back only the chunk in flight, and
whichever worker next takes the job resumes from its cursor. A cancellation is a row of
its own (asking never waits for a chunk); the job ends CANCELLED before its next chunk.

Evaluation is the membership engine's (:func:`membership.service.evaluate`), which
never raises on a profile of the wrong shape. A job fails when one of its audiences is
deleted, or when the same chunk has failed :data:`ATTEMPTS` times in a row; it never
retries forever. An audience edited while a job runs is evaluated as it stands at each
chunk; a profile that enters the projection while a job runs is evaluated by it if its id
comes after the cursor, and by the next job otherwise. An audience of the job named by
another of the job (``inSegment``) is evaluated first, so that the other reads its new
memberships. A job also evaluates the streaming audiences that name one of its own,
directly or not (see :func:`_followers`): they follow its memberships as they follow
those that change as data streams in.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import asyncpg
from asyncpg import Record as Row

from itinera.common.db.outbox import enqueue
from itinera.common.errors import Conflict, FieldError, NotFound, ValidationFailed
from itinera.common.kafka import topics
from itinera.common.periodic import Periodic
from itinera.segmentation import bulk
from itinera.segmentation.definitions import repository as definitions
from itinera.segmentation.definitions.schemas import PROFILE_CLASS
from itinera.segmentation.definitions.service import parse_id
from itinera.segmentation.jobs import repository
from itinera.segmentation.jobs.schemas import PROPERTY_PREFIX, ListQuery
from itinera.segmentation.membership import repository as memberships
from itinera.segmentation.membership.repository import Audience, Change
from itinera.segmentation.membership.rules import MEMBER
from itinera.segmentation.membership.service import announcements, evaluate_reading_events

log = logging.getLogger(__name__)

JOBS = "/data/core/ups/segment/jobs"
CHUNK = 5_000
"""Profiles evaluated in one transaction by a job over one audience. A job over ``n``
audiences takes ``CHUNK // n`` at a time (at least :data:`MIN_CHUNK`): the transaction
holds its profiles against streaming changes (``FOR SHARE``) until it commits, so its
length follows the number of evaluations, not of profiles. Larger chunks spread each
chunk's fixed cost (claiming the job, its round trips, the commit) over more profiles."""
MIN_CHUNK = 100
MAX_SEGMENTS = 100
ATTEMPTS = 5
"""Failed attempts in a row at one chunk after which the job FAILS."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATUSES = ("realized", "existing", "exited")


# Views


def _millis(at: datetime | None) -> int | None:
    return None if at is None else (at - _EPOCH) // timedelta(milliseconds=1)


def _span(start: datetime | None, end: datetime | None) -> dict[str, int | None]:
    started, ended = _millis(start), _millis(end)
    total = ended - started if started is not None and ended is not None else None
    return {"startTimeInMs": started, "endTimeInMs": ended, "totalTimeInMs": total}


def view(row: Row, sandbox: str) -> dict[str, Any]:
    """A stored job as AEP's ``SegmentJob``, plus its progress (``itinera``)."""
    link = f"{JOBS}/{row['id']}"
    counters: dict[str, dict[str, int]] = row["counters"]
    updated = _millis(row["updated_at"]) or 0
    body: dict[str, Any] = {
        "id": str(row["id"]),
        "imsOrgId": sandbox,
        "sandbox": {"sandboxName": sandbox},
        "profileInstanceId": "ups",
        "status": row["shown_status"],
        "segments": [
            {
                "segmentId": segment["id"],
                "segment": {
                    "id": segment["id"],
                    "expression": {"type": "PQL", "format": "pql/text", "value": segment["expression"]},
                    "mergePolicyId": segment["mergePolicyId"],
                },
            }
            for segment in row["segments"]
        ],
        "metrics": {
            "totalTime": _span(row["created_at"], row["finished_at"]),
            "profileSegmentationTime": _span(row["started_at"], row["finished_at"]),
            "totalProfiles": row["profiles_done"],
            "segmentedProfileCounter": {a: c["realized"] + c["existing"] for a, c in counters.items()},
            "segmentedProfileByStatusCounter": counters,
        },
        "schema": {"name": PROFILE_CLASS},
        "creationTime": _millis(row["created_at"]),
        "updateTime": updated,
        "updateEpoch": updated // 1000,
        "_links": {
            "cancel": {"href": link, "method": "DELETE"},
            "checkStatus": {"href": link, "method": "GET"},
        },
        "itinera": {
            "progress": {"profilesDone": row["profiles_done"], "profilesTotal": row["profiles_total"]},
            "trigger": row["trigger"],
            "snapshots": [
                {"segmentId": segment["id"], "name": segment["name"]}
                for segment in row["segments"]
                if "name" in segment
            ],
        },
    }
    if row["schedule_id"] is not None:
        body["itinera"]["scheduleId"] = str(row["schedule_id"])
    if row["status"] == "FAILED":
        body["errors"] = [{"code": "failed", "msg": row["error"] or "the job failed"}]
    return body


# Requests


async def create(db: asyncpg.Connection, sandbox: str, segment_ids: Sequence[str]) -> dict[str, Any]:
    """A NEW job over the audiences named (each once, in the order given); every one must
    exist in the sandbox, and there are 1 to :data:`MAX_SEGMENTS` of them."""
    if not segment_ids or len(segment_ids) > MAX_SEGMENTS:
        raise ValidationFailed(
            f"a segment job evaluates 1 to {MAX_SEGMENTS} segment definitions, not {len(segment_ids)}",
            [FieldError("", f"1 to {MAX_SEGMENTS} items", "minItems" if not segment_ids else "maxItems")],
        )
    parsed = [parse_id(text) for text in segment_ids]
    rows = await definitions.get_many(db, sandbox, [p for p in parsed if p is not None])
    found = {row["id"]: row for row in rows}
    unknown = [
        FieldError(f"/{i}/segmentId", f"no segment definition {text!r} in this sandbox", "exists")
        for i, (text, key) in enumerate(zip(segment_ids, parsed, strict=True))
        if key not in found
    ]
    if unknown:
        raise ValidationFailed(
            f"the job names segment definitions that do not exist in sandbox {sandbox!r}: "
            + ", ".join(e.path for e in unknown),
            unknown,
        )
    ordered = [found[key] for key in dict.fromkeys(p for p in parsed if p is not None)]
    job_id = await _insert(db, sandbox, await _followers(db, sandbox, ordered), "requested")
    return await get(db, sandbox, str(job_id))


async def _insert(
    db: asyncpg.Connection,
    sandbox: str,
    rows: Sequence[Row],
    trigger: str,
    schedule_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """A NEW job over the definitions given (as they stand now); its id."""
    segments = [
        {
            "id": str(row["id"]),
            "name": row["name"],
            "expression": row["expression"],
            "mergePolicyId": row["merge_policy_id"],
        }
        for row in rows
    ]
    job_id = uuid.uuid4()
    counters = {s["id"]: dict.fromkeys(_STATUSES, 0) for s in segments}
    await repository.insert(db, sandbox, job_id, segments, counters, trigger, schedule_id)
    return job_id


async def reevaluate(db: asyncpg.Connection, sandbox: str, definition_id: str) -> uuid.UUID:
    """After a definition's rule is saved (created or changed): a job over it and every
    audience that names it, directly or not, so that memberships follow the rule as it
    now stands for every profile, not only for those that change next. The caller's
    transaction saves the definition and the job together. The job's id."""
    key = uuid.UUID(definition_id)
    ids = [key, *await definitions.dependents(db, sandbox, key)]
    found = {row["id"]: row for row in await definitions.get_many(db, sandbox, ids)}
    return await _insert(db, sandbox, [found[i] for i in ids if i in found], "saved")


async def scheduled(
    db: asyncpg.Connection, sandbox: str, segment_ids: Sequence[str], schedule_id: uuid.UUID
) -> uuid.UUID | None:
    """The job a schedule's occurrence creates: its definitions that still exist (``*``:
    every definition evaluated in batch); None when none is left to evaluate."""
    if "*" in segment_ids:
        keys = await definitions.batch_ids(db, sandbox)
    else:
        keys = [k for k in (parse_id(i) for i in segment_ids) if k is not None]
    found = {row["id"]: row for row in await definitions.get_many(db, sandbox, keys)}
    rows = [found[k] for k in dict.fromkeys(keys) if k in found]
    if not rows:
        return None
    return await _insert(db, sandbox, await _followers(db, sandbox, rows), "scheduled", schedule_id)


async def _followers(db: asyncpg.Connection, sandbox: str, rows: Sequence[Row]) -> list[Row]:
    """``rows``, then the streaming audiences (``continuous``) naming one of them,
    directly or not, that ``rows`` leave out. A batch job changes its audiences'
    memberships; an audience evaluated as data streams in and naming one of them would
    otherwise keep its members until each profile next changes. (A job that saving a
    rule starts takes every audience naming it already: :func:`reevaluate`.)"""
    held = {row["id"] for row in rows}
    named: dict[uuid.UUID, None] = {}
    for row in rows:
        named |= dict.fromkeys(
            d for d in await definitions.dependents(db, sandbox, row["id"]) if d not in held
        )
    if not named:
        return list(rows)
    found = {row["id"]: row for row in await definitions.get_many(db, sandbox, list(named))}
    return [*rows, *(found[k] for k in named if k in found and found[k]["continuous_enabled"])]


async def get(db: asyncpg.Connection, sandbox: str, job_id: str) -> dict[str, Any]:
    key = parse_id(job_id)
    row = await repository.get(db, sandbox, key) if key is not None else None
    if row is None:
        raise NotFound(f"no segment job {job_id!r} in sandbox {sandbox!r}")
    return view(row, sandbox)


async def bulk_get(db: asyncpg.Connection, sandbox: str, ids: list[str], request_id: str) -> dict[str, Any]:
    """Each id asked for, keyed as asked: its job, or a 404 entry (see ``bulk``)."""
    return await bulk.bulk_get(
        ids,
        lambda keys: repository.get_many(db, sandbox, keys),
        lambda row: view(row, sandbox),
        what="segment job",
        sandbox=sandbox,
        request_id=request_id,
    )


async def listing(db: asyncpg.Connection, sandbox: str, query: ListQuery) -> dict[str, Any]:
    segment_id = query.property.removeprefix(PROPERTY_PREFIX) if query.property is not None else None
    field, _, direction = query.sort.partition(":")
    total = await repository.count(db, sandbox, query.status, segment_id, query.snapshot)
    rows = await repository.page(
        db,
        sandbox,
        status=query.status,
        segment_id=segment_id,
        snapshot=query.snapshot,
        column="created_at" if field == "creationTime" else "updated_at",
        descending=direction == "desc",
        offset=query.start,
        limit=query.limit,
    )
    links: dict[str, Any] = {}
    if query.start + len(rows) < total:
        params = query.model_dump(by_alias=True, exclude_none=True) | {"start": query.start + query.limit}
        links["next"] = {"href": f"{JOBS}?{urlencode(params)}", "method": "GET"}
    return {
        "_page": {"totalCount": total, "pageSize": len(rows)},
        "children": [view(row, sandbox) for row in rows],
        "_links": links,
    }


async def cancel(db: asyncpg.Connection, sandbox: str, job_id: str) -> None:
    """Ask a running job to stop. One that no worker holds right now is CANCELLED at
    once; otherwise the worker ends it when the chunk in progress is done. Cancelling a
    cancelled job again changes nothing; a finished one cannot be cancelled (409)."""
    key = parse_id(job_id)
    row = await repository.get(db, sandbox, key) if key is not None else None
    if key is None or row is None:
        raise NotFound(f"no segment job {job_id!r} in sandbox {sandbox!r}")
    if row["status"] in ("SUCCEEDED", "FAILED"):
        raise Conflict(
            f"segment job {job_id} has already finished ({row['status']})", extra={"status": row["status"]}
        )
    if row["status"] == "CANCELLED":
        return
    await repository.request_cancel(db, sandbox, key)
    if await repository.take_if_idle(db, sandbox, key):
        await repository.finish(db, sandbox, key, "CANCELLED")


# Evaluation


def _count(
    counters: dict[str, dict[str, int]],
    profiles: Iterable[str],
    held: Mapping[str, Mapping[str, str]],
    changes: Iterable[Change],
) -> dict[str, dict[str, int]]:
    """The job's counters after a chunk: every profile now a member, as realized or
    existing, and the exits of this chunk."""
    counted = {a: dict(c) for a, c in counters.items()}
    for profile_id in profiles:
        for audience_id, status in held.get(profile_id, {}).items():
            if status in MEMBER and audience_id in counted:
                counted[audience_id][status] += 1
    for change in changes:
        if change.status == "exited":
            counted[change.audience_id]["exited"] += 1
    return counted


async def _evaluate_chunk(
    conn: asyncpg.Connection,
    sandbox: str,
    audiences: Sequence[Audience],
    profiles: dict[str, dict[str, Any]],
    event_limit: int,
    now: datetime,
) -> tuple[dict[str, dict[str, str]], list[Change]]:
    """Evaluate every audience for every profile of the chunk (not empty, in id order),
    and record what changed; (the memberships after, the changes). Events are read only
    for the profiles whose evaluation reads them."""
    first, last = next(iter(profiles)), next(reversed(profiles))
    held = await memberships.memberships_between(conn, sandbox, first, last)
    outcome = await evaluate_reading_events(conn, sandbox, audiences, profiles, {}, held, now, event_limit)
    changes = outcome.changes
    await memberships.schedule(conn, sandbox, outcome.schedule)
    await memberships.save(conn, sandbox, changes, now)
    await enqueue(conn, topics.AUDIENCES.name, announcements(sandbox, changes, now, "batch"))
    return held, changes


async def step(conn: asyncpg.Connection, job: Row, chunk: int, event_limit: int) -> None:
    """Carry a claimed job one chunk further, in the caller's transaction: start it,
    evaluate its next chunk (``chunk`` profiles for one audience, see :data:`CHUNK`), or
    end it (SUCCEEDED, CANCELLED, or FAILED when one of its audiences is gone)."""
    sandbox, job_id = job["sandbox"], job["id"]
    if job["cancelling"]:
        await repository.finish(conn, sandbox, job_id, "CANCELLED")
        return
    if job["status"] == "NEW":
        await repository.start(conn, sandbox, job_id)
    size = max(chunk // max(len(job["segments"]), 1), min(chunk, MIN_CHUNK))
    profiles = await repository.profiles_after(conn, sandbox, job["last_profile_id"], size)
    ids = [s["id"] for s in job["segments"]]
    audiences = await memberships.audiences_by_id(conn, sandbox, ids)
    gone = [i for i in ids if i not in audiences]
    if gone:
        reason = f"segment definitions deleted while the job ran: {', '.join(gone)}"
        await repository.finish(conn, sandbox, job_id, "FAILED", reason)
        return
    if profiles:
        now = datetime.now(UTC)
        ordered = [audiences[i] for i in ids]
        held, changes = await _evaluate_chunk(conn, sandbox, ordered, profiles, event_limit, now)
        counters = _count(job["counters"], profiles, held, changes)
        last = next(reversed(profiles))  # they come in id order
        await repository.advance(conn, sandbox, job_id, last, len(profiles), counters)
    if len(profiles) < size:
        await repository.finish(conn, sandbox, job_id, "SUCCEEDED")


class SegmentJobRunner(Periodic):
    """Runs segment jobs, oldest first, one chunk per transaction. Any number of
    runners share the jobs (``SKIP LOCKED``); between two chunks a job may pass from one
    to another. After a failed chunk the runner waits ``interval_s`` before trying again."""

    def __init__(self, pool: asyncpg.Pool, interval_s: float, event_limit: int, chunk: int = CHUNK) -> None:
        super().__init__("segmentation:jobs", interval_s)
        self.pool = pool
        self.event_limit = event_limit
        self.chunk = chunk

    async def tick(self) -> bool:
        """Take a job one chunk further; whether a chunk committed (more may be waiting).
        A failed chunk counts against its job (see :data:`ATTEMPTS`)."""
        taken: tuple[str, uuid.UUID] | None = None
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                job = await repository.claim(conn)
                if job is None:
                    return False
                taken = (job["sandbox"], job["id"])
                await step(conn, job, self.chunk, self.event_limit)
            return True
        except Exception as exc:
            if taken is None:
                raise
            sandbox, job_id = taken
            log.exception("segment job chunk failed", extra={"job": str(job_id)})
            reason = f"{type(exc).__name__}: {exc}"[:2000]
            async with self.pool.acquire() as conn, conn.transaction():
                if await repository.failed_attempt(conn, sandbox, job_id, reason, ATTEMPTS):
                    log.error("segment job failed", extra={"job": str(job_id), "reason": reason})
            return False
