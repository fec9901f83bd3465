"""Sending, outside any transaction: :class:`DeliveryRunner` claims due messages, sends
them and records each outcome.

1. Claim (one transaction), as many as there is room for (at most
   ``ITINERA_CHANNELS_DELIVERY_BATCH`` sends in flight per worker, each its own task, so a
   slow provider holds back only its own messages): due ``rendered`` messages, and
   ``sending`` ones whose lease ran out, become ``sending`` with a lease of
   ``ITINERA_CHANNELS_SEND_LEASE_S`` and one more attempt; ``FOR UPDATE SKIP LOCKED``,
   so any number of workers share the work. With the batch in flight, the next claim
   comes as soon as half of it has ended; when nothing was due, after
   ``ITINERA_CHANNELS_DELIVERY_INTERVAL_S``.
2. Send, with no transaction open: the addresses are checked against the suppression
   list once more, the claim's at once right after it (one may have been suppressed
   while its message waited), the provider's rate is kept, and the provider called.
3. Record (a new transaction), only if the claim is still this worker's (its attempt
   number): ``sent`` with the feedback ``sent`` (an email's address has its soft bounces
   forgotten; an SMS's delivery reports that came first are applied). Sends that end
   while the outcomes of others are being recorded are recorded together next, in one
   transaction (:class:`Coalescing`): nothing waits for a batch to fill. A soft failure
   goes back to ``rendered``, due after an exponential backoff, until the last attempt,
   which fails it; a permanent failure fails it, suppressing the address when the
   provider's answer calls for it, with the feedback ``bounced`` (email refusals) or
   ``failed``. A soft bounce (an email's recipient refused with a 4xx) also counts
   towards the address's suppression, and fails the message at once when it reaches
   the limit (see :mod:`itinera.channels.suppression.bounces`).

A worker that dies between 1 and 3 leaves its messages ``sending``; when the lease runs
out another worker sends them again. Whether the first send reached the provider
cannot be known (SMTP has no idempotency key), so the README's "Exactly once" states
the one window in which a recipient can get a second copy, with the same Message-ID.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import asyncpg
import httpx

from itinera.channels.config import ChannelsSettings
from itinera.channels.messages import feedback, repository
from itinera.channels.providers import Outgoing, Provider, SendFailed
from itinera.channels.providers.email import EmailProvider
from itinera.channels.providers.http import PushProvider, SmsProvider, WebhookProvider
from itinera.channels.reports import service as reports
from itinera.channels.suppression import bounces
from itinera.channels.suppression import repository as suppression
from itinera.channels.suppression.repository import ENTITY_TYPES
from itinera.common.db.rates import SharedRate
from itinera.common.periodic import Periodic

log = logging.getLogger(__name__)
T = TypeVar("T")


class DeliveryRunner(Periodic):
    def __init__(self, pool: asyncpg.Pool, settings: ChannelsSettings) -> None:
        super().__init__("channels:delivery", settings.channels_delivery_interval_s)
        self.pool = pool
        self.settings = settings
        self.client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, timeout=settings.channels_http_timeout_s
        )
        self.email = EmailProvider(settings)
        self.providers: dict[str, Provider] = {
            "email": self.email,
            "sms": SmsProvider(settings, self.client),
            "push": PushProvider(settings, self.client),
            "webhook": WebhookProvider(settings, self.client),
        }
        # Each provider's rate, kept for every worker process together.
        self.buckets = {
            "email": SharedRate(pool, "provider:email", settings.channels_rate_email),
            "sms": SharedRate(pool, "provider:sms", settings.channels_rate_sms),
            "push": SharedRate(pool, "provider:push", settings.channels_rate_push),
            "webhook": SharedRate(pool, "provider:webhook", settings.channels_rate_webhook),
        }
        self._in_flight: set[asyncio.Task[None]] = set()
        # A claim waits for half the batch's room (at least one send) when it is busy.
        self._refill = max(1, settings.channels_delivery_batch // 2)
        self._room = asyncio.Event()
        self._sent: Coalescing[tuple[asyncpg.Record, str | None]] = Coalescing(self.record_sent)

    async def stop(self) -> None:
        await super().stop()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self.email.connections.close()
        await self.client.aclose()

    def backoff(self, attempt: int) -> timedelta:
        seconds = self.settings.channels_retry_initial_s * 2 ** max(attempt - 1, 0)
        return timedelta(seconds=min(seconds, self.settings.channels_retry_max_s))

    async def tick(self) -> bool:
        room = self.settings.channels_delivery_batch - len(self._in_flight)
        if room < self._refill:
            # Busy: claim again as soon as enough sends have ended (rather than after the
            # interval, which would cap the rate at a batch per interval), and not for
            # every single one (a claim costs a few statements, whatever its size).
            self._room.clear()
            await self._room.wait()
            return True
        async with self.pool.acquire() as conn:
            # One statement: atomic on its own, no BEGIN and COMMIT around it.
            claimed = await repository.claim(
                conn, datetime.now(UTC), room, self.settings.channels_send_lease_s
            )
            # The suppression and allowed lists once more, for the whole claim at once:
            # an address suppressed while its message waited is not sent to, nor an
            # email once the allowed list is in force without it (AJO's way to stop
            # every email at once: put an empty allowed list in force).
            barred = await self.barred(conn, claimed)
        for row in claimed:
            why = barred.get((row["sandbox"], row["channel"], row["address"] or ""))
            task = asyncio.create_task(self._guarded(row, why), name=f"channels:send:{row['message_id']}")
            self._in_flight.add(task)
            task.add_done_callback(self._ended)
        return len(claimed) == room

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self.settings.channels_delivery_batch - len(self._in_flight) >= self._refill:
            self._room.set()

    @staticmethod
    async def barred(
        conn: asyncpg.Connection, claimed: Sequence[asyncpg.Record]
    ) -> dict[tuple[str, str, str], tuple[str, str]]:
        """The claimed messages' addresses not to send to, by (sandbox, channel,
        address): the reason to exclude with (``suppressed``, ``not-allowed``) and why;
        one statement per sandbox."""
        by_sandbox: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for row in claimed:
            if row["channel"] in ENTITY_TYPES:
                by_sandbox[row["sandbox"]].add((row["channel"], row["address"] or ""))
        found: dict[tuple[str, str, str], tuple[str, str]] = {}
        for sandbox, wanted in by_sandbox.items():
            lists = await suppression.screen(conn, sandbox, wanted)
            for channel, address in lists.not_allowed:
                found[(sandbox, channel, address)] = ("not-allowed", f"{address} is not on the allowed list")
            for (channel, address), why in lists.suppressed.items():
                found[(sandbox, channel, address)] = ("suppressed", f"{address} is suppressed ({why})")
        return found

    async def _guarded(self, row: asyncpg.Record, barred: tuple[str, str] | None) -> None:
        try:
            await self.deliver(row, barred)
        except Exception:
            # Left sending: its lease runs out and it is tried again.
            log.exception("delivery failed", extra={"message_id": str(row["message_id"])})

    async def deliver(self, row: asyncpg.Record, barred: tuple[str, str] | None) -> None:
        """Send the claimed message, unless its address is ``barred`` (the reason to
        exclude it with, and why), and record the outcome."""
        sandbox, channel = row["sandbox"], row["channel"]
        message = Outgoing(
            sandbox=sandbox,
            message_id=str(row["message_id"]),
            profile_id=str(row["profile_id"]),
            channel=channel,
            category=row["category"],
            address=row["address"] or "",
            content=row["content"] or {},
        )
        if barred is not None:
            await self.record(row, "excluded", *barred)
            return
        if self.settings.channels_test_pause_before_send_s:
            await asyncio.sleep(self.settings.channels_test_pause_before_send_s)
        await self.buckets[channel].take()
        try:
            provider_id = await self.providers[channel].send(message)
        except SendFailed as failure:
            await self.failed(row, message, failure)
            return
        if channel == "sms":
            await self.record(row, "sent", provider_id=provider_id)  # with its waiting reports
        else:
            await self._sent.add((row, provider_id))

    async def failed(self, row: asyncpg.Record, message: Outgoing, failure: SendFailed) -> None:
        attempt = int(row["attempts"])
        again = failure.retry and attempt < self.settings.channels_max_attempts
        if failure.bounce == "soft" and message.channel in ENTITY_TYPES:
            await self.soft_bounced(row, failure, again)
            return
        if again:
            async with self.pool.acquire() as conn:
                await repository.finish(
                    conn,
                    row["sandbox"],
                    row["message_id"],
                    attempt,
                    "rendered",
                    now=datetime.now(UTC),
                    detail=failure.reason,
                    next_attempt_at=datetime.now(UTC) + self.backoff(attempt),
                )
            return
        status = "bounced" if failure.bounce else "failed"
        await self.record(
            row,
            "failed",
            status,
            failure.reason,
            bounce=failure.bounce,
            suppress=failure.suppress and message.channel in ENTITY_TYPES,
        )

    async def soft_bounced(self, row: asyncpg.Record, failure: SendFailed, again: bool) -> None:
        """Count the soft bounce; the message is tried again unless that was its last
        attempt or the address is now suppressed, when it fails (``bounced``, soft)."""
        now = datetime.now(UTC)
        sandbox, message_id, attempt = row["sandbox"], row["message_id"], int(row["attempts"])
        async with self.pool.acquire() as conn, conn.transaction():
            if not await repository.hold(conn, sandbox, message_id, attempt):
                return
            event = bounces.event(str(message_id), now, failure.reason, "soft")
            suppressed = await bounces.soft(
                conn, self.settings, sandbox, row["channel"], row["address"] or "", event, now
            )
            if again and not suppressed:
                await repository.finish(
                    conn,
                    sandbox,
                    message_id,
                    attempt,
                    "rendered",
                    now=now,
                    detail=failure.reason,
                    next_attempt_at=now + self.backoff(attempt),
                )
                return
            await repository.finish(
                conn, sandbox, message_id, attempt, "failed", now=now, reason="bounced", detail=failure.reason
            )
            envelope = feedback.envelope(
                sandbox,
                _message(row),
                "bounced",
                reason=failure.reason,
                bounce="soft",
                address=row["address"],
                at=now,
            )
            await feedback.publish(conn, [envelope])

    async def record(
        self,
        row: asyncpg.Record,
        state: str,
        reason: str | None = None,
        detail: str | None = None,
        *,
        provider_id: str | None = None,
        bounce: str | None = None,
        suppress: bool = False,
    ) -> None:
        """The outcome of this claim, with its feedback, in one transaction."""
        now = datetime.now(UTC)
        sandbox, channel = row["sandbox"], row["channel"]
        message = _message(row)
        async with self.pool.acquire() as conn, conn.transaction():
            ours = await repository.finish(
                conn,
                sandbox,
                row["message_id"],
                int(row["attempts"]),
                state,
                now=now,
                reason=reason,
                detail=detail,
                provider_id=provider_id,
            )
            if not ours:
                return
            if suppress:
                event = bounces.event(str(row["message_id"]), now, detail, "hard")
                await bounces.hard(conn, self.settings, sandbox, channel, row["address"] or "", event, now)
            if state == "sent":
                envelope = feedback.envelope(sandbox, message, "sent", address=row["address"], at=now)
            elif state == "excluded":
                envelope = feedback.envelope(
                    sandbox, message, "excluded", reason=reason, address=row["address"], at=now
                )
            else:
                envelope = feedback.envelope(
                    sandbox,
                    message,
                    reason or "failed",
                    reason=detail,
                    bounce=bounce,
                    address=row["address"],
                    at=now,
                )
            await feedback.publish(conn, [envelope])
            if state == "sent" and channel == "email":
                # The SMTP server took it: the address's soft bounces start over.
                await bounces.delivered(conn, sandbox, channel, row["address"] or "")
            elif state == "sent" and channel == "sms" and provider_id:
                await reports.sent(conn, self.settings, message, provider_id, now)

    async def record_sent(self, sent: Sequence[tuple[asyncpg.Record, str | None]]) -> None:
        """Several claims sent (``(row, provider id)``, none an SMS), with their feedback,
        in one transaction of two statements: as :meth:`record` records one (an email's
        address has its soft bounces forgotten: the SMTP server took the message)."""
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            ours = await repository.finish_sent(
                conn,
                [
                    (
                        r["sandbox"],
                        r["message_id"],
                        int(r["attempts"]),
                        provider_id,
                        bounces.value_of(r["channel"], r["address"] or "")
                        if r["channel"] == "email"
                        else None,
                    )
                    for r, provider_id in sent
                ],
                now,
            )
            await feedback.publish(
                conn,
                [
                    feedback.envelope(r["sandbox"], _message(r), "sent", address=r["address"], at=now)
                    for r, _ in sent
                    if (r["sandbox"], r["message_id"]) in ours
                ],
            )


class Coalescing(Generic[T]):
    """Items handed in one by one, written in batches: :meth:`add` waits until its item
    is written (or raises what writing it raised). The first item is written at once;
    those that come while a batch is being written make the next batch, so nothing waits
    for a batch to fill up, and a busy loop writes many at a time."""

    def __init__(self, write: Callable[[list[T]], Awaitable[None]]) -> None:
        self.write = write
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def add(self, item: T) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain(), name="channels:coalescing")
        await done

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self.write([item for item, _ in batch])
                except Exception as exc:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._writer = None


def _message(row: asyncpg.Record) -> dict[str, Any]:
    """What feedback and delivery reports need of a claimed message."""
    return {
        "sandbox": row["sandbox"],
        "message_id": row["message_id"],
        "profile_id": row["profile_id"],
        "channel": row["channel"],
        "address": row["address"],
        "origin": row["origin"],
    }
