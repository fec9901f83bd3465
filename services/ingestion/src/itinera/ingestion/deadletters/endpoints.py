"""``GET /v1/dlq``: the messages ingestion refused, newest first, with every reason."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Security

from itinera.common.auth import Principal, require_scope
from itinera.common.errors import BadRequest, FieldError, NotFound
from itinera.common.service import Db
from itinera.ingestion.deadletters import repository
from itinera.ingestion.responses import PROBLEMS

router = APIRouter(prefix="/v1/dlq", tags=["dead letters"], responses=PROBLEMS)
Reader = Annotated[Principal, Security(require_scope("dlq:read"))]


def _view(row: Any) -> dict[str, Any]:
    item = {
        "id": row["id"],
        "kind": row["kind"],
        "receivedAt": row["received_at"].isoformat(),
        "connectionId": row["connection_id"],
        "datasetId": row["dataset_id"],
        "origin": row["origin"],
        "reasons": row["reasons"],
        "payload": row["payload"],
    }
    if row["payload_base64"] is not None:
        item["payloadBase64"] = row["payload_base64"]
    return item


def _cursor(row: Any) -> str:
    raw = orjson.dumps([row["received_at"].isoformat(), row["id"]])
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, letter_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(at), str(letter_id)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise BadRequest(
            "the cursor is not one this API gave",
            [FieldError("/query/cursor", "invalid cursor", "cursor")],
        ) from None


@router.get("", summary="List dead letters, newest first")
async def list_dead_letters(
    caller: Reader,
    db: Db,
    dataset: Annotated[str | None, Query(max_length=128)] = None,
    connection: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    rows = await repository.page(
        db,
        sandbox=caller.sandbox,
        dataset_id=dataset,
        connection_id=connection,
        before=_decode_cursor(cursor) if cursor else None,
        limit=limit,
    )
    return {
        "items": [_view(r) for r in rows],
        "next": _cursor(rows[-1]) if len(rows) == limit else None,
    }


@router.get("/{letter_id}", summary="Get one dead letter")
async def get_dead_letter(letter_id: str, caller: Reader, db: Db) -> dict[str, Any]:
    row = await repository.get(db, caller.sandbox, letter_id)
    if row is None:
        raise NotFound(f"no dead letter {letter_id!r}")
    return _view(row)
