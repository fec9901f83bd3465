"""Request and response bodies of ``/data/core/ups/segment/definitions``, in AEP's shape.

Requests are checked for shape here (a wrong type is a 422 with ``/body/...`` paths);
what the values mean (the PQL, the schema, the evaluation modes, the audiences a rule
names) is checked by the service, which answers 400 with paths into the definition
(``/expression/value``). The fields AEP returns and clients send back unchanged
(``creationTime``, ``imsOrgId``...) are accepted and ignored (a PATCH's ``id`` must be the
definition's); any other field is refused, so a misspelt one is not silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from itinera.common.web.problems import documented

PROFILE_CLASS = "_xdm.context.profile"
SORTABLE = {
    "name": "name",
    "creationTime": "created_at",
    "updateTime": "updated_at",
    "updateEpoch": "updated_at",
    "id": "id",
}
"""Sort keys of the list (AEP's attribute names) and the columns they order by."""

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(text: str) -> str:
    """PostgreSQL text holds no NUL character, and UTF-8 no lone surrogate."""
    if _UNSTORABLE.search(text):
        raise ValueError("NUL characters and lone surrogates are not allowed")
    return text


Storable = AfterValidator(_storable)
Text = Annotated[str, Storable]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256), Storable]
Description = Annotated[str, StringConstraints(max_length=4096), Storable]
MergePolicyId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128), Storable
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Toggle(_Strict):
    enabled: bool


class EvaluationInfo(_Strict):
    """How the audience is evaluated: ``batch`` (daily), ``continuous`` (streaming, as
    events arrive) and ``synchronous`` (edge, per request)."""

    batch: Toggle | None = None
    continuous: Toggle | None = None
    synchronous: Toggle | None = None


class ExpressionIn(_Strict):
    type: str = Field(default="PQL", max_length=32, description="`PQL`")
    format: str = Field(
        default="pql/text", max_length=32, description="`pql/text` (`pql/json` is not supported)"
    )
    value: Text = Field(description="The rule, in PQL")


class SchemaIn(_Strict):
    name: str | None = Field(default=None, max_length=256, description="`_xdm.context.profile`")
    id: str | None = Field(default=None, max_length=1024)


class GovernanceIn(_Strict):
    excludeOptOut: bool = True


class ReadOnlyFields(_Strict):
    """Fields of a returned definition that a client may send back; they are ignored."""

    imsOrgId: str | None = None
    sandbox: dict[str, Any] | None = None
    profileInstanceId: str | None = None
    payloadSchema: str | None = None
    dataGovernancePolicy: GovernanceIn | None = None
    creationTime: int | None = None
    updateTime: int | None = None
    updateEpoch: int | None = None
    itinera: dict[str, Any] | None = None


class DefinitionIn(ReadOnlyFields):
    """``CreateSegmentDefinition``. Without ``evaluationInfo`` the audience is evaluated in batch."""

    id: str | None = Field(default=None, description="Ignored: ids are given by the service")
    name: Name
    description: Description = ""
    expression: ExpressionIn
    schema_: SchemaIn = Field(alias="schema")
    evaluationInfo: EvaluationInfo | None = None
    mergePolicyId: MergePolicyId | None = None


class DefinitionPatch(ReadOnlyFields):
    """A partial update: the fields given replace the stored ones. ``mergePolicyId: null``
    removes the merge policy; ``description: null`` empties the description."""

    id: str | None = Field(default=None, description="When given, the id of the definition patched")
    name: Name | None = None
    description: Description | None = None
    expression: ExpressionIn | None = None
    schema_: SchemaIn | None = Field(default=None, alias="schema")
    evaluationInfo: EvaluationInfo | None = None
    mergePolicyId: MergePolicyId | None = None


class IdRef(_Strict):
    id: Text = Field(max_length=256)


class BulkGet(_Strict):
    ids: list[IdRef]


class ListQuery(BaseModel):
    """The list's query string: AEP's ``start``, ``limit``, ``page`` and ``sort``, and its
    ``evaluationInfo.continuous.enabled`` filter."""

    model_config = ConfigDict(populate_by_name=True)

    start: int = Field(default=0, ge=0, le=10**12, description="The offset of the first definition returned")
    limit: int = Field(default=100, ge=1, le=1000, description="Definitions per page")
    page: int = Field(
        default=0, ge=0, le=10**9, description="A page number (0-based): `start` moves by `page` x `limit`"
    )
    sort: str = Field(
        default="creationTime:desc",
        max_length=200,
        description="`attribute:asc|desc`, comma-separated: name, creationTime, updateTime, id",
    )
    continuous: bool | None = Field(default=None, alias="evaluationInfo.continuous.enabled")

    @field_validator("sort")
    @classmethod
    def _known_keys(cls, value: str) -> str:
        order_by(value)
        return value


def order_by(sort: str, sortable: Mapping[str, str] = SORTABLE) -> list[tuple[str, bool]]:
    """``name:asc,updateTime:desc`` as (AEP attribute, descending) pairs, each attribute
    one of ``sortable``'s."""
    keys: list[tuple[str, bool]] = []
    for part in sort.split(","):
        field, _, direction = part.strip().partition(":")
        if field not in sortable:
            raise ValueError(f"cannot sort by {field!r}; sort by {', '.join(sortable)}")
        if direction not in ("", "asc", "desc"):
            raise ValueError(f"the direction of {field} is asc or desc, not {direction!r}")
        if field in (k for k, _ in keys):
            raise ValueError(f"{field} is named twice")
        keys.append((field, direction == "desc"))
    return keys


# Responses


class SchemaOut(BaseModel):
    name: str


class ExpressionOut(BaseModel):
    type: str
    format: str
    value: str


class ToggleOut(BaseModel):
    enabled: bool


class EvaluationOut(BaseModel):
    batch: ToggleOut
    continuous: ToggleOut
    synchronous: ToggleOut


class SandboxOut(BaseModel):
    sandboxName: str


class GovernanceOut(BaseModel):
    excludeOptOut: bool


class StreamingOut(BaseModel):
    eligible: bool
    reasons: list[str]


class FindingsOut(BaseModel):
    """What the PQL engine found in the rule, for the services that evaluate it."""

    references: list[str] = Field(description="Attribute paths read (events' under `xEvent.`)")
    audiences: list[str] = Field(description="Audiences named by `inSegment`")
    streaming: StreamingOut = Field(description="Whether AEP's streaming rules allow it, and why not")
    lookbackSeconds: float | None = Field(description="How far back in the events it looks; null: unbounded")
    timeDependent: bool = Field(description="Whether its value can change with time alone")
    origin: Literal["rule", "upload"] = Field(
        description="`rule`: written in PQL; `upload`: a list of people uploaded (its rule is not edited)"
    )


class DefinitionOut(BaseModel):
    """``SegmentDefinition``, with the ``itinera`` extension."""

    id: str
    schema_: SchemaOut = Field(alias="schema")
    profileInstanceId: str
    imsOrgId: str
    sandbox: SandboxOut
    name: str
    description: str
    expression: ExpressionOut
    mergePolicyId: str | None = None
    evaluationInfo: EvaluationOut
    dataGovernancePolicy: GovernanceOut
    creationTime: int = Field(description="Epoch milliseconds")
    updateEpoch: int = Field(description="Epoch seconds")
    updateTime: int = Field(description="Epoch milliseconds")
    itinera: FindingsOut


class PageOut(BaseModel):
    totalCount: int
    totalPages: int
    sortField: str
    sort: str
    pageSize: int
    limit: int
    start: int


class LinkOut(BaseModel):
    next: str | None = None


class DefinitionPage(BaseModel):
    segments: list[DefinitionOut]
    page: PageOut
    link: LinkOut


class ErrorItem(BaseModel):
    code: int
    message: str


class MissingOut(BaseModel):
    requestId: str
    errors: dict[str, list[ErrorItem]]


class BulkOut(BaseModel):
    results: dict[str, DefinitionOut | MissingOut]


class MessageOut(BaseModel):
    status: bool
    message: str


PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: documented("The definition is not valid: every reason, with its path"),
    401: documented("Missing or invalid bearer token"),
    403: documented("Missing scope, or the sandbox differs from the token's"),
    422: documented("The request does not have the expected shape"),
    503: documented("The database is unavailable; retry with backoff"),
}
