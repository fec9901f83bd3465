"""The segmentation service: audiences defined in PQL, evaluated as data streams in and
in batch. So far: AEP-shaped audience definitions (``/data/core/ups/segment/definitions``)
and the PQL engine for rule editors (``/v1/pql``).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from itinera.common.service import Service
from itinera.segmentation.config import settings


def _routers() -> Sequence[APIRouter]:
    from itinera.segmentation.definitions.endpoints import router as definitions
    from itinera.segmentation.pql.endpoints import router as pql

    return (definitions, pql)


SERVICE = Service(
    name="segmentation",
    port=8003,
    schema="segmentation",
    migrations="itinera.segmentation.migrations",
    settings=settings,
    routers=_routers,
    title="Itinera segmentation",
    description=(
        "Audiences in AEP's Profile Query Language (PQL): audience definitions "
        "(/data/core/ups/segment/definitions), and evaluation and validation of "
        "expressions (/v1/pql) for rule editors and tests."
    ),
)
