"""Executions: what a campaign sends, when and to whom.

- **Unitary** (``POST /ajo/im/executions/unitary``): one message per recipient, requested
  in the call's transaction. An ``aep`` recipient is looked up by its identity in the
  profiles this service keeps (the snapshot of each profile's latest event): the
  namespace is compared without case, and so is the id in the ``Email`` namespace; one
  not found there is asked of the profile service (its identity graph, see
  :mod:`itinera.journeys.peers`). An ``external`` recipient, or an ``aep`` one no
  profile holds, is addressed by its identity alone: its profile is
  ``{identityMap: {<namespace>: [{id}]}}`` and its profile id a UUID derived from the
  identity (the same one on every call). A recipient's ``profile`` is laid over the
  profile, its ``channelData`` sets ``personalEmail.address`` and
  ``mobilePhone.number``, its ``context`` is laid over the campaign's.
- **Audience** (``POST /ajo/im/executions/audience``, and every occurrence of a scheduled
  campaign): an execution row, sent in the background by :class:`workers.ExecutionRunner`
  in chunks by profile id (:func:`send_chunk`); the members are read as they are when each
  chunk is read.

A message's id is ``uuid5(execution id, profile id)``: a chunk replayed after a crash, or
a unitary call repeated with its ``requestId``, asks for the same messages under the same
ids, and the execution, the cursor and the messages are written in one transaction
(messages through the outbox), so none is lost or sent twice. A ``requestId`` makes a
call idempotent: the same one answers the execution it made; used again for a different
request, it is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import asyncpg
import orjson
from asyncpg import Record as Row

from itinera.common import pql
from itinera.common.db.outbox import enqueue
from itinera.common.errors import NotFound
from itinera.common.kafka import topics
from itinera.common.kafka.envelope import Envelope
from itinera.journeys.audiences import repository as audience_answers
from itinera.journeys.audiences.checks import iso, run_failure
from itinera.journeys.campaigns import repository
from itinera.journeys.campaigns.schemas import AudienceIn, CampaignIn, Recipient, UnitaryIn
from itinera.journeys.campaigns.service import audience_problems, json_problems, parse_id, refuse
from itinera.journeys.definitions.validation import Problem
from itinera.journeys.peers import Peers
from itinera.journeys.runtime import repository as profiles
from itinera.journeys.runtime.service import MessageRequest
from itinera.journeys.runtime.walker import json_value
from itinera.journeys.schedules import next_run

_MESSAGE_IDS = uuid.UUID("4c1e8a27-9b3d-5f60-a2c4-7d8e9f0a1b2c")
_EXECUTION_IDS = uuid.UUID("9a2b3c4d-5e6f-5a7b-8c9d-0e1f2a3b4c5d")
_RECIPIENT_IDS = uuid.UUID("e7d6c5b4-a392-5817-9f6e-5d4c3b2a1908")
NAMESPACES = {
    code.lower(): code
    for code in ("Email", "Phone", "ECID", "CRMID", "AAID", "GAID", "IDFA", "FPID", "Email_LC_SHA256")
}
"""Standard namespaces, by their code in lower case: ``email`` is written ``Email``."""


def message_id(execution_id: uuid.UUID, profile_id: uuid.UUID | str) -> str:
    """The id of the message an execution sends a profile: the same on every attempt."""
    return str(uuid.uuid5(_MESSAGE_IDS, f"{execution_id}|{profile_id}"))


def _request_execution_id(campaign_id: uuid.UUID, request_id: str) -> uuid.UUID:
    return uuid.uuid5(_EXECUTION_IDS, f"{campaign_id}|request|{request_id}")


def occurrence_execution_id(campaign_id: uuid.UUID, occurrence: datetime) -> uuid.UUID:
    return uuid.uuid5(_EXECUTION_IDS, f"{campaign_id}|occurrence|{iso(occurrence)}")


# Personalisation


@lru_cache(maxsize=1024)
def _rule(expression: str) -> pql.Rule:
    return pql.compile_rule(expression)


def personalised(context: Mapping[str, Any], profile: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The campaign's context for one profile: expressions evaluated over it, values as they are."""
    found: dict[str, Any] = {}
    for name, entry in context.items():
        if isinstance(entry, str):
            try:
                found[name] = json_value(_rule(entry).evaluate(profile, now=now))
            except pql.PqlError:  # checked when the campaign was saved; kept apart all the same
                found[name] = None
        else:
            found[name] = entry["value"]
    return found


def _request(
    execution_id: uuid.UUID, sandbox: str, profile_id: str, doc: Mapping[str, Any], context: dict[str, Any]
) -> MessageRequest:
    return MessageRequest(
        message_id(execution_id, profile_id),
        sandbox,
        profile_id,
        doc["channel"],
        doc["templateId"],
        doc["category"],
        context,
    )


def _origin(row: Mapping[str, Any]) -> dict[str, Any]:
    origin: dict[str, Any] = {
        "kind": "campaign",
        "campaignId": str(row["campaign_id"]),
        "executionId": str(row["id"]),
        "execution": row["kind"],
    }
    if row["request_id"] is not None:
        origin["requestId"] = row["request_id"]
    if row["audience_id"] is not None:
        origin["audienceId"] = row["audience_id"]
    return origin


# Refusals, in AJO's shape


def _refuse(problems: list[Problem], request_id: str | None, campaign_id: str) -> Exception:
    context = {"campaignId": campaign_id} | ({"requestId": request_id} if request_id else {})
    return refuse(problems, "the execution is refused", {"report": {"additionalContext": context}})


async def _executable(
    conn: asyncpg.Connection, sandbox: str, campaign_text: str, mode: str, request_id: str | None
) -> Row:
    """The live API-triggered campaign of ``mode`` a call names; 400 otherwise."""
    campaign_id = parse_id(campaign_text)
    row = await repository.get_campaign(conn, sandbox, campaign_id) if campaign_id is not None else None
    problem = None
    if row is None:
        problem = Problem(
            "/campaignId", f"no campaign {campaign_text!r} in sandbox {sandbox!r}", "unknown-campaign"
        )
    elif row["type"] != "api":
        problem = Problem("/campaignId", "the campaign is scheduled, not API-triggered", "not-api")
    elif row["definition"].get("mode") != mode:
        problem = Problem(
            "/campaignId", f"the campaign is a {row['definition'].get('mode')} campaign", "mode"
        )
    elif row["status"] != "live":
        problem = Problem("/campaignId", f"the campaign is {row['status']}; activate it first", "not-live")
    if problem is not None:
        raise _refuse([problem], request_id, campaign_text)
    assert row is not None
    return row


def _fingerprint(body: UnitaryIn | AudienceIn) -> str:
    text = orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(text).hexdigest()


async def _replayed(
    conn: asyncpg.Connection, sandbox: str, campaign: Row, request_id: str | None, fingerprint: str
) -> Row | None:
    """The execution a ``requestId`` already made; 400 when it was for another request."""
    if request_id is None:
        return None
    row = await repository.execution_for_request(conn, sandbox, campaign["id"], request_id)
    if row is not None and row["request_hash"] != fingerprint:
        problem = Problem("/requestId", "this requestId was used for a different request", "request-reused")
        raise _refuse([problem], request_id, str(campaign["id"]))
    return row


def response(row: Row) -> dict[str, Any]:
    """AJO's answer to an execution request."""
    return {
        "executionId": str(row["id"]),
        "requestId": row["request_id"],
        "createdAt": iso(row["created_at"]),
        "createdBy": row["created_by"],
        "modifiedAt": iso(row["updated_at"]),
        "modifiedBy": row["created_by"],
    }


def status_view(row: Row) -> dict[str, Any]:
    return {
        "executionId": str(row["id"]),
        "campaignId": str(row["campaign_id"]),
        "audienceId": row["audience_id"],
        "status": row["status"],
        "targetedProfileCount": row["targeted"],
        "createdAt": iso(row["created_at"]),
    }


def schedule_view(row: Row) -> dict[str, Any]:
    triggered = row["status"] != "Scheduled"
    return {
        "scheduleId": str(row["id"]),
        "audience": {"id": row["audience_id"]} if row["audience_id"] is not None else None,
        "campaignId": str(row["campaign_id"]),
        "executeAt": iso(row["execute_at"]),
        "scheduleStatus": "Triggered" if triggered else "Scheduled",
        "executionDetails": status_view(row) if triggered else None,
    }


# Unitary


def _identity(recipient: Recipient) -> tuple[str, str]:
    """The recipient's namespace code and id as compared (an email address in lower case)."""
    code = NAMESPACES.get(recipient.namespace.lower(), recipient.namespace)
    return code, recipient.userId.lower() if code == "Email" else recipient.userId


def _matches(attributes: Mapping[str, Any], code: str, user_id: str) -> bool:
    identity_map = attributes.get("identityMap")
    if not isinstance(identity_map, Mapping):
        return False
    for namespace, items in identity_map.items():
        if str(namespace).lower() != code.lower() or not isinstance(items, list):
            continue
        for item in items:
            found = item.get("id") if isinstance(item, Mapping) else None
            if isinstance(found, str) and (found.lower() if code == "Email" else found) == user_id:
                return True
    return False


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        current = merged.get(key)
        merged[key] = (
            _merged(current, value) if isinstance(current, Mapping) and isinstance(value, Mapping) else value
        )
    return merged


async def _resolve(
    conn: asyncpg.Connection, sandbox: str, recipients: list[Recipient], peers: Peers | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """Each recipient's profile id and profile (see the module's doc)."""
    identities = [_identity(r) for r in recipients]
    looked_up = [i for i, r in enumerate(recipients) if r.type == "aep"]
    probes = [{identities[i][0].lower(): [{"id": identities[i][1].lower()}]} for i in looked_up]
    found: dict[int, tuple[str, dict[str, Any]]] = {}
    for probe, known_id, attributes in await repository.profiles_by_identity(conn, sandbox, probes):
        index = looked_up[probe]
        if index not in found and _matches(attributes, *identities[index]):
            found[index] = (str(known_id), dict(attributes))
    missing = [index for index in looked_up if index not in found]
    if missing and peers is not None:
        answers = await asyncio.gather(
            *(peers.profile_by_identity(sandbox, *identities[index]) for index in missing)
        )
        found |= {index: answer for index, answer in zip(missing, answers, strict=True) if answer is not None}
    resolved: list[tuple[str, dict[str, Any]]] = []
    for index, recipient in enumerate(recipients):
        code, user_id = identities[index]
        profile_id, profile = found.get(index) or (
            str(uuid.uuid5(_RECIPIENT_IDS, f"{code.lower()}:{user_id}")),
            {"identityMap": {code: [{"id": recipient.userId}]}},
        )
        if recipient.profile:
            profile = _merged(profile, recipient.profile)
        data = recipient.channelData
        if data is not None and data.emailAddress is not None:
            profile = _merged(profile, {"personalEmail": {"address": data.emailAddress}})
        if data is not None and data.mobilePhoneNumber is not None:
            profile = _merged(profile, {"mobilePhone": {"number": data.mobilePhoneNumber}})
        resolved.append((profile_id, profile))
    return resolved


async def unitary(
    conn: asyncpg.Connection,
    sandbox: str,
    body: UnitaryIn,
    caller: str,
    now: datetime,
    peers: Peers | None = None,
) -> dict[str, Any]:
    campaign = await _executable(conn, sandbox, body.campaignId, "unitary", body.requestId)
    problems: list[Problem] = []
    seen: dict[tuple[str, str], int] = {}
    for number, recipient in enumerate(body.recipients):
        at = f"/recipients/{number}"
        problems += json_problems(recipient.profile or {}, f"{at}/profile")
        problems += json_problems(recipient.context or {}, f"{at}/context")
        identity = _identity(recipient)
        key = (identity[0].lower(), identity[1])
        if key in seen:
            problems.append(Problem(at, f"the same recipient as /recipients/{seen[key]}", "duplicate"))
        seen.setdefault(key, number)
    if problems:
        raise _refuse(problems, body.requestId, body.campaignId)
    fingerprint = _fingerprint(body)
    existing = await _replayed(conn, sandbox, campaign, body.requestId, fingerprint)
    if existing is not None:
        return response(existing)
    resolved = await _resolve(conn, sandbox, body.recipients, peers)
    doc = campaign["definition"]
    requests: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for (profile_id, profile), recipient in zip(resolved, body.recipients, strict=True):
        # Two identities of one profile: one message, the first recipient's.
        if profile_id not in requests:
            context = personalised(doc["context"], profile, now) | (recipient.context or {})
            requests[profile_id] = (profile, context)
    execution_id = _request_execution_id(campaign["id"], body.requestId)
    row = await repository.insert_execution(
        conn,
        sandbox,
        execution_id,
        campaign["id"],
        kind="unitary",
        status="Succeeded",
        request_id=body.requestId,
        request_hash=fingerprint,
        audience_id=None,
        context={},
        execute_at=now,
        scheduled=False,
        due_at=None,
        targeted=len(requests),
        created_by=caller,
        now=now,
    )
    if row is None:  # the same request, committed meanwhile by another call
        existing = await _replayed(conn, sandbox, campaign, body.requestId, fingerprint)
        assert existing is not None
        return response(existing)
    origin = _origin(row)
    envelopes = [
        _request(execution_id, sandbox, profile_id, doc, context).envelope(profile, origin, now)
        for profile_id, (profile, context) in requests.items()
    ]
    await enqueue(conn, topics.MESSAGES.name, envelopes)
    return response(row)


# Audience


async def audience(
    conn: asyncpg.Connection,
    sandbox: str,
    body: AudienceIn,
    caller: str,
    now: datetime,
    peers: Peers | None = None,
) -> tuple[dict[str, Any], bool]:
    """The execution asked for, and whether it is scheduled for later (AJO answers a
    schedule then, not an execution). An audience named in the call must be one of the
    sandbox's (asked of ``peers``); the campaign's own was checked when it went live."""
    campaign = await _executable(conn, sandbox, body.campaignId, "audience", body.requestId)
    doc = campaign["definition"]
    audience_id = body.audience.id if body.audience is not None else doc.get("audienceId")
    problems = json_problems(body.context or {}, "/context")
    if audience_id is None:
        problems.append(Problem("/audience/id", "the campaign has no audience: name one", "required"))
    elif body.audience is not None and peers is not None:
        problems += await audience_problems(conn, peers, sandbox, audience_id, "/audience/id")
    if problems:
        raise _refuse(problems, body.requestId, body.campaignId)
    fingerprint = _fingerprint(body)
    row = await _replayed(conn, sandbox, campaign, body.requestId, fingerprint)
    if row is None:
        execute_at = body.schedule.executeAt if body.schedule is not None else None
        later = execute_at is not None and execute_at > now
        execution_id = (
            _request_execution_id(campaign["id"], body.requestId)
            if body.requestId is not None
            else uuid.uuid4()
        )
        row = await repository.insert_execution(
            conn,
            sandbox,
            execution_id,
            campaign["id"],
            kind="audience",
            status="Scheduled" if later else "InProgress",
            request_id=body.requestId,
            request_hash=fingerprint,
            audience_id=audience_id,
            context=dict(body.context or {}),
            execute_at=execute_at if later and execute_at is not None else now,
            scheduled=later,
            due_at=execute_at if later else now,
            targeted=0,
            created_by=caller,
            now=now,
        )
        if row is None:  # the same request, committed meanwhile by another call
            row = await _replayed(conn, sandbox, campaign, body.requestId, fingerprint)
            assert row is not None
    if row["scheduled"]:
        return schedule_view(row), True
    return response(row), False


async def status(conn: asyncpg.Connection, sandbox: str, text: str) -> dict[str, Any]:
    execution_id = parse_id(text)
    row = await repository.get_execution(conn, sandbox, execution_id) if execution_id is not None else None
    if row is None or row["kind"] == "unitary":
        raise NotFound(f"no audience execution {text!r} in sandbox {sandbox!r}")
    if row["status"] == "Scheduled":
        raise NotFound(
            f"execution {text!r} is scheduled and has not started: see /ajo/im/executions/schedules/{text}"
        )
    return status_view(row)


async def schedule(conn: asyncpg.Connection, sandbox: str, text: str) -> dict[str, Any]:
    execution_id = parse_id(text)
    row = await repository.get_execution(conn, sandbox, execution_id) if execution_id is not None else None
    if row is None or not row["scheduled"]:
        raise NotFound(f"no scheduled execution {text!r} in sandbox {sandbox!r}")
    return schedule_view(row)


async def unschedule(conn: asyncpg.Connection, sandbox: str, text: str) -> None:
    execution_id = parse_id(text)
    if execution_id is None or not await repository.delete_scheduled(conn, sandbox, execution_id):
        raise NotFound(f"no scheduled execution {text!r} waiting to start in sandbox {sandbox!r}")


# The background: chunks and occurrences


async def send_chunk(
    conn: asyncpg.Connection, row: Row, now: datetime, batch: int, peers: Peers | None = None
) -> bool:
    """Sends the next chunk of an audience execution (``row``: the execution with its
    campaign's ``definition``, locked): at most ``batch`` members, and at most a second's
    worth at the campaign's rate, after the cursor; whether the execution is done. The
    next chunk is due when the rate allows, counted from when this one was due (so time
    spent sending does not slow the rate), and never more than one chunk ahead of now.
    Members this service keeps no profile of are read from the profile service
    (``peers``); one it does not know either is sent with no profile. An execution whose
    audience the segmentation service was last found not to have (see
    :mod:`itinera.journeys.audiences.checks`) fails instead, with the reason."""
    sandbox = row["sandbox"]
    doc = row["definition"]
    gone = await audience_answers.missing(conn, sandbox, row["audience_id"])
    if gone is not None:
        await repository.fail_execution(conn, sandbox, row["id"], run_failure(gone), now)
        return True
    rate = int(doc["rate"])
    size = max(1, min(batch, rate))
    members = await repository.members_after(conn, sandbox, row["audience_id"], row["cursor"], size)
    found = await profiles.profiles_of(conn, sandbox, members) if members else {}
    unknown = [str(member) for member in members if str(member) not in found]
    if unknown and peers is not None:
        found |= await peers.profiles_of(sandbox, unknown)
    origin = _origin(row)
    extra = dict(row["context"] or {})
    envelopes: list[Envelope] = []
    for member in members:
        profile = found.get(str(member), {})
        context = personalised(doc["context"], profile, now) | extra
        envelopes.append(
            _request(row["id"], sandbox, str(member), doc, context).envelope(profile, origin, now)
        )
    await enqueue(conn, topics.MESSAGES.name, envelopes)
    done = len(members) < size
    due = None
    if not done:
        span = timedelta(seconds=len(members) / rate)
        due = max(row["due_at"] or now, now - span) + span
    await repository.advance(
        conn,
        sandbox,
        row["id"],
        cursor=members[-1] if members else None,
        sent=len(members),
        due_at=due,
        now=now,
    )
    return done


async def fire(conn: asyncpg.Connection, row: Row, now: datetime) -> uuid.UUID:
    """A scheduled campaign's due occurrence (``row``: the campaign, locked) becomes an
    execution; the campaign gets its next occurrence, or is completed. The execution's id."""
    doc = CampaignIn.model_validate(row["definition"])
    occurrence: datetime = row["next_run_at"]
    execution_id = occurrence_execution_id(row["id"], occurrence)
    await repository.insert_execution(
        conn,
        row["sandbox"],
        execution_id,
        row["id"],
        kind="scheduled",
        status="InProgress",
        request_id=None,
        request_hash=None,
        audience_id=doc.audienceId,
        context={},
        execute_at=occurrence,
        scheduled=False,
        due_at=now,
        targeted=0,
        created_by="schedule",
        now=now,
    )
    assert doc.schedule is not None
    following = next_run(doc.schedule, row["activated_at"] or now, max(occurrence, now), doc.endAt)
    await repository.set_next_run(conn, row["sandbox"], row["id"], following, now)
    return execution_id
