"""The profile service: the identity graph (and, next, the profile store).

Workers: the consumer of ``itinera.events.v1`` and ``itinera.records.v1`` that feeds
the identity graph (the outbox relay, which publishes ``itinera.identity.merges.v1``,
is added by the common runtime).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from itinera.common.kafka import topics
from itinera.common.kafka.consumer import ConsumerLoop
from itinera.common.service import Runtime, Service, Worker
from itinera.profile.config import ProfileSettings, settings
from itinera.profile.consumers import StoreHandler, UpdatesHandler
from itinera.profile.identity.rebuild import GraphRebuilder
from itinera.profile.identity.service import IdentityGraph
from itinera.profile.retention.service import ExpirySweep


def _routers() -> Sequence[APIRouter]:
    from itinera.profile.identity.endpoints import router as identity
    from itinera.profile.profiles.access import router as access
    from itinera.profile.profiles.endpoints import router as profiles
    from itinera.profile.retention.endpoints import router as retention

    return (access, profiles, identity, retention)  # the hot look-up first: routes are matched in order


async def _setup(runtime: Runtime) -> None:
    config = runtime.settings
    assert isinstance(config, ProfileSettings)
    runtime.state["graph"] = IdentityGraph(runtime.pool, config.profile_max_identities_per_graph)


def _workers(runtime: Runtime) -> Sequence[Worker]:
    config = runtime.settings
    assert isinstance(config, ProfileSettings)
    return [
        ConsumerLoop(
            settings=config,
            group=config.profile_consumer_group,
            topic_names=[topics.EVENTS.name, topics.RECORDS.name],
            handler=StoreHandler(runtime.state["graph"], config.default_sandbox),
            dead_letters=runtime.producer,
            service="profile",
        ),
        ConsumerLoop(
            settings=config,
            group=config.profile_updates_consumer_group,
            topic_names=[topics.PROFILE_UPDATES.name],
            handler=UpdatesHandler(runtime.pool, config.default_sandbox),
            dead_letters=runtime.producer,
            service="profile",
        ),
        ExpirySweep(runtime.pool, config.profile_expiry_interval_s),
        GraphRebuilder(
            runtime.state["graph"], config.profile_rebuild_interval_s, config.profile_tangle_settle_s
        ),
    ]


SERVICE = Service(
    name="profile",
    port=8002,
    schema="profile",
    migrations="itinera.profile.migrations",
    settings=settings,
    routers=_routers,
    setup=_setup,
    workers=_workers,
    title="Itinera profile",
    description=(
        "The identity graph: AEP-shaped identity namespaces (/data/core/idnamespace) and "
        "cluster look-ups (/data/core/identity), and the native graph view (/v1/identities)."
    ),
)
