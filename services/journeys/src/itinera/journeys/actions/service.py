"""Custom actions: checked, stored per sandbox, shown without their secrets.

An action is valid when:

- its URL is ``http`` or ``https``, names a host that may be called (``targets``: no
  private or loopback address unless allowed by ``ITINERA_JOURNEYS_ACTION_ALLOW_HOSTS``)
  and carries no credentials; parameters may appear in its path and query only;
- every ``{{`` and ``}}`` of the URL, the header values and the body belongs to a
  ``{{name}}`` parameter;
- no header is one the HTTP client sets itself (``Host``, ``Content-Length``...), nor
  ``Authorization`` beside an ``auth`` that sets it, nor the header an API-key ``auth``
  names;
- a ``GET`` or ``DELETE`` has no body; response field names are unique;
- its ``auth`` has its secret: given on creation, or kept from the stored action when a
  ``PUT`` omits it and keeps the same kind of authentication (and header name).

Names are unique per sandbox regardless of case (409). An action that a live or closed
journey version calls cannot be deleted (409): their instances may still call it.
Services never commit: the endpoint's transaction does; a change or deletion locks the
action's row first.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Collection
from typing import Any
from urllib.parse import urlencode

import asyncpg
from asyncpg import Record as Row

from itinera.common.errors import Conflict, FieldError, NotFound, ValidationFailed
from itinera.common.web.etags import check_if_match, entity_tag
from itinera.journeys.actions import repository, targets
from itinera.journeys.actions.repository import Columns
from itinera.journeys.actions.schemas import ActionIn, BasicAuth, BearerAuth, HeaderAuth, ListQuery
from itinera.journeys.actions.secrets import SECRET_FIELDS, Sealer

ACTIONS = "/v1/actions"
CLIENT_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "keep-alive"}
)


def _time(row: Row, column: str) -> str:
    return str(row[column].isoformat())


def parse_id(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def view(row: Row) -> dict[str, Any]:
    """A stored action as answered: its auth without the secret."""
    config = row["config"]
    auth = config["auth"]
    shown: dict[str, Any] = {"type": auth["type"], "secretSet": auth["type"] != "none"}
    if auth["type"] == "basic":
        shown["username"] = auth["username"]
    elif auth["type"] == "header":
        shown["name"] = auth["name"]
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "description": row["description"],
        "method": config["method"],
        "url": config["url"],
        "headers": config["headers"],
        "body": config["body"],
        "auth": shown,
        "timeoutSeconds": config["timeoutSeconds"],
        "retries": config["retries"],
        "responseFields": config["responseFields"],
        "rateCap": config["rateCap"],
        "endpoint": row["endpoint"],
        "parameters": list(row["parameters"]),
        "createdAt": _time(row, "created_at"),
        "updatedAt": _time(row, "updated_at"),
        "etag": entity_tag(row["revision"]),
    }


def check(
    body: ActionIn,
    allowed_hosts: Collection[str],
    sealer: Sealer,
    stored: dict[str, Any] | None = None,
) -> tuple[Columns, list[FieldError]]:
    """What to store of ``body`` (its secret sealed), and every problem with it
    (``stored``: the config it replaces, whose secret a ``PUT`` may keep)."""
    errors: list[FieldError] = []
    parts, url_problems = targets.check_url(body.url, allowed_hosts)
    errors += [FieldError("/url", p.message, p.code) for p in url_problems]
    names: list[str] = []
    templates = [("/url", body.url)]
    templates += [(f"/headers/{name}", value) for name, value in body.headers.items()]
    if body.body is not None:
        templates.append(("/body", body.body))
    for path, template in templates:
        found, brace_problems = targets.parameters(template)
        names += found
        errors += [FieldError(path, message, "template") for message in brace_problems]
    lower = {name.lower(): name for name in body.headers}
    for header in sorted(CLIENT_HEADERS & set(lower)):
        errors.append(FieldError(f"/headers/{lower[header]}", "the HTTP client sets this header", "header"))
    if body.auth.type != "none" and "authorization" in lower:
        errors.append(
            FieldError(f"/headers/{lower['authorization']}", "auth sets the Authorization header", "header")
        )
    if isinstance(body.auth, HeaderAuth) and body.auth.name.lower() in lower:
        errors.append(
            FieldError(f"/headers/{lower[body.auth.name.lower()]}", "auth sets this header", "header")
        )
    if body.body is not None and body.method in ("GET", "DELETE"):
        errors.append(FieldError("/body", f"a {body.method} has no body", "body"))
    seen: set[str] = set()
    for number, response_field in enumerate(body.responseFields):
        if response_field.name in seen:
            errors.append(
                FieldError(f"/responseFields/{number}/name", "another response field has this name", "unique")
            )
        seen.add(response_field.name)
    config = body.model_dump(mode="json", exclude={"name", "description"})
    _secret(body, config, stored, errors)
    columns = Columns(
        name=body.name,
        description=body.description,
        config=sealer.sealed(config) if not errors else config,
        endpoint=targets.endpoint(parts) if parts is not None and not url_problems else "",
        parameters=list(dict.fromkeys(names)),
        response_fields=[f.name for f in body.responseFields],
    )
    return columns, errors


def _secret(
    body: ActionIn, config: dict[str, Any], stored: dict[str, Any] | None, errors: list[FieldError]
) -> None:
    auth = body.auth
    if not isinstance(auth, BasicAuth | BearerAuth | HeaderAuth):
        return
    secret_field = SECRET_FIELDS[auth.type]
    if config["auth"][secret_field] is not None:
        return
    before = stored["auth"] if stored is not None else None
    same = (
        before is not None
        and before["type"] == auth.type
        and (not isinstance(auth, HeaderAuth) or before["name"].lower() == auth.name.lower())
    )
    if same:
        assert before is not None
        config["auth"][secret_field] = before[secret_field]
    else:
        errors.append(FieldError(f"/auth/{secret_field}", f"{auth.type} authentication needs it", "required"))


def _raise_if_any(errors: list[FieldError]) -> None:
    if errors:
        detail = "; ".join(f"{e.path}: {e.message}" for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise ValidationFailed(
            f"the custom action is not valid: {detail}{more}",
            errors,
            extra={"problems": [e.as_dict() for e in errors]},
        )


async def _saved(sandbox: str, name: str, write: Awaitable[Row]) -> Row:
    try:
        row = await write
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name != repository.NAME_INDEX:
            raise
        raise Conflict(
            f"a custom action named {name!r} exists in sandbox {sandbox!r}",
            [FieldError("/name", "already used in this sandbox", "unique")],
        ) from None
    return row


def _known_id(text: str, sandbox: str) -> uuid.UUID:
    found = parse_id(text)
    if found is None:
        raise NotFound(f"no custom action {text!r} in sandbox {sandbox!r}")
    return found


async def create(
    db: asyncpg.Connection, sandbox: str, body: ActionIn, allowed_hosts: Collection[str], sealer: Sealer
) -> dict[str, Any]:
    columns, errors = check(body, allowed_hosts, sealer)
    _raise_if_any(errors)
    row = await _saved(sandbox, body.name, repository.insert(db, sandbox, uuid.uuid4(), columns))
    return view(row)


async def get(db: asyncpg.Connection, sandbox: str, action_text: str) -> dict[str, Any]:
    row = await repository.get(db, sandbox, _known_id(action_text, sandbox))
    if row is None:
        raise NotFound(f"no custom action {action_text!r} in sandbox {sandbox!r}")
    return view(row)


async def _locked(db: asyncpg.Connection, sandbox: str, action_text: str, if_match: str | None) -> Row:
    """The action's row, locked until the transaction ends; 412 when ``if_match`` (an
    ``If-Match`` header) names none of its current tag."""
    row = await repository.get(db, sandbox, _known_id(action_text, sandbox), for_update=True)
    if row is None:
        raise NotFound(f"no custom action {action_text!r} in sandbox {sandbox!r}")
    check_if_match(if_match, entity_tag(row["revision"]))
    return row


async def replace(
    db: asyncpg.Connection,
    sandbox: str,
    action_text: str,
    body: ActionIn,
    allowed_hosts: Collection[str],
    sealer: Sealer,
    if_match: str | None = None,
) -> dict[str, Any]:
    current = await _locked(db, sandbox, action_text, if_match)
    action_id = current["id"]
    columns, errors = check(body, allowed_hosts, sealer, current["config"])
    _raise_if_any(errors)
    row = await _saved(sandbox, body.name, repository.update(db, sandbox, action_id, columns))
    return view(row)


async def delete(db: asyncpg.Connection, sandbox: str, action_text: str, if_match: str | None = None) -> None:
    action_id = (await _locked(db, sandbox, action_text, if_match))["id"]
    users = await repository.running_versions(db, sandbox, action_id)
    if users:
        named = ", ".join(f"{u['journey_id']} v{u['version']} ({u['status']})" for u in users)
        raise Conflict(
            f"journey versions still call custom action {action_id}: {named}",
            extra={
                "usedBy": [
                    {"journeyId": str(u["journey_id"]), "version": u["version"], "status": u["status"]}
                    for u in users
                ]
            },
        )
    await repository.delete(db, sandbox, action_id)


async def listing(db: asyncpg.Connection, sandbox: str, query: ListQuery) -> dict[str, Any]:
    total = await repository.count(db, sandbox)
    rows = await repository.page(db, sandbox, query.start, query.limit)
    link: dict[str, str] = {}
    if query.start + len(rows) < total:
        link["next"] = f"{ACTIONS}?{urlencode({'start': query.start + query.limit, 'limit': query.limit})}"
    return {
        "items": [view(row) for row in rows],
        "page": {"totalCount": total, "start": query.start, "limit": query.limit, "pageSize": len(rows)},
        "link": link,
    }
