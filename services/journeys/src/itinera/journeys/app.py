"""The journeys service: journey definitions, versioned and published, and the custom
actions they call. So far the definitions only: the runtime that walks published
versions (instances, timers, messages) is not built yet.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from itinera.common.service import Service
from itinera.journeys.config import settings


def _routers() -> Sequence[APIRouter]:
    from itinera.journeys.actions.endpoints import router as actions
    from itinera.journeys.definitions.endpoints import router as definitions

    return (definitions, actions)


SERVICE = Service(
    name="journeys",
    port=8004,
    schema="journeys",
    migrations="itinera.journeys.migrations",
    settings=settings,
    routers=_routers,
    title="Itinera journeys",
    description=(
        "Journeys in the shape of Adobe Journey Optimizer's: versioned graphs of entries, "
        "conditions, waits, messages and custom actions (/v1/journeys), validated when "
        "published, and the custom actions they call (/v1/actions)."
    ),
)
