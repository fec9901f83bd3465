"""AEP's schedules: a segment job created every day at a set time (UTC), over some
audiences or over every audience evaluated in batch (``"*"``, chosen when it fires, so
that audiences created since are included).

A schedule is created ``inactive`` unless it says otherwise and fires only while
``active``. :class:`ScheduleRunner` takes the due schedules (``FOR UPDATE SKIP LOCKED``)
and, for each, in one transaction: creates the job (``itinera.trigger: "scheduled"``),
records the occurrence and moves it to the next one. A schedule whose workers were all
down over several occurrences fires once when they return, not once per occurrence
missed. Audiences of a schedule that have since been deleted are skipped; when none is
left, the occurrence creates no job. A schedule with no occurrence left becomes inactive.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from asyncpg import Record as Row

from itinera.common.errors import FieldError, NotFound, ValidationFailed
from itinera.common.periodic import Periodic
from itinera.segmentation.definitions import repository as definitions
from itinera.segmentation.definitions.service import parse_id
from itinera.segmentation.jobs import service as jobs
from itinera.segmentation.schedules import cron, repository
from itinera.segmentation.schedules.schemas import ListQuery, PatchOperation, ScheduleIn

log = logging.getLogger(__name__)

SCHEDULES = "/data/core/ups/config/schedules"
TYPE = "batch_segmentation"
EVERY = "*"
DUE_AT_ONCE = 20
"""Due schedules one runner takes in one transaction."""


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def view(row: Row) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "type": row["type"],
        "properties": {"segments": list(row["segments"])},
        "schedule": row["schedule"],
        "state": row["state"],
        "createEpoch": _epoch(row["created_at"]),
        "updateEpoch": _epoch(row["updated_at"]),
        "itinera": {
            "nextRunTime": _iso(row["next_run_at"]) if row["state"] == "active" else None,
            "lastRunTime": _iso(row["last_run_at"]),
            "lastJobId": str(row["last_job_id"]) if row["last_job_id"] is not None else None,
        },
    }


def _next_run(expression: str, path: str, errors: list[FieldError], now: datetime) -> datetime | None:
    """The first occurrence of ``expression`` after ``now``; a problem at ``path`` when it
    cannot be read or never fires."""
    try:
        daily = cron.parse(expression)
    except cron.CronError as exc:
        errors.append(FieldError(path, str(exc), "cron"))
        return None
    found = daily.next_after(now)
    if found is None:
        errors.append(FieldError(path, f"{expression!r} never fires", "cron"))
    return found


async def _check_segments(db: asyncpg.Connection, sandbox: str, segments: Sequence[str]) -> list[FieldError]:
    if EVERY in segments:
        if len(segments) > 1:
            return [FieldError("/properties/segments", '"*" stands alone: every definition', "every")]
        return []
    parsed = [parse_id(text) for text in segments]
    existing = await definitions.existing(db, sandbox, [p for p in parsed if p is not None])
    return [
        FieldError(f"/properties/segments/{i}", f"no segment definition {text!r} in this sandbox", "exists")
        for i, (text, key) in enumerate(zip(segments, parsed, strict=True))
        if key not in existing
    ]


def _raise_if_any(errors: list[FieldError]) -> None:
    if errors:
        raise ValidationFailed(
            "the schedule is not valid: " + "; ".join(f"{e.path}: {e.message}" for e in errors), errors
        )


async def create(db: asyncpg.Connection, sandbox: str, body: ScheduleIn) -> dict[str, Any]:
    errors: list[FieldError] = []
    if body.type != TYPE:
        errors.append(
            FieldError("/type", f"only {TYPE!r} schedules are supported, not {body.type!r}", "enum")
        )
    errors += await _check_segments(db, sandbox, body.properties.segments)
    next_run_at = _next_run(body.schedule, "/schedule", errors, datetime.now(UTC))
    _raise_if_any(errors)
    assert next_run_at is not None
    row = await repository.insert(
        db,
        sandbox,
        uuid.uuid4(),
        name=body.name,
        segments=list(dict.fromkeys(body.properties.segments)),
        schedule=body.schedule,
        state=body.state,
        next_run_at=next_run_at,
    )
    return view(row)


async def _row(db: asyncpg.Connection, sandbox: str, schedule_id: str, *, for_update: bool = False) -> Row:
    key = parse_id(schedule_id)
    row = await repository.get(db, sandbox, key, for_update=for_update) if key is not None else None
    if row is None:
        raise NotFound(f"no schedule {schedule_id!r} in sandbox {sandbox!r}")
    return row


async def get(db: asyncpg.Connection, sandbox: str, schedule_id: str) -> dict[str, Any]:
    return view(await _row(db, sandbox, schedule_id))


async def listing(db: asyncpg.Connection, sandbox: str, query: ListQuery) -> dict[str, Any]:
    total = await repository.count(db, sandbox)
    rows = await repository.page(db, sandbox, query.start, query.limit)
    page: dict[str, Any] = {"totalCount": total, "pageSize": len(rows)}
    if query.start + len(rows) < total:
        page["next"] = str(query.start + query.limit)
    return {"_page": page, "children": [view(row) for row in rows]}


async def patch(
    db: asyncpg.Connection, sandbox: str, schedule_id: str, operations: Sequence[PatchOperation]
) -> None:
    """Apply ``add`` operations to ``/state`` and ``/schedule``, in order; every problem
    at ``/<i>/value``. The next occurrence is counted from now when the expression
    changes or the schedule is activated."""
    row = await _row(db, sandbox, schedule_id, for_update=True)
    schedule, state, next_run_at = row["schedule"], row["state"], row["next_run_at"]
    now = datetime.now(UTC)
    errors: list[FieldError] = []
    for i, operation in enumerate(operations):
        if operation.path == "/state":
            if operation.value not in ("active", "inactive"):
                errors.append(FieldError(f"/{i}/value", "'active' or 'inactive'", "enum"))
                continue
            if operation.value == "active" and state != "active":
                next_run_at = _next_run(schedule, f"/{i}/value", errors, now) or next_run_at
            state = operation.value
        else:
            schedule = operation.value
            next_run_at = _next_run(schedule, f"/{i}/value", errors, now) or next_run_at
    _raise_if_any(errors)
    await repository.change(db, sandbox, row["id"], schedule=schedule, state=state, next_run_at=next_run_at)


async def delete(db: asyncpg.Connection, sandbox: str, schedule_id: str) -> None:
    key = parse_id(schedule_id)
    if key is None or not await repository.delete(db, sandbox, key):
        raise NotFound(f"no schedule {schedule_id!r} in sandbox {sandbox!r}")


async def fire_due(conn: asyncpg.Connection, now: datetime, limit: int = DUE_AT_ONCE) -> int:
    """Fire the schedules due at ``now`` (up to ``limit``), in the caller's transaction;
    how many fired."""
    rows = await repository.claim_due(conn, now, limit)
    for row in rows:
        job_id = await jobs.scheduled(conn, row["sandbox"], row["segments"], row["id"])
        try:
            following = cron.parse(row["schedule"]).next_after(now)
        except cron.CronError:
            following = None
        await repository.fired(conn, row["sandbox"], row["id"], at=now, job_id=job_id, next_run_at=following)
        log.info(
            "schedule fired",
            extra={
                "schedule": str(row["id"]),
                "job": str(job_id) if job_id else None,
                "sandbox": row["sandbox"],
            },
        )
    return len(rows)


class ScheduleRunner(Periodic):
    """Fires due schedules; any number of runners share them (``SKIP LOCKED``)."""

    def __init__(self, pool: asyncpg.Pool, interval_s: float) -> None:
        super().__init__("segmentation:schedules", interval_s)
        self.pool = pool

    async def tick(self) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            return await fire_due(conn, datetime.now(UTC)) == DUE_AT_ONCE
