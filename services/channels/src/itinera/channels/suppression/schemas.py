"""Bodies and answers of AJO's Suppression API, as ``ajo-suppression.yaml`` describes them.

An entry is ``{id, entity: {type, entityValue}, suppressed: {type, user, comment, date},
creationDate, lastModifiedDate, status, listType, client: {imsOrgId, sandboxId}}`` (dates
in epoch milliseconds), and, for addresses, ``bounceState: {softCount, bounceEvents}``.
``suppressed.type`` is AJO's ``MANUAL``, ``HARD`` or ``SOFT``; ``suppressed.reason``, an
addition, tells the finer cause: ``manual``, ``hard``, ``soft``, ``complaint`` or
``unsubscribe`` (complaints and unsubscribes are ``MANUAL`` in AJO's terms).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from itinera.common.web.problems import documented

PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: documented("An entry is not valid (each problem with its path)"),
    401: documented("No valid bearer token"),
    403: documented("The token lacks the scope, or is for another sandbox"),
}

AJO_TYPES = {
    "manual": "MANUAL",
    "hard": "HARD",
    "soft": "SOFT",
    "complaint": "MANUAL",
    "unsubscribe": "MANUAL",
}


class Entity(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str | None = Field(default=None, description="`email` (default), `phone` or `pushToken`; `domain`")
    entityValue: str = Field(min_length=1, max_length=1024)


class AddEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    entity: Entity
    comment: str | None = Field(default=None, max_length=4096)
    user: str | None = Field(default=None, max_length=256)


class EntityOut(BaseModel):
    type: str
    entityValue: str


class Suppressed(BaseModel):
    type: Literal["MANUAL", "HARD", "SOFT"]
    reason: str
    user: str | None = None
    comment: str | None = None
    date: int


class Client(BaseModel):
    imsOrgId: str | None = None
    sandboxId: str


class BounceState(BaseModel):
    softCount: int
    bounceEvents: list[dict[str, Any]]


class EntryOut(BaseModel):
    id: str
    entity: EntityOut
    suppressed: Suppressed
    creationDate: int
    lastModifiedDate: int
    status: Literal["active", "deleted"]
    listType: Literal["client", "allowed"]
    client: Client
    bounceState: BounceState | None = None


class Link(BaseModel):
    href: str


class Links(BaseModel):
    self: Link
    next: Link | None = None


class PageInfo(BaseModel):
    orderby: str
    next: str | None = None
    count: int


class EntryPage(BaseModel):
    page: PageInfo = Field(alias="_page")
    items: list[EntryOut]
    links: Links = Field(alias="_links")


class AllowedListIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    active: StrictBool = Field(
        description="While true, emails go only to the addresses and domains on the allowed list "
        "(to nobody when it is empty)"
    )


class AllowedListOut(BaseModel):
    active: bool
    updatedBy: str | None = None
    updatedAt: datetime | None = None
