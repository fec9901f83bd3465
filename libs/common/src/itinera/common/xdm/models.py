"""Pydantic models of the XDM pieces code reads directly.

Full validation of an entity is JSON Schema (``itinera.common.xdm.schemas``); these
models give typed access to the envelope fields that services route and key on.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from itinera.common.xdm.identity import AuthenticatedState, IdentityItem, IdentityMap

EXPERIENCE_EVENT = "https://ns.adobe.com/xdm/context/experienceevent"
PROFILE = "https://ns.adobe.com/xdm/context/profile"

__all__ = [
    "EXPERIENCE_EVENT",
    "PROFILE",
    "AuthenticatedState",
    "EventHeader",
    "IdentityItem",
    "IdentityMap",
    "SchemaRef",
]


class SchemaRef(BaseModel):
    """A reference to a schema: its ``$id`` and, optionally, the XED content type
    (``application/vnd.adobe.xed-full+json;version=1``)."""

    model_config = ConfigDict(populate_by_name=True)

    id: str = Field(min_length=1)
    content_type: str | None = Field(default=None, alias="contentType")


class EventHeader(BaseModel):
    """The fields every experience event has, whatever its field groups."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str = Field(alias="_id", min_length=1)
    timestamp: AwareDatetime
    event_type: str | None = Field(default=None, alias="eventType")
    identity_map: dict[str, list[IdentityItem]] | None = Field(default=None, alias="identityMap")

    @property
    def time(self) -> datetime:
        return self.timestamp
