"""Ingestion settings (``ITINERA_INGESTION_*``) on top of the common ones."""

from __future__ import annotations

from functools import cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from itinera.common.settings import CommonSettings


class IngestionSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ITINERA_", extra="ignore")

    ingestion_tenant_id: str = Field(default="itinera", pattern=r"^[a-z][a-z0-9]{1,63}$")
    """The tenant namespace of custom schemas and field groups (``_itinera``)."""
    ingestion_ims_org: str = "ITINERA0000000000000000@ItineraOrg"
    ingestion_max_message_bytes: int = 1024 * 1024
    """AEP's streaming limit: one request to /collection is at most 1 MB."""
    ingestion_max_native_bytes: int = 32 * 1024 * 1024
    ingestion_max_depth: int = 32
    """Deepest nesting accepted in an entity; deeper input is refused, not recursed into."""
    ingestion_catalog_ttl_s: float = 30.0
    ingestion_consumer_group: str = "itinera-ingestion"
    ingestion_feedback_consumer_group: str = "itinera-ingestion-feedback"
    """Consumer group of the ``itinera.feedback.v1`` worker."""
    ingestion_feedback_push_namespace: str | None = None
    """Identity namespace of push tokens in feedback events. No standard namespace holds
    them, so push feedback is dead-lettered unless a (custom) namespace is named here."""


@cache
def settings() -> IngestionSettings:
    return IngestionSettings()
