"""Audience (segment) definitions: checked with the PQL engine, stored per sandbox with
what the engine found in them.

A definition is valid when:

- ``schema.name`` is ``_xdm.context.profile`` and the expression is PQL in ``pql/text``
  (``pql/json`` is refused: it is AEP's internal tree, which this engine does not read);
- the rule has no problems (each one is reported at ``/expression/value`` with its line,
  column, offsets and construct in ``problems``);
- it is evaluated one way at least; without ``evaluationInfo``, in batch, as AEP does.
  ``continuous`` (streaming) and ``synchronous`` (edge) need a rule that AEP's streaming
  rules accept: otherwise the engine's reasons are given in ``streamingReasons``;
- every audience it names with ``inSegment`` exists in the sandbox, and naming them does
  not close a cycle. An audience named by another cannot be deleted (409).

A rule combining events with ``inSegment`` is never streaming-eligible here: whether the
audiences named are profile-only can change after the rule is saved, and the stored
eligibility must stay true.

Names are unique per sandbox regardless of case; a second definition of the same name is
a 422 ("already exists"), as in AEP's contract. Services never commit: the endpoint's
transaction does, and writes hold a per-sandbox lock (see ``repository.lock_sandbox``).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import asyncpg
from asyncpg import Record as Row

from itinera.common import pql
from itinera.common.errors import Conflict, FieldError, NotFound, Unprocessable, ValidationFailed
from itinera.segmentation import bulk
from itinera.segmentation.definitions import repository
from itinera.segmentation.definitions.repository import Columns
from itinera.segmentation.definitions.schemas import (
    PROFILE_CLASS,
    SORTABLE,
    DefinitionIn,
    DefinitionPatch,
    EvaluationInfo,
    ExpressionIn,
    GovernanceIn,
    ListQuery,
    SchemaIn,
    order_by,
)

DEFINITIONS = "/data/core/ups/segment/definitions"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class AlreadyExists(Unprocessable):
    """AEP answers 422 when a definition of that name exists."""

    slug = "already-exists"
    title = "Already exists"


@dataclass(frozen=True, slots=True)
class Modes:
    batch: bool
    continuous: bool
    synchronous: bool


@dataclass(frozen=True, slots=True)
class Findings:
    """What the PQL engine said of a rule, as stored."""

    paths_read: list[str]
    audiences: list[str]
    streaming: bool
    streaming_reasons: list[str]
    lookback: timedelta | None
    time_dependent: bool

    @classmethod
    def of(cls, analysis: pql.Analysis) -> Findings:
        return cls(
            paths_read=list(analysis.references),
            audiences=list(analysis.segments),
            streaming=analysis.streaming,
            streaming_reasons=list(analysis.streaming_reasons),
            lookback=analysis.lookback,
            time_dependent=analysis.time_dependent,
        )

    @classmethod
    def stored(cls, row: Row) -> Findings:
        return cls(
            paths_read=list(row["paths_read"]),
            audiences=list(row["audiences"]),
            streaming=row["streaming"],
            streaming_reasons=list(row["streaming_reasons"]),
            lookback=row["lookback"],
            time_dependent=row["time_dependent"],
        )


# Views


def _millis(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(milliseconds=1)


def view(row: Row, sandbox: str) -> dict[str, Any]:
    """A stored definition as AEP's ``SegmentDefinition``, plus what the engine found (``itinera``)."""
    updated = _millis(row["updated_at"])
    lookback: timedelta | None = row["lookback"]
    body: dict[str, Any] = {
        "id": str(row["id"]),
        "schema": {"name": PROFILE_CLASS},
        "profileInstanceId": "ups",
        "imsOrgId": sandbox,
        "sandbox": {"sandboxName": sandbox},
        "name": row["name"],
        "description": row["description"],
        "expression": {"type": "PQL", "format": "pql/text", "value": row["expression"]},
        "evaluationInfo": {
            "batch": {"enabled": row["batch_enabled"]},
            "continuous": {"enabled": row["continuous_enabled"]},
            "synchronous": {"enabled": row["synchronous_enabled"]},
        },
        "dataGovernancePolicy": {"excludeOptOut": True},
        "labels": list(row["labels"]),
        "creationTime": _millis(row["created_at"]),
        "updateEpoch": updated // 1000,
        "updateTime": updated,
        "itinera": {
            "references": list(row["paths_read"]),
            "audiences": list(row["audiences"]),
            "streaming": {"eligible": row["streaming"], "reasons": list(row["streaming_reasons"])},
            "lookbackSeconds": lookback.total_seconds() if lookback is not None else None,
            "timeDependent": row["time_dependent"],
            "origin": row["origin"],
        },
    }
    if row["merge_policy_id"] is not None:
        body["mergePolicyId"] = row["merge_policy_id"]
    return body


# Checks that need no database


def parse_id(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _known_id(text: str, sandbox: str) -> uuid.UUID:
    found = parse_id(text)
    if found is None:
        raise NotFound(f"no segment definition {text!r} in sandbox {sandbox!r}")
    return found


def _check_schema(schema: SchemaIn, errors: list[FieldError]) -> None:
    if schema.name != PROFILE_CLASS:
        errors.append(FieldError("/schema/name", f"must be {PROFILE_CLASS}", "enum"))


def _check_governance(governance: GovernanceIn | None, errors: list[FieldError]) -> None:
    if governance is not None and not governance.excludeOptOut:
        errors.append(
            FieldError(
                "/dataGovernancePolicy/excludeOptOut", "profiles that opted out are always excluded", "const"
            )
        )


def _modes(info: EvaluationInfo | None, errors: list[FieldError]) -> Modes | None:
    if info is None or (info.batch is None and info.continuous is None and info.synchronous is None):
        return Modes(batch=True, continuous=False, synchronous=False)
    modes = Modes(
        batch=info.batch is not None and info.batch.enabled,
        continuous=info.continuous is not None and info.continuous.enabled,
        synchronous=info.synchronous is not None and info.synchronous.enabled,
    )
    if not (modes.batch or modes.continuous or modes.synchronous):
        errors.append(
            FieldError(
                "/evaluationInfo", "enable one of batch, continuous and synchronous at least", "required"
            )
        )
        return None
    return modes


def _check_expression(
    expression: ExpressionIn, max_length: int, errors: list[FieldError], extra: dict[str, Any]
) -> Findings | None:
    before = len(errors)
    if expression.type != "PQL":
        errors.append(
            FieldError("/expression/type", f"{expression.type!r} is not supported; use PQL", "enum")
        )
    if expression.format == "pql/json":
        errors.append(
            FieldError(
                "/expression/format", "pql/json is not supported; send the rule as pql/text", "unsupported"
            )
        )
    elif expression.format != "pql/text":
        errors.append(
            FieldError("/expression/format", f"{expression.format!r} is not supported; use pql/text", "enum")
        )
    if len(errors) > before:
        return None
    if len(expression.value) > max_length:
        errors.append(
            FieldError(
                "/expression/value", f"{len(expression.value)} characters; at most {max_length}", "maxLength"
            )
        )
        return None
    analysis = pql.analyse(expression.value)
    if analysis.problems:
        errors.extend(FieldError("/expression/value", str(p), "pql") for p in analysis.problems)
        extra["problems"] = [p.as_dict() for p in analysis.problems]
        return None
    return Findings.of(analysis)


def _check_streaming(
    modes: Modes, findings: Findings, errors: list[FieldError], extra: dict[str, Any]
) -> None:
    if findings.streaming or not (modes.continuous or modes.synchronous):
        return
    reasons = "; ".join(findings.streaming_reasons)
    if modes.continuous:
        errors.append(
            FieldError(
                "/evaluationInfo/continuous/enabled",
                f"the rule cannot be evaluated in streaming: {reasons}",
                "streaming",
            )
        )
    if modes.synchronous:
        errors.append(
            FieldError(
                "/evaluationInfo/synchronous/enabled",
                f"edge evaluation needs a rule that can stream, and this one cannot: {reasons}",
                "streaming",
            )
        )
    extra["streamingReasons"] = list(findings.streaming_reasons)


async def allowing_profile_only(db: asyncpg.Connection, sandbox: str, text: str) -> pql.Analysis:
    """The analysis of the rule ``text`` with AEP's allowance for audiences it names: a
    rule combining its event condition with ``inSegment`` streams when every audience
    it names is profile-only (see :func:`repository.profile_only`)."""
    analysis = pql.analyse(text)
    if analysis.streaming or analysis.problems or not analysis.segments:
        return analysis
    named = {name: key for name in analysis.segments if (key := parse_id(name)) is not None}
    only = await repository.profile_only(db, sandbox, list(named.values()))
    if not only:
        return analysis
    return pql.analyse(text, profile_only_segments=[name for name, key in named.items() if key in only])


async def _streaming_dependents_hold(db: asyncpg.Connection, sandbox: str, definition_id: uuid.UUID) -> None:
    """After a rule changed: every audience evaluated in streaming that names it,
    directly or not, can still be (a rule that read no event may read some now, and an
    audience combining an event with ``inSegment`` of it streams only while it does not).
    A Conflict naming those that could not."""
    broken = []
    dependents = await repository.dependents(db, sandbox, definition_id)
    for row in await repository.get_many(db, sandbox, dependents):
        if not (row["continuous_enabled"] or row["synchronous_enabled"]):
            continue
        analysis = await allowing_profile_only(db, sandbox, row["expression"])
        if not analysis.streaming:
            broken.append(row)
    if broken:
        named = ", ".join(f"{r['name']!r} ({r['id']})" for r in broken)
        raise Conflict(
            f"audiences evaluated in streaming name this one and could not be any more: {named}; "
            "evaluate them in batch first, or keep this rule free of events",
            extra={"streamingDependents": [{"id": str(r["id"]), "name": r["name"]} for r in broken]},
        )


def _raise_if_any(errors: list[FieldError], extra: dict[str, Any]) -> None:
    if errors:
        detail = "; ".join(f"{e.path}: {e.message}" for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise ValidationFailed(f"the segment definition is not valid: {detail}{more}", errors, extra)


# Checks of the reference graph


async def referenced_audiences(db: asyncpg.Connection, sandbox: str, findings: Findings) -> list[uuid.UUID]:
    """The audiences the rule names, which must all exist in the sandbox."""
    ids: dict[str, uuid.UUID] = {}
    unknown: list[str] = []
    for name in findings.audiences:
        parsed = parse_id(name)
        if parsed is None:
            unknown.append(name)
        else:
            ids[name] = parsed
    found = await repository.existing(db, sandbox, list(ids.values())) if ids else set()
    unknown += [name for name, parsed in ids.items() if parsed not in found]
    if unknown:
        raise ValidationFailed(
            f"the rule names audiences that do not exist in sandbox {sandbox!r}: {', '.join(unknown)}",
            [
                FieldError("/expression/value", f"no audience {name!r} in this sandbox", "audience")
                for name in unknown
            ],
            extra={"unknownAudiences": unknown},
        )
    return list(dict.fromkeys(ids.values()))


async def _check_acyclic(
    db: asyncpg.Connection, sandbox: str, definition_id: uuid.UUID, referenced: list[uuid.UUID]
) -> None:
    if definition_id in referenced:
        cycle = [str(definition_id)]
    else:
        cycle = [str(i) for i in await repository.dependents_among(db, sandbox, definition_id, referenced)]
    if cycle:
        raise ValidationFailed(
            f"the rule would make audiences depend on themselves: {', '.join(cycle)} already depend on "
            f"{definition_id}",
            [
                FieldError("/expression/value", f"inSegment({name!r}) closes a cycle", "cycle")
                for name in cycle
            ],
            extra={"cycle": cycle},
        )


async def _saved(sandbox: str, name: str, write: Awaitable[Row]) -> Row:
    try:
        row = await write
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name != repository.NAME_INDEX:
            raise
        raise AlreadyExists(
            f"a segment definition named {name!r} exists in sandbox {sandbox!r}; PATCH it to change it",
            [FieldError("/name", "already used in this sandbox", "unique")],
        ) from None
    return row


def _columns(
    name: str, description: str, expression: str, merge_policy_id: str | None, modes: Modes, found: Findings
) -> Columns:
    return Columns(
        name=name,
        description=description,
        expression=expression,
        merge_policy_id=merge_policy_id,
        batch=modes.batch,
        continuous=modes.continuous,
        synchronous=modes.synchronous,
        paths_read=found.paths_read,
        audiences=found.audiences,
        streaming=found.streaming,
        streaming_reasons=found.streaming_reasons,
        lookback=found.lookback,
        time_dependent=found.time_dependent,
    )


# Operations


async def create(
    db: asyncpg.Connection,
    sandbox: str,
    body: DefinitionIn,
    max_length: int,
    definition_id: uuid.UUID | None = None,
    origin: str = "rule",
) -> dict[str, Any]:
    """A new definition (with the id given, or a new one); ``origin`` ``upload`` for an
    uploaded audience's, whose rule is then never edited."""
    errors: list[FieldError] = []
    extra: dict[str, Any] = {}
    _check_schema(body.schema_, errors)
    _check_governance(body.dataGovernancePolicy, errors)
    modes = _modes(body.evaluationInfo, errors)
    found = _check_expression(body.expression, max_length, errors, extra)
    if found is not None and found.audiences and not found.streaming:
        await repository.lock_sandbox(db, sandbox)  # what it names must not change meanwhile
        found = Findings.of(await allowing_profile_only(db, sandbox, body.expression.value))
    if modes is not None and found is not None:
        _check_streaming(modes, found, errors, extra)
    _raise_if_any(errors, extra)
    assert modes is not None
    assert found is not None
    await repository.lock_sandbox(db, sandbox)
    referenced = await referenced_audiences(db, sandbox, found)
    definition_id = definition_id or uuid.uuid4()
    columns = _columns(body.name, body.description, body.expression.value, body.mergePolicyId, modes, found)
    row = await _saved(sandbox, body.name, repository.insert(db, sandbox, definition_id, columns, origin))
    await repository.set_references(db, sandbox, definition_id, referenced)
    return view(row, sandbox)


async def get(db: asyncpg.Connection, sandbox: str, segment_id: str) -> dict[str, Any]:
    row = await repository.get(db, sandbox, _known_id(segment_id, sandbox))
    if row is None:
        raise NotFound(f"no segment definition {segment_id!r} in sandbox {sandbox!r}")
    return view(row, sandbox)


async def update(
    db: asyncpg.Connection, sandbox: str, segment_id: str, patch: DefinitionPatch, max_length: int
) -> dict[str, Any]:
    definition_id = _known_id(segment_id, sandbox)
    await repository.lock_sandbox(db, sandbox)
    current = await repository.get(db, sandbox, definition_id, for_update=True)
    if current is None:
        raise NotFound(f"no segment definition {segment_id!r} in sandbox {sandbox!r}")
    given = patch.model_fields_set
    errors: list[FieldError] = []
    extra: dict[str, Any] = {}
    if patch.id is not None and parse_id(patch.id) != definition_id:
        errors.append(FieldError("/id", f"this is definition {definition_id}; the id cannot change", "const"))
    for field in ("name", "expression", "evaluationInfo"):
        if field in given and getattr(patch, field) is None:
            errors.append(FieldError(f"/{field}", "cannot be null", "type"))
    if (
        current["origin"] == "upload"
        and patch.expression is not None
        and patch.expression.value != current["expression"]
    ):
        errors.append(
            FieldError("/expression/value", "an uploaded audience's rule reads its uploads", "upload")
        )
    if patch.schema_ is not None:
        _check_schema(patch.schema_, errors)
    _check_governance(patch.dataGovernancePolicy, errors)
    modes = (
        _modes(patch.evaluationInfo, errors)
        if patch.evaluationInfo is not None
        else Modes(current["batch_enabled"], current["continuous_enabled"], current["synchronous_enabled"])
    )
    found = (
        _check_expression(patch.expression, max_length, errors, extra)
        if patch.expression is not None
        else Findings.stored(current)
    )
    if found is not None and found.audiences and (patch.expression is None or not found.streaming):
        # (a stored answer may be stale: the audiences named may read events by now)
        text = patch.expression.value if patch.expression is not None else current["expression"]
        found = Findings.of(await allowing_profile_only(db, sandbox, text))
    if modes is not None and found is not None:
        _check_streaming(modes, found, errors, extra)
    _raise_if_any(errors, extra)
    assert modes is not None
    assert found is not None
    referenced = None
    if patch.expression is not None:
        referenced = await referenced_audiences(db, sandbox, found)
        await _check_acyclic(db, sandbox, definition_id, referenced)
    name = patch.name if patch.name is not None else current["name"]
    columns = _columns(
        name,
        (patch.description or "") if "description" in given else current["description"],
        patch.expression.value if patch.expression is not None else current["expression"],
        patch.mergePolicyId if "mergePolicyId" in given else current["merge_policy_id"],
        modes,
        found,
    )
    row = await _saved(sandbox, name, repository.update(db, sandbox, definition_id, columns))
    if referenced is not None:
        await repository.set_references(db, sandbox, definition_id, referenced)
        await _streaming_dependents_hold(db, sandbox, definition_id)
    return view(row, sandbox)


async def delete(db: asyncpg.Connection, sandbox: str, segment_id: str) -> None:
    definition_id = _known_id(segment_id, sandbox)
    await repository.lock_sandbox(db, sandbox)
    if await repository.get(db, sandbox, definition_id, for_update=True) is None:
        raise NotFound(f"no segment definition {segment_id!r} in sandbox {sandbox!r}")
    users = await repository.referrers(db, sandbox, definition_id)
    if users:
        named = ", ".join(f"{u['name']!r} ({u['id']})" for u in users)
        raise Conflict(
            f"the audience {definition_id} is named by other audiences and cannot be deleted: {named}",
            extra={"referencedBy": [{"id": str(u["id"]), "name": u["name"]} for u in users]},
        )
    await repository.delete(db, sandbox, definition_id)


def page_of(keys: list[tuple[str, bool]], total: int, limit: int, start: int, size: int) -> dict[str, Any]:
    """AEP's page summary of a listing sorted by ``keys`` (the first one is named)."""
    first_field, first_descending = keys[0]
    return {
        "totalCount": total,
        "totalPages": math.ceil(total / limit),
        "sortField": first_field,
        "sort": "desc" if first_descending else "asc",
        "pageSize": size,
        "limit": limit,
        "start": start,
    }


async def listing(db: asyncpg.Connection, sandbox: str, query: ListQuery) -> dict[str, Any]:
    keys = order_by(query.sort)
    offset = query.start + query.page * query.limit
    total = await repository.count(db, sandbox, query.continuous)
    rows = await repository.page(
        db,
        sandbox,
        order=[(SORTABLE[field], descending) for field, descending in keys],
        offset=offset,
        limit=query.limit,
        continuous=query.continuous,
    )
    link: dict[str, str] = {}
    if offset + len(rows) < total:
        params: dict[str, Any] = {"start": offset + query.limit, "limit": query.limit, "sort": query.sort}
        if query.continuous is not None:
            params["evaluationInfo.continuous.enabled"] = str(query.continuous).lower()
        link["next"] = f"{DEFINITIONS}?{urlencode(params)}"
    return {
        "segments": [view(row, sandbox) for row in rows],
        "page": page_of(keys, total, query.limit, offset, len(rows)),
        "link": link,
    }


async def bulk_get(db: asyncpg.Connection, sandbox: str, ids: list[str], request_id: str) -> dict[str, Any]:
    """Each id asked for, keyed as asked: its definition, or a 404 entry (see ``bulk``)."""
    return await bulk.bulk_get(
        ids,
        lambda keys: repository.get_many(db, sandbox, keys),
        lambda row: view(row, sandbox),
        what="segment definition",
        sandbox=sandbox,
        request_id=request_id,
    )
