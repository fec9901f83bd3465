"""Profiles read from the profile service for previews.

A preview may name a profile (by id, or by one of its identities) instead of carrying
it: the content service asks the profile service (``GET /v1/profiles/{id}`` or
``GET /v1/profiles?identity=``, the default merge policy) with the caller's own bearer
token, so a caller previews only profiles it may read (``profiles:read`` in its
sandbox) and no credential of the content service's own is needed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from itinera.common.errors import FieldError, Forbidden, ServiceUnavailable, Unprocessable


class ProfileReader:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s)

    async def close(self) -> None:
        await self._http.aclose()

    async def read(
        self, authorization: str, *, profile_id: str | None, identity: str | None
    ) -> dict[str, Any]:
        """The profile's merged view (``{profileId, entity, ...}``), as the caller may
        read it. ``profile_id`` or ``identity`` (``Namespace:value``) names it."""
        if profile_id is not None:
            path, params, field = f"/v1/profiles/{quote(profile_id, safe='')}", {}, "/profileId"
        else:
            assert identity is not None
            path, params, field = "/v1/profiles", {"identity": identity}, "/identity"
        try:
            response = await self._http.get(path, params=params, headers={"authorization": authorization})
        except httpx.HTTPError as error:
            raise ServiceUnavailable(
                f"the profile service cannot be reached: {type(error).__name__}"
            ) from None
        if response.status_code == 200:
            found: dict[str, Any] = response.json()
            return found
        if response.status_code in (401, 403):
            raise Forbidden("the caller may not read profiles here (profiles:read)")
        if response.status_code in (400, 404):
            raise Unprocessable(
                "no such profile",
                [FieldError(field, _detail(response) or "no profile answers to it", "not-found")],
            )
        raise ServiceUnavailable(f"the profile service answered {response.status_code}")


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("detail") or body.get("title") or "") if isinstance(body, dict) else ""
