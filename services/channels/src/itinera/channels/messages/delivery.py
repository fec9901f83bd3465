"""Sending, outside any transaction: :class:`DeliveryRunner` claims due messages, sends
them and records each outcome.

1. Claim (one transaction), as many as there is room for (at most
   ``ITINERA_CHANNELS_DELIVERY_BATCH`` sends in flight per worker, each its own task, so a
   slow provider holds back only its own messages): due ``rendered`` messages, and
   ``sending`` ones whose lease ran out, become ``sending`` with a lease of
   ``ITINERA_CHANNELS_SEND_LEASE_S`` and one more attempt; ``FOR UPDATE SKIP LOCKED``,
   so any number of workers share the work.
2. Send, with no transaction open: the address is checked against the suppression list
   once more (it may have been suppressed while the message waited), the provider's
   rate is kept, and the provider called.
3. Record (a new transaction), only if the claim is still this worker's (its attempt
   number): ``sent`` with the feedback ``sent`` (an email's address has its soft bounces
   forgotten; an SMS's delivery reports that came first are applied); a soft failure
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
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from itinera.channels.config import ChannelsSettings
from itinera.channels.messages import feedback, repository
from itinera.channels.providers import Outgoing, Provider, SendFailed, TokenBucket
from itinera.channels.providers.email import EmailProvider
from itinera.channels.providers.http import PushProvider, SmsProvider, WebhookProvider
from itinera.channels.reports import service as reports
from itinera.channels.suppression import bounces
from itinera.channels.suppression import repository as suppression
from itinera.channels.suppression.bounces import ENTITY_TYPES
from itinera.common.periodic import Periodic

log = logging.getLogger(__name__)


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
        self.buckets = {
            "email": TokenBucket(settings.channels_rate_email),
            "sms": TokenBucket(settings.channels_rate_sms),
            "push": TokenBucket(settings.channels_rate_push),
            "webhook": TokenBucket(settings.channels_rate_webhook),
        }
        self._in_flight: set[asyncio.Task[None]] = set()

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
        if room <= 0:
            return False
        async with self.pool.acquire() as conn, conn.transaction():
            claimed = await repository.claim(
                conn, datetime.now(UTC), room, self.settings.channels_send_lease_s
            )
        for row in claimed:
            task = asyncio.create_task(self._guarded(row), name=f"channels:send:{row['message_id']}")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(claimed) == room

    async def _guarded(self, row: asyncpg.Record) -> None:
        try:
            await self.deliver(row)
        except Exception:
            # Left sending: its lease runs out and it is tried again.
            log.exception("delivery failed", extra={"message": str(row["message_id"])})

    async def deliver(self, row: asyncpg.Record) -> None:
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
        if channel in ENTITY_TYPES:
            async with self.pool.acquire() as conn:
                why = await suppression.suppressed(conn, sandbox, channel, message.address)
            if why is not None:
                await self.record(row, "excluded", "suppressed", f"{message.address} is suppressed ({why})")
                return
        if self.settings.channels_test_pause_before_send_s:
            await asyncio.sleep(self.settings.channels_test_pause_before_send_s)
        await self.buckets[channel].take()
        try:
            provider_id = await self.providers[channel].send(message)
        except SendFailed as failure:
            await self.failed(row, message, failure)
            return
        await self.record(row, "sent", provider_id=provider_id)

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
