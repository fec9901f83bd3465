"""What journeys asks the segmentation and profile services, with tokens of its own.

- Publishing a journey, activating a campaign or executing one over an audience checks
  that the audiences named exist (the segmentation service's bulk-get, ``audiences:read``),
  unless ``ITINERA_JOURNEYS_CHECK_AUDIENCES`` is off; so does a periodic check once they
  are live (:mod:`itinera.journeys.audiences.checks`).
- An audience member the profile service never told journeys about (no event or change
  of it reached this service) is read from the profile service (``profiles:read``) before
  its message is asked for, so the message carries the profile the channels address; so
  is a unitary campaign's ``aep`` recipient that this service's profiles do not hold, by
  its identity, through the profile service's identity graph.

The tokens are journeys' own (:class:`~itinera.common.auth.ServiceTokens`, subject
``service:journeys``), for the one sandbox of the call. A peer that cannot be reached is
a 503 for the API call that needed it; a campaign chunk that needed it is tried again.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from itinera.common.auth import ServiceTokens
from itinera.common.errors import Unprocessable
from itinera.common.peers import (
    AUDIENCES_READ,
    PROFILES_READ,
    AudienceReader,
    ProfileReader,
)
from itinera.journeys.config import JourneysSettings


@dataclass
class Peers:
    tokens: ServiceTokens
    audiences: AudienceReader
    profiles: ProfileReader
    check_audiences: bool = True
    read_profiles: bool = True

    @classmethod
    def of(cls, settings: JourneysSettings) -> Peers:
        timeout = settings.journeys_peer_timeout_s
        return cls(
            ServiceTokens(settings, "journeys"),
            AudienceReader(settings.segmentation_service_url, timeout),
            ProfileReader(settings.profile_service_url, timeout),
            settings.journeys_check_audiences,
            settings.journeys_read_profiles,
        )

    async def close(self) -> None:
        await self.audiences.close()
        await self.profiles.close()

    async def existing_audiences(self, sandbox: str, ids: Collection[str]) -> set[str] | None:
        """Those of ``ids`` that are audiences of ``sandbox``; ``None`` when audiences are
        not checked (``ITINERA_JOURNEYS_CHECK_AUDIENCES`` off)."""
        if not self.check_audiences:
            return None
        if not ids:
            return set()
        return await self.audiences.existing(self.tokens.authorization(sandbox, AUDIENCES_READ), ids)

    async def profile_by_identity(
        self, sandbox: str, namespace: str, value: str
    ) -> tuple[str, dict[str, Any]] | None:
        """The id and attributes of the profile holding the identity, as the profile
        service resolves it (its identity graph); ``None`` when no profile does (or
        profiles are not read: ``ITINERA_JOURNEYS_READ_PROFILES`` off)."""
        if not self.read_profiles:
            return None
        try:
            found = await self.profiles.read(
                self.tokens.authorization(sandbox, PROFILES_READ),
                profile_id=None,
                identity=f"{namespace}:{value}",
            )
        except Unprocessable:
            return None
        profile_id, entity = found.get("profileId"), found.get("entity")
        if not isinstance(profile_id, str):
            return None
        return profile_id, entity if isinstance(entity, dict) else {}

    async def profiles_of(self, sandbox: str, profile_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The attributes of the profiles the profile service knows, by id (none when
        profiles are not read)."""
        wanted = list(profile_ids)
        if not wanted or not self.read_profiles:
            return {}
        return await self.profiles.entities(self.tokens.authorization(sandbox, PROFILES_READ), wanted)
