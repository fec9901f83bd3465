"""The segmentation service: audiences defined in PQL, evaluated as data streams in and
in batch. So far: AEP-shaped audience definitions (``/data/core/ups/segment/definitions``)
and the PQL engine for rule editors (``/v1/pql``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from fastapi import APIRouter

from itinera.common.kafka import topics
from itinera.common.kafka.consumer import ConsumerLoop
from itinera.common.service import Runtime, Service, Worker
from itinera.segmentation.audiences.workers import PreviewRunner, SizeFolding
from itinera.segmentation.config import SegmentationSettings, settings
from itinera.segmentation.consumers import ProjectionHandler
from itinera.segmentation.jobs.service import SegmentJobRunner
from itinera.segmentation.membership.service import ScheduledEvaluation
from itinera.segmentation.projection.trim import EventTrim
from itinera.segmentation.schedules.service import ScheduleRunner


def _routers() -> Sequence[APIRouter]:
    from itinera.segmentation.audiences.endpoints import router as audiences
    from itinera.segmentation.definitions.endpoints import router as definitions
    from itinera.segmentation.jobs.endpoints import router as jobs
    from itinera.segmentation.membership.endpoints import router as memberships
    from itinera.segmentation.pql.endpoints import router as pql
    from itinera.segmentation.projection.endpoints import router as projection
    from itinera.segmentation.schedules.endpoints import router as schedules
    from itinera.segmentation.uploads.endpoints import router as uploads

    return (definitions, uploads, jobs, schedules, memberships, pql, projection, audiences)


def _workers(runtime: Runtime) -> Sequence[Worker]:
    config = runtime.settings
    assert isinstance(config, SegmentationSettings)
    return [
        ConsumerLoop(
            settings=config,
            group=config.segmentation_consumer_group,
            topic_names=[topics.PROFILE_CHANGES.name, topics.PROFILE_EVENTS.name],
            handler=ProjectionHandler(
                runtime.pool, config.default_sandbox, config.segmentation_evaluation_events
            ),
            dead_letters=runtime.producer,
            service="segmentation",
        ),
        ScheduledEvaluation(
            runtime.pool, config.segmentation_schedule_interval_s, config.segmentation_evaluation_events
        ),
        SegmentJobRunner(
            runtime.pool, config.segmentation_job_interval_s, config.segmentation_evaluation_events
        ),
        ScheduleRunner(runtime.pool, config.segmentation_job_interval_s),
        PreviewRunner(
            runtime.pool, config.segmentation_job_interval_s, config.segmentation_evaluation_events
        ),
        SizeFolding(runtime.pool, config.segmentation_size_fold_interval_s),
        EventTrim(
            runtime.pool,
            config.segmentation_event_trim_interval_s,
            timedelta(seconds=config.segmentation_event_retention_s),
        ),
    ]


SERVICE = Service(
    name="segmentation",
    port=8003,
    schema="segmentation",
    migrations="itinera.segmentation.migrations",
    settings=settings,
    routers=_routers,
    workers=_workers,
    title="Itinera segmentation",
    description=(
        "Audiences in AEP's Profile Query Language (PQL): audience definitions "
        "(/data/core/ups/segment/definitions), and evaluation and validation of "
        "expressions (/v1/pql) for rule editors and tests."
    ),
)
