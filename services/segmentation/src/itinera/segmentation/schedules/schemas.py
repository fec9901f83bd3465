"""Request and response bodies of ``/data/core/ups/config/schedules``, in AEP's shape.

Shapes are checked here (422 with ``/body/...`` paths); what the values mean (the job
type, the audiences, the cron expression) by the service (400, with paths into the
schedule such as ``/schedule`` or ``/properties/segments/0``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from itinera.segmentation.definitions.schemas import PROBLEMS as DEFINITION_PROBLEMS
from itinera.segmentation.definitions.schemas import Name, Storable

State = Literal["active", "inactive"]
Segment = Annotated[str, StringConstraints(min_length=1, max_length=256), Storable]
Cron = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256), Storable]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PropertiesIn(_Strict):
    segments: list[Segment] = Field(
        min_length=1,
        max_length=100,
        description='Segment definition ids to evaluate, or `["*"]`: every definition evaluated in batch',
    )


class ScheduleIn(_Strict):
    """``ScheduleCreate``."""

    name: Name
    type: Annotated[str, StringConstraints(max_length=64)] = Field(
        description="`batch_segmentation` (AEP's `export` is not supported)"
    )
    properties: PropertiesIn
    schedule: Cron = Field(description="Quartz cron, UTC, at most once a day: `0 30 13 * * ?`")
    state: State = Field(default="inactive", description="An inactive schedule never fires")


class PatchOperation(_Strict):
    """``schedulePatchOperation``: ``add`` to ``/state`` or ``/schedule``."""

    op: Literal["add"]
    path: Literal["/state", "/schedule"]
    value: Cron


class PropertiesOut(BaseModel):
    segments: list[str]


class ExtensionOut(BaseModel):
    nextRunTime: str | None = Field(default=None, description="The next occurrence (UTC), when active")
    lastRunTime: str | None = Field(default=None, description="The last occurrence that fired")
    lastJobId: str | None = Field(default=None, description="The segment job it created")


class ScheduleOut(BaseModel):
    """``Schedule``, with the ``itinera`` extension (occurrences)."""

    id: str
    name: str
    type: str
    properties: PropertiesOut
    schedule: str
    state: State
    createEpoch: int
    updateEpoch: int
    itinera: ExtensionOut


class PageOut(BaseModel):
    totalCount: int
    pageSize: int
    next: str | None = Field(default=None, description="The `start` of the next page")


class SchedulePage(BaseModel):
    page: PageOut = Field(alias="_page")
    children: list[ScheduleOut]


class ListQuery(BaseModel):
    start: int = Field(default=0, ge=0, le=10**12, description="The offset of the first schedule returned")
    limit: int = Field(default=100, ge=1, le=1000, description="Schedules per page")


PROBLEMS: dict[int | str, dict[str, Any]] = dict(DEFINITION_PROBLEMS)
"""The problems any endpoint may answer (400, 401, 403, 422, 503)."""
