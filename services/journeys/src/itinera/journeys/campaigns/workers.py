"""What campaigns run in the background.

- :class:`MembershipHandler` keeps who is in which audience, from
  ``itinera.audiences.v1`` (its own group, ``itinera-journeys-audiences``): ``realized``
  makes a member, ``exited`` ends it; one transaction per consumed batch and sandbox.
  Applying a change is idempotent (the membership is a state, and a change older than
  the one applied is ignored), so a redelivered batch changes nothing.
- :class:`CampaignScheduler` fires the due occurrences of scheduled campaigns.
- :class:`ExecutionRunner` sends audience executions, one chunk per transaction.

Both periodic workers take their work with ``FOR UPDATE SKIP LOCKED``: any number of
them share it, and what a crashed worker held is taken by the others from where its
last committed transaction left it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from datetime import UTC, datetime

import asyncpg

from itinera.common.errors import FieldError
from itinera.common.kafka.consumer import PermanentError, Record
from itinera.common.periodic import Periodic
from itinera.journeys.campaigns import executions, repository
from itinera.journeys.peers import Peers

Change = tuple[str, uuid.UUID, bool, datetime]


def _change(record: Record, default_sandbox: str) -> tuple[str, Change]:
    data = record.json()
    if not isinstance(data, dict):
        raise PermanentError([FieldError("", "expected an object", "type")])
    problems: list[FieldError] = []
    try:
        profile_id = uuid.UUID(str(data.get("profileId")))
    except ValueError:
        problems.append(FieldError("/profileId", "expected a profile id (UUID)", "format"))
    audience_id = data.get("audienceId")
    if not isinstance(audience_id, str) or not audience_id:
        problems.append(FieldError("/audienceId", "expected the audience id", "required"))
    if data.get("status") not in ("realized", "exited"):
        problems.append(FieldError("/status", "expected realized or exited", "enum"))
    try:
        at = datetime.fromisoformat(str(data.get("at")).replace("Z", "+00:00"))
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
    except ValueError:
        problems.append(FieldError("/at", "expected the time of the change (ISO-8601)", "format"))
    if problems:
        raise PermanentError(problems)
    sandbox = str(data.get("sandbox") or record.sandbox or default_sandbox)
    return sandbox, (str(audience_id), profile_id, data["status"] == "realized", at)


class MembershipHandler:
    """Applies a batch of audience entries and exits, one transaction per sandbox; of
    several changes of one membership in a batch, the last in order wins."""

    def __init__(self, pool: asyncpg.Pool, default_sandbox: str) -> None:
        self.pool = pool
        self.default_sandbox = default_sandbox

    async def __call__(self, batch: list[Record]) -> None:
        by_sandbox: dict[str, dict[tuple[str, uuid.UUID], Change]] = defaultdict(dict)
        for record in batch:
            sandbox, change = _change(record, self.default_sandbox)
            latest = by_sandbox[sandbox]
            key = (change[0], change[1])
            if key not in latest or change[3] >= latest[key][3]:
                latest[key] = change
        for sandbox, changes in by_sandbox.items():
            async with self.pool.acquire() as conn, conn.transaction():
                await repository.apply_memberships(conn, sandbox, list(changes.values()))


class CampaignScheduler(Periodic):
    """Turns due occurrences of scheduled campaigns into executions, :attr:`batch` at a
    time, in the transaction that moves each campaign to its next occurrence."""

    def __init__(self, pool: asyncpg.Pool, interval_s: float, batch: int) -> None:
        super().__init__("journeys:campaigns", interval_s)
        self.pool = pool
        self.batch = batch

    async def tick(self) -> bool:
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await repository.claim_due_campaigns(conn, now, self.batch)
            for row in rows:
                await executions.fire(conn, row, now)
        return len(rows) == self.batch


class ExecutionRunner(Periodic):
    """Sends the next chunk of the most overdue execution, one transaction per chunk.

    Pacing is kept by each execution's ``due_at``: when no chunk is due, the runner
    waits, with no transaction open, until the next one is (at most its interval)."""

    def __init__(self, pool: asyncpg.Pool, interval_s: float, batch: int, peers: Peers | None = None) -> None:
        super().__init__("journeys:executions", interval_s)
        self.pool = pool
        self.batch = batch
        self.peers = peers

    async def tick(self) -> bool:
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                row = await repository.claim_due_execution(conn, now)
                if row is not None:
                    await executions.send_chunk(conn, row, now, self.batch, self.peers)
            if row is not None:
                return True
            due = await repository.next_due(conn)
        if due is None:
            return False
        wait = (due - datetime.now(UTC)).total_seconds()
        if wait >= self.interval_s or self.stopping:
            return False
        # Due already, yet not claimed: another worker holds it; look again shortly.
        await asyncio.sleep(max(wait, self.interval_s / 10))
        return True
