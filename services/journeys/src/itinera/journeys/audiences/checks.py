"""Whether the audiences that journeys and campaigns name still exist.

The segmentation service owns audiences, and one may be deleted after a journey or a
campaign naming it went live. :func:`check` asks it, one bulk-get per sandbox (of at
most 100 ids; more take more calls), about every audience named by draft and live
journey versions and live campaigns, and records each answer (``audience_checks``):
found, or missing since when. Publish attempts record what they were answered too.

What is recorded is used, never the segmentation service itself, where asking it would
make a read or a run depend on it:

- a live journey version, a journey and a live campaign show a ``warnings`` entry
  (``undefined-audience``) for each audience they name that was last found missing;
  they keep running, as AJO's do;
- a draft's ``problems`` say which of its audiences were missing when last asked, and
  its ``audienceChecks`` what is known of each (never asked: ``found`` is null);
- a run of an audience found missing (a campaign's execution, a journey's read of its
  audience) ends failed, with the reason, at its next chunk;
- ``itinera_journeys_with_missing_audiences{sandbox, kind}`` counts the live journeys
  and campaigns naming an audience last found missing; a WARNING names them when the
  audience is first found missing.

An audience found again clears all of it. A sandbox the segmentation service does not
answer for (unreachable, a 5xx, a refused credential) records nothing: what was known
stays, and the next pass asks again. :class:`AudienceChecker` runs a pass every
``ITINERA_JOURNEYS_AUDIENCE_CHECK_INTERVAL_S`` between all the workers, the first one
to find it due taking it; with ``ITINERA_JOURNEYS_CHECK_AUDIENCES`` off nothing is
asked and workers forget what earlier checks found when they start.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from asyncpg import Record as Row
from prometheus_client import Gauge

from itinera.common.errors import ItineraError, ServiceUnavailable
from itinera.common.periodic import Periodic
from itinera.journeys.audiences import repository
from itinera.journeys.peers import Peers

log = logging.getLogger(__name__)

WITH_MISSING_AUDIENCES = Gauge(
    "itinera_journeys_with_missing_audiences",
    "Live journeys (kind=journey) and live campaigns (kind=campaign) naming an audience "
    "the segmentation service did not have when last asked. Every worker process reports "
    "the count it reads from the database: aggregate with max, not sum",
    ["sandbox", "kind"],
)
_KINDS = ("journey", "campaign")
_reported: set[str] = set()
CODE = "undefined-audience"


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


# What is shown


def audience_paths(definition: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Where a journey document (as stored) names audiences: (JSON Pointer, audience id)."""
    found: list[tuple[str, str]] = []
    for number, node in enumerate(definition.get("nodes") or ()):
        if node.get("type") in ("audience", "readAudience") and isinstance(node.get("audienceId"), str):
            found.append((f"/nodes/{number}/audienceId", node["audienceId"]))
    for number, criterion in enumerate(definition.get("exitCriteria") or ()):
        if criterion.get("type") == "audienceExit" and isinstance(criterion.get("audienceId"), str):
            found.append((f"/exitCriteria/{number}/audienceId", criterion["audienceId"]))
    return found


def missing_message(answer: Row) -> str:
    return (
        f"the segmentation service has had no audience {answer['audience_id']!r} in the sandbox "
        f"since {iso(answer['missing_since'])} (last asked {iso(answer['checked_at'])})"
    )


def answer_view(audience_id: str, answer: Row | None) -> dict[str, Any]:
    """What is known of an audience: ``found`` null when it was never asked."""
    return {
        "audienceId": audience_id,
        "found": None if answer is None else answer["found"],
        "checkedAt": None if answer is None else iso(answer["checked_at"]),
        "missingSince": None if answer is None else iso(answer["missing_since"]),
    }


def warning(path: str, answer: Row) -> dict[str, Any]:
    """An ``undefined-audience`` warning at ``path`` from the answer that the audience is missing."""
    return {
        "path": path,
        "code": CODE,
        "message": missing_message(answer),
        "audienceId": answer["audience_id"],
        "noticedAt": iso(answer["missing_since"]),
        "checkedAt": iso(answer["checked_at"]),
    }


async def journey_warnings(
    conn: asyncpg.Connection, sandbox: str, definition: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The warnings of a journey version: each place it names an audience last found missing."""
    paths = audience_paths(definition)
    answers = await repository.answers(conn, sandbox, sorted({a for _, a in paths}))
    return [warning(path, answers[a]) for path, a in paths if a in answers and not answers[a]["found"]]


def run_failure(answer: Row) -> str:
    """Why a run of a missing audience ends."""
    return f"audience gone: {missing_message(answer)}"


# Checking


@dataclass
class Findings:
    """What a pass found."""

    missing: dict[str, set[str]] = field(default_factory=dict)
    """By sandbox answered: the audiences named that the segmentation service does not have."""
    unanswered: dict[str, str] = field(default_factory=dict)
    """By sandbox: why the segmentation service could not be asked (nothing recorded)."""


async def check(pool: asyncpg.Pool, peers: Peers, sandboxes: Sequence[str] | None = None) -> Findings | None:
    """One pass (``sandboxes``: only those); None when audiences are not checked
    (``ITINERA_JOURNEYS_CHECK_AUDIENCES`` off). No transaction is open while the
    segmentation service is asked."""
    if not peers.check_audiences:
        return None
    started = datetime.now(UTC)
    async with pool.acquire() as conn:
        named = await repository.named(conn, sandboxes)
    findings = Findings()
    sandboxes = sorted(named)
    for number, sandbox in enumerate(sandboxes):
        ids = sorted(named[sandbox])
        try:
            existing = await peers.existing_audiences(sandbox, ids)
        except ServiceUnavailable as error:
            # Unreachable for one sandbox is unreachable for the others: the pass ends.
            left = sandboxes[number:]
            log.warning(
                "audiences not checked: %s; asked again at the next check",
                error,
                extra={"sandboxes": left},
            )
            findings.unanswered |= dict.fromkeys(left, str(error))
            break
        except ItineraError as error:
            log.warning(
                "audiences not checked: %s; asked again at the next check",
                error,
                extra={"sandbox": sandbox},
            )
            findings.unanswered[sandbox] = str(error)
            continue
        assert existing is not None
        answered = datetime.now(UTC)
        async with pool.acquire() as conn, conn.transaction():
            changes = await repository.record(conn, sandbox, {i: i in existing for i in ids}, answered)
            await repository.prune(conn, sandbox, ids, started)
            named_by = await repository.users(conn, sandbox, changes.missing) if changes.missing else []
        findings.missing[sandbox] = {i for i in ids if i not in existing}
        _log(sandbox, changes, named_by)
    await refresh_metric(pool)
    return findings


def _log(sandbox: str, changes: repository.Changes, named_by: list[Row]) -> None:
    for audience in changes.missing:
        users = [u for u in named_by if u["audience_id"] == audience]
        named = ", ".join(
            f"journey {u['name']!r} ({u['id']} version {u['version']})"
            if u["kind"] == "journey"
            else f"campaign {u['name']!r} ({u['id']})"
            for u in users
        )
        log.log(
            logging.WARNING if users else logging.INFO,
            "audience %s is missing from the segmentation service; named by %s",
            audience,
            named or "no live journey or campaign",
            extra={
                "sandbox": sandbox,
                "audience": audience,
                "journeys": [str(u["id"]) for u in users if u["kind"] == "journey"],
                "campaigns": [str(u["id"]) for u in users if u["kind"] == "campaign"],
            },
        )
    for audience in changes.found:
        log.info(
            "audience %s is found again in the segmentation service",
            audience,
            extra={"sandbox": sandbox, "audience": audience},
        )


async def refresh_metric(pool: asyncpg.Pool) -> None:
    """Sets the gauge from what is recorded; sandboxes reported before and now clear
    go to 0."""
    async with pool.acquire() as conn:
        rows = await repository.missing_counts(conn)
    counts = {(row["sandbox"], row["kind"]): int(row["count"]) for row in rows}
    for sandbox in _reported | {s for s, _ in counts}:
        for kind in _KINDS:
            WITH_MISSING_AUDIENCES.labels(sandbox, kind).set(counts.get((sandbox, kind), 0))
    _reported.update(s for s, _ in counts)


class AudienceChecker(Periodic):
    """Runs :func:`check` every ``every``, between all the workers (the first to find it
    due claims it), and refreshes the gauge from the database in between."""

    def __init__(self, pool: asyncpg.Pool, peers: Peers, every_s: float) -> None:
        super().__init__("journeys:audience-checks", min(every_s, 60.0))
        self.pool = pool
        self.peers = peers
        self.every = timedelta(seconds=every_s)

    async def tick(self) -> bool:
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn:
            due = await repository.claim_pass(conn, now, self.every)
        if due:
            await check(self.pool, self.peers)
        else:
            await refresh_metric(self.pool)
        return False


class AudienceAnswersForgotten:
    """With the check off, forgets once, when workers start, what earlier checks found:
    nothing would keep it true, and runs would keep failing on it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def start(self) -> None:
        async with self.pool.acquire() as conn:
            await repository.purge(conn)

    async def stop(self) -> None:
        return None
