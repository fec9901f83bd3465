"""Message requests that wait for their profile: :class:`ProfileWaits` asks the profile
service again for the profiles of the requests parked in ``profile_waits`` (see
:class:`~itinera.channels.messages.consumers.MessageHandler`), and decides those it
answers for.

A request waits when its snapshot is empty and the profile service could not answer
(out of reach, a 5xx, a refusal of the service's credential): an outage is no fact about
the recipient, so it neither excludes the message (``no-address``) nor sends it with
what it lacks. Each pass claims the due requests (``FOR UPDATE SKIP LOCKED``, their next
time set in the same statement: ``ITINERA_CHANNELS_PROFILE_RETRY_INITIAL_S``, doubling,
at most ``_PROFILE_RETRY_MAX_S``), asks the profile service for their profiles, one
sandbox at a time, and, when it answers, takes them off the wait and decides them in one
transaction, exactly as the consumer decides a batch: a profile it does not know is then
excluded, ``no-address``, as it would have been had it answered the first time. A request
whose message was recorded meanwhile (Kafka delivered it again once the profile service
was back) changes nothing. A request still waiting ``ITINERA_CHANNELS_PROFILE_WAIT_LIMIT_S``
(a day) after it came is not asked about again: it is excluded, reason
``profile-unavailable``, with its feedback, as a message the profile service could not be
asked about in time (a message sent a day late is often worse than none).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg

from itinera.channels.messages import repository
from itinera.channels.messages.consumers import WAITS, MessageHandler, ProfileSource, ProfilesUnavailable
from itinera.common.periodic import Periodic

log = logging.getLogger(__name__)

BATCH = 200
"""Waiting requests claimed in one pass."""


def request_of(row: Mapping[str, Any], *, gave_up: bool = False) -> dict[str, Any]:
    """A waiting request as the consumer had it, its ids parsed again; ``gave_up``: it
    waited too long, and is to be excluded (``profile-unavailable``)."""
    request = dict(row["request"])
    request["_id"] = row["message_id"]
    request["_profile"] = row["profile_id"]
    if gave_up:
        request["_gave_up"] = True
    return request


class ProfileWaits(Periodic):
    """Asks again, every ``interval_s``, for the profiles of the requests whose time has
    come, and decides those the profile service answers for."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        handler: MessageHandler,
        source: ProfileSource,
        *,
        initial_s: float,
        max_s: float,
        limit_s: float = 86_400.0,
        interval_s: float = 1.0,
    ) -> None:
        super().__init__("channels:profile-waits", interval_s)
        self.pool = pool
        self.handler = handler
        self.source = source
        self.initial_s = initial_s
        self.max_s = max_s
        self.limit_s = limit_s

    async def tick(self) -> bool:
        return await self.retry(datetime.now(UTC))

    async def retry(self, now: datetime) -> bool:
        """One pass over the requests due at ``now``; True when there may be more."""
        async with self.pool.acquire() as conn:
            claimed = await repository.claim_waits(conn, now, BATCH, self.initial_s, self.max_s)
        by_sandbox: dict[str, list[dict[str, Any]]] = defaultdict(list)
        expired: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in claimed:
            late = (now - row["parked_at"]).total_seconds() >= self.limit_s
            (expired if late else by_sandbox)[row["sandbox"]].append(request_of(row, gave_up=late))
        for sandbox, requests in expired.items():
            taken = await self._decide(sandbox, requests)
            WAITS.labels("gave_up").inc(taken)
            log.warning(
                "requests waited too long for their profile: excluded",
                extra={"sandbox": sandbox, "requests": taken, "limit_s": self.limit_s},
            )
        for sandbox, requests in by_sandbox.items():
            try:
                await self.source.complete(sandbox, requests, probe=True)
            except ProfilesUnavailable as outage:
                async with self.pool.acquire() as conn:
                    await repository.still_waiting(conn, sandbox, [r["_id"] for r in requests], str(outage))
                WAITS.labels("still_waiting").inc(len(requests))
                continue
            taken = await self._decide(sandbox, requests)
            WAITS.labels("decided").inc(taken)
            log.info(
                "requests that waited for their profile decided",
                extra={"sandbox": sandbox, "requests": taken},
            )
        return len(claimed) == BATCH

    async def _decide(self, sandbox: str, requests: list[dict[str, Any]]) -> int:
        """Take requests off the wait and decide them, in one transaction; how many were
        still waiting (another worker, or a redelivery, may have taken some)."""
        async with self.pool.acquire() as conn, conn.transaction():
            mine = await repository.unpark(conn, sandbox, [r["_id"] for r in requests])
            taken = [r for r in requests if r["_id"] in mine]
            if taken:
                await self.handler.apply(conn, sandbox, taken)
        return len(taken)
