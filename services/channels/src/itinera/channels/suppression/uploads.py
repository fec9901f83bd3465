"""Uploads of suppression list entries, AJO's ``/config/suppression/uploads``: a CSV file
of entries read into the list at once, kept as a job that says what became of it.

The file is UTF-8 (a byte order mark is allowed), comma-separated, with a header naming
its columns in any case and order: ``TYPE`` (``EMAIL``, ``DOMAIN``, and, as additions,
``PHONE`` and ``PUSHTOKEN``), ``VALUE``, and optionally ``COMMENTS`` (or ``COMMENT``).
Each record is checked as an entry added one by one is (see :mod:`.entities`); a record
that is not valid is left out and listed in the job's ``failedRecords`` with its
``failureReason`` (the first :data:`FAILED_KEPT`), the others are added (one already
listed is refreshed, as when added one by one; the same value twice in the file: the
last one). A file that is not such a CSV at all is refused (400) and makes no job.

The job is done in the request: it is ``COMPLETE`` when the answer (201, its ``jobId``)
is sent, so polling it, as AJO's clients do, finds it finished at once. Deleting a job
forgets it, not the entries it added.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from itinera.channels.suppression import repository
from itinera.channels.suppression.entities import InvalidEntry, entity
from itinera.common.errors import FieldError, ValidationFailed

FAILED_KEPT = 10_000
"""Records refused listed in a job at most (all are counted)."""
CHUNK = 5_000
"""Entries added a statement."""
_KINDS = {"email": "addresses", "phone": "addresses", "pushtoken": "addresses", "domain": "domains"}


@dataclass
class Parsed:
    """What a file holds: the valid entries ``(entity_type, value, comment)`` (each value
    once, the last record of it), the number of records and the records refused."""

    entries: dict[tuple[str, str], tuple[str, str, str | None]] = field(default_factory=dict)
    records: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    failed_count: int = 0

    def fail(self, kind: str, value: str, comments: str | None, reason: str) -> None:
        self.failed_count += 1
        if len(self.failed) < FAILED_KEPT:
            self.failed.append({"type": kind, "value": value, "comments": comments, "failureReason": reason})


def _refused(message: str) -> ValidationFailed:
    return ValidationFailed(
        f"the file is not a CSV of entries: {message}", [FieldError("/body/file", message, "csv")]
    )


def parse(data: bytes, max_records: int) -> Parsed:
    """The entries of a CSV file (see the module); 400 when it is not such a file or has
    more than ``max_records`` records."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refused(f"it is not UTF-8 (byte {exc.start})") from None
    if "\x00" in text:
        raise _refused("it holds NUL characters")
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip().lower() for name in next(rows)]
    except StopIteration:
        raise _refused("it is empty") from None
    except csv.Error as exc:
        raise _refused(f"line 1: {exc}") from None
    columns = {name: i for i, name in enumerate(header)}
    if "type" not in columns or "value" not in columns:
        raise _refused("the header must name the columns TYPE and VALUE (and COMMENTS, if any)")
    at_type, at_value = columns["type"], columns["value"]
    at_comments = columns.get("comments", columns.get("comment"))
    found = Parsed()
    try:
        for row in rows:
            if not any(cell.strip() for cell in row):
                continue  # a blank line
            found.records += 1
            if found.records > max_records:
                raise _refused(f"it has more than {max_records} records")
            kind = row[at_type].strip() if at_type < len(row) else ""
            value = row[at_value].strip() if at_value < len(row) else ""
            comments = row[at_comments] if at_comments is not None and at_comments < len(row) else None
            table = _KINDS.get(kind.lower())
            if table is None:
                found.fail(kind, value, comments, f"unknown type {kind!r}: EMAIL, DOMAIN, PHONE or PUSHTOKEN")
                continue
            try:
                entity_type, kept = entity(table, kind, value)
            except InvalidEntry as invalid:
                found.fail(
                    kind, value, comments, f"invalid format for the entry: {value} ({invalid.message})"
                )
                continue
            found.entries[(table, kept)] = (entity_type, kept, comments or None)
    except csv.Error as exc:
        raise _refused(f"line {rows.line_num}: {exc}") from None
    return found


async def run(
    conn: asyncpg.Connection,
    sandbox: str,
    list_type: str,
    user: str | None,
    filename: str | None,
    parsed: Parsed,
    now: datetime,
) -> uuid.UUID:
    """Add the entries and record the job, in the caller's transaction; the job's id."""
    for kind in ("addresses", "domains"):
        entries = [
            {"value": value, "entity_type": entity_type, "reason": "manual", "user": user, "comment": comment}
            for (table, _), (entity_type, value, comment) in parsed.entries.items()
            if table == kind
        ]
        for start in range(0, len(entries), CHUNK):
            await repository.add(conn, kind, sandbox, list_type, entries[start : start + CHUNK])
    job_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO suppression_uploads
               (sandbox, job_id, list_type, uploaded_by, filename, status, response_code, record_count,
                handled_count, failed_count, failed_records, created_at, ended_at)
           VALUES ($1, $2, $3, $4, $5, 'COMPLETE', 200, $6, $7, $8, $9::jsonb, $10, clock_timestamp())""",
        sandbox,
        job_id,
        list_type,
        user,
        filename,
        parsed.records,
        parsed.records - parsed.failed_count,
        parsed.failed_count,
        parsed.failed,
        now,
    )
    return job_id


def job_out(row: asyncpg.Record, *, failed: bool) -> dict[str, Any]:
    """A job as AJO shows it (times in seconds since the epoch); ``failed``: with its
    ``failedRecords`` (a single job's answer, not a listing's)."""
    out: dict[str, Any] = {
        "jobId": str(row["job_id"]),
        "user": row["uploaded_by"],
        "filename": row["filename"],
        "createTime": int(row["created_at"].timestamp()),
        "endTime": int(row["ended_at"].timestamp()) if row["ended_at"] is not None else None,
        "status": row["status"],
        "responseCode": row["response_code"],
        "responseText": row["response_text"],
        "recordCount": row["record_count"],
        "handledCount": row["handled_count"],
        "failedCount": row["failed_count"],
        "listType": row["list_type"],
    }
    if failed:
        out["imsOrgId"] = None
        out["sandboxId"] = row["sandbox"]
        out["failedRecords"] = list(row["failed_records"])
    return out


async def one(conn: asyncpg.Connection, sandbox: str, job_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM suppression_uploads WHERE sandbox = $1 AND job_id = $2", sandbox, job_id
    )


async def page(
    conn: asyncpg.Connection, sandbox: str, limit: int, before: tuple[datetime, uuid.UUID] | None
) -> list[asyncpg.Record]:
    """The sandbox's jobs, newest first, after the page key ``before`` (the last one's
    creation time and id)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT sandbox, job_id, list_type, uploaded_by, filename, status, response_code, response_text,
                  record_count, handled_count, failed_count, created_at, ended_at
           FROM suppression_uploads
           WHERE sandbox = $1 AND ($2::timestamptz IS NULL OR (created_at, job_id) < ($2, $3))
           ORDER BY created_at DESC, job_id DESC LIMIT $4""",
        sandbox,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    return rows


async def delete(conn: asyncpg.Connection, sandbox: str, job_id: uuid.UUID) -> bool:
    gone: str | None = await conn.fetchval(
        "DELETE FROM suppression_uploads WHERE sandbox = $1 AND job_id = $2 RETURNING 'gone'", sandbox, job_id
    )
    return gone is not None
