"""The journeys service: journey definitions, versioned and published, the custom
actions they call, and the runtime that walks published versions: instances entered
from profile events and audience memberships, timers, message requests and steps,
delivery outcomes read back from the channels' feedback; and
campaigns, scheduled or API-triggered, with the audience members they send to; and a
periodic check that the audiences they name still exist.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from itinera.common.kafka import topics
from itinera.common.kafka.consumer import ConsumerLoop
from itinera.common.service import Runtime, Service, Worker
from itinera.journeys.actions.secrets import Sealer, seal_stored
from itinera.journeys.audiences.checks import AudienceAnswersForgotten, AudienceChecker
from itinera.journeys.campaigns.workers import CampaignScheduler, ExecutionRunner, MembershipHandler
from itinera.journeys.config import JourneysSettings, settings
from itinera.journeys.peers import Peers
from itinera.journeys.runtime.actions import ActionRunner
from itinera.journeys.runtime.consumers import RuntimeHandler, TimerRunner
from itinera.journeys.runtime.reads import AudienceReader
from itinera.journeys.runtime.retention import InstanceRetention
from itinera.journeys.templates import TemplatesHandler


def _routers() -> Sequence[APIRouter]:
    from itinera.journeys.actions.endpoints import router as actions
    from itinera.journeys.campaigns.endpoints import router as campaigns
    from itinera.journeys.definitions.endpoints import router as definitions
    from itinera.journeys.runtime.endpoints import router as instances

    return (definitions, actions, instances, campaigns)


async def _setup(runtime: Runtime) -> None:
    config = runtime.settings
    assert isinstance(config, JourneysSettings)
    peers = Peers.of(config)
    runtime.state["peers"] = peers
    runtime.on_stop.append(peers.close)
    sealer = Sealer.of(config)
    runtime.state["sealer"] = sealer
    if runtime.role in ("worker", "all"):
        await seal_stored(runtime.pool, sealer)  # those stored before secrets were sealed


def _workers(runtime: Runtime) -> Sequence[Worker]:
    config = runtime.settings
    assert isinstance(config, JourneysSettings)
    peers: Peers = runtime.state["peers"]
    audiences: Worker = (
        AudienceChecker(runtime.pool, peers, config.journeys_audience_check_interval_s)
        if peers.check_audiences
        else AudienceAnswersForgotten(runtime.pool)
    )
    return [
        audiences,
        ConsumerLoop(
            settings=config,
            group=config.journeys_consumer_group,
            topic_names=[
                topics.PROFILE_EVENTS.name,
                topics.PROFILE_CHANGES.name,
                topics.AUDIENCES.name,
                topics.IDENTITY_MERGES.name,
                topics.FEEDBACK.name,
            ],
            handler=RuntimeHandler(runtime.pool, config.default_sandbox),
            dead_letters=runtime.producer,
            service="journeys",
        ),
        TimerRunner(runtime.pool, config.journeys_timer_interval_s, config.journeys_timer_batch),
        AudienceReader(runtime.pool, config.journeys_read_interval_s, config.journeys_read_batch),
        ActionRunner(
            runtime.pool,
            config.journeys_action_interval_s,
            config.journeys_action_batch,
            config.journeys_action_allow_hosts,
            runtime.state["sealer"],
        ),
        ConsumerLoop(
            settings=config,
            group=config.journeys_content_consumer_group,
            topic_names=[topics.CONTENT.name],
            handler=TemplatesHandler(runtime.pool, config.default_sandbox),
            dead_letters=runtime.producer,
            service="journeys",
        ),
        ConsumerLoop(
            settings=config,
            group=config.journeys_audiences_consumer_group,
            topic_names=[topics.AUDIENCES.name],
            handler=MembershipHandler(runtime.pool, config.default_sandbox),
            dead_letters=runtime.producer,
            service="journeys",
        ),
        CampaignScheduler(runtime.pool, config.journeys_campaign_interval_s, config.journeys_campaign_batch),
        ExecutionRunner(
            runtime.pool,
            config.journeys_campaign_interval_s,
            config.journeys_campaign_batch,
            peers,
        ),
        InstanceRetention(
            runtime.pool,
            config.journeys_instance_retention_days,
            config.journeys_retention_interval_s,
            history_days=config.journeys_history_retention_days,
        ),
    ]


SERVICE = Service(
    name="journeys",
    port=8004,
    schema="journeys",
    migrations="itinera.journeys.migrations",
    settings=settings,
    routers=_routers,
    setup=_setup,
    workers=_workers,
    title="Itinera journeys",
    description=(
        "Journeys in the shape of Adobe Journey Optimizer's: versioned graphs of entries, "
        "conditions, waits, messages and custom actions (/v1/journeys), validated when "
        "published, and the custom actions they call (/v1/actions); campaigns (/v1/campaigns), "
        "scheduled or triggered through AJO's execution API (/ajo/im/executions)."
    ),
)
