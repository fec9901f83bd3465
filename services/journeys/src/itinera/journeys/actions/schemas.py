"""``/v1/actions`` bodies and answers: custom actions, the HTTP calls a journey makes.

Requests are checked for shape here (a 422 with ``/body/...`` paths); the URL, the
templates and the authentication are checked by the service, which answers 400 with
every problem and its path (``/url``, ``/headers/X-Tenant``). Secrets (a password, a
token, a header's value) are written, never read back: answers say only that one is set.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from itinera.common.web.problems import documented
from itinera.journeys.values import Description, Identifier, Name, Storable, Strict

HeaderName = Annotated[str, StringConstraints(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")]
HeaderValue = Annotated[str, StringConstraints(pattern=r"^[^\r\n]{0,4096}$"), Storable]
"""No line break: a value cannot smuggle another header in."""
Secret = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=r"^[^\r\n]*$"), Storable]
FieldPath = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z_$][A-Za-z0-9_$-]{0,63}(\.[A-Za-z_$][A-Za-z0-9_$-]{0,63}){0,31}$"),
]


class NoAuth(Strict):
    type: Literal["none"]


class BasicAuth(Strict):
    type: Literal["basic"]
    username: Annotated[
        str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^:\r\n]*$"), Storable
    ]
    password: Secret | None = Field(default=None, description="Write-only; kept when omitted on PUT")


class BearerAuth(Strict):
    type: Literal["bearer"]
    token: Secret | None = Field(default=None, description="Write-only; kept when omitted on PUT")


class HeaderAuth(Strict):
    """An API key in a header of the action's choosing."""

    type: Literal["header"]
    name: HeaderName
    value: Secret | None = Field(default=None, description="Write-only; kept when omitted on PUT")


Auth = Annotated[NoAuth | BasicAuth | BearerAuth | HeaderAuth, Field(discriminator="type")]


class ResponseField(Strict):
    name: Identifier = Field(description="Read downstream as `_journey.actions.<node>.<name>`")
    path: FieldPath | None = Field(default=None, description="Where in the JSON answer; default: `name`")
    type: Literal["string", "number", "integer", "boolean", "object", "array"] = "string"


class RateCap(Strict):
    """The most calls to the action's endpoint (scheme, host and port) in a period."""

    calls: int = Field(default=1000, ge=1, le=1_000_000)
    periodSeconds: int = Field(default=1, ge=1, le=86_400)


class ActionIn(Strict):
    """A custom action. ``{{name}}`` in the URL, a header value or the body is a
    parameter that the journey's ``action`` node gives in ``inputs``: in the URL it is
    percent-encoded, in a header inserted as text, in the body inserted as a JSON value
    (``"jane@example.com"``, ``42``), so a body template does not quote it."""

    name: Name
    description: Description = ""
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: Annotated[str, StringConstraints(min_length=1, max_length=2048), Storable]
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict, max_length=50)
    body: Annotated[str, StringConstraints(max_length=64 * 1024), Storable] | None = None
    auth: Auth = Field(default_factory=lambda: NoAuth(type="none"))
    timeoutSeconds: float = Field(default=10.0, gt=0, le=30)
    retries: int = Field(default=1, ge=0, le=5, description="Further attempts after a failure or timeout")
    responseFields: list[ResponseField] = Field(default_factory=list, max_length=100)
    rateCap: RateCap = Field(default_factory=RateCap)


class ListQuery(BaseModel):
    start: int = Field(default=0, ge=0, le=10**9)
    limit: int = Field(default=100, ge=1, le=1000)


# Answers


class AuthOut(BaseModel):
    type: str
    username: str | None = None
    name: str | None = None
    secretSet: bool


class ActionOut(BaseModel):
    id: str
    name: str
    description: str
    method: str
    url: str
    headers: dict[str, str]
    body: str | None
    auth: AuthOut
    timeoutSeconds: float
    retries: int
    responseFields: list[ResponseField]
    rateCap: RateCap
    endpoint: str = Field(description="Scheme, host and port: what the rate cap applies to")
    parameters: list[str] = Field(description="The `{{name}}` parameters the templates use")
    createdAt: str
    updatedAt: str
    etag: str = Field(description="The ETag header's value: as If-Match, writes go only if nothing changed")


class PageOut(BaseModel):
    totalCount: int
    start: int
    limit: int
    pageSize: int


class LinkOut(BaseModel):
    next: str | None = None


class ActionPage(BaseModel):
    items: list[ActionOut]
    page: PageOut
    link: LinkOut


PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: documented("The action is not valid: every problem, with its path"),
    401: documented("Missing or invalid bearer token"),
    403: documented("Missing scope, or the sandbox differs from the token's"),
    404: documented("No such action in this sandbox"),
    422: documented("The request does not have the expected shape"),
    503: documented("The database is unavailable; retry with backoff"),
}
