"""Campaigns: checked, stored per sandbox, activated and stopped.

- ``create`` and ``replace`` store a campaign as a ``draft`` once :func:`check` finds
  nothing (else a 400 naming every problem with its path); only a draft can be replaced.
- ``activate`` makes a draft ``live``: an API-triggered campaign can then be executed; a
  scheduled one gets its first occurrence (``next_run_at``), refused when it is a time
  already past or when there is none before ``endAt``.
- ``stop`` ends a live campaign: no more occurrences or calls, and its executions not
  finished fail (``campaign stopped``) in the same transaction, so no chunk is sent after.
- A one-shot campaign, or a recurring one past its ``endAt``, is ``completed`` once its
  last occurrence has fired (:mod:`executions`).

Every write locks the campaign's row first. Services never commit: the endpoint's
transaction does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import asyncpg
from asyncpg import Record as Row

from itinera.common import pql
from itinera.common.errors import Conflict, NotFound, ValidationFailed
from itinera.common.jsonvalues import json_problems as common_json_problems
from itinera.common.web.etags import check_if_match, entity_tag
from itinera.journeys import templates
from itinera.journeys.audiences import repository as audience_answers
from itinera.journeys.audiences.checks import iso, warning
from itinera.journeys.campaigns import repository
from itinera.journeys.campaigns.schemas import CampaignIn, ListQuery
from itinera.journeys.definitions.schemas import CronSchedule, Every, Once
from itinera.journeys.definitions.timing import parse_cron
from itinera.journeys.definitions.validation import TEMPLATE_ID, Problem
from itinera.journeys.peers import Peers
from itinera.journeys.schedules import first_run, zone

CAMPAIGNS = "/v1/campaigns"
MAX_DEPTH = 32


def parse_id(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


# JSON values sent by clients


def json_problems(value: Any, path: str) -> list[Problem]:
    """What keeps ``value`` from being stored and sent as JSON
    (:func:`itinera.common.jsonvalues.json_problems`)."""
    return [
        Problem(e.path, e.message, e.code) for e in common_json_problems(value, path, max_depth=MAX_DEPTH)
    ]


def refuse(problems: list[Problem], what: str, extra: dict[str, Any] | None = None) -> ValidationFailed:
    detail = "; ".join(f"{p.path}: {p.message}" for p in problems[:3])
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return ValidationFailed(
        f"{what}: {detail}{more}",
        [p.field_error() for p in problems],
        extra={"problems": [p.as_dict() for p in problems], **(extra or {})},
    )


# Checks


def check(body: CampaignIn, *, max_rate: int, max_expression_length: int) -> list[Problem]:
    """Every problem that keeps ``body`` from being a campaign; none: it can be."""
    problems: list[Problem] = []

    def add(path: str, message: str, code: str, position: pql.Problem | None = None) -> None:
        problems.append(Problem(path, message, code, position))

    if not TEMPLATE_ID.fullmatch(body.templateId):
        add("/templateId", "a template id is a UUID or a slug of letters, digits and _ . : -", "template")
    for name, entry in body.context.items():
        path = f"/context/{name}"
        if isinstance(entry, str):
            if len(entry) > max_expression_length:
                add(path, f"{len(entry)} characters; at most {max_expression_length}", "maxLength")
                continue
            problems += json_problems(entry, path)
            for problem in pql.analyse(entry).problems:
                add(path, str(problem), "pql", problem)
        elif isinstance(entry, Mapping) and set(entry) == {"value"}:
            problems += json_problems(entry["value"], f"{path}/value")
        else:
            add(path, 'a PQL expression (a string) or {"value": <any JSON>} is expected', "type")
    if body.rate > max_rate:
        add("/rate", f"at most {max_rate} profiles a second", "range")
    if body.type == "scheduled":
        _scheduled(body, add)
    else:
        if body.schedule is not None:
            add("/schedule", "an API-triggered campaign runs when the execution API asks", "not-scheduled")
        if body.endAt is not None:
            add("/endAt", "only scheduled campaigns end at a date", "not-scheduled")
        mode = body.mode or "unitary"
        if mode == "unitary" and body.audienceId is not None:
            add("/audienceId", "a unitary campaign sends to the recipients each call names", "unitary")
        if mode == "audience" and body.category == "transactional":
            add(
                "/category",
                "transactional messages go to the recipients of unitary calls only",
                "transactional",
            )
    return problems


def _scheduled(body: CampaignIn, add: Callable[[str, str, str], None]) -> None:
    if body.mode is not None:
        add("/mode", "only API-triggered campaigns have a mode", "api-only")
    if body.category == "transactional":
        add("/category", "transactional messages go to the recipients of unitary calls only", "transactional")
    if body.audienceId is None:
        add("/audienceId", "a scheduled campaign sends to the members of an audience", "required")
    schedule = body.schedule
    if schedule is None:
        add("/schedule", "a scheduled campaign needs a schedule", "required")
        return
    if isinstance(schedule, CronSchedule):
        try:
            parse_cron(schedule.expression)
        except ValueError as exc:
            add("/schedule/expression", str(exc), "cron")
        if zone(schedule.timeZone) is None:
            add(
                "/schedule/timeZone",
                f"{schedule.timeZone!r} is not an IANA time zone (Europe/Paris, UTC...)",
                "time-zone",
            )
    start = (
        schedule.at
        if isinstance(schedule, Once)
        else schedule.startAt
        if isinstance(schedule, Every)
        else None
    )
    if body.endAt is not None and start is not None and body.endAt <= start:
        add("/endAt", "the campaign must end after its first occurrence", "dates")


def _stored(body: CampaignIn) -> dict[str, Any]:
    stored: dict[str, Any] = body.model_dump(mode="json")
    if body.type == "api":
        stored["mode"] = body.mode or "unitary"
    return stored


# Views


def _warnings(row: Row, answers: Mapping[str, Row]) -> list[dict[str, Any]]:
    """A live campaign's warning when its audience was last found missing."""
    answer = answers.get(row["definition"].get("audienceId") or "")
    if row["status"] != "live" or answer is None or answer["found"]:
        return []
    return [warning("/audienceId", answer)]


async def _answers(db: asyncpg.Connection, sandbox: str, rows: list[Row]) -> dict[str, Row]:
    """What the segmentation service last answered about the audiences of the live ones of ``rows``."""
    named = {
        row["definition"]["audienceId"]
        for row in rows
        if row["status"] == "live" and row["definition"].get("audienceId")
    }
    return await audience_answers.answers(db, sandbox, sorted(named))


def view(row: Row, answers: Mapping[str, Row] | None = None) -> dict[str, Any]:
    """The campaign; ``answers``: what the segmentation service last answered about its
    audience, for its warnings (none when not given)."""
    doc = row["definition"]
    return {
        "id": str(row["id"]),
        "name": doc["name"],
        "description": doc["description"],
        "type": doc["type"],
        "mode": doc.get("mode"),
        "channel": doc["channel"],
        "templateId": doc["templateId"],
        "category": doc["category"],
        "context": doc["context"],
        "audienceId": doc.get("audienceId"),
        "schedule": doc.get("schedule"),
        "rate": doc["rate"],
        "endAt": doc.get("endAt"),
        "status": row["status"],
        "nextRunAt": iso(row["next_run_at"]),
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
        "activatedAt": iso(row["activated_at"]),
        "stoppedAt": iso(row["stopped_at"]),
        "warnings": _warnings(row, answers or {}),
        "etag": entity_tag(row["revision"]),
    }


def execution_view(row: Row) -> dict[str, Any]:
    return {
        "executionId": str(row["id"]),
        "campaignId": str(row["campaign_id"]),
        "kind": row["kind"],
        "status": row["status"],
        "audienceId": row["audience_id"],
        "requestId": row["request_id"],
        "executeAt": iso(row["execute_at"]),
        "targetedProfileCount": row["targeted"],
        "reason": row["reason"],
        "createdAt": iso(row["created_at"]),
        "startedAt": iso(row["started_at"]),
        "finishedAt": iso(row["finished_at"]),
    }


# Operations


def _known_id(text: str, sandbox: str) -> uuid.UUID:
    found = parse_id(text)
    if found is None:
        raise NotFound(f"no campaign {text!r} in sandbox {sandbox!r}")
    return found


async def _campaign(
    db: asyncpg.Connection, sandbox: str, text: str, *, lock: bool = False, if_match: str | None = None
) -> Row:
    """The campaign's row (``lock``: locked until the transaction ends); 412 when
    ``if_match`` (an ``If-Match`` header) names none of its current tag."""
    row = await repository.get_campaign(db, sandbox, _known_id(text, sandbox), lock=lock)
    if row is None:
        raise NotFound(f"no campaign {text!r} in sandbox {sandbox!r}")
    check_if_match(if_match, entity_tag(row["revision"]))
    return row


def _checked(body: CampaignIn, max_rate: int, max_expression_length: int) -> None:
    problems = check(body, max_rate=max_rate, max_expression_length=max_expression_length)
    if problems:
        raise refuse(problems, "the campaign is not valid")


async def create(
    db: asyncpg.Connection, sandbox: str, body: CampaignIn, *, max_rate: int, max_expression_length: int
) -> dict[str, Any]:
    _checked(body, max_rate, max_expression_length)
    row = await repository.insert_campaign(db, sandbox, uuid.uuid4(), body.name, body.type, _stored(body))
    return view(row)


async def get(db: asyncpg.Connection, sandbox: str, text: str) -> dict[str, Any]:
    row = await _campaign(db, sandbox, text)
    return view(row, await _answers(db, sandbox, [row]))


async def replace(
    db: asyncpg.Connection,
    sandbox: str,
    text: str,
    body: CampaignIn,
    *,
    max_rate: int,
    max_expression_length: int,
    if_match: str | None = None,
) -> dict[str, Any]:
    row = await _campaign(db, sandbox, text, lock=True, if_match=if_match)
    if row["status"] != "draft":
        raise _refused_move(row, "replaced", ("draft",))
    _checked(body, max_rate, max_expression_length)
    return view(
        await repository.replace_campaign(db, sandbox, row["id"], body.name, body.type, _stored(body))
    )


def _refused_move(row: Row, wanted: str, allowed_from: tuple[str, ...]) -> Conflict:
    return Conflict(
        f"the campaign is {row['status']}; only a {' or '.join(allowed_from)} campaign can be {wanted}",
        extra={"status": row["status"]},
    )


async def activate(
    db: asyncpg.Connection,
    sandbox: str,
    text: str,
    *,
    check_templates: bool,
    peers: Peers | None = None,
    if_match: str | None = None,
) -> dict[str, Any]:
    """A draft goes live; refused (400, every problem) when its template is not published
    for its channel (``check_templates``), its audience is not one of the sandbox's (asked
    of ``peers``), or its schedule has no occurrence left."""
    row = await _campaign(db, sandbox, text, lock=True, if_match=if_match)
    if row["status"] != "draft":
        raise _refused_move(row, "activated", ("draft",))
    now = datetime.now(UTC)
    body = CampaignIn.model_validate(row["definition"])
    problems: list[Problem] = []
    if check_templates:
        channel = (await templates.published(db, sandbox, [body.templateId])).get(body.templateId)
        if channel is None:
            problems.append(
                Problem(
                    "/templateId",
                    f"the content service has published no template {body.templateId!r} in this sandbox",
                    "undefined-template",
                )
            )
        elif channel != body.channel:
            problems.append(
                Problem(
                    "/templateId",
                    f"template {body.templateId!r} is for {channel}; the campaign sends {body.channel}",
                    "template-channel",
                )
            )
    if body.audienceId is not None and peers is not None:
        problems += await audience_problems(db, peers, sandbox, body.audienceId, "/audienceId")
    next_run = None
    if body.type == "scheduled":
        assert body.schedule is not None
        if isinstance(body.schedule, Once) and body.schedule.at is not None and body.schedule.at <= now:
            problems.append(Problem("/schedule/at", "the time has passed", "past"))
        if body.endAt is not None and body.endAt <= now:
            problems.append(Problem("/endAt", "the end date has passed", "past"))
        if not problems:
            try:
                next_run = first_run(body.schedule, now, body.endAt)
            except ValueError as exc:
                problems.append(Problem("/schedule", str(exc), "schedule"))
            else:
                if next_run is None:
                    problems.append(
                        Problem("/schedule", "the schedule has no occurrence before endAt", "no-occurrence")
                    )
    if problems:
        raise refuse(problems, "the campaign cannot be activated")
    return view(await repository.set_status(db, sandbox, row["id"], "live", next_run, now))


async def audience_problems(
    db: asyncpg.Connection, peers: Peers, sandbox: str, audience_id: str, path: str
) -> list[Problem]:
    """The problem of naming an audience the sandbox does not have (none when audiences
    are not checked). The answer is recorded as a periodic check's is, so that one found
    now is no longer taken for missing by the runs that read the last answer."""
    existing = await peers.existing_audiences(sandbox, [audience_id])
    if existing is None:
        return []
    found = audience_id in existing
    await audience_answers.record(db, sandbox, {audience_id: found}, datetime.now(UTC))
    if found:
        return []
    return [Problem(path, f"the sandbox has no audience {audience_id!r}", "undefined-audience")]


async def stop(
    db: asyncpg.Connection, sandbox: str, text: str, if_match: str | None = None
) -> dict[str, Any]:
    row = await _campaign(db, sandbox, text, lock=True, if_match=if_match)
    if row["status"] != "live":
        raise _refused_move(row, "stopped", ("live",))
    now = datetime.now(UTC)
    await repository.fail_executions(db, sandbox, row["id"], "campaign stopped", now)
    return view(await repository.set_status(db, sandbox, row["id"], "stopped", None, now))


async def delete(db: asyncpg.Connection, sandbox: str, text: str, if_match: str | None = None) -> None:
    """Delete a campaign that is not live (a draft, stopped or completed) and has no
    execution still sending, with its executions' records; 409 otherwise."""
    row = await _campaign(db, sandbox, text, lock=True, if_match=if_match)
    if row["status"] == "live":
        raise Conflict("the campaign is live; stop it before deleting it", extra={"status": row["status"]})
    unfinished = await repository.unfinished_executions(db, sandbox, row["id"])
    if unfinished:
        raise Conflict(
            f"{unfinished} execution(s) of the campaign are still sending; delete it once they are done",
            extra={"status": row["status"], "unfinishedExecutions": unfinished},
        )
    await repository.delete_campaign(db, sandbox, row["id"])


async def listing(db: asyncpg.Connection, sandbox: str, query: ListQuery) -> dict[str, Any]:
    total = await repository.count_campaigns(db, sandbox, query.status, query.type)
    rows = await repository.page_campaigns(db, sandbox, query.status, query.type, query.start, query.limit)
    answers = await _answers(db, sandbox, rows)
    link: dict[str, str] = {}
    if query.start + len(rows) < total:
        params: dict[str, Any] = {"start": query.start + query.limit, "limit": query.limit}
        params |= {k: v for k, v in (("status", query.status), ("type", query.type)) if v is not None}
        link["next"] = f"{CAMPAIGNS}?{urlencode(params)}"
    return {
        "items": [view(row, answers) for row in rows],
        "page": {"totalCount": total, "start": query.start, "limit": query.limit, "pageSize": len(rows)},
        "link": link,
    }


async def executions(
    db: asyncpg.Connection, sandbox: str, text: str, start: int, limit: int
) -> dict[str, Any]:
    row = await _campaign(db, sandbox, text)
    rows = await repository.executions_of(db, sandbox, row["id"], start, limit)
    return {
        "items": [execution_view(r) for r in rows],
        "page": {"start": start, "limit": limit, "pageSize": len(rows)},
    }
