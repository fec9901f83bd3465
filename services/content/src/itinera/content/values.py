"""Value types and answers shared by templates and fragments.

Every string a client sends is checked to be storable (PostgreSQL's text and jsonb hold
no NUL character, UTF-8 no lone surrogate), so a bad value is a 422 with its path and
never a failure of the database.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from itinera.common.render.locale import canonical
from itinera.common.web.problems import documented

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
MAX_PART_CHARS = 4 * 1024 * 1024
"""The longest part the schema lets through; ``ITINERA_CONTENT_MAX_PART_CHARS`` is the real bound."""


def _storable(text: str) -> str:
    if _UNSTORABLE.search(text):
        raise ValueError("NUL characters and lone surrogates are not allowed")
    return text


Storable = AfterValidator(_storable)
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256), Storable]
Description = Annotated[str, StringConstraints(max_length=4096), Storable]
ItemId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
"""A template's or fragment's id: a slug (``welcome-email``, ``lib:promo.v2``) or a UUID."""
Locale = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8}){0,7}$"),
    AfterValidator(canonical),
]
"""A BCP 47 language tag, kept in its conventional case (``fr-CA``)."""
Part = Annotated[str, StringConstraints(max_length=MAX_PART_CHARS), Storable]
"""A personalization template (checked when the version is published)."""
Status = Literal["draft", "published"]


class Strict(BaseModel):
    """Any field the model does not name is refused, so a misspelt one is not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class VersionSummary(BaseModel):
    version: int
    status: Status
    createdAt: str
    updatedAt: str
    publishedAt: str | None


class PageOut(BaseModel):
    totalCount: int
    start: int
    limit: int
    pageSize: int


class LinkOut(BaseModel):
    next: str | None = None


class ProblemOut(BaseModel):
    path: str = Field(description="JSON Pointer into the document: `/variants/fr/html`")
    message: str
    code: str
    position: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Where in the part: `line`, `column`, `offset`, `endOffset`, `construct`, "
            "`fragment` (the fragment whose text it is; null: this one's)"
        ),
    )


class UsageOut(BaseModel):
    kind: Literal["template", "fragment"]
    id: str
    version: int


def problems_documented(what: str) -> dict[int | str, dict[str, Any]]:
    return {
        400: documented(f"The {what} cannot be published: every problem, with its path (`problems`)"),
        401: documented("Missing or invalid bearer token"),
        403: documented("Missing scope, or the sandbox differs from the token's"),
        404: documented(f"No such {what} or version in this sandbox"),
        422: documented("The request does not have the expected shape"),
        503: documented("The database is unavailable; retry with backoff"),
    }
