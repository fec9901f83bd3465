"""The fragment document, ``/v1/fragments`` bodies and answers.

A fragment is a piece of content that templates (and other fragments) include with
``{{fragment id="..."}}``: ``visual`` fragments are HTML blocks, included in an
email's ``html`` only; ``expression`` fragments are personalization snippets (text,
``let`` variables, conditions) included anywhere. A fragment has no locales: it is
included in every variant of a template, and may read ``profile.preferredLanguage``
itself.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from itinera.content.templates.schemas import UndefinedOut
from itinera.content.values import (
    Description,
    ItemId,
    LinkOut,
    Name,
    PageOut,
    Part,
    ProblemOut,
    Status,
    Strict,
    UsageOut,
    VersionSummary,
)

FragmentType = Literal["visual", "expression"]


class FragmentIn(Strict):
    id: ItemId | None = Field(
        default=None, description="POST: the id to give it (else a UUID); PUT: the same id, or none"
    )
    name: Name
    description: Description = ""
    type: FragmentType
    content: Part = Field(default="", description="A personalization template")


class ListQuery(BaseModel):
    start: int = Field(default=0, ge=0, le=10**9, description="The offset of the first fragment")
    limit: int = Field(default=100, ge=1, le=1000)
    type: FragmentType | None = Field(default=None, description="Only fragments of this type")
    status: Status | None = Field(
        default=None, description="`published`: with a published version; `draft`: never published"
    )


class FragmentOut(BaseModel):
    id: str
    name: str
    description: str
    type: FragmentType
    status: Status
    latestVersion: int
    publishedVersion: int | None
    draftVersion: int | None
    createdAt: str
    updatedAt: str
    etag: str = Field(
        description="The ETag header's value: send it as If-Match to write only if nothing changed"
    )
    content: str | None = Field(default=None, description="The latest version's")
    fragments: list[str] | None = Field(default=None, description="The fragments the latest version includes")
    usedBy: list[UsageOut] | None = Field(
        default=None, description="The published templates and fragments that include it"
    )
    versions: list[VersionSummary] | None = None


class FragmentPage(BaseModel):
    items: list[FragmentOut]
    page: PageOut
    link: LinkOut


class FragmentVersionOut(VersionSummary):
    fragmentId: str
    name: str
    description: str
    type: FragmentType
    content: str
    fragments: list[str] = Field(description="The fragment ids it includes")
    problems: list[ProblemOut] | None = Field(
        default=None, description="Drafts: what publishing would refuse now"
    )


class FragmentPreviewOut(BaseModel):
    fragmentId: str
    profileId: str | None = Field(default=None, description="The profile read, when one was named")
    version: int
    text: str | None = Field(description="null when the fragment does not compile")
    undefinedPaths: list[UndefinedOut]
    errors: list[ProblemOut] = Field(description="Compile and render errors, at `/content`")
