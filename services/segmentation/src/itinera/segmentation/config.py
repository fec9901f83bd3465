"""Segmentation service settings (``ITINERA_SEGMENTATION_*``) on top of the common ones."""

from __future__ import annotations

from functools import cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from itinera.common.settings import CommonSettings


class SegmentationSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ITINERA_", extra="ignore")

    segmentation_consumer_group: str = "itinera-segmentation"
    segmentation_evaluation_events: int = Field(default=10_000, ge=1)
    """The most recent events of a profile an evaluation reads at most."""
    segmentation_schedule_interval_s: float = Field(default=5.0, gt=0)
    """Seconds between looks for profiles whose answer time alone has changed."""
    segmentation_job_interval_s: float = Field(default=1.0, gt=0)
    """Seconds between looks for segment jobs and previews to run, when there are none."""
    segmentation_event_retention_s: float = Field(default=90 * 86_400, ge=0)
    """The projection keeps every event this young, whatever the rules' look-backs."""
    segmentation_event_trim_interval_s: float = Field(default=3600.0, gt=0)
    """Seconds between looks for events no rule can read any more."""
    segmentation_upload_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    """The largest CSV an upload takes, in bytes."""
    segmentation_upload_max_people: int = Field(default=100_000, ge=1)
    """The most people (lines) one upload takes."""
    segmentation_evaluate_on_save: bool = True
    """Whether saving a rule (a new definition, a changed expression) runs a segment job
    over it and the audiences naming it; off, memberships follow the new rule as profiles
    change, and in the next job asked for or scheduled."""
    segmentation_max_expression_length: int = Field(default=64 * 1024, ge=1024)
    """The longest PQL expression accepted, in characters."""
    segmentation_preview_max_profiles: int = Field(default=100_000, ge=1)
    """The most profiles a preview evaluates; beyond it, a deterministic sample of this size."""
    segmentation_preview_ttl_s: float = Field(default=3600.0, gt=0)
    """Seconds a preview (and its estimate) is kept, from its creation and again from its
    evaluation."""
    segmentation_size_fold_interval_s: float = Field(default=5.0, gt=0)
    """Seconds between folds of each audience's size counter rows into one."""


@cache
def settings() -> SegmentationSettings:
    return SegmentationSettings()
