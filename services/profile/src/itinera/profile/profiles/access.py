"""``GET /data/core/ups/access/entities``: AEP's profile and event look-up.

- ``schema.name=_xdm.context.profile`` with ``entityId`` and ``entityIdNS`` (an
  identity), or ``entityId`` alone (a profile id or an ``xid``): the merged profile,
  keyed by its id, optionally narrowed with ``fields``.
- ``schema.name=_xdm.context.experienceevent`` with ``relatedSchema.name=_xdm.context.profile``
  and ``relatedEntityId`` (+ ``relatedEntityIdNS``): the profile's events, in
  ``[startTime, endTime)`` (epoch milliseconds), ordered by ``orderby`` (+/-timestamp),
  ``limit`` per page, ``start`` the page token from ``_page.next``.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import asyncpg
import orjson
from fastapi import APIRouter, Request, Security
from pydantic import BaseModel, ConfigDict, Field

from itinera.common.auth import Principal, require_scope
from itinera.common.errors import BadRequest, FieldError, NotFound
from itinera.common.service import Db, Runtime
from itinera.common.web.query import parse_query, query_parameters
from itinera.common.web.responses import Json
from itinera.profile.identity import namespaces as ns
from itinera.profile.identity import repository as graph
from itinera.profile.identity.endpoints import from_xid
from itinera.profile.identity.graph import Node
from itinera.profile.profiles import policies, repository, service

router = APIRouter(tags=["profiles"])
Reader = Annotated[Principal, Security(require_scope("profiles:read"))]
PROFILE = "_xdm.context.profile"
EVENT = "_xdm.context.experienceevent"


async def _identity(db: Db, sandbox: str, entity_id: str, namespace: str | None) -> Node | None:
    """The identity asked about: ``entityIdNS`` + ``entityId``, or an ``xid``; None
    when ``entityId`` is a profile id."""
    if namespace:
        return await ns.node_of(db, sandbox, namespace, entity_id)
    try:
        code, value = from_xid(entity_id)
    except BadRequest:
        return None
    return await ns.node_of(db, sandbox, code, value)


async def _identity_or_profile(
    db: Db, sandbox: str, entity_id: str, namespace: str | None
) -> tuple[str, Node | None]:
    """(profile id, the identity asked about, if any)."""
    node = await _identity(db, sandbox, entity_id, namespace)
    if node is None:
        return entity_id, None  # a profile id
    profile_id = await graph.profile_of(db, sandbox, node)
    if profile_id is None:
        raise NotFound(f"no profile with identity {node.key} in sandbox {sandbox!r}")
    return profile_id, node


def _profile_answer(view: dict[str, Any], fields: str | None) -> dict[str, Any]:
    entity = dict(view["entity"])
    entity["identities"] = [
        {"id": i["id"], "namespace": {"code": i["namespace"]}} for i in view["identities"]
    ]
    return {
        view["profileId"]: {
            "entityId": view["profileId"],
            "mergePolicy": {"id": view["mergePolicyId"]},
            "sources": view["sources"],
            "entity": _narrow(entity, fields) if fields else entity,
            "lastModifiedAt": view["lastModifiedAt"].isoformat() if view["lastModifiedAt"] else None,
        }
    }


def _narrow(entity: dict[str, Any], fields: str) -> dict[str, Any]:
    """Only the named paths (``person.name,homeAddress``)."""
    narrowed: dict[str, Any] = {}
    for path in (p.strip() for p in fields.split(",") if p.strip()):
        keys = path.split(".")
        node: Any = entity
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            continue
        target = narrowed
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = node
    return narrowed


def _millis(value: int | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise BadRequest(
            f"{name} is out of range", [FieldError(f"/query/{name}", "epoch milliseconds", "range")]
        ) from None


def _token(at: datetime, event_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([at.isoformat(), event_id])).decode()


def _cursor(token: str) -> tuple[datetime, str]:
    try:
        at, event_id = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        return datetime.fromisoformat(at), str(event_id)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise BadRequest(
            "start is not a page token this API gave", [FieldError("/query/start", "invalid", "cursor")]
        ) from None


class EntitiesQuery(BaseModel):
    """The look-up's query string, validated as one model (AEP's parameter names)."""

    model_config = ConfigDict(populate_by_name=True)

    schema_name: str = Field(alias="schema.name", max_length=64)
    entityId: str | None = Field(default=None, max_length=1200)
    entityIdNS: str | None = Field(default=None, max_length=128)
    relatedSchema_name: str | None = Field(default=None, alias="relatedSchema.name", max_length=64)
    relatedEntityId: str | None = Field(default=None, max_length=1200)
    relatedEntityIdNS: str | None = Field(default=None, max_length=128)
    mergePolicyId: str | None = Field(default=None, max_length=64)
    fields: str | None = Field(default=None, max_length=2000)
    startTime: int | None = Field(default=None, ge=0)
    endTime: int | None = Field(default=None, ge=0)
    limit: int = Field(default=1000, ge=1, le=1000)
    orderby: str = Field(default="+timestamp", pattern=r"^[+-]?timestamp$")
    start: str | None = Field(default=None, max_length=512)


@router.get(
    "/data/core/ups/access/entities",
    summary="A profile, or a profile's events (AEP shape)",
    response_class=Json,
    openapi_extra=query_parameters(EntitiesQuery),
)
async def entities(request: Request, caller: Reader) -> Json:
    query = parse_query(EntitiesQuery, request)
    runtime: Runtime = request.app.state.runtime
    async with runtime.pool.acquire() as db:  # not the Db dependency: this is the hot path
        return Json(await _entities(request, caller, db, query))


async def _entities(
    request: Request, caller: Principal, db: asyncpg.Connection, q: EntitiesQuery
) -> dict[str, Any]:
    schema_name, entityId, entityIdNS, mergePolicyId, fields = (
        q.schema_name,
        q.entityId,
        q.entityIdNS,
        q.mergePolicyId,
        q.fields,
    )
    if schema_name == PROFILE:
        if not entityId:
            raise BadRequest("entityId is required", [FieldError("/query/entityId", "required", "required")])
        if mergePolicyId is None:  # the default policy's view, kept up to date: one statement
            node = await _identity(db, caller.sandbox, entityId, entityIdNS)
            stored = await service.default_view(db, caller.sandbox, node) if node else None
            if stored is not None:
                return _profile_answer(stored, fields)
        async with db.transaction():
            policy = await policies.get(db, caller.sandbox, mergePolicyId)
        profile_id, node = await _identity_or_profile(db, caller.sandbox, entityId, entityIdNS)
        return _profile_answer(
            await service.view(db, caller.sandbox, profile_id, policy, identity=node), fields
        )
    if schema_name != EVENT:
        raise BadRequest(
            f"schema.name must be {PROFILE} or {EVENT}",
            [FieldError("/query/schema.name", "unsupported schema", "enum")],
        )
    relatedEntityId, relatedEntityIdNS, start = q.relatedEntityId, q.relatedEntityIdNS, q.start
    if q.relatedSchema_name != PROFILE or not relatedEntityId:
        raise BadRequest(
            "events are looked up by the profile they belong to",
            [
                FieldError(
                    "/query/relatedEntityId", f"relatedSchema.name={PROFILE} and relatedEntityId", "required"
                )
            ],
        )
    async with db.transaction():
        policy = await policies.get(db, caller.sandbox, mergePolicyId)
    profile_id, node = await _identity_or_profile(db, caller.sandbox, relatedEntityId, relatedEntityIdNS)
    live, member_rows = await service.resolve_id(db, caller.sandbox, profile_id)
    members = [Node(r["namespace"], r["value"]) for r in member_rows]
    used = members if policy.identity_graph == "pdg" or node is None else [node]
    rows = await repository.events_of(
        db,
        caller.sandbox,
        used,
        start=_millis(q.startTime, "startTime"),
        end=_millis(q.endTime, "endTime"),
        after=_cursor(start) if start else None,
        descending=q.orderby.startswith("-"),
        limit=q.limit,
    )
    next_token = _token(rows[-1]["occurred_at"], rows[-1]["event_id"]) if len(rows) == q.limit else None
    next_href = None
    if next_token:
        query = dict(request.query_params) | {"start": next_token}
        next_href = f"{request.url.path}?{urlencode(query)}"
    return {
        "_page": {
            "orderby": q.orderby,
            "start": rows[0]["event_id"] if rows else None,
            "count": len(rows),
            "next": next_token,
        },
        "children": [
            {
                "relatedEntityId": live,
                "entityId": r["event_id"],
                "timestamp": int(r["occurred_at"].timestamp() * 1000),
                "entity": _narrow(r["body"], fields) if fields else r["body"],
            }
            for r in rows
        ],
        "_links": {"next": {"href": next_href}} if next_href else {},
    }
