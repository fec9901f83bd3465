"""Request and response bodies of AEP's ``/audiences``, ``/preview`` and ``/estimate``.

Requests are checked for shape here (a wrong type is a 422 with ``/body/...`` or
``/query/...`` paths); what a preview's rule means is checked by the service, which
answers 400 with every problem at ``/predicateExpression``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from itinera.segmentation.definitions.schemas import (
    PROFILE_CLASS,
    SORTABLE,
    DefinitionOut,
    Description,
    EvaluationInfo,
    ExpressionIn,
    MergePolicyId,
    MissingOut,
    Name,
    ReadOnlyFields,
    SchemaIn,
    Storable,
    Text,
    order_by,
)
from itinera.segmentation.definitions.schemas import (
    PageOut as DefinitionPageOut,
)

ORIGIN = "REAL_TIME_CUSTOMER_PROFILE"
UPLOAD_ORIGIN = "CUSTOM_UPLOAD"
ORIGINS = {"rule": ORIGIN, "upload": UPLOAD_ORIGIN}
"""AEP's ``originName`` of a definition's ``origin``: a rule, or an uploaded list."""
NAMESPACE = "AEPSegments"
TYPE = "SegmentDefinition"
LIFECYCLE = "published"
"""Every definition is evaluated as soon as it is saved: AEP's ``published``."""
FIXED: dict[str, str] = {
    "namespace": NAMESPACE,
    "type": TYPE,
    "lifecycleState": LIFECYCLE,
    "isSystem": "false",
    "schema.name": PROFILE_CLASS,
}
"""Attributes every audience here has with the same value: a ``property`` filter on one
keeps all audiences or none."""
STORED = ("id", "audienceId", "name", "mergePolicyId", "originName")
"""Attributes a ``property`` filter compares with what is stored."""
MODES = (
    "evaluationInfo.batch.enabled",
    "evaluationInfo.continuous.enabled",
    "evaluationInfo.synchronous.enabled",
)
PROPERTIES = (*STORED, *MODES, *FIXED)
SORTED_BY = {**SORTABLE, "metrics.data.totalProfiles": "members", "totalProfiles": "members"}
"""Sort keys of the list: the definitions' and the size (``metrics.data.totalProfiles``,
or ``totalProfiles`` for short), and the columns they order by."""
_PROPERTY = re.compile(r"(?P<attribute>[A-Za-z.]+)==(?P<value>.*)", re.DOTALL)


def parse_property(text: str) -> tuple[str, str]:
    """``attribute==value`` as (attribute, value); a ValueError names what is wrong."""
    found = _PROPERTY.fullmatch(text)
    if found is None:
        raise ValueError("write it attribute==value")
    attribute, value = found["attribute"], found["value"]
    if attribute not in PROPERTIES:
        raise ValueError(f"cannot filter on {attribute!r}; filter on {', '.join(PROPERTIES)}")
    if attribute in MODES and value not in ("true", "false"):
        raise ValueError(f"{attribute} is true or false, not {value!r}")
    return attribute, value


class ListQuery(BaseModel):
    """The list's query string: AEP's ``start``, ``limit``, ``sort``, ``property``,
    ``name``, ``description`` and ``entityType``."""

    start: int = Field(default=0, ge=0, le=10**12, description="The offset of the first audience returned")
    limit: int = Field(default=100, ge=1, le=1000, description="Audiences per page")
    sort: str = Field(
        default="creationTime:desc",
        max_length=200,
        description=(
            "`attribute:asc|desc`, comma-separated: name, creationTime, updateTime, id, "
            "metrics.data.totalProfiles (or totalProfiles: the size)"
        ),
    )
    property: str | None = Field(
        default=None,
        max_length=600,
        description=f"`attribute==value`, an exact match; attributes: {', '.join(PROPERTIES)}",
    )
    name: str | None = Field(default=None, max_length=256, description="Names containing this, in any case")
    description: str | None = Field(
        default=None, max_length=4096, description="Descriptions containing this, in any case"
    )
    entityType: str | None = Field(
        default=None, max_length=256, description="`_xdm.context.profile`: the only entity audiences are of"
    )

    @field_validator("sort")
    @classmethod
    def _known_keys(cls, value: str) -> str:
        order_by(value, SORTED_BY)
        return value

    @field_validator("property")
    @classmethod
    def _known_property(cls, value: str | None) -> str | None:
        if value is not None:
            parse_property(value)
        return value


Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), Storable]


class _AudienceReadOnly(ReadOnlyFields):
    """Fields of a returned audience that a client may send back; they are ignored."""

    originName: str | None = None
    isSystem: bool | None = None
    createEpoch: int | None = None
    etag: str | None = Field(default=None, alias="_etag")
    dependents: list[str] | None = None
    dependencies: list[str] | None = None
    definedOn: list[dict[str, Any]] | None = None
    metrics: dict[str, Any] | None = None


class AudienceIn(_AudienceReadOnly):
    """``CreatePlatformAudienceRequestBody``, and the body of a ``PUT``: an audience
    defined by a PQL rule (``type`` ``SegmentDefinition``). ``namespace``, ``type`` and
    ``lifecycleState`` may be given with the only values they have here (``AEPSegments``,
    ``SegmentDefinition``, ``published``)."""

    id: str | None = Field(default=None, description="On a PUT, the audience's id; ignored on a POST")
    audienceId: str | None = Field(default=None, description="As `id`")
    name: Name
    description: Description = ""
    type: str | None = Field(default=None, max_length=64, description="`SegmentDefinition`")
    namespace: str | None = Field(default=None, max_length=64, description="`AEPSegments`")
    lifecycleState: str | None = Field(default=None, max_length=32, description="`published`")
    expression: ExpressionIn
    schema_: SchemaIn | None = Field(default=None, alias="schema")
    labels: list[Label] = Field(
        default_factory=list, max_length=100, description="Data usage labels, e.g. `C1`"
    )
    evaluationInfo: EvaluationInfo | None = Field(
        default=None,
        description="On a POST, batch when absent; on a PUT, unchanged when absent",
    )
    mergePolicyId: MergePolicyId | None = Field(default=None, description="On a PUT, unchanged when absent")


class PatchOperationIn(BaseModel):
    """One JSON Patch operation (``add``, ``remove``, ``replace``)."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["add", "remove", "replace"]
    path: str = Field(max_length=256, pattern="^/", description="A JSON Pointer into the audience")
    value: Any = None


class PreviewIn(BaseModel):
    """``CreatePreviewRequest``."""

    model_config = ConfigDict(extra="forbid")

    predicateExpression: Text = Field(min_length=1, description="The rule, in PQL")
    predicateType: str = Field(
        default="pql/text", max_length=32, description="`pql/text` (or `PQL`); `pql/json` is not supported"
    )
    predicateModel: str = Field(
        default=PROFILE_CLASS, max_length=256, description="`_xdm.context.profile` (or `xdm.model.profile`)"
    )
    graphType: Literal["pdg", "none"] | None = Field(
        default=None, description="Accepted; profiles here are always the identity graph's merged profiles"
    )
    mergePolicyId: MergePolicyId | None = Field(
        default=None, description="Accepted and kept; profiles here are the default merge policy's view"
    )


class PageQuery(BaseModel):
    """A preview's page: AEP's ``offset`` (a count of results to skip) and ``limit``."""

    offset: int = Field(
        default=0, ge=0, le=10**9, description="Results to skip: `_page.next` of the page before"
    )
    limit: int = Field(default=1000, ge=1, le=1000, description="Results per page")


# Responses


class MetricsDataOut(BaseModel):
    totalProfiles: int = Field(description="The audience's size: its current members (realized or existing)")
    totalProfilesByStatus: dict[str, int] = Field(
        description="Memberships by status: `realized`, `existing` and `exited` (profiles that left)"
    )


class MetricsOut(BaseModel):
    type: str = Field(description="`membership`: the memberships as they stand, kept as counters")
    data: MetricsDataOut


class AudienceOut(DefinitionOut):
    """``PlatformGeneratedAudience``: a segment definition, with its size in ``metrics``."""

    model_config = ConfigDict(populate_by_name=True)

    audienceId: str
    namespace: str
    type: str
    originName: str
    lifecycleState: str
    isSystem: bool
    createEpoch: int = Field(description="Epoch seconds")
    etag: str = Field(alias="_etag")
    dependents: list[str] = Field(description="The audiences its rule names (`inSegment`)")
    dependencies: list[str] = Field(description="The audiences whose rules name it")
    definedOn: list[dict[str, str]]
    metrics: MetricsOut
    labels: list[str] = Field(description="Data usage labels, as given")


class PageOut(DefinitionPageOut):
    next: int | None = Field(default=None, description="`start` of the next page; absent on the last")


class HrefOut(BaseModel):
    href: str


class LinksOut(BaseModel):
    next: HrefOut | None = None


class AudiencePage(BaseModel):
    """``AudiencesList``."""

    model_config = ConfigDict(populate_by_name=True)

    children: list[AudienceOut]
    page: PageOut = Field(alias="_page")
    links: LinksOut = Field(alias="_links")


class BulkOut(BaseModel):
    results: dict[str, AudienceOut | MissingOut]


State = Literal["RUNNING", "RESULT_READY", "FAILED"]
"""A preview's: being evaluated, evaluated (its results kept), or given up on."""


class PreviewQueryOut(BaseModel):
    """``PreviewQueryResponse``: the preview as created, RUNNING until a worker has
    evaluated it."""

    previewQueryId: str
    state: State
    previewQueryStatus: State
    previewId: str = Field(description="The preview's id, and its estimate's")
    previewExecutionId: int = Field(description="Always 0: a preview is evaluated once")


class ResultOut(BaseModel):
    """``PreviewResults``, with the profile's attributes (``entity``) as evaluated."""

    model_config = ConfigDict(populate_by_name=True)

    objectId: str = Field(description="The profile id")
    entity: dict[str, Any] = Field(description="The profile's attributes when the rule was evaluated")
    href: str = Field(alias="_href", description="The profile in the profile service's access API")
    relatedObjects: list[dict[str, str]]


class ResultPageOut(BaseModel):
    offset: str
    limit: int
    pageSize: int
    totalCount: int = Field(description="Qualifying profiles among those evaluated")
    next: str | None = Field(default=None, description="`offset` of the next page; absent on the last")


class PreviewOut(BaseModel):
    """``PreviewResponse``: no results until the state is RESULT_READY."""

    model_config = ConfigDict(populate_by_name=True)

    state: State
    results: list[ResultOut]
    page: ResultPageOut = Field(alias="_page")
    link: str | None = Field(default=None, description="The next page; absent on the last")


class EstimateErrorOut(BaseModel):
    description: str
    traceback: str


class PreviewLinkOut(BaseModel):
    preview: str


class IntervalOut(BaseModel):
    low: int
    high: int


class EstimateExtensionOut(BaseModel):
    sampled: bool | None = Field(
        default=None, description="Whether a sample was evaluated instead of every profile; once evaluated"
    )
    interval: IntervalOut | None = Field(
        default=None, description="The 95% confidence interval of the size; once evaluated"
    )
    evaluatedAt: str | None = Field(
        default=None, description="The moment the rule was evaluated at (its `now`); once evaluated"
    )
    expiresAt: str


class NamespaceCountOut(BaseModel):
    namespaceId: str = Field(description="AEP's id of a standard namespace (`6`: Email); a custom one's code")
    namespaceCode: str
    profilesMatchedSoFar: int = Field(description="Qualifying profiles read with an identity in it")


class EstimateOut(BaseModel):
    """``EstimateResponse``, with the interval's bounds (``itinera``); zeros until the
    preview is RESULT_READY, and why it FAILED in ``error.description``."""

    model_config = ConfigDict(populate_by_name=True)

    estimatedSize: int = Field(description="Qualifying profiles; extrapolated from the sample when sampled")
    numRowsToRead: int = Field(description="Profiles the estimate evaluates")
    estimatedNamespaceDistribution: list[NamespaceCountOut] = Field(
        description="Qualifying profiles by the namespaces of their `identityMap`, the most common first"
    )
    state: State
    profilesReadSoFar: int
    profilesMatchedSoFar: int
    standardError: int = Field(description="Of `estimatedSize`; 0 when every profile was evaluated")
    error: EstimateErrorOut
    totalRows: int = Field(description="Profiles in the sandbox when the rule was evaluated")
    confidenceInterval: str = Field(description="The level of `itinera.interval`: `95%`")
    links: PreviewLinkOut = Field(alias="_links")
    itinera: EstimateExtensionOut
