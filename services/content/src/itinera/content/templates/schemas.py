"""The template document, ``/v1/templates`` bodies and answers.

A template belongs to one channel and holds, per locale (a BCP 47 tag, kept in its
conventional case), the parts of that channel's message: each part is a
personalization template (``itinera.common.render``). Requests are checked for shape
here: a wrong type, an unknown field, a malformed locale or id is a 422 with ``/body/...``
paths (the channel's name comes first: ``/body/email/variants/fr/html``), and nothing
is stored. A draft may be incomplete; what the parts mean is checked when a version is
published, which answers 400 with every problem at once, its path in this document
(``/variants/fr/html``) and its position in the part.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictBool, StringConstraints, field_validator

from itinera.content.values import (
    Description,
    ItemId,
    LinkOut,
    Locale,
    Name,
    PageOut,
    Part,
    ProblemOut,
    Status,
    Strict,
    VersionSummary,
)

Channel = Literal["email", "sms", "push", "webhook"]
MAX_LOCALES = 500
MAX_ENTRIES = 50
HeaderValue = Annotated[str, StringConstraints(pattern=r"^[^\r\n]*$", max_length=512)]
EmailAddress = Annotated[str, StringConstraints(pattern=r"^[^@\s<>,;\"]{1,64}@[^@\s<>,;\"]{1,255}$")]
DataKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")]


class Sender(Strict):
    name: HeaderValue = ""
    address: EmailAddress


class EmailVariant(Strict):
    subject: Part = ""
    html: Part = ""
    text: Part = Field(default="", description="The plain-text body; optional")
    sender: Sender | None = Field(default=None, description="Required to publish")
    replyTo: EmailAddress | None = None


class SmsVariant(Strict):
    text: Part = ""


class PushVariant(Strict):
    title: Part = ""
    body: Part = ""
    data: dict[DataKey, Part] = Field(
        default_factory=dict, max_length=MAX_ENTRIES, description="Custom data: each value a template"
    )


class WebhookVariant(Strict):
    payload: Part = Field(default="", description="A template whose rendering is a JSON document")
    headers: dict[HeaderName, Part] = Field(
        default_factory=dict, max_length=MAX_ENTRIES, description="Each value a template"
    )


def _distinct_locales(value: Any) -> Any:
    """Two keys that name one locale (``fr-ca`` and ``fr-CA``) are refused, not merged."""
    if isinstance(value, dict):
        seen: dict[str, str] = {}
        for key in value:
            if isinstance(key, str):
                folded = key.lower().replace("_", "-")
                if folded in seen:
                    raise ValueError(f"{seen[folded]!r} and {key!r} name the same locale")
                seen[folded] = key
    return value


class _Template(Strict):
    id: ItemId | None = Field(
        default=None, description="POST: the id to give it (else a UUID); PUT: the same id, or none"
    )
    name: Name
    description: Description = ""
    defaultLocale: Locale = Field(default="en", description="The variant used when no other fits")

    @field_validator("variants", mode="before", check_fields=False)
    @classmethod
    def _locales(cls, value: Any) -> Any:
        return _distinct_locales(value)


class EmailTracking(Strict):
    """What the channels track of an email of the template (AJO's email tracking
    options): its opens (a pixel) and its links' clicks (each web link rewritten to a
    redirect; a link whose tag has a ``data-untracked`` attribute is left as it is)."""

    opens: StrictBool = True
    clicks: StrictBool = True


class EmailTemplate(_Template):
    channel: Literal["email"]
    variants: dict[Locale, EmailVariant] = Field(default_factory=dict, max_length=MAX_LOCALES)
    tracking: EmailTracking = Field(
        default_factory=EmailTracking, description="Opens and clicks, both by default"
    )


class SmsTemplate(_Template):
    channel: Literal["sms"]
    variants: dict[Locale, SmsVariant] = Field(default_factory=dict, max_length=MAX_LOCALES)


class PushTemplate(_Template):
    channel: Literal["push"]
    variants: dict[Locale, PushVariant] = Field(default_factory=dict, max_length=MAX_LOCALES)


class WebhookTemplate(_Template):
    channel: Literal["webhook"]
    variants: dict[Locale, WebhookVariant] = Field(default_factory=dict, max_length=MAX_LOCALES)


TemplateIn = Annotated[
    EmailTemplate | SmsTemplate | PushTemplate | WebhookTemplate, Field(discriminator="channel")
]


class ListQuery(BaseModel):
    start: int = Field(default=0, ge=0, le=10**9, description="The offset of the first template")
    limit: int = Field(default=100, ge=1, le=1000)
    channel: Channel | None = Field(default=None, description="Only templates of this channel")
    status: Status | None = Field(
        default=None, description="`published`: with a published version; `draft`: never published"
    )


class PreviewData(Strict):
    """What a preview renders with: a version and the data (a profile, given or named,
    and a context)."""

    version: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Default: the draft, else the published version"
    )
    profile: dict[str, Any] = Field(default_factory=dict, description="The profile, as XDM (its merged view)")
    profileId: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Instead of `profile`: a profile read from the profile service with the caller's token",
    )
    identity: str | None = Field(
        default=None,
        min_length=3,
        max_length=1200,
        pattern=r"^[^:]+:.+$",
        description="Instead of `profile`: the profile holding this identity (`Namespace:value`)",
    )
    context: dict[str, Any] = Field(
        default_factory=dict, description="What the template reads as `context.*`"
    )


class PreviewIn(PreviewData):
    locale: Locale | None = Field(
        default=None, description="Default: chosen by the profile's preferredLanguage"
    )


# Answers


class TemplateOut(BaseModel):
    id: str
    name: str
    description: str
    channel: Channel
    status: Status = Field(description="`published` once a version is")
    latestVersion: int
    publishedVersion: int | None
    draftVersion: int | None
    createdAt: str
    updatedAt: str
    etag: str = Field(
        description="The ETag header's value: send it as If-Match to write only if nothing changed"
    )
    defaultLocale: str | None = Field(default=None, description="The latest version's")
    variants: dict[str, dict[str, Any]] | None = Field(default=None, description="The latest version's")
    fragments: list[str] | None = Field(default=None, description="The fragments the latest version includes")
    tracking: EmailTracking | None = Field(default=None, description="Email templates: the latest version's")
    versions: list[VersionSummary] | None = None


class TemplatePage(BaseModel):
    items: list[TemplateOut]
    page: PageOut
    link: LinkOut


class TemplateVersionOut(VersionSummary):
    templateId: str
    name: str
    description: str
    channel: Channel
    defaultLocale: str
    variants: dict[str, dict[str, Any]]
    fragments: list[str] = Field(description="The fragment ids its parts include")
    tracking: EmailTracking | None = Field(default=None, description="Email templates: opens and clicks")
    problems: list[ProblemOut] | None = Field(
        default=None, description="Drafts: what publishing would refuse now"
    )


class UndefinedOut(BaseModel):
    path: str
    line: int
    column: int
    offset: int
    endOffset: int
    fragment: str | None = None


class PreviewPartOut(BaseModel):
    text: str | None = Field(description="null when the part does not compile")
    undefinedPaths: list[UndefinedOut]
    errors: list[ProblemOut]


class PreviewOut(BaseModel):
    templateId: str
    profileId: str | None = Field(default=None, description="The profile read, when one was named")
    version: int
    locale: str
    parts: dict[str, PreviewPartOut] = Field(description="By part: `subject`, `html`, `data/url`...")
    errors: list[ProblemOut] = Field(description="Every part's compile and render errors, with paths")
