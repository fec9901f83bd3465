"""Journeys entered by reading an audience (``readAudience``): every member of the
audience enters, once or on the entry's schedule, at its ``rate``.

:class:`AudienceReader` does three things each tick, each in its own transaction and
with ``FOR UPDATE SKIP LOCKED``, so any number of workers share them:

1. gives every live version with such an entry its schedule (its first occurrence
   counted from when a worker first sees it live: a one-shot read without a time runs
   at once);
2. turns due occurrences into reads and moves each schedule on (``schedules``); a
   version no longer live gets no more occurrences;
3. reads one chunk of a running read: at most ``rate`` members (and at most the
   batch setting), after its cursor, in profile id order, from the audience members the
   campaigns' consumer keeps (``audience_members``); each enters as an event would make
   it (start and end dates, test profiles, one live instance, re-entrance), and the
   chunk's entries, the cursor and the counts commit together. The next chunk is due
   when the rate allows. A read of a version closed or stopped meanwhile is cancelled;
   a read of an audience the segmentation service was last found not to have (see
   :mod:`itinera.journeys.audiences.checks`) fails, with the reason, and the schedule
   goes on (a later occurrence reads the audience if it is found again).

A member enters with the profile journeys last saw (``profiles``); the trigger of the
entry is the read's occurrence and the profile, so a chunk replayed after a crash enters
no one twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from itinera.common.periodic import Periodic
from itinera.journeys.audiences import repository as audience_answers
from itinera.journeys.audiences.checks import run_failure
from itinera.journeys.campaigns import repository as members
from itinera.journeys.definitions.schemas import ReadAudienceEntry
from itinera.journeys.runtime import repository
from itinera.journeys.runtime.service import Run, compiled
from itinera.journeys.schedules import first_run, next_run


def _entry(row: asyncpg.Record) -> ReadAudienceEntry:
    entry = compiled(row).entry
    assert isinstance(entry, ReadAudienceEntry)
    return entry


class AudienceReader(Periodic):
    def __init__(self, pool: asyncpg.Pool, interval_s: float, batch: int) -> None:
        super().__init__("journeys:audience-reads", interval_s)
        self.pool = pool
        self.batch = batch

    async def tick(self) -> bool:
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            for row in await repository.unscheduled_reads(conn):
                entry, doc = _entry(row), compiled(row).doc
                first = first_run(entry.schedule, now, doc.endAt)
                await repository.add_read_schedule(
                    conn, row["sandbox"], row["journey_id"], row["version"], now, first
                )
        async with self.pool.acquire() as conn, conn.transaction():
            for row in await repository.claim_due_reads(conn, now, 100):
                following = None
                if row["status"] == "live":
                    entry, doc = _entry(row), compiled(row).doc
                    await repository.add_read(
                        conn,
                        row["sandbox"],
                        row["journey_id"],
                        row["version"],
                        row["next_run_at"],
                        entry.audienceId,
                        now,
                    )
                    following = next_run(entry.schedule, row["anchor"], now, doc.endAt)
                await repository.set_next_read(
                    conn, row["sandbox"], row["journey_id"], row["version"], following
                )
        async with self.pool.acquire() as conn, conn.transaction():
            read = await repository.claim_read(conn, now)
            if read is None:
                return False
            await self._chunk(conn, read, now)
        return True

    async def _chunk(self, conn: asyncpg.Connection, read: asyncpg.Record, now: datetime) -> None:
        if read["version_status"] != "live":
            await repository.advance_read(
                conn, read, cursor=None, read=0, entered=0, due_at=None, status="cancelled"
            )
            return
        gone = await audience_answers.missing(conn, read["sandbox"], read["audience_id"])
        if gone is not None:
            await repository.advance_read(
                conn,
                read,
                cursor=None,
                read=0,
                entered=0,
                due_at=None,
                status="failed",
                reason=run_failure(gone),
            )
            return
        version = compiled(read)
        entry = _entry(read)
        size = max(1, min(self.batch, entry.rate))
        found = await members.members_after(conn, read["sandbox"], read["audience_id"], read["cursor"], size)
        profiles = await repository.profiles_of(conn, read["sandbox"], found) if found else {}
        run = Run(conn, read["sandbox"], now)
        entered = 0
        occurrence = read["occurrence"].isoformat()
        for member in found:
            trigger = f"read:{read['version']}:{occurrence}:{member}"
            if await run.enter(version, member, profiles.get(str(member), {}), None, trigger) is not None:
                entered += 1
        await run.flush()
        done = len(found) < size
        due = None
        if not done:
            span = timedelta(seconds=len(found) / entry.rate)
            due = max(read["due_at"], now - span) + span
        await repository.advance_read(
            conn,
            read,
            cursor=found[-1] if found else None,
            read=len(found),
            entered=entered,
            due_at=due,
            status="done" if done else "running",
        )
