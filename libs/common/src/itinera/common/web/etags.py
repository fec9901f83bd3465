"""Optimistic concurrency for editors (RFC 9110): a resource's answer carries its
``ETag``; a write sent with ``If-Match`` goes through only while the resource still has
one of the tags given (``*``: any, as long as it exists), else 412, so two people
editing the same thing cannot overwrite each other's changes unseen. A write without
``If-Match`` is not checked."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header, Response

from itinera.common.errors import FieldError, PreconditionFailed
from itinera.common.web.problems import documented

IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=1024,
        description="The resource's ETag as last read: the write is refused (412) if it changed since",
    ),
]
PRECONDITION: dict[int | str, dict[str, Any]] = {
    412: documented("If-Match names none of the resource's current ETag: it changed since it was read")
}


def tagged(response: Response, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` (which carries its ``etag``), its ``ETag`` header set on ``response``."""
    response.headers["ETag"] = body["etag"]
    return body


def entity_tag(*parts: object) -> str:
    """A strong entity tag made of ``parts`` (a version, a revision...): ``"3.7"``."""
    return '"' + ".".join(str(p) for p in parts) + '"'


def check_if_match(if_match: str | None, current: str) -> None:
    """Raise 412 unless ``if_match`` is absent, ``*``, or lists ``current`` (strong
    comparison: a weak tag, ``W/"..."``, never matches)."""
    if if_match is None:
        return
    given = [tag.strip() for tag in if_match.split(",")]
    if "*" in given or current in given:
        return
    raise PreconditionFailed(
        f"the resource changed since it was read: its ETag is {current}, If-Match named {if_match.strip()}",
        [FieldError("/header/If-Match", f"the current ETag is {current}", "stale")],
        extra={"etag": current},
    )
