"""The content service: message templates per channel and locale, and the fragments
they include, versioned and published; published versions go to the channels on
``itinera.content.v1``; templates are previewed with a profile and a context.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from itinera.common.peers import ProfileReader
from itinera.common.service import Runtime, Service
from itinera.content.config import ContentSettings, settings


def _routers() -> Sequence[APIRouter]:
    from itinera.content.fragments.endpoints import router as fragments
    from itinera.content.templates.endpoints import router as templates

    return (templates, fragments)


async def _setup(runtime: Runtime) -> None:
    config = runtime.settings
    assert isinstance(config, ContentSettings)
    reader = ProfileReader(config.profile_service_url, config.content_profile_timeout_s)
    runtime.state["profiles"] = reader
    runtime.on_stop.append(reader.close)


SERVICE = Service(
    name="content",
    port=8005,
    schema="content",
    migrations="itinera.content.migrations",
    settings=settings,
    routers=_routers,
    setup=_setup,
    title="Itinera content",
    description=(
        "Message templates in the shape of Adobe Journey Optimizer's content: per channel "
        "(email, SMS, push, webhook) and locale, versioned and published (/v1/templates), "
        "the visual and expression fragments they include (/v1/fragments), and previews "
        "of a template for a profile. Published versions are sent to the channels on "
        "itinera.content.v1."
    ),
)
