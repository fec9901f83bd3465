"""The channels service: message requests from journeys and campaigns checked (consent,
suppression, frequency caps, quiet hours), rendered with the published templates and
delivered over email (SMTP), SMS, push and webhooks, with feedback on what became of
each, and the providers' delivery reports (SMS status callbacks); the suppression list
(AJO's API), which hard bounces and repeated soft bounces feed; capping rules and quiet
hours; unsubscribe links, and the open pixel and click redirects of emails.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from itinera.channels.config import ChannelsSettings, settings
from itinera.channels.content.consumers import ContentHandler
from itinera.channels.messages.consumers import MessageHandler, ProfileSource
from itinera.channels.messages.delivery import DeliveryRunner
from itinera.channels.messages.retention import RetentionSweep
from itinera.channels.messages.waiting import ProfileWaits
from itinera.channels.reports.mailbox import BounceMailbox
from itinera.channels.tracking import Tracker
from itinera.common.auth import ServiceTokens
from itinera.common.kafka import topics
from itinera.common.kafka.consumer import ConsumerLoop
from itinera.common.peers import ProfileReader
from itinera.common.service import Runtime, Service, Worker


def _routers() -> Sequence[APIRouter]:
    from itinera.channels.messages.endpoints import router as messages
    from itinera.channels.reports.endpoints import router as reports
    from itinera.channels.rules.endpoints import router as rules
    from itinera.channels.suppression.endpoints import router as suppression
    from itinera.channels.tracking.endpoints import router as tracking
    from itinera.channels.unsubscribe.endpoints import router as unsubscribe

    return (suppression, rules, messages, unsubscribe, tracking, reports)


async def _setup(runtime: Runtime) -> None:
    config = runtime.settings
    assert isinstance(config, ChannelsSettings)
    config.link_secret  # noqa: B018 -- checked at start-up rather than at the first link
    source = None
    if config.channels_read_profiles:
        reader = ProfileReader(config.profile_service_url, config.channels_profile_timeout_s)
        runtime.on_stop.append(reader.close)
        source = ProfileSource(
            reader, ServiceTokens(config, "channels"), pause_s=config.channels_profile_retry_initial_s
        )
    runtime.state["profiles"] = source


def _workers(runtime: Runtime) -> Sequence[Worker]:
    config = runtime.settings
    assert isinstance(config, ChannelsSettings)
    source: ProfileSource | None = runtime.state["profiles"]
    handler = MessageHandler(
        runtime.pool,
        config.default_sandbox,
        config.channels_default_time_zone,
        Tracker(config.channels_public_url, config.link_secret) if config.channels_tracking else None,
        source,
        first_wait_s=config.channels_profile_retry_initial_s,
    )
    extra: list[Worker] = []
    if config.channels_bounce_address is not None and config.channels_bounce_port:
        extra.append(BounceMailbox(runtime.pool, config))
    if source is not None:
        extra.append(
            ProfileWaits(
                runtime.pool,
                handler,
                source,
                initial_s=config.channels_profile_retry_initial_s,
                max_s=config.channels_profile_retry_max_s,
                limit_s=config.channels_profile_wait_limit_s,
            )
        )
    return [
        *extra,
        ConsumerLoop(
            settings=config,
            group=config.channels_content_consumer_group,
            topic_names=[topics.CONTENT.name],
            handler=ContentHandler(runtime.pool, config.default_sandbox),
            dead_letters=runtime.producer,
            service="channels",
        ),
        ConsumerLoop(
            settings=config,
            group=config.channels_consumer_group,
            topic_names=[topics.MESSAGES.name],
            handler=handler,
            dead_letters=runtime.producer,
            service="channels",
        ),
        DeliveryRunner(runtime.pool, config),
        RetentionSweep(runtime.pool, config),
    ]


SERVICE = Service(
    name="channels",
    port=8006,
    schema="channels",
    migrations="itinera.channels.migrations",
    settings=settings,
    routers=_routers,
    setup=_setup,
    workers=_workers,
    title="Itinera channels",
    description=(
        "Delivery in the shape of Adobe Journey Optimizer's channels: message requests checked "
        "against consent, the suppression list (/ajo/config/suppression) and the allowed list "
        "(/v1/allowed-list), frequency capping "
        "rules (/v1/capping/rules) and quiet hours (/v1/quiet-hours), rendered with the "
        "published templates and sent over email, SMS, push and webhooks, with feedback on "
        "itinera.feedback.v1, delivery reports included (/v1/providers/sms/status); one-click "
        "unsubscribe (/v1/unsubscribe); open and click tracking of emails (/v1/t)."
    ),
)
