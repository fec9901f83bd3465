"""Content service settings (``ITINERA_CONTENT_*``) on top of the common ones."""

from __future__ import annotations

from functools import cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from itinera.common.settings import CommonSettings


class ContentSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ITINERA_", extra="ignore")

    content_max_locales: int = Field(default=50, ge=1, le=500)
    """The most locale variants a template may have."""
    content_max_part_chars: int = Field(default=512 * 1024, ge=1024, le=4 * 1024 * 1024)
    """The longest part (a subject, an HTML body, a fragment's content...), in characters."""
    content_profile_timeout_s: float = Field(default=5, gt=0, le=60)
    """How long a preview waits for the profile service (``ITINERA_PROFILE_SERVICE_URL``)."""


@cache
def settings() -> ContentSettings:
    return ContentSettings()
