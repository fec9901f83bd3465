"""Journeys and their versions: drafts saved as sent, published when valid.

- ``create`` stores a journey and its version 1, a draft.
- ``replace`` replaces the draft; when there is none (the latest version is live,
  stopped or closed), it makes the next version, a draft. There is one draft at most.
- ``publish`` makes a draft live once ``validation`` finds nothing (else a 400 naming
  every problem); a version live until then is closed, as AJO does: its running
  instances finish, new entries go to the new version.
- ``stop`` ends a live or closed version and its instances at once; ``close`` lets a
  live version's instances finish and takes no new entries.
- Reads never ask another service: a draft's problems take its audiences as the
  segmentation service last answered (``draft_view``), a live version's ``warnings``
  are its audiences last found missing (:mod:`itinera.journeys.audiences.checks`).
  Publishing asks it, and hands what it answered to the caller to record.

Every write locks the journey's row first (``SELECT ... FOR UPDATE``), so the writes of
one journey are serialised; publishing also locks the custom actions it names (``FOR
SHARE``), so none is deleted before the version that calls it is committed. Services
never commit: the endpoint's transaction does.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import asyncpg
from asyncpg import Record as Row

from itinera.common.errors import Conflict, FieldError, NotFound, ValidationFailed
from itinera.common.web.etags import check_if_match, entity_tag
from itinera.journeys import templates
from itinera.journeys.actions import repository as actions
from itinera.journeys.audiences import repository as audience_answers
from itinera.journeys.audiences.checks import CODE as AUDIENCE_MISSING
from itinera.journeys.audiences.checks import (
    answer_view,
    audience_paths,
    iso,
    journey_warnings,
    missing_message,
)
from itinera.journeys.definitions import repository, validation
from itinera.journeys.definitions.repository import Facts
from itinera.journeys.definitions.schemas import (
    ENTRY_TYPES,
    ActionNode,
    AudienceEntry,
    AudienceExit,
    EventEntry,
    JourneyIn,
    JumpNode,
    ListQuery,
    MessageNode,
    ReadAudienceEntry,
)
from itinera.journeys.definitions.validation import ActionFacts, Known
from itinera.journeys.peers import Peers
from itinera.journeys.runtime import service as runtime

JOURNEYS = "/v1/journeys"


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def parse_id(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _known_id(text: str, sandbox: str) -> uuid.UUID:
    found = parse_id(text)
    if found is None:
        raise NotFound(f"no journey {text!r} in sandbox {sandbox!r}")
    return found


# Views


def summary(row: Row) -> dict[str, Any]:
    return {
        "version": row["version"],
        "status": row["status"],
        "createdAt": _time(row["created_at"]),
        "updatedAt": _time(row["updated_at"]),
        "publishedAt": _time(row["published_at"]),
        "stoppedAt": _time(row["stopped_at"]),
        "closedAt": _time(row["closed_at"]),
    }


def journey_view(row: Row, versions: list[Row] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(row["id"]),
        "name": row["name"],
        "description": row["description"],
        "status": row["status"],
        "latestVersion": row["latest_version"],
        "liveVersion": row["live_version"],
        "draftVersion": row["draft_version"],
        "createdAt": _time(row["created_at"]),
        "updatedAt": _time(row["updated_at"]),
        "etag": etag(row),
    }
    if versions is not None:
        body["versions"] = [summary(v) for v in versions]
    return body


def etag(row: Row) -> str:
    """The journey's entity tag: its latest version and its revision, which every write
    (a draft saved, a version published, stopped or closed) bumps."""
    return entity_tag(row["latest_version"], row["revision"])


def version_view(row: Row, problems: list[validation.Problem] | None = None) -> dict[str, Any]:
    entry = None
    if row["entry_type"] is not None:
        entry = {"nodeId": row["entry_node"], "type": row["entry_type"], "key": row["entry_key"]}
    body = {
        "journeyId": str(row["journey_id"]),
        **summary(row),
        "definition": row["definition"],
        "entry": entry,
        "references": {
            "templates": list(row["templates"]),
            "audiences": list(row["audiences"]),
            "actions": [str(a) for a in row["actions"]],
            "journeys": [str(j) for j in row["jumps"]],
        },
    }
    if problems is not None:
        body["problems"] = [p.as_dict() for p in problems]
    return body


# What a document names


def facts_of(definition: JourneyIn) -> Facts:
    """The entry and the outside references of a document, recorded with its version."""
    entries = [node for node in definition.nodes if node.type in ENTRY_TYPES]
    entry_node = entry_type = entry_key = None
    if len(entries) == 1:
        entry = entries[0]
        entry_node, entry_type = entry.id, entry.type
        if isinstance(entry, EventEntry):
            entry_key = entry.eventType
        elif isinstance(entry, AudienceEntry | ReadAudienceEntry):
            entry_key = entry.audienceId
    templates: list[str] = []
    audiences = [c.audienceId for c in definition.exitCriteria if isinstance(c, AudienceExit)]
    action_ids: list[uuid.UUID] = []
    jumps: list[uuid.UUID] = []
    for node in definition.nodes:
        if isinstance(node, MessageNode) and node.templateId is not None:
            templates.append(node.templateId)
        elif isinstance(node, AudienceEntry | ReadAudienceEntry):
            audiences.append(node.audienceId)
        elif isinstance(node, ActionNode) and (action_id := parse_id(node.actionId or "")) is not None:
            action_ids.append(action_id)
        elif isinstance(node, JumpNode) and (journey_id := parse_id(node.journeyId or "")) is not None:
            jumps.append(journey_id)
    return Facts(
        entry_node=entry_node,
        entry_type=entry_type,
        entry_key=entry_key,
        templates=sorted(set(templates)),
        audiences=sorted(set(audiences)),
        actions=sorted(set(action_ids)),
        jumps=sorted(set(jumps)),
    )


async def _known(
    db: asyncpg.Connection,
    sandbox: str,
    journey_id: uuid.UUID,
    definition: JourneyIn,
    *,
    lock: bool,
    check_templates: bool,
    audiences: frozenset[str] | None,
) -> Known:
    """The sandbox's custom actions and journeys that ``definition`` names, keyed as it
    writes them (in lower case), its published templates that it names, and
    ``audiences``, those it names that exist (None: not checked)."""
    action_ids = {
        node.actionId.lower(): parsed
        for node in definition.nodes
        if isinstance(node, ActionNode) and node.actionId and (parsed := parse_id(node.actionId))
    }
    rows = await actions.facts(db, sandbox, list(set(action_ids.values())), lock=lock) if action_ids else []
    by_id = {
        row["id"]: ActionFacts(frozenset(row["parameters"]), frozenset(row["response_fields"]))
        for row in rows
    }
    jump_ids = {
        node.journeyId.lower(): parsed
        for node in definition.nodes
        if isinstance(node, JumpNode) and node.journeyId and (parsed := parse_id(node.journeyId))
    }
    existing = await repository.existing_journeys(db, sandbox, list(jump_ids.values())) if jump_ids else set()
    named = [
        node.templateId for node in definition.nodes if isinstance(node, MessageNode) and node.templateId
    ]
    return Known(
        journey_id=str(journey_id),
        actions={text: by_id[parsed] for text, parsed in action_ids.items() if parsed in by_id},
        journeys=frozenset(text for text, parsed in jump_ids.items() if parsed in existing),
        templates=await templates.published(db, sandbox, named) if check_templates else None,
        audiences=audiences,
    )


def _stored(definition: JourneyIn) -> dict[str, Any]:
    stored: dict[str, Any] = definition.model_dump(mode="json")
    return stored


# Operations


def check_size(body: JourneyIn, max_nodes: int) -> None:
    """A journey of more than ``ITINERA_JOURNEYS_MAX_NODES`` nodes is refused before it is stored."""
    if len(body.nodes) > max_nodes:
        raise ValidationFailed(
            f"the journey has {len(body.nodes)} nodes; at most {max_nodes}",
            [FieldError("/nodes", f"at most {max_nodes} nodes", "maxItems")],
        )


async def create(db: asyncpg.Connection, sandbox: str, body: JourneyIn) -> dict[str, Any]:
    journey_id = uuid.uuid4()
    await repository.insert_journey(db, sandbox, journey_id, body.name, body.description)
    await repository.insert_version(db, sandbox, journey_id, 1, _stored(body), facts_of(body))
    return await get(db, sandbox, str(journey_id))


async def get(db: asyncpg.Connection, sandbox: str, journey_text: str) -> dict[str, Any]:
    journey_id = _known_id(journey_text, sandbox)
    row = await repository.get_journey(db, sandbox, journey_id)
    if row is None:
        raise NotFound(f"no journey {journey_text!r} in sandbox {sandbox!r}")
    body = journey_view(row, await repository.versions(db, sandbox, journey_id))
    body["warnings"] = []
    live = (
        await repository.get_version(db, sandbox, journey_id, row["live_version"])
        if row["live_version"]
        else None
    )
    if live is not None:
        found = await journey_warnings(db, sandbox, live["definition"])
        body["warnings"] = [{**w, "version": live["version"]} for w in found]
    return body


async def _locked(
    db: asyncpg.Connection, sandbox: str, journey_text: str, if_match: str | None = None
) -> tuple[uuid.UUID, Row]:
    """The journey's id and row, locked until the transaction ends; 412 when
    ``if_match`` (an ``If-Match`` header) names none of its current tag."""
    journey_id = _known_id(journey_text, sandbox)
    row = await repository.lock_journey(db, sandbox, journey_id)
    if row is None:
        raise NotFound(f"no journey {journey_text!r} in sandbox {sandbox!r}")
    check_if_match(if_match, etag(row))
    return journey_id, row


async def replace(
    db: asyncpg.Connection, sandbox: str, journey_text: str, body: JourneyIn, if_match: str | None = None
) -> dict[str, Any]:
    journey_id, journey = await _locked(db, sandbox, journey_text, if_match)
    current = await repository.draft(db, sandbox, journey_id)
    if current is not None:
        version = current["version"]
        await repository.replace_draft(db, sandbox, journey_id, version, _stored(body), facts_of(body))
    else:
        version = journey["latest_version"] + 1
        await repository.insert_version(db, sandbox, journey_id, version, _stored(body), facts_of(body))
    await repository.touch_journey(db, sandbox, journey_id, body.name, body.description, version)
    return await get(db, sandbox, str(journey_id))


async def _version(db: asyncpg.Connection, sandbox: str, journey_id: uuid.UUID, version: int) -> Row:
    row = await repository.get_version(db, sandbox, journey_id, version)
    if row is None:
        raise NotFound(f"journey {journey_id} has no version {version}")
    return row


@dataclass(frozen=True, slots=True)
class Checks:
    """What publishing checks beyond the journey itself (from the settings)."""

    max_expression_length: int
    templates: bool = True
    peers: Peers | None = None
    """Where the audiences named are checked; None: they are not."""
    answers: dict[str, bool] | None = None
    """Filled by publishing with what the segmentation service answered (audience id ->
    found), for the caller to record once the publish's transaction is over, whether it
    committed or was refused."""

    @property
    def audiences(self) -> bool:
        """Whether the audiences named are checked (``ITINERA_JOURNEYS_CHECK_AUDIENCES``)."""
        return self.peers is not None and self.peers.check_audiences


async def _validated(
    db: asyncpg.Connection,
    sandbox: str,
    row: Row,
    checks: Checks,
    audiences: frozenset[str] | None,
    *,
    lock: bool,
) -> list[validation.Problem]:
    definition = JourneyIn.model_validate(row["definition"])
    known = await _known(
        db,
        sandbox,
        row["journey_id"],
        definition,
        lock=lock,
        check_templates=checks.templates,
        audiences=audiences,
    )
    return validation.validate(
        definition, known, now=datetime.now(UTC), max_expression_length=checks.max_expression_length
    )


async def publish_problems(
    db: asyncpg.Connection, sandbox: str, row: Row, checks: Checks
) -> list[validation.Problem]:
    """What keeps a draft from being published, the audiences it names asked of the
    segmentation service (a 503 when it cannot be reached); the custom actions it calls
    are locked until the transaction ends."""
    existing = None
    if checks.peers is not None:
        named = list(row["audiences"])
        existing = await checks.peers.existing_audiences(sandbox, named)
        if existing is not None and checks.answers is not None:
            checks.answers.update({audience: audience in existing for audience in named})
    return await _validated(
        db, sandbox, row, checks, None if existing is None else frozenset(existing), lock=True
    )


async def draft_view(db: asyncpg.Connection, sandbox: str, row: Row, checks: Checks) -> dict[str, Any]:
    """A draft with what publishing it would refuse, found without asking another
    service: an audience counts as missing when the segmentation service last answered so
    (to the periodic check or a publish attempt), its problem saying when; never asked,
    it counts as there. ``audienceChecks`` says what is known of each audience named."""
    named = list(row["audiences"])
    answers = await audience_answers.answers(db, sandbox, named) if checks.audiences else {}
    existing = None
    if checks.audiences:
        existing = frozenset(a for a in named if a not in answers or answers[a]["found"])
    paths = dict(audience_paths(row["definition"]))

    def as_answered(problem: validation.Problem) -> validation.Problem:
        answer = answers.get(paths.get(problem.path, ""))
        if problem.code != AUDIENCE_MISSING or answer is None:
            return problem
        return dataclasses.replace(
            problem, message=missing_message(answer), checked_at=iso(answer["checked_at"])
        )

    problems = await _validated(db, sandbox, row, checks, existing, lock=False)
    body = version_view(row, [as_answered(p) for p in problems])
    if checks.audiences:
        body["audienceChecks"] = [answer_view(audience, answers.get(audience)) for audience in named]
    return body


async def get_version(
    db: asyncpg.Connection, sandbox: str, journey_text: str, version: int, checks: Checks
) -> dict[str, Any]:
    """A version; a draft's with its problems (:func:`draft_view`), a live one's with its
    warnings: each audience it names that the segmentation service last found missing."""
    journey_id = _known_id(journey_text, sandbox)
    row = await _version(db, sandbox, journey_id, version)
    if row["status"] == "draft":
        return await draft_view(db, sandbox, row, checks)
    body = version_view(row)
    if row["status"] == "live":
        body["warnings"] = await journey_warnings(db, sandbox, row["definition"])
    return body


def _transition_refused(row: Row, wanted: str, allowed_from: tuple[str, ...]) -> Conflict:
    return Conflict(
        f"version {row['version']} is {row['status']}; only a {' or '.join(allowed_from)} version "
        f"can be {wanted}",
        extra={"status": row["status"]},
    )


async def publish(
    db: asyncpg.Connection,
    sandbox: str,
    journey_text: str,
    version: int,
    checks: Checks,
    if_match: str | None = None,
) -> dict[str, Any]:
    journey_id, _ = await _locked(db, sandbox, journey_text, if_match)
    row = await _version(db, sandbox, journey_id, version)
    if row["status"] != "draft":
        raise _transition_refused(row, "published", ("draft",))
    problems = await publish_problems(db, sandbox, row, checks)
    if problems:
        detail = "; ".join(f"{p.path}: {p.message}" for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValidationFailed(
            f"version {version} cannot be published: {detail}{more}",
            [p.field_error() for p in problems],
            extra={"problems": [p.as_dict() for p in problems]},
        )
    now = datetime.now(UTC)
    live = await repository.live_version(db, sandbox, journey_id)
    if live is not None:
        await repository.set_status(db, sandbox, journey_id, live, "closed", now)
    published = await repository.set_status(db, sandbox, journey_id, version, "live", now)
    await repository.touch(db, sandbox, journey_id)
    return version_view(published)


async def stop(
    db: asyncpg.Connection, sandbox: str, journey_text: str, version: int, if_match: str | None = None
) -> dict[str, Any]:
    return await _end(db, sandbox, journey_text, version, "stopped", ("live", "closed"), if_match)


async def close(
    db: asyncpg.Connection, sandbox: str, journey_text: str, version: int, if_match: str | None = None
) -> dict[str, Any]:
    return await _end(db, sandbox, journey_text, version, "closed", ("live",), if_match)


async def _end(
    db: asyncpg.Connection,
    sandbox: str,
    journey_text: str,
    version: int,
    status: str,
    allowed_from: tuple[str, ...],
    if_match: str | None = None,
) -> dict[str, Any]:
    journey_id, _ = await _locked(db, sandbox, journey_text, if_match)
    row = await _version(db, sandbox, journey_id, version)
    if row["status"] not in allowed_from:
        raise _transition_refused(row, status, allowed_from)
    now = datetime.now(UTC)
    ended = await repository.set_status(db, sandbox, journey_id, version, status, now)
    if status == "stopped":
        await runtime.stop_version(db, sandbox, journey_id, version, now)
    await repository.touch(db, sandbox, journey_id)
    return version_view(ended)


async def delete(
    db: asyncpg.Connection, sandbox: str, journey_text: str, if_match: str | None = None
) -> None:
    """Delete a journey none of whose versions runs any more (each a draft or stopped),
    with its versions and the history of its ended instances; 409 naming what still
    runs (a live or closed version, waiting instances, another running journey that
    jumps to it)."""
    journey_id, _ = await _locked(db, sandbox, journey_text, if_match)
    running = await repository.running(db, sandbox, journey_id)
    if running:
        named = {
            "version": "version {version} is {status}",
            "instances": "instances of version {version} are waiting",
            "jump": "journey {journey_id} v{version} ({status}) jumps to it",
        }
        reasons = [named[r["what"]].format(**dict(r)) for r in running]
        raise Conflict(
            f"journey {journey_id} still runs: {'; '.join(reasons)} (stop what runs first)",
            extra={
                "runningBy": [
                    {
                        "what": r["what"],
                        "journeyId": str(r["journey_id"]),
                        "version": r["version"],
                        "status": r["status"],
                    }
                    for r in running
                ]
            },
        )
    await repository.delete_journey(db, sandbox, journey_id)


async def listing(db: asyncpg.Connection, sandbox: str, query: ListQuery) -> dict[str, Any]:
    total = await repository.count(db, sandbox, query.status)
    rows = await repository.page(db, sandbox, query.status, query.start, query.limit)
    link: dict[str, str] = {}
    if query.start + len(rows) < total:
        params: dict[str, Any] = {"start": query.start + query.limit, "limit": query.limit}
        if query.status is not None:
            params["status"] = query.status
        link["next"] = f"{JOURNEYS}?{urlencode(params)}"
    return {
        "items": [journey_view(row) for row in rows],
        "page": {"totalCount": total, "start": query.start, "limit": query.limit, "pageSize": len(rows)},
        "link": link,
    }
