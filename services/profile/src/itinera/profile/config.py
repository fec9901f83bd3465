"""Profile service settings (``ITINERA_PROFILE_*``) on top of the common ones."""

from __future__ import annotations

from functools import cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from itinera.common.settings import CommonSettings


class ProfileSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ITINERA_", extra="ignore")

    profile_consumer_group: str = "itinera-profile"
    profile_updates_consumer_group: str = "itinera-profile-updates"
    profile_max_identities_per_graph: int = Field(default=50, ge=2, le=1000)
    """AEP's guardrail: beyond it the identities seen least recently are evicted."""
    profile_expiry_interval_s: float = Field(default=300, gt=0)
    """Seconds between sweeps deleting events past their dataset's time-to-live."""
    profile_rebuild_interval_s: float = Field(default=2, gt=0)
    """Seconds between looks for graphs to resolve again after a namespace's settings changed."""
    profile_tangle_settle_s: float = Field(default=5, ge=0)
    """Seconds a tangle larger than the reach limit waits, noted, before it is resolved
    whole (so one still growing is resolved once every few seconds, not after every batch)."""


@cache
def settings() -> ProfileSettings:
    return ProfileSettings()
