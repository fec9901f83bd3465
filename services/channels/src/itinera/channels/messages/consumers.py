"""What the message pipeline consumes (group ``itinera-channels``): message requests on
``itinera.messages.v1``, from journeys and campaigns.

A request whose profile snapshot is empty (journeys knew the recipient by id only) first
gets the profile from the profile service (:class:`ProfileSource`). When that service
cannot answer, nothing is decided for such a request: it waits in ``profile_waits``, in
the batch's transaction, and :class:`~itinera.channels.messages.waiting.ProfileWaits`
asks again later; the batch's other requests go on. Each batch is one transaction per
sandbox, of a few statements whatever its size (see :meth:`MessageHandler.apply`):
every request not seen before (by message id) is checked, rendered and recorded
(:mod:`itinera.channels.messages.pipeline`), an excluded one with its feedback in the
outbox; an email's HTML gets its tracking (links rewritten, the open pixel) and its
links are recorded with it (:mod:`itinera.channels.tracking`). A request whose id is
already recorded changes nothing, however often it is delivered. Sending happens after
the commit, in :class:`~itinera.channels.messages.delivery.DeliveryRunner`. A record
that is not a message request is dead-lettered with the reasons.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from prometheus_client import Counter

from itinera.channels.content import repository as content
from itinera.channels.messages import feedback, pipeline, repository
from itinera.channels.rules import repository as rules
from itinera.channels.suppression import repository as suppression
from itinera.channels.tracking import Tracker
from itinera.channels.tracking import repository as tracking
from itinera.common.auth import ServiceTokens
from itinera.common.errors import FieldError, Forbidden, ServiceUnavailable
from itinera.common.kafka.consumer import PermanentError, Record
from itinera.common.peers import PROFILES_READ, ProfileReader

log = logging.getLogger(__name__)

WAITS = Counter(
    "itinera_channels_profile_waits",
    "Message requests with an empty snapshot that the profile service could not answer for, by "
    "outcome: parked (left waiting by the consumer), still_waiting (asked again, no answer), decided, "
    "gave_up (waited too long: excluded)",
    ["outcome"],
)

CHANNELS = ("email", "sms", "push", "webhook")


def _uuid(value: Any, path: str, problems: list[FieldError]) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        problems.append(FieldError(path, "expected a UUID", "format"))
        return uuid.UUID(int=0)


def parsed(record: Record, default_sandbox: str) -> tuple[str, dict[str, Any]]:
    data = record.json()
    if not isinstance(data, dict):
        raise PermanentError([FieldError("", "expected an object", "type")])
    problems: list[FieldError] = []
    data["_id"] = _uuid(data.get("messageId"), "/messageId", problems)
    data["_profile"] = _uuid(data.get("profileId"), "/profileId", problems)
    if data.get("channel") not in CHANNELS:
        problems.append(FieldError("/channel", "expected email, sms, push or webhook", "enum"))
    if data.get("category") not in ("marketing", "transactional"):
        problems.append(FieldError("/category", "expected marketing or transactional", "enum"))
    if data.get("templateId") is not None and not isinstance(data["templateId"], str):
        problems.append(FieldError("/templateId", "expected a template id or null", "type"))
    if not isinstance(data.get("profile"), Mapping):
        problems.append(FieldError("/profile", "expected the profile's snapshot", "required"))
    if not isinstance(data.get("context", {}), Mapping):
        problems.append(FieldError("/context", "expected an object", "type"))
    if not isinstance(data.get("origin", {}), Mapping):
        problems.append(FieldError("/origin", "expected an object", "type"))
    if problems:
        raise PermanentError(problems)
    return str(data.get("sandbox") or record.sandbox or default_sandbox), data


def _requested_at(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ProfilesUnavailable(Exception):
    """The profile service gave no answer to go by: out of reach, a 5xx, or a refusal of
    this service's credential. Nothing is known of the profiles asked for."""


class ProfileSource:
    """Where a request without a profile snapshot gets its profile: the profile service,
    with a token of this service's own.

    After the profile service failed to answer, the consumer does not ask it again for
    ``pause_s``: the requests that need it wait at once, so that a profile service that
    hangs until the time-out does not hold up every batch meanwhile. The retries of those
    waiting (``probe``) ask it whatever the pause."""

    def __init__(self, reader: ProfileReader, tokens: ServiceTokens, pause_s: float = 0.0) -> None:
        self.reader = reader
        self.tokens = tokens
        self.pause_s = pause_s
        self._paused_until = 0.0
        self._why = ""

    async def complete(self, sandbox: str, requests: list[dict[str, Any]], *, probe: bool = False) -> None:
        """Give the requests whose snapshot is empty their profile as the profile service
        has it, marking each of them ``_read``. One it does not know (it answers 404)
        keeps the empty snapshot, and the pipeline excludes it (``no-address``). When the
        profile service cannot answer, raises :class:`ProfilesUnavailable` and changes
        no snapshot: an outage must not decide anything."""
        empty = [r for r in requests if not r["profile"]]
        if not empty:
            return
        for request in empty:
            request["_read"] = True
        if not probe and time.monotonic() < self._paused_until:
            raise ProfilesUnavailable(self._why)
        try:
            authorization = self.tokens.authorization(sandbox, PROFILES_READ)
            found = await self.reader.entities(authorization, [str(r["_profile"]) for r in empty])
        except (ServiceUnavailable, Forbidden) as error:
            self._why = str(error)
            self._paused_until = time.monotonic() + self.pause_s
            log.warning(
                "profiles not read from the profile service; their requests wait",
                extra={"sandbox": sandbox, "requests": len(empty), "error": self._why},
            )
            raise ProfilesUnavailable(self._why) from None
        self._paused_until = 0.0
        for request in empty:
            request["profile"] = found.get(str(request["_profile"]), request["profile"])


class MessageHandler:
    """Checks, renders and records a batch of message requests. One that waits for its
    profile (the profile service could not answer) is asked for again ``first_wait_s``
    later, then with a backoff (:class:`~itinera.channels.messages.waiting.ProfileWaits`)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        default_sandbox: str,
        default_zone: str,
        tracker: Tracker | None = None,
        profiles: ProfileSource | None = None,
        first_wait_s: float = 5.0,
    ) -> None:
        self.pool = pool
        self.default_sandbox = default_sandbox
        self.default_zone = default_zone
        self.tracker = tracker
        self.profiles = profiles
        self.first_wait_s = first_wait_s

    async def __call__(self, batch: list[Record]) -> None:
        by_sandbox: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in batch:
            sandbox, data = parsed(record, self.default_sandbox)
            by_sandbox[sandbox].append(data)
        for sandbox, requests in by_sandbox.items():
            waiting: list[dict[str, Any]] = []
            why = ""
            if self.profiles is not None:  # outside the transaction: no lock held meanwhile
                try:
                    await self.profiles.complete(sandbox, requests)
                except ProfilesUnavailable as outage:
                    waiting = [r for r in requests if r.get("_read")]
                    why = str(outage)
            ready = [r for r in requests if not r.get("_read")] if waiting else requests
            async with self.pool.acquire() as conn, conn.transaction():
                if ready:
                    await self.apply(conn, sandbox, ready)
                    read = [r["_id"] for r in ready if r.get("_read")]
                    if read:  # one parked before, delivered again and now decided
                        await repository.unpark(conn, sandbox, read)
                if waiting:
                    now = datetime.now(UTC)
                    await repository.park(
                        conn, sandbox, waiting, now, now + timedelta(seconds=self.first_wait_s), why
                    )
            WAITS.labels("parked").inc(len(waiting))

    async def apply(self, conn: asyncpg.Connection, sandbox: str, requests: list[dict[str, Any]]) -> None:
        """Decide and record requests of one sandbox (a batch's, or those that waited for
        their profile), in the caller's transaction, with a few statements whatever their
        number: the profiles' locks, the ids already taken, the templates, fragments and
        rules, the suppressed and not allowed addresses, then (after checking and rendering each request)
        the new messages, their links and the feedback."""
        now = datetime.now(UTC)
        unique: dict[uuid.UUID, dict[str, Any]] = {}
        for request in requests:
            unique.setdefault(request["_id"], request)
        # Locked before the ids are looked up: a copy of a request that another
        # transaction recorded meanwhile (same profile) is seen as taken, not counted.
        await repository.lock_profiles(conn, sandbox, [r["_profile"] for r in unique.values()])
        seen = await repository.known(conn, sandbox, list(unique))
        fresh = [r for message_id, r in unique.items() if message_id not in seen]
        if not fresh:
            return
        templates = await content.templates(
            conn, sandbox, sorted({r["templateId"] for r in fresh if r.get("templateId")})
        )
        wanted = sorted({f for t in templates.values() for f in t["fragments"] or ()})
        fragments = await content.fragments(conn, sandbox, wanted) if wanted else {}
        policies = pipeline.Policies(
            await rules.capping_rules(conn, sandbox), await rules.quiet_hours(conn, sandbox)
        )
        addresses = [(r["channel"], pipeline.address_of(r["channel"], r["profile"])) for r in fresh]
        batch = pipeline.Batch(
            await suppression.screen(conn, sandbox, [(c, a) for c, a in addresses if a is not None])
        )
        rows: list[dict[str, Any]] = []
        links: dict[uuid.UUID, list[str]] = {}
        for request in sorted(fresh, key=lambda r: str(r["_profile"])):
            template = templates.get(request.get("templateId") or "")
            own = (
                {f: fragments[f] for f in (template["fragments"] or ()) if f in fragments} if template else {}
            )
            decision = (
                pipeline.Decision(
                    "excluded", "profile-unavailable", "the profile service did not give the profile in time"
                )
                if request.get("_gave_up")
                else await pipeline.decide(
                    conn, sandbox, request, template, own, policies, now, self.default_zone, batch
                )
            )
            if decision.state == "rendered":
                batch.take(request["_profile"], request["channel"], request["category"])
            parts = decision.content
            asked = (template["tracking"] if template else None) or {}  # the template's tracking
            opens, clicks = asked.get("opens", True), asked.get("clicks", True)
            if (
                self.tracker is not None
                and request["channel"] == "email"
                and parts
                and parts.get("html")
                and (opens or clicks)
            ):
                parts["html"], links[request["_id"]] = self.tracker.instrument(
                    sandbox, str(request["_id"]), str(parts["html"]), opens=opens, clicks=clicks
                )
            rows.append(
                {
                    "sandbox": sandbox,
                    "message_id": request["_id"],
                    "profile_id": request["_profile"],
                    "channel": request["channel"],
                    "category": request["category"],
                    "template_id": request.get("templateId"),
                    "template_version": template["version"] if template else None,
                    "locale": decision.locale,
                    "state": decision.state,
                    "reason": decision.reason,
                    "detail": decision.detail,
                    "address": decision.address,
                    "content": decision.content,
                    "origin": request.get("origin") or {},
                    "requested_at": _requested_at(request.get("requestedAt")),
                    "created_at": now,
                    "next_attempt_at": decision.next_attempt_at,
                    "queued_until": decision.queued_until,
                }
            )
        inserted = await repository.insert(conn, rows)
        await tracking.record_links(
            conn, sandbox, {m: urls for m, urls in links.items() if m in inserted and urls}
        )
        excluded = [
            feedback.envelope(sandbox, row, "excluded", reason=row["reason"], address=row["address"], at=now)
            for row in rows
            if row["state"] == "excluded" and row["message_id"] in inserted
        ]
        await feedback.publish(conn, excluded)
