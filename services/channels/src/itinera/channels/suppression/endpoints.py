"""AJO's Suppression API over the suppression list the channels check before sending.

- ``GET /ajo/config/suppression/addresses`` and ``/domains``: a page of entries:
  ``type`` (``client``, the default: suppressed; ``allowed``), ``orderby``
  (``creationdate``, ``entityvalue``, ``-`` for descending; ``-creationdate`` by default),
  ``limit`` (20, at most 1,000), ``start`` (the ``_page.next`` of the page before);
  ``{_page: {orderby, next, count}, items, _links: {self, next}}``.
- ``POST`` the same paths: an array of ``{entity: {type, entityValue}, comment, user}``
  -> 201, the entries (one already listed is refreshed, keeping its id).
- ``GET``/``DELETE`` ``.../addresses/{email}`` and ``.../domains/{domain}``: one entry
  (404 when not listed); DELETE answers 204, and an address taken off the suppression
  list has its soft bounces forgotten (see :mod:`itinera.channels.suppression.bounces`).

Addresses are email addresses by default; ``entity.type`` ``phone`` or ``pushToken``
lists an SMS number or a device token (an addition: AJO's list is of email addresses).
- ``POST /ajo/config/suppression/uploads`` (``multipart/form-data``, the CSV as ``file``;
  or the CSV itself as ``text/csv``; ``type`` as above): the file's entries added at
  once (see :mod:`itinera.channels.suppression.uploads`) -> 201 ``{success: {jobId}}``;
  ``GET`` the same path: the jobs, newest first (``limit``, ``start``); ``GET``/``DELETE``
  ``.../uploads/{jobId}``: one job, with its ``failedRecords`` / forgotten (204).
- ``GET``/``PUT`` ``/v1/allowed-list``: ``{active}``, whether the allowed list is in force
  (AJO's toggle under the email settings, an addition to its API): while it is, emails
  are sent only to addresses on the allowed list (``type=allowed``) or in its domains,
  to nobody when the list is empty; others are excluded ``not-allowed``. SMS, push and
  webhooks are not concerned, as in AJO.

Reads need ``channels:read``, writes ``channels:write``. ``x-api-key`` and
``x-gw-ims-org-id`` are accepted and ignored; the sandbox is the token's.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import asyncpg
from fastapi import APIRouter, Body, Query, Request, Response, Security

from itinera.channels.config import ChannelsSettings
from itinera.channels.suppression import repository, uploads
from itinera.channels.suppression.entities import InvalidEntry, entity
from itinera.channels.suppression.schemas import (
    AJO_TYPES,
    PROBLEMS,
    AddEntry,
    AllowedListIn,
    AllowedListOut,
    EntryOut,
    EntryPage,
)
from itinera.common.auth import Principal, require_scope
from itinera.common.errors import FieldError, Forbidden, NotFound, ValidationFailed
from itinera.common.service import Db
from itinera.common.web import bodies
from itinera.common.web.problems import documented

router = APIRouter(tags=["suppression (AJO)"], responses=PROBLEMS)
Reader = Annotated[Principal, Security(require_scope("channels:read"))]
Writer = Annotated[Principal, Security(require_scope("channels:write"))]
BASE = "/ajo/config/suppression"
ListType = Annotated[Literal["client", "allowed"], Query(description="client: suppressed; allowed")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: documented("Not on the list")}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def entry_out(kind: str, row: asyncpg.Record) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(row["id"]),
        "entity": {
            "type": row["entity_type"] if kind == "addresses" else "domain",
            "entityValue": row["value"],
        },
        "suppressed": {
            "type": AJO_TYPES[row["reason"]],
            "reason": row["reason"],
            "user": row["suppressed_by"],
            "comment": row["comment"],
            "date": _ms(row["updated_at"]),
        },
        "creationDate": _ms(row["created_at"]),
        "lastModifiedDate": _ms(row["updated_at"]),
        "status": "active",
        "listType": row["list_type"],
        "client": {"imsOrgId": None, "sandboxId": row["sandbox"]},
    }
    if kind == "addresses":
        out["bounceState"] = {"softCount": row["soft_count"], "bounceEvents": list(row["bounce_events"])}
    return out


def _entries(kind: str, body: list[AddEntry]) -> list[dict[str, Any]]:
    problems: list[FieldError] = []
    entries = []
    for i, item in enumerate(body):
        try:
            entity_type, value = entity(kind, item.entity.type, item.entity.entityValue)
        except InvalidEntry as invalid:
            problems.append(invalid.at(f"/body/{i}/entity"))
            continue
        for name in ("comment", "user"):
            text = getattr(item, name)
            if text is not None and "\x00" in text:
                problems.append(FieldError(f"/body/{i}/{name}", "NUL characters are not allowed", "format"))
        entries.append(
            {
                "value": value,
                "entity_type": entity_type,
                "reason": "manual",
                "user": item.user,
                "comment": item.comment,
            }
        )
    if problems:
        raise ValidationFailed("some entries are not valid", problems)
    return entries


def _after(order: str, start: str | None) -> tuple[datetime | None, str] | None:
    if start is None:
        return None
    if "\x00" in start:
        raise ValidationFailed(
            "start is not a page key",
            [FieldError("/query/start", "NUL characters are not allowed", "format")],
        )
    if order == "entityvalue":
        return None, start
    stamp, _, value = start.partition(":")
    try:
        return datetime.fromtimestamp(int(stamp) / 1000, UTC), value
    except (ValueError, OverflowError, OSError):
        raise ValidationFailed(
            "start is not a page key",
            [FieldError("/query/start", "expected the _page.next of a page", "format")],
        ) from None


async def _page(
    db: asyncpg.Connection,
    kind: str,
    sandbox: str,
    list_type: str,
    orderby: str,
    limit: int,
    start: str | None,
    filters: list[tuple[str, str, Any]],
) -> dict[str, Any]:
    descending = orderby.startswith("-")
    order = orderby.lstrip("-").lower()
    if order not in ("creationdate", "entityvalue"):
        raise ValidationFailed(
            "orderby is creationdate or entityvalue",
            [FieldError("/query/orderby", "expected creationdate or entityvalue, - for descending", "enum")],
        )
    rows = await repository.page(
        db, kind, sandbox, list_type, order, descending, _after(order, start), limit, filters
    )
    more = len(rows) > limit
    rows = rows[:limit]
    following = None
    if more:
        last = rows[-1]
        following = last["value"] if order == "entityvalue" else f"{_ms(last['created_at'])}:{last['value']}"
    query = {"type": list_type, "orderby": orderby, "limit": limit}
    return _ajo_page(f"{BASE}/{kind}", query, start, following, [entry_out(kind, r) for r in rows])


def _ajo_page(
    path: str, query: dict[str, Any], start: str | None, following: str | None, items: list[dict[str, Any]]
) -> dict[str, Any]:
    """A page as AJO's Suppression API answers it: ``{_page, items, _links}``."""
    links: dict[str, Any] = {
        "self": {"href": f"{path}?{urlencode({**query, **({'start': start} if start else {})})}"}
    }
    if following is not None:
        links["next"] = {"href": f"{path}?{urlencode({**query, 'start': following})}"}
    return {
        "_page": {"orderby": query["orderby"], "next": following, "count": len(items)},
        "items": items,
        "_links": links,
    }


_PROPERTY = re.compile(r"^(creationdate|channel)(==|!=|<=|>=|<|>|=)(.+)$")
_OPERATORS = {"==": "=", "=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_CHANNELS = {**repository.ENTITY_TYPES, "phone": "phone", "pushtoken": "pushToken"}


def _property(index: int, text: str) -> tuple[str, str, Any]:
    """A ``property`` filter of AJO's lists: ``creationdate`` (epoch milliseconds) or
    ``channel`` (``email``, ``sms``, ``push``; equal or not), an operator and a value."""
    found = _PROPERTY.fullmatch(text.strip())
    problem = "expected creationdate or channel, an operator (==, !=, <, <=, >, >=) and a value"
    if found is not None:
        name, operator, value = found[1], _OPERATORS[found[2]], found[3].strip()
        if name == "creationdate" and value.isdigit() and len(value) <= 15:
            return name, operator, datetime.fromtimestamp(int(value) / 1000, UTC)
        if name == "channel" and operator in ("=", "<>") and value.lower() in _CHANNELS:
            return name, operator, _CHANNELS[value.lower()]
        problem = (
            "creationdate compares epoch milliseconds"
            if name == "creationdate"
            else "channel is email, sms or push, compared with == or !="
        )
    raise ValidationFailed(
        f"property filter {text!r} is not one this list has",
        [FieldError(f"/query/property/{index}", problem, "format")],
    )


def _routes(kind: str, one: str) -> None:
    path = f"{BASE}/{kind}"

    @router.get(path, summary=f"Suppressed or allowed {kind}", response_model=EntryPage, name=f"list_{kind}")
    async def listing(
        caller: Reader,
        db: Db,
        type: ListType = "client",
        orderby: Annotated[str, Query(max_length=32)] = "-creationdate",
        limit: Annotated[int, Query(ge=1, le=1000)] = 20,
        start: Annotated[str | None, Query(max_length=2048)] = None,
        property: Annotated[
            list[str] | None,
            Query(
                max_length=128,
                description="Filters, each `creationdate` (epoch milliseconds) or `channel` (`email`, "
                "`sms`, `push`), an operator (`==`, `!=`, `<`, `<=`, `>`, `>=`) and a value: "
                "`creationdate>1631739725150`",
            ),
        ] = None,
    ) -> dict[str, Any]:
        filters = [_property(i, text) for i, text in enumerate(property or [])]
        return await _page(db, kind, caller.sandbox, type, orderby, limit, start, filters)

    @router.post(
        path,
        status_code=201,
        summary=f"Add suppressed or allowed {kind}",
        response_model=list[EntryOut],
        name=f"add_{kind}",
    )
    async def adding(
        caller: Writer,
        db: Db,
        body: Annotated[list[AddEntry], Body(max_length=1000)],
        type: ListType = "client",
    ) -> list[dict[str, Any]]:
        entries = _entries(kind, body)
        async with db.transaction():
            rows = await repository.add(db, kind, caller.sandbox, type, entries)
        return [entry_out(kind, r) for r in rows]

    @router.get(
        f"{path}/{{{one}}}",
        summary=f"One of the {kind}",
        response_model=EntryOut,
        responses=_NOT_FOUND,
        name=f"get_{kind}",
    )
    async def getting(
        caller: Reader, db: Db, value: str = _path(one), type: ListType = "client"
    ) -> dict[str, Any]:
        row = await repository.one(db, kind, caller.sandbox, type, value)
        if row is None:
            raise NotFound(f"{value!r} is not on the {type} list")
        return entry_out(kind, row)

    @router.delete(
        f"{path}/{{{one}}}",
        status_code=204,
        summary=f"Remove one of the {kind}",
        responses=_NOT_FOUND,
        name=f"delete_{kind}",
    )
    async def deleting(
        caller: Writer, db: Db, value: str = _path(one), type: ListType = "client"
    ) -> Response:
        async with db.transaction():
            row = await repository.delete(db, kind, caller.sandbox, type, value)
            if row is not None and kind == "addresses" and type == "client":
                # Back on the list of the living: earlier soft bounces no longer count.
                await repository.take_soft_bounces(db, caller.sandbox, row["value"])
        if row is None:
            raise NotFound(f"{value!r} is not on the {type} list")
        return Response(status_code=204)


def _path(name: str) -> Any:
    from fastapi import Path

    return Path(alias=name, max_length=1024)


ALLOWED_LIST = "/v1/allowed-list"


def _allowed_list_out(row: asyncpg.Record | None) -> dict[str, Any]:
    if row is None:
        return {"active": False}
    return {"active": row["active"], "updatedBy": row["updated_by"], "updatedAt": row["updated_at"]}


@router.get(ALLOWED_LIST, summary="Whether the allowed list is in force", response_model=AllowedListOut)
async def get_allowed_list(caller: Reader, db: Db) -> dict[str, Any]:
    return _allowed_list_out(await repository.allowed_list(db, caller.sandbox))


@router.put(ALLOWED_LIST, summary="Put the allowed list in force or out of it", response_model=AllowedListOut)
async def put_allowed_list(caller: Writer, db: Db, body: AllowedListIn) -> dict[str, Any]:
    row = await repository.set_allowed_list(db, caller.sandbox, body.active, caller.subject)
    return _allowed_list_out(row)


_routes("addresses", "email")
_routes("domains", "domain")


UPLOADS = f"{BASE}/uploads"
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": "TYPE,VALUE,COMMENTS\nEMAIL,jane@example.com,asked\nDOMAIN,example.org,\n",
            },
        },
    }
}


def _job_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound(f"no upload job {text!r}") from None


@router.post(
    UPLOADS,
    status_code=201,
    summary="Add the entries of a CSV file",
    openapi_extra=_UPLOAD_BODY,
    responses={
        413: documented("The body is larger than ITINERA_CHANNELS_UPLOAD_MAX_BYTES"),
        415: documented("The body is neither multipart/form-data nor text/csv"),
    },
)
async def upload(request: Request, caller: Writer, db: Db, type: ListType = "client") -> dict[str, Any]:
    settings: ChannelsSettings = request.app.state.settings
    media = bodies.content_type(request, ("multipart/form-data", "text/csv"))
    data = await bodies.read(request, settings.channels_upload_max_bytes)
    filename = None
    if media == "multipart/form-data":
        filename, data = bodies.form_file(request, data, "file")
    parsed = await asyncio.to_thread(uploads.parse, data, settings.channels_upload_max_records)
    async with db.transaction():
        job_id = await uploads.run(
            db, caller.sandbox, type, caller.subject, filename, parsed, datetime.now(UTC)
        )
    return {"success": {"jobId": str(job_id)}}


@router.get(UPLOADS, summary="The upload jobs, newest first")
async def upload_jobs(
    caller: Reader,
    db: Db,
    orderby: Annotated[Literal["-createtime"], Query(description="Newest first")] = "-createtime",
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    start: Annotated[str | None, Query(max_length=128, description="The _page.next of a page")] = None,
) -> dict[str, Any]:
    before = None
    if start is not None:
        stamp, _, job = start.partition(":")
        try:
            before = (datetime.fromtimestamp(int(stamp) / 1_000_000, UTC), uuid.UUID(job))
        except (ValueError, OverflowError, OSError):
            raise ValidationFailed(
                "start is not a page key",
                [FieldError("/query/start", "expected the _page.next of a page", "format")],
            ) from None
    rows = await uploads.page(db, caller.sandbox, limit + 1, before)
    following = None
    if len(rows) > limit:
        rows = rows[:limit]
        following = f"{int(rows[-1]['created_at'].timestamp() * 1_000_000)}:{rows[-1]['job_id']}"
    query = {"orderby": orderby, "limit": limit}
    return _ajo_page(UPLOADS, query, start, following, [uploads.job_out(r, failed=False) for r in rows])


@router.get(UPLOADS + "/{jobId}", summary="One upload job, with its records refused", responses=_NOT_FOUND)
async def upload_job(jobId: str, caller: Reader, db: Db) -> dict[str, Any]:
    row = await uploads.one(db, caller.sandbox, _job_id(jobId))
    if row is None:
        raise NotFound(f"no upload job {jobId!r}")
    return uploads.job_out(row, failed=True)


@router.delete(
    UPLOADS + "/{jobId}",
    status_code=204,
    summary="Forget an upload job (not its entries)",
    responses=_NOT_FOUND,
)
async def delete_upload_job(jobId: str, caller: Writer, db: Db) -> Response:
    if not await uploads.delete(db, caller.sandbox, _job_id(jobId)):
        raise NotFound(f"no upload job {jobId!r}")
    return Response(status_code=204)


@router.delete(
    BASE + "/admin/{imsOrgId}/{sandboxId}",
    status_code=202,
    summary="Take every entry of the sandbox's suppression list off",
    responses={403: documented("The sandbox is not the token's")},
)
async def delete_all(imsOrgId: str, sandboxId: str, caller: Writer, db: Db) -> dict[str, Any]:
    """AJO's admin call: the whole suppression list of the sandbox (the token's, named in
    the path; the organisation is not checked), not its allowed list, in one transaction
    before the answer (AJO's is asynchronous: 202 either way)."""
    if sandboxId != caller.sandbox:
        raise Forbidden(f"the token is for sandbox {caller.sandbox!r}, not {sandboxId!r}")
    async with db.transaction():
        deleted = await repository.delete_all(db, caller.sandbox)
    return {"deleted": deleted}
