"""AEP's bulk-get answer, shared by every ``POST .../bulk-get`` of this service
(segment definitions, audiences, segment jobs).

A request names 1 to :data:`MAX_BULK` ids (``{"ids": [{"id": ...}]}``; else a 400 at
``/ids``). The answer is keyed by each id as it was asked for: the resource, or an
entry ``{requestId, errors: {"404": [{code, message}]}}`` for an id that names nothing
in the sandbox (an id that is not a UUID names nothing). When none of the ids names
anything, the answer is a 404 instead of a 207.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from asyncpg import Record as Row

from itinera.common.errors import FieldError, NotFound, ValidationFailed

MAX_BULK = 100


def _key(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


async def bulk_get(
    ids: list[str],
    fetch: Callable[[list[uuid.UUID]], Awaitable[Iterable[Row]]],
    show: Callable[[Row], dict[str, Any]],
    *,
    what: str,
    sandbox: str,
    request_id: str,
) -> dict[str, Any]:
    """``{results}`` for ``ids``: ``fetch`` reads the rows of the ids that are UUIDs
    (each row has an ``id`` column), ``show`` renders one; ``what`` names the resource
    in messages (``segment job``)."""
    if not ids or len(ids) > MAX_BULK:
        raise ValidationFailed(
            f"ask for 1 to {MAX_BULK} {what}s, not {len(ids)}",
            [FieldError("/ids", f"1 to {MAX_BULK} ids", "minItems" if not ids else "maxItems")],
        )
    parsed = {text: _key(text) for text in dict.fromkeys(ids)}
    wanted = [key for key in parsed.values() if key is not None]
    rows = {row["id"]: row for row in await fetch(wanted)} if wanted else {}
    results: dict[str, Any] = {}
    missing: list[str] = []
    for text, key in parsed.items():
        row = rows.get(key) if key is not None else None
        if row is not None:
            results[text] = show(row)
        else:
            missing.append(text)
            results[text] = {
                "requestId": request_id,
                "errors": {"404": [{"code": 404, "message": f"no {what} {text!r} in this sandbox"}]},
            }
    if len(missing) == len(parsed):
        raise NotFound(
            f"none of the {what}s asked for exists in sandbox {sandbox!r}: {', '.join(missing)}",
            extra={"missing": missing},
        )
    return {"results": results}
