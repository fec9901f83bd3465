"""What template and fragment previews share: the profile a preview renders with, given
in the body (``profile``) or named (``profileId`` or ``identity``) and then read from the
profile service with the caller's token (which needs ``profiles:read``)."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from itinera.common.errors import FieldError, ValidationFailed
from itinera.common.peers import ProfileReader
from itinera.content.templates.schemas import PreviewData


async def named_profile(request: Request, body: PreviewData) -> dict[str, Any] | None:
    """The profile service's answer for the profile the body names (``{profileId,
    entity, ...}``); None when the body gives the profile itself. 400 when it is named
    more than one way."""
    named = [name for name in ("profileId", "identity") if getattr(body, name) is not None]
    if not named:
        return None
    if len(named) > 1 or body.profile:
        raise ValidationFailed(
            "name the profile one way: profile, profileId or identity",
            [
                FieldError(f"/{name}", "give one of profile, profileId and identity", "exclusive")
                for name in named
            ],
        )
    reader: ProfileReader = request.app.state.runtime.state["profiles"]
    read: dict[str, Any] = await reader.read(
        request.headers.get("authorization", ""), profile_id=body.profileId, identity=body.identity
    )
    return read
