"""Audiences, previews and estimates in AEP's shape.

**Audiences.** Every segment definition of the sandbox is an AEP audience (``originName``
``REAL_TIME_CUSTOMER_PROFILE``, or ``CUSTOM_UPLOAD`` for an uploaded one;
``lifecycleState`` ``published``: a definition is evaluated from the moment it is
saved), shown as the definitions' own view (see
``definitions.service.view``) with AEP's audience fields and its size:
``metrics.data.totalProfiles`` is its current members (``realized`` or ``existing``) and
``metrics.data.totalProfilesByStatus`` counts every status, exits included, as the
memberships stand. Sizes are read from counters that every write of memberships keeps
in its own transaction (``migrations/0009_audience_sizes.sql``), so the list can be
sorted by size. ``dependents`` are the audiences its rule names (``inSegment``) and
``dependencies`` the audiences whose rules name it, as AEP's contract describes the two.

**Previews and estimates.** Creating a preview checks its rule and keeps it RUNNING; a
worker (``audiences.workers``) evaluates it, as a definition's rule would be (the
profile's events within the rule's look-back, its memberships for ``inSegment``), over
the sandbox's projection in one snapshot: every profile, or beyond
``ITINERA_SEGMENTATION_PREVIEW_MAX_PROFILES`` (as set when the preview was created) a
sample of that many (the profiles whose ids hash lowest, so the same profiles every time,
for every rule). It keeps the qualifying profiles with their attributes as evaluated, and
the counts, and the preview is RESULT_READY until it expires
(``ITINERA_SEGMENTATION_PREVIEW_TTL_S`` after its creation while it runs, then after its
evaluation) or is deleted; it changes no membership and announces nothing. The estimate
of a sample extrapolates the share that qualifies to every profile, with its standard
error and a 95% interval (Wilson's, with the finite population correction); without
sampling it is exact.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urlencode

import asyncpg
from asyncpg import Record as Row

from itinera.common import pql
from itinera.common.errors import FieldError, NotFound, ValidationFailed
from itinera.common.xdm.identity import STANDARD_NAMESPACE_IDS, standard_namespace_id
from itinera.segmentation.audiences import repository
from itinera.segmentation.audiences.repository import Filters, PreviewCounts, PreviewRequest
from itinera.segmentation.audiences.schemas import (
    FIXED,
    LIFECYCLE,
    MODES,
    NAMESPACE,
    ORIGINS,
    SORTED_BY,
    TYPE,
    ListQuery,
    PageQuery,
    PreviewIn,
    parse_property,
)
from itinera.segmentation.config import SegmentationSettings
from itinera.segmentation.definitions import service as definitions
from itinera.segmentation.definitions.schemas import PROFILE_CLASS, order_by
from itinera.segmentation.definitions.service import parse_id
from itinera.segmentation.membership.repository import Audience
from itinera.segmentation.membership.service import events_for

AUDIENCES = "/data/core/ups/audiences"
PREVIEWS = "/data/core/ups/preview"
ESTIMATES = "/data/core/ups/estimate"
PROFILE_ACCESS = "/data/core/ups/access/entities"
READY = "RESULT_READY"
RUNNING = "RUNNING"
FAILED = "FAILED"
CHUNK = 2_000
"""Profiles a preview reads and evaluates at a time."""
PURGED = 100
"""Expired previews removed, at most, when a preview is created."""
Z_95 = 1.959964
_STATUSES = ("realized", "existing", "exited")
_MODELS = (PROFILE_CLASS, "xdm.model.profile")
_STANDARD_CODES = {code.lower(): code for code in STANDARD_NAMESPACE_IDS}
_DEFINED_ON = {
    "meta:resourceType": "unions",
    "meta:containerId": "tenant",
    "$ref": "https://ns.adobe.com/xdm/context/profile__union",
}
_ETAGS = uuid.UUID("0b7f1f5e-5a3c-4f7e-8d2a-6c1e9b4d3a20")


# Audiences


def audience(
    definition: dict[str, Any], counts: Mapping[str, int], dependencies: Sequence[str]
) -> dict[str, Any]:
    """A definition's view (``definitions.service.view``) as AEP's ``PlatformGeneratedAudience``."""
    by_status = {status: counts.get(status, 0) for status in _STATUSES}
    etag = uuid.uuid5(_ETAGS, f"{definition['id']}|{definition['updateTime']}")
    return {
        **definition,
        "audienceId": definition["id"],
        "namespace": NAMESPACE,
        "type": TYPE,
        "originName": ORIGINS[definition["itinera"]["origin"]],
        "lifecycleState": LIFECYCLE,
        "isSystem": False,
        "createEpoch": definition["creationTime"] // 1000,
        "_etag": f'"{etag}"',
        "dependents": list(definition["itinera"]["audiences"]),
        "dependencies": list(dependencies),
        "definedOn": [_DEFINED_ON],
        "metrics": {
            "type": "membership",
            "data": {
                "totalProfiles": by_status["realized"] + by_status["existing"],
                "totalProfilesByStatus": by_status,
            },
        },
    }


async def _audiences(
    db: asyncpg.Connection, sandbox: str, views: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Definitions' views as audiences, with their sizes and the audiences naming them."""
    ids = [uuid.UUID(view["id"]) for view in views]
    counts = await repository.sizes(db, sandbox, ids) if ids else {}
    named_by = await repository.referrers_of(db, sandbox, ids) if ids else {}
    return [
        audience(view, counts.get(key, {}), [str(other) for other in named_by.get(key, [])])
        for view, key in zip(views, ids, strict=True)
    ]


async def get(db: asyncpg.Connection, sandbox: str, audience_id: str) -> dict[str, Any]:
    try:
        view = await definitions.get(db, sandbox, audience_id)
    except NotFound:
        raise NotFound(f"no audience {audience_id!r} in sandbox {sandbox!r}") from None
    return (await _audiences(db, sandbox, [view]))[0]


async def bulk_get(db: asyncpg.Connection, sandbox: str, ids: list[str], request_id: str) -> dict[str, Any]:
    """Each id asked for, keyed as asked: its audience, or a 404 entry (as the
    definitions' bulk-get answers: 400 for 0 or more than 100 ids, 404 when none exists)."""
    answered: dict[str, dict[str, Any]] = (await definitions.bulk_get(db, sandbox, ids, request_id))[
        "results"
    ]
    found = [entry for entry in answered.values() if "id" in entry]
    shown = {entry["id"]: entry for entry in await _audiences(db, sandbox, found)}
    return {"results": {key: shown.get(entry.get("id"), entry) for key, entry in answered.items()}}


def _filters(query: ListQuery) -> Filters | None:
    """What the listed definitions must match; None when no audience can."""
    if query.entityType is not None and query.entityType != PROFILE_CLASS:
        return None
    filters = Filters(name_contains=query.name, description_contains=query.description)
    if query.property is None:
        return filters
    attribute, value = parse_property(query.property)
    if attribute in FIXED:
        return filters if value == FIXED[attribute] else None
    if attribute in ("id", "audienceId"):
        key = parse_id(value)
        return replace(filters, id=key) if key is not None else None
    if attribute == "name":
        return replace(filters, name=value)
    if attribute == "mergePolicyId":
        return replace(filters, merge_policy_id=value)
    if attribute == "originName":
        origin = next((o for o, name in ORIGINS.items() if name == value), None)
        return replace(filters, origin=origin) if origin is not None else None
    enabled = value == "true"
    if attribute == MODES[0]:
        return replace(filters, batch=enabled)
    if attribute == MODES[1]:
        return replace(filters, continuous=enabled)
    return replace(filters, synchronous=enabled)


async def listing(db: asyncpg.Connection, sandbox: str, query: ListQuery) -> dict[str, Any]:
    keys = order_by(query.sort, SORTED_BY)
    filters = _filters(query)
    total = await repository.count_matching(db, sandbox, filters) if filters is not None else 0
    rows: list[Row] = []
    if filters is not None and query.start < total:
        order = [(SORTED_BY[field], descending) for field, descending in keys]
        rows = await repository.matching(db, sandbox, filters, order, query.start, query.limit)
    children = await _audiences(db, sandbox, [definitions.view(row, sandbox) for row in rows])
    page = definitions.page_of(keys, total, query.limit, query.start, len(rows))
    links: dict[str, Any] = {}
    following = query.start + len(rows)
    if rows and following < total:
        page["next"] = following
        params = query.model_dump(exclude_none=True) | {"start": following}
        links["next"] = {"href": f"{AUDIENCES}?{urlencode(params)}"}
    return {"children": children, "_page": page, "_links": links}


# Previews


@dataclass(frozen=True, slots=True)
class Limits:
    max_profiles: int
    """Profiles evaluated at most; beyond, a sample of this many."""
    ttl: timedelta
    max_expression_length: int
    event_limit: int
    """The most recent events of a profile read, as for every evaluation."""

    @classmethod
    def of(cls, settings: SegmentationSettings) -> Limits:
        return cls(
            max_profiles=settings.segmentation_preview_max_profiles,
            ttl=timedelta(seconds=settings.segmentation_preview_ttl_s),
            max_expression_length=settings.segmentation_max_expression_length,
            event_limit=settings.segmentation_evaluation_events,
        )


def _pql_errors(problems: Sequence[pql.Problem]) -> tuple[list[FieldError], dict[str, Any]]:
    return (
        [FieldError("/predicateExpression", str(p), "pql") for p in problems],
        {"problems": [p.as_dict() for p in problems]},
    )


def _checked_rule(body: PreviewIn, max_length: int) -> tuple[pql.Rule, pql.Analysis]:
    """The compiled rule and what the engine found in it; a 400 listing every problem
    (each PQL problem with its line, column and offsets in ``problems``)."""
    errors: list[FieldError] = []
    extra: dict[str, Any] = {}
    kind = body.predicateType.lower()
    if kind == "pql/json":
        errors.append(FieldError("/predicateType", "pql/json is not supported; send pql/text", "unsupported"))
    elif kind not in ("pql/text", "pql"):
        errors.append(
            FieldError("/predicateType", f"{body.predicateType!r} is not supported; use pql/text", "enum")
        )
    if body.predicateModel not in _MODELS:
        errors.append(
            FieldError("/predicateModel", f"must be {PROFILE_CLASS}: audiences are of profiles", "enum")
        )
    text = body.predicateExpression
    analysis = None
    if len(text) > max_length:
        errors.append(
            FieldError("/predicateExpression", f"{len(text)} characters; at most {max_length}", "maxLength")
        )
    else:
        analysis = pql.analyse(text)
        more, extra = _pql_errors(analysis.problems)
        errors += more
    rule = None
    if not errors:
        try:
            rule = pql.compile_rule(text)
        except pql.PqlError as exc:
            errors, extra = _pql_errors(exc.problems)
    if errors or rule is None or analysis is None:
        detail = "; ".join(f"{e.path}: {e.message}" for e in errors[:3])
        raise ValidationFailed(f"the preview's rule cannot be evaluated: {detail}", errors, extra)
    return rule, analysis


async def _check_audiences(db: asyncpg.Connection, sandbox: str, analysis: pql.Analysis) -> None:
    """Every audience the rule names with ``inSegment`` exists in the sandbox, as a
    definition's must (the same check, its problems at ``/predicateExpression``)."""
    if not analysis.segments:
        return
    try:
        await definitions.referenced_audiences(db, sandbox, definitions.Findings.of(analysis))
    except ValidationFailed as exc:
        errors = [replace(error, path="/predicateExpression") for error in exc.errors]
        raise ValidationFailed(exc.detail, errors, exc.extra) from None


async def _qualifying(
    db: asyncpg.Connection,
    sandbox: str,
    rule: pql.Rule,
    reads: Audience,
    profiles: Mapping[str, dict[str, Any]],
    now: datetime,
    event_limit: int,
) -> list[str]:
    """The profiles the rule holds for, with the events and memberships it reads."""
    events = await events_for(db, sandbox, [reads], profiles, now, event_limit)
    held = (
        await repository.statuses_in(db, sandbox, reads.audiences, list(profiles)) if reads.audiences else {}
    )
    return [
        profile_id
        for profile_id, attributes in profiles.items()
        if rule.qualifies(
            attributes, now=now, events=events.get(profile_id, []), segments=held.get(profile_id, {})
        )
    ]


async def purge_expired(db: asyncpg.Connection) -> int:
    return await repository.purge_expired(db, PURGED)


async def create_preview(
    db: asyncpg.Connection, sandbox: str, body: PreviewIn, limits: Limits
) -> dict[str, Any]:
    """Check the rule (a 400 with every problem) and keep the preview RUNNING, for a
    worker to evaluate (:func:`evaluate_preview`) with the bound and the time-to-live of
    ``limits``."""
    _, analysis = _checked_rule(body, limits.max_expression_length)
    await _check_audiences(db, sandbox, analysis)
    preview_id = uuid.uuid4()
    asked = PreviewRequest(
        expression=body.predicateExpression,
        predicate_model=body.predicateModel,
        graph_type=body.graphType,
        merge_policy_id=body.mergePolicyId,
        max_profiles=limits.max_profiles,
        ttl=limits.ttl,
    )
    await repository.insert_preview(db, sandbox, preview_id, asked)
    return {
        "previewQueryId": str(preview_id),
        "state": RUNNING,
        "previewQueryStatus": RUNNING,
        "previewId": str(preview_id),
        "previewExecutionId": 0,
    }


Progress = Callable[[int, int, int], Awaitable[None]]
"""Told (profiles in the snapshot, read so far, matched so far) after each chunk."""


async def evaluate_preview(
    db: asyncpg.Connection,
    preview: Mapping[str, Any],
    event_limit: int,
    progress: Progress | None = None,
    chunk: int = CHUNK,
) -> bool:
    """Evaluate a RUNNING preview and store its results (RESULT_READY), in the caller's
    transaction, which must be REPEATABLE READ: the profiles counted, read and kept are
    those of one snapshot. The rule was checked when the preview was created; an
    audience it names that was deleted since holds no profile. ``progress`` hears how far
    it got after each ``chunk`` profiles. Whether the results were kept (not when the
    preview expired meanwhile)."""
    sandbox, preview_id, text = preview["sandbox"], preview["id"], preview["expression"]
    analysis = pql.analyse(text)
    rule = pql.compile_rule(text)
    now = datetime.now(UTC)
    reads = Audience(
        id=str(preview_id),
        expression=text,
        references=tuple(analysis.references),
        audiences=tuple(analysis.segments),
        lookback=analysis.lookback,
        time_dependent=analysis.time_dependent,
        updated_at=now,
    )
    total = await repository.profile_count(db, sandbox)
    bound: int = preview["max_profiles"]
    sample = bound if total > bound else None
    read = 0
    qualifying: list[str] = []
    namespaces: Counter[str] = Counter()
    async for profiles in repository.profiles_in_chunks(db, sandbox, sample, chunk):
        read += len(profiles)
        found = await _qualifying(db, sandbox, rule, reads, profiles, now, event_limit)
        qualifying += found
        namespaces.update(code for profile_id in found for code in namespaces_of(profiles[profile_id]))
        if progress is not None:
            await progress(total, read, len(qualifying))
    counts = PreviewCounts(
        profiles_total=total,
        profiles_read=read,
        profiles_matched=len(qualifying),
        evaluated_at=now,
        namespaces=dict(namespaces),
    )
    return await repository.store_results(db, sandbox, preview_id, counts, qualifying)


def namespaces_of(attributes: Mapping[str, Any]) -> set[str]:
    """The namespaces a profile has an identity in (its ``identityMap``), standard ones
    under their usual code whatever the case given."""
    identity_map = attributes.get("identityMap")
    if not isinstance(identity_map, Mapping):
        return set()
    return {
        _STANDARD_CODES.get(code.lower(), code)
        for code, items in identity_map.items()
        if isinstance(code, str) and isinstance(items, list) and items
    }


def namespace_distribution(counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """AEP's ``estimatedNamespaceDistribution``: qualifying profiles per namespace, the
    most common first. ``namespaceId`` is AEP's id of a standard namespace; a custom
    namespace's id is the profile service's, so it is shown by its code."""
    return [
        {
            "namespaceId": str(standard_namespace_id(code) or code),
            "namespaceCode": code,
            "profilesMatchedSoFar": matched,
        }
        for code, matched in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]


async def _preview(db: asyncpg.Connection, sandbox: str, preview_id: str) -> Row:
    key = parse_id(preview_id)
    row = await repository.preview(db, sandbox, key) if key is not None else None
    if row is None:
        raise NotFound(f"no preview {preview_id!r} in sandbox {sandbox!r}, or it has expired")
    return row


def _access(profile_id: uuid.UUID) -> str:
    """The profile in AEP's profile access API (the profile service's)."""
    return f"{PROFILE_ACCESS}?{urlencode({'schema.name': PROFILE_CLASS, 'entityId': str(profile_id)})}"


async def results(db: asyncpg.Connection, sandbox: str, preview_id: str, page: PageQuery) -> dict[str, Any]:
    """A page of a preview's qualifying profiles, by profile id."""
    found = await _preview(db, sandbox, preview_id)
    ready = found["state"] == READY
    rows = await repository.results(db, sandbox, found["id"], page.offset, page.limit) if ready else []
    total: int = found["profiles_matched"]
    body: dict[str, Any] = {
        "state": found["state"],
        "results": [
            {
                "objectId": str(row["profile_id"]),
                "entity": row["attributes"],
                "_href": _access(row["profile_id"]),
                "relatedObjects": [],
            }
            for row in rows
        ],
        "_page": {
            "offset": str(page.offset),
            "limit": page.limit,
            "pageSize": len(rows),
            "totalCount": total,
        },
    }
    following = page.offset + len(rows)
    if rows and following < total:
        body["_page"]["next"] = str(following)
        body["link"] = f"{PREVIEWS}/{found['id']}?{urlencode({'offset': following, 'limit': page.limit})}"
    return body


class Estimate(NamedTuple):
    size: int
    standard_error: int
    low: int
    high: int


def estimate(total: int, read: int, matched: int) -> Estimate:
    """The qualifying profiles among ``total`` from ``matched`` of ``read`` sampled
    without replacement: exact when every profile was read; else the sample's share
    times ``total``, its standard error, and Wilson's 95% interval on the effective
    sample size (``read`` over the finite population correction), kept within what is
    possible (at least ``matched``, at most all but the sample's non-qualifying)."""
    if read >= total or read == 0:
        return Estimate(matched, 0, matched, matched)
    share = matched / read
    correction = (total - read) / (total - 1)
    effective = read / correction
    z2 = Z_95 * Z_95
    centre = (share + z2 / (2 * effective)) / (1 + z2 / effective)
    half = Z_95 * math.sqrt(share * (1 - share) / effective + z2 / (4 * effective**2)) / (1 + z2 / effective)
    return Estimate(
        size=round(share * total),
        standard_error=round(total * math.sqrt(share * (1 - share) / read * correction)),
        low=max(matched, math.floor((centre - half) * total)),
        high=min(total - (read - matched), math.ceil((centre + half) * total)),
    )


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def get_estimate(db: asyncpg.Connection, sandbox: str, estimate_id: str) -> dict[str, Any]:
    """The preview's estimate: its figures once it is RESULT_READY (zeros before), the
    reason it FAILED in ``error.description``."""
    found = await _preview(db, sandbox, estimate_id)
    total, read, matched = found["profiles_total"], found["profiles_read"], found["profiles_matched"]
    if found["state"] == RUNNING:
        so_far = await repository.progress_of(db, sandbox, found["id"])
        if so_far is not None:
            total, read, matched = (
                so_far["profiles_total"],
                so_far["profiles_read"],
                so_far["profiles_matched"],
            )
    figures = estimate(total, read, matched)
    extension: dict[str, Any] = {"expiresAt": _iso(found["expires_at"])}
    if found["state"] == READY:
        extension |= {
            "sampled": read < total,
            "interval": {"low": figures.low, "high": figures.high},
            "evaluatedAt": _iso(found["evaluated_at"]),
        }
    return {
        "estimatedSize": figures.size,
        "numRowsToRead": read,
        "estimatedNamespaceDistribution": (
            namespace_distribution(found["namespace_counts"]) if found["state"] == READY else []
        ),
        "state": found["state"],
        "profilesReadSoFar": read,
        "profilesMatchedSoFar": matched,
        "standardError": figures.standard_error,
        "error": {"description": found["error"] if found["state"] == FAILED else "", "traceback": ""},
        "totalRows": total,
        "confidenceInterval": "95%",
        "_links": {"preview": f"{PREVIEWS}/{found['id']}"},
        "itinera": extension,
    }


async def delete_preview(db: asyncpg.Connection, sandbox: str, preview_id: str) -> None:
    key = parse_id(preview_id)
    if key is None or not await repository.delete_preview(db, sandbox, key):
        raise NotFound(f"no preview {preview_id!r} in sandbox {sandbox!r}, or it has expired")
