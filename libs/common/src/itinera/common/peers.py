"""Reading from another Itinera service over its HTTP API.

Services keep their own data and tell each other what changed through Kafka; a few
questions are still asked directly: the content service previews a profile the caller
names, journeys checks that the audiences a journey names exist and reads the profile
of an audience member it was never told about. Each call carries an ``authorization``
header: the caller's own (so a caller reaches only what it may) or a token the service
minted for the call (:meth:`ServiceTokens.authorization
<itinera.common.auth.ServiceTokens.authorization>`, a 503 itself when it has no key).

A peer that cannot be reached, or answers 5xx, is a :class:`ServiceUnavailable` (503)
naming it; a refused credential is a :class:`Forbidden`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable
from typing import Any
from urllib.parse import quote

import httpx

from itinera.common.errors import FieldError, Forbidden, ServiceUnavailable, Unprocessable

PROFILES_READ = ("profiles:read",)
AUDIENCES_READ = ("audiences:read",)
AUDIENCES = "/data/core/ups/audiences"
BULK = 100
"""Ids in one bulk-get (the segmentation service's limit)."""
AT_ONCE = 8
"""Profile look-ups in flight at once."""


class _Peer:
    name = "peer"

    def __init__(self, base_url: str, timeout_s: float) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s)

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, authorization: str, **options: Any) -> httpx.Response:
        try:
            response = await self._http.request(
                method, path, headers={"authorization": authorization}, **options
            )
        except httpx.HTTPError as error:
            raise ServiceUnavailable(
                f"the {self.name} service cannot be reached: {type(error).__name__}"
            ) from None
        if response.status_code in (401, 403):
            raise Forbidden(f"the {self.name} service refused the credential: {_detail(response)}")
        if response.status_code >= 500:
            raise ServiceUnavailable(f"the {self.name} service answered {response.status_code}")
        return response


class ProfileReader(_Peer):
    """Profiles' merged views (the default merge policy), from the profile service."""

    name = "profile"

    async def read(
        self, authorization: str, *, profile_id: str | None, identity: str | None
    ) -> dict[str, Any]:
        """The profile's merged view (``{profileId, entity, ...}``). ``profile_id`` or
        ``identity`` (``Namespace:value``) names it; none answering to it is a 422 at
        ``/profileId`` or ``/identity``."""
        if profile_id is not None:
            path, params, field = f"/v1/profiles/{quote(profile_id, safe='')}", {}, "/profileId"
        else:
            assert identity is not None
            path, params, field = "/v1/profiles", {"identity": identity}, "/identity"
        response = await self._call("GET", path, authorization, params=params)
        if response.status_code == 200:
            found: dict[str, Any] = response.json()
            return found
        if response.status_code in (400, 404):
            raise Unprocessable(
                "no such profile",
                [FieldError(field, _detail(response) or "no profile answers to it", "not-found")],
            )
        raise ServiceUnavailable(f"the profile service answered {response.status_code}")

    async def entities(self, authorization: str, profile_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The attributes (``entity``) of each profile that exists, by id; those the
        profile service does not know are left out."""
        gate = asyncio.Semaphore(AT_ONCE)

        async def one(profile_id: str) -> tuple[str, dict[str, Any] | None]:
            async with gate:
                try:
                    found = await self.read(authorization, profile_id=profile_id, identity=None)
                except Unprocessable:
                    return profile_id, None
            entity = found.get("entity")
            return profile_id, entity if isinstance(entity, dict) else {}

        answers = await asyncio.gather(*(one(p) for p in dict.fromkeys(profile_ids)))
        return {profile_id: entity for profile_id, entity in answers if entity is not None}


class AudienceReader(_Peer):
    """Which audiences exist, from the segmentation service."""

    name = "segmentation"

    async def existing(self, authorization: str, ids: Collection[str]) -> set[str]:
        """Those of ``ids`` that are audiences of the credential's sandbox."""
        wanted = list(dict.fromkeys(ids))
        found: set[str] = set()
        for start in range(0, len(wanted), BULK):
            chunk = wanted[start : start + BULK]
            response = await self._call(
                "POST", f"{AUDIENCES}/bulk-get", authorization, json={"ids": [{"id": i} for i in chunk]}
            )
            if response.status_code == 404:
                if not _names_all(response, chunk):  # a 404 of something else: a wrong URL?
                    raise ServiceUnavailable(
                        f"{self._http.base_url} answered 404 without naming the audiences asked for: "
                        "is it the segmentation service?"
                    )
                continue  # none of them exists
            if response.status_code != 207:
                raise ServiceUnavailable(f"the segmentation service answered {response.status_code}")
            results = response.json().get("results", {})
            found |= {key for key, entry in results.items() if isinstance(entry, dict) and "id" in entry}
        return found


def _names_all(response: httpx.Response, ids: Collection[str]) -> bool:
    """Whether a bulk-get's 404 is the segmentation service saying that none of ``ids``
    exists (its problem lists them in ``missing``), not a 404 of another server."""
    try:
        body = response.json()
    except ValueError:
        return False
    missing = body.get("missing") if isinstance(body, dict) else None
    return isinstance(missing, list) and set(ids) <= set(map(str, missing))


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("detail") or body.get("title") or "") if isinstance(body, dict) else ""
