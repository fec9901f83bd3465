"""Request and response bodies of ``/data/core/ups/segment/jobs``, in AEP's shape.

A request is checked for shape here (a wrong type is a 422 with ``/body/...`` paths);
whether its segments exist, and how many there are, is checked by the service (400,
with paths into the list: ``/1/segmentId``).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from itinera.segmentation.definitions.schemas import PROBLEMS as DEFINITION_PROBLEMS
from itinera.segmentation.definitions.schemas import MissingOut, Storable

Status = Literal["NEW", "PROCESSING", "CANCELLING", "SUCCEEDED", "FAILED", "CANCELLED"]
Listed = Literal["NEW", "QUEUED", "PROCESSING", "CANCELLING", "SUCCEEDED", "FAILED", "CANCELLED"]
"""The statuses a list may ask for: AEP's. A job here waits as NEW until a worker takes
it, so none is ever QUEUED."""
PROPERTY_PREFIX = "segments~segmentId=="


class JobRequest(BaseModel):
    """``SegmentJobRequest``: one audience to evaluate."""

    model_config = ConfigDict(extra="forbid")

    segmentId: str = Field(max_length=256, description="The id of a segment definition of the sandbox")


class ListQuery(BaseModel):
    """The list's query string: AEP's ``start``, ``limit``, ``status``, ``sort``,
    ``property`` (``segments~segmentId==<id>``: the jobs that evaluate that audience) and
    ``snapshot.name`` (the jobs that take a snapshot of that name: see ``SnapshotOut``)."""

    start: int = Field(default=0, ge=0, le=10**12, description="The offset of the first job returned")
    limit: int = Field(default=100, ge=1, le=1000, description="Jobs per page")
    status: Listed | None = Field(default=None, description="Only the jobs in this status")
    sort: Literal["creationTime:desc", "creationTime:asc", "updateTime:desc", "updateTime:asc"] = Field(
        default="creationTime:desc", description="`creationTime` or `updateTime`, `:asc` or `:desc`"
    )
    property: str | None = Field(
        default=None, max_length=300, description="`segments~segmentId==<id>`: the jobs evaluating it"
    )
    snapshot: Annotated[str, StringConstraints(min_length=1, max_length=256), Storable] | None = Field(
        default=None,
        alias="snapshot.name",
        description="The jobs taking a snapshot of this name (an audience's name, in any case)",
    )

    @field_validator("property")
    @classmethod
    def _segment_filter(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(PROPERTY_PREFIX):
            raise ValueError(f"only {PROPERTY_PREFIX}<id> is supported")
        try:
            return PROPERTY_PREFIX + str(uuid.UUID(value.removeprefix(PROPERTY_PREFIX)))
        except ValueError:
            raise ValueError(f"{PROPERTY_PREFIX} takes a segment definition id") from None


# Responses


class SandboxOut(BaseModel):
    sandboxName: str


class ExpressionOut(BaseModel):
    type: str
    format: str
    value: str


class SegmentOut(BaseModel):
    id: str
    expression: ExpressionOut
    mergePolicyId: str | None = None


class SegmentInfoOut(BaseModel):
    segmentId: str
    segment: SegmentOut = Field(description="The definition as it was when the job was created")


class SpanOut(BaseModel):
    startTimeInMs: int | None = None
    endTimeInMs: int | None = None
    totalTimeInMs: int | None = None


class ByStatusOut(BaseModel):
    realized: int = Field(description="Profiles that entered the audience in this job")
    existing: int = Field(description="Profiles that were members and still are")
    exited: int = Field(description="Profiles that left the audience in this job")


class MetricsOut(BaseModel):
    totalTime: SpanOut = Field(description="From the request to the end of the job")
    profileSegmentationTime: SpanOut = Field(description="From the first chunk evaluated to the end")
    totalProfiles: int = Field(description="Profiles evaluated so far")
    segmentedProfileCounter: dict[str, int] = Field(description="Members of each audience after this job")
    segmentedProfileByStatusCounter: dict[str, ByStatusOut]


class LinkOut(BaseModel):
    href: str
    method: str


class LinksOut(BaseModel):
    cancel: LinkOut
    checkStatus: LinkOut


class ErrorOut(BaseModel):
    code: str
    msg: str


class SchemaOut(BaseModel):
    name: str


class ProgressOut(BaseModel):
    profilesDone: int
    profilesTotal: int | None = Field(
        default=None, description="The profiles of the sandbox when the job started; absent before"
    )


class SnapshotOut(BaseModel):
    """What the job makes of one of its audiences: its memberships as the job leaves them."""

    segmentId: str
    name: str = Field(description="The audience's name when the job was created")


class ExtensionOut(BaseModel):
    progress: ProgressOut
    trigger: Literal["requested", "saved", "scheduled"] = Field(
        description="Why the job runs: asked for, a definition's rule saved, or a schedule"
    )
    scheduleId: str | None = Field(default=None, description="The schedule that created it")
    snapshots: list[SnapshotOut] = Field(
        description="A snapshot of each audience evaluated, named after it (`snapshot.name` filters on it)"
    )


class JobOut(BaseModel):
    """``SegmentJob``, with the ``itinera`` extension (progress)."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    imsOrgId: str
    sandbox: SandboxOut
    profileInstanceId: str
    status: Status
    segments: list[SegmentInfoOut]
    metrics: MetricsOut
    errors: list[ErrorOut] | None = Field(default=None, description="Why the job FAILED")
    schema_: SchemaOut = Field(alias="schema")
    creationTime: int = Field(description="Epoch milliseconds")
    updateTime: int = Field(description="Epoch milliseconds")
    updateEpoch: int = Field(description="Epoch seconds")
    links: LinksOut = Field(alias="_links")
    itinera: ExtensionOut


class PageOut(BaseModel):
    totalCount: int
    pageSize: int


class NextOut(BaseModel):
    next: LinkOut | None = None


class BulkOut(BaseModel):
    results: dict[str, JobOut | MissingOut]


class JobPage(BaseModel):
    page: PageOut = Field(alias="_page")
    children: list[JobOut]
    links: NextOut = Field(alias="_links")


PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: response for status, response in DEFINITION_PROBLEMS.items() if status != 400
}
"""The problems any endpoint may answer (401, 403, 422, 503), as the definitions' are."""
