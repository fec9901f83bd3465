"""The audiences' background work: evaluating previews, and folding the audiences' size
counters.

**Previews.** :class:`PreviewRunner` takes the RUNNING previews, oldest first. A worker
claims one with an advisory lock held by its session (any number of workers share the
queue; a crashed worker's session ends and its claim with it), then evaluates it in one
REPEATABLE READ transaction that also stores the results, so that they are all of one
snapshot and appear together. The preview's row is not locked while it is evaluated:
deleting it (or its expiry's purge) never waits for the evaluation, which then finds it
gone when it stores its results and keeps nothing. A failed evaluation is tried again
after the interval, and the preview FAILS with the reason after :data:`ATTEMPTS`.

**Sizes.** Each statement writing memberships adds a row of changes to its audiences'
counters (``migrations/0009_audience_sizes.sql``); :class:`SizeFolding` sums each
audience's rows into one from time to time, so that reading a size sums few rows.
"""

from __future__ import annotations

import logging
import uuid

import asyncpg

from itinera.common.periodic import Periodic
from itinera.segmentation.audiences import repository
from itinera.segmentation.audiences.service import evaluate_preview

log = logging.getLogger(__name__)

ATTEMPTS = 3
"""Failed evaluations of a preview after which it FAILS."""
LOOK_AHEAD = 10
"""RUNNING previews a worker considers at a time (those others hold are skipped)."""
FOLDED = 1_000
"""Audiences whose size counters one fold sums, at most."""


class PreviewRunner(Periodic):
    """Evaluates RUNNING previews, one per tick; the next comes at once while there are more."""

    def __init__(self, pool: asyncpg.Pool, interval_s: float, event_limit: int) -> None:
        super().__init__("segmentation:previews", interval_s)
        self.pool = pool
        self.event_limit = event_limit

    async def tick(self) -> bool:
        async with self.pool.acquire() as conn:
            for sandbox, preview_id in await repository.waiting_previews(conn, LOOK_AHEAD):
                if not await repository.try_claim(conn, sandbox, preview_id):
                    continue
                try:
                    return await self._evaluate(conn, sandbox, preview_id)
                finally:
                    try:
                        await repository.release(conn, sandbox, preview_id)
                    except BaseException:
                        # Pooled connections keep their session (no reset on release):
                        # end it, and the claim with it, rather than leak the lock.
                        conn.terminate()
                        raise
        return False

    async def _evaluate(self, conn: asyncpg.Connection, sandbox: str, preview_id: uuid.UUID) -> bool:
        """Evaluate a claimed preview; whether the worker may go on at once (False after a
        failure, so that a failing preview is not retried in a tight loop)."""

        async def report(total: int, read: int, matched: int) -> None:
            # On a connection of its own: the evaluation's transaction shows nothing yet.
            async with self.pool.acquire() as side:
                await repository.record_progress(side, sandbox, preview_id, total, read, matched)

        try:
            # The snapshot starts after the claim: a preview another worker finished
            # before letting it go is seen RESULT_READY, and left alone.
            try:
                async with conn.transaction(isolation="repeatable_read"):
                    preview = await repository.running_preview(conn, sandbox, preview_id)
                    if preview is not None and not await evaluate_preview(
                        conn, preview, self.event_limit, report
                    ):
                        log.info("preview expired while it was evaluated", extra={"preview": str(preview_id)})
            finally:
                await repository.forget_progress(conn, sandbox, preview_id)
            return True
        except asyncpg.SerializationError:
            log.info("preview deleted while it was evaluated", extra={"preview": str(preview_id)})
            return True
        except Exception as exc:
            log.exception("preview evaluation failed", extra={"preview": str(preview_id)})
            reason = f"{type(exc).__name__}: {exc}"[:2000]
            async with conn.transaction():
                if await repository.failed_attempt(conn, sandbox, preview_id, reason, ATTEMPTS):
                    log.error("preview failed", extra={"preview": str(preview_id), "reason": reason})
            return False


class SizeFolding(Periodic):
    """Sums each audience's size counter rows into one; at once again while there are more."""

    def __init__(self, pool: asyncpg.Pool, interval_s: float) -> None:
        super().__init__("segmentation:sizes", interval_s)
        self.pool = pool

    async def tick(self) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            return await repository.fold_sizes(conn, FOLDED) >= FOLDED
