"""What templates and fragments share: an item with versions, edited as drafts and
published.

- ``create`` stores the item and its first version, a draft (a deleted item's id
  continues its numbering, see ``retired``).
- ``replace`` replaces the draft; when there is none (the latest version is
  published), it makes the next version, a draft. There is one draft at most.
- ``publish`` (``start_publish``, then the kind's checks, then ``finish_publish``)
  makes the draft the published version and writes its record to
  ``itinera.content.v1`` through the outbox, in the same transaction.
- ``delete`` removes the item and, when a version of it was ever published, writes a
  deletion record.

Every write locks the item's row first (``SELECT ... FOR UPDATE``), so the writes of one
item are serialised. Services never commit: the endpoint's transaction does.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import asyncpg
from asyncpg import Record as Row

from itinera.common.db.outbox import enqueue
from itinera.common.errors import Conflict, FieldError, NotFound
from itinera.common.kafka import topics
from itinera.common.kafka.envelope import Envelope
from itinera.common.web.etags import check_if_match, entity_tag
from itinera.content.values import ID_PATTERN
from itinera.content.versioning import repository
from itinera.content.versioning.repository import Kind

RECORD_TYPE = "com.itinera.content.v1"
RECORD_SOURCE = "/itinera/content"


def time_text(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def summary(row: Row) -> dict[str, Any]:
    return {
        "version": row["version"],
        "status": row["status"],
        "createdAt": time_text(row["created_at"]),
        "updatedAt": time_text(row["updated_at"]),
        "publishedAt": time_text(row["published_at"]),
    }


def item_view(kind: Kind, row: Row, versions: list[Row] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        kind.extra: row[kind.extra],
        "status": "draft" if row["published_version"] is None else "published",
        "latestVersion": row["latest_version"],
        "publishedVersion": row["published_version"],
        "draftVersion": row["draft_version"],
        "createdAt": time_text(row["created_at"]),
        "updatedAt": time_text(row["updated_at"]),
        "etag": etag(row),
    }
    if versions is not None:
        body["versions"] = [summary(v) for v in versions]
    return body


_ID = re.compile(ID_PATTERN)


def _not_found(kind: Kind, item_id: str, sandbox: str) -> NotFound:
    return NotFound(f"no {kind.name} {item_id!r} in sandbox {sandbox!r}")


def _checked(kind: Kind, item_id: str, sandbox: str) -> None:
    """An id no item can have (one with a NUL character, say) is not looked up."""
    if not _ID.fullmatch(item_id):
        raise _not_found(kind, item_id, sandbox)


async def create(
    db: asyncpg.Connection,
    kind: Kind,
    sandbox: str,
    item_id: str | None,
    name: str,
    description: str,
    extra: str,
    document: dict[str, Any],
    fragments: list[str],
) -> str:
    """The new item's id (``item_id``, else a UUID); 409 when the id is taken."""
    chosen = item_id if item_id is not None else str(uuid.uuid4())
    version = await repository.take_retired(db, kind, sandbox, chosen) + 1
    if not await repository.insert_item(db, kind, sandbox, chosen, name, description, extra, version):
        raise Conflict(
            f"a {kind.name} {chosen!r} exists in sandbox {sandbox!r}",
            [FieldError("/id", "already used in this sandbox", "unique")],
        )
    await repository.insert_version(db, kind, sandbox, chosen, version, document, fragments)
    return chosen


def etag(row: Row) -> str:
    """The item's entity tag: its latest version and its revision (bumped by each write),
    so it changes with every write, and an item made again under a deleted one's id
    (whose versions continue after the deleted one's) never has an old tag."""
    return entity_tag(row["latest_version"], row["revision"])


async def locked(
    db: asyncpg.Connection, kind: Kind, sandbox: str, item_id: str, if_match: str | None = None
) -> Row:
    """The item's row, locked until the transaction ends; 412 when ``if_match`` (an
    ``If-Match`` header) names none of its current tag."""
    _checked(kind, item_id, sandbox)
    row = await repository.lock_item(db, kind, sandbox, item_id)
    if row is None:
        raise _not_found(kind, item_id, sandbox)
    check_if_match(if_match, etag(row))
    return row


async def replace(
    db: asyncpg.Connection,
    kind: Kind,
    sandbox: str,
    item_id: str,
    name: str,
    description: str,
    extra: str,
    document: dict[str, Any],
    fragments: list[str],
    if_match: str | None = None,
) -> None:
    item = await locked(db, kind, sandbox, item_id, if_match)
    if item[kind.extra] != extra:
        raise Conflict(
            f"{kind.name} {item_id!r} is of {kind.extra} {item[kind.extra]!r}; it cannot change",
            [FieldError(f"/{kind.extra}", f"must stay {item[kind.extra]!r}", "immutable")],
        )
    current = await repository.draft(db, kind, sandbox, item_id)
    if current is not None:
        version = current["version"]
        await repository.replace_draft(db, kind, sandbox, item_id, version, document, fragments)
    else:
        version = item["latest_version"] + 1
        await repository.insert_version(db, kind, sandbox, item_id, version, document, fragments)
    await repository.touch_item(db, kind, sandbox, item_id, name, description, version)


async def item(db: asyncpg.Connection, kind: Kind, sandbox: str, item_id: str) -> tuple[Row, list[Row]]:
    _checked(kind, item_id, sandbox)
    row = await repository.get_item(db, kind, sandbox, item_id)
    if row is None:
        raise _not_found(kind, item_id, sandbox)
    return row, await repository.versions(db, kind, sandbox, item_id)


async def version(db: asyncpg.Connection, kind: Kind, sandbox: str, item_id: str, number: int) -> Row:
    _checked(kind, item_id, sandbox)
    row = await repository.get_version(db, kind, sandbox, item_id, number)
    if row is None:
        if await repository.get_item(db, kind, sandbox, item_id) is None:
            raise _not_found(kind, item_id, sandbox)
        raise NotFound(f"{kind.name} {item_id!r} has no version {number}")
    return row


async def chosen_version(
    db: asyncpg.Connection, kind: Kind, sandbox: str, item_id: str, number: int | None
) -> Row:
    """Version ``number``, or by default the latest (the draft, else the published one):
    what a preview shows."""
    if number is None:
        row, _ = await item(db, kind, sandbox, item_id)
        number = int(row["latest_version"])
    return await version(db, kind, sandbox, item_id, number)


async def start_publish(
    db: asyncpg.Connection, kind: Kind, sandbox: str, item_id: str, if_match: str | None = None
) -> tuple[Row, Row]:
    """The locked item and its draft; 409 when there is no draft to publish."""
    row = await locked(db, kind, sandbox, item_id, if_match)
    current = await repository.draft(db, kind, sandbox, item_id)
    if current is None:
        raise Conflict(
            f"{kind.name} {item_id!r} has no draft to publish (version {row['published_version']} "
            "is published; PUT makes a new draft)",
            extra={"publishedVersion": row["published_version"]},
        )
    return row, current


async def finish_publish(
    db: asyncpg.Connection, kind: Kind, sandbox: str, item_id: str, number: int, record: dict[str, Any]
) -> Row:
    """Publishes the draft and enqueues its record (``record`` completed with what every
    record has)."""
    now = datetime.now(UTC)
    published = await repository.publish_version(db, kind, sandbox, item_id, number, now)
    data = {
        "sandbox": sandbox,
        "kind": kind.name,
        "id": item_id,
        "version": number,
        "deleted": False,
        **record,
        "publishedAt": now.isoformat().replace("+00:00", "Z"),
    }
    await _send(db, kind, sandbox, item_id, data)
    return published


async def delete(db: asyncpg.Connection, kind: Kind, sandbox: str, item_id: str, row: Row) -> None:
    """Deletes the (locked) item; the channels hear of it when they had a version."""
    await repository.delete_item(db, kind, sandbox, item_id, row["latest_version"])
    if row["published_version"] is not None:
        data = {
            "sandbox": sandbox,
            "kind": kind.name,
            "id": item_id,
            "version": row["latest_version"],
            "deleted": True,
        }
        await _send(db, kind, sandbox, item_id, data)


async def _send(db: asyncpg.Connection, kind: Kind, sandbox: str, item_id: str, data: dict[str, Any]) -> None:
    envelope = Envelope(
        type=RECORD_TYPE, source=RECORD_SOURCE, data=data, sandbox=sandbox, key=f"{kind.name}:{item_id}"
    )
    await enqueue(db, topics.CONTENT.name, [envelope])


async def listing(
    db: asyncpg.Connection,
    kind: Kind,
    sandbox: str,
    path: str,
    *,
    extra: str | None,
    status: str | None,
    start: int,
    limit: int,
) -> dict[str, Any]:
    total = await repository.count(db, kind, sandbox, extra, status)
    rows = await repository.page(db, kind, sandbox, extra, status, start, limit)
    link: dict[str, str] = {}
    if start + len(rows) < total:
        params: dict[str, Any] = {"start": start + limit, "limit": limit}
        if extra is not None:
            params[kind.extra] = extra
        if status is not None:
            params["status"] = status
        link["next"] = f"{path}?{urlencode(params)}"
    return {
        "items": [item_view(kind, row) for row in rows],
        "page": {"totalCount": total, "start": start, "limit": limit, "pageSize": len(rows)},
        "link": link,
    }
