"""The ingestion service: its app, its lifespan state and its workers.

State built at start-up: the schema registry (built-in XDM library plus tenant
resources), the catalogue cache and the ingestor. Workers: the ``itinera.inbound.v1``
consumer (the outbox relay is added by the common runtime).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from itinera.common.kafka import topics
from itinera.common.kafka.consumer import ConsumerLoop
from itinera.common.service import Runtime, Service, Worker
from itinera.common.xdm.schemas import SchemaLibrary
from itinera.ingestion.catalog.service import Catalog
from itinera.ingestion.collection.service import Ingestor
from itinera.ingestion.config import IngestionSettings, settings
from itinera.ingestion.consumers import FeedbackHandler, InboundHandler
from itinera.ingestion.feedback import FeedbackConverter, FeedbackIngestor
from itinera.ingestion.registry.service import Registry


def _routers() -> Sequence[APIRouter]:
    from itinera.ingestion.catalog.endpoints import router as catalog
    from itinera.ingestion.collection.endpoints import router as collection
    from itinera.ingestion.deadletters.endpoints import router as dead_letters
    from itinera.ingestion.registry.endpoints import router as registry

    return (collection, registry, catalog, dead_letters)


async def _setup(runtime: Runtime) -> None:
    config = runtime.settings
    assert isinstance(config, IngestionSettings)
    library = SchemaLibrary.load(config.schemas_dir)
    registry = Registry(library, config.ingestion_tenant_id, config.ingestion_ims_org)
    catalog = Catalog(runtime.pool, registry, config.ingestion_catalog_ttl_s)
    await catalog.start()
    runtime.on_stop.append(catalog.stop)
    runtime.state.update(
        registry=registry,
        catalog=catalog,
        ingestor=Ingestor(catalog, runtime.producer, runtime.pool, config.ingestion_max_depth),
    )


def _workers(runtime: Runtime) -> Sequence[Worker]:
    config = runtime.settings
    assert isinstance(config, IngestionSettings)
    return [
        ConsumerLoop(
            settings=config,
            group=config.ingestion_consumer_group,
            topic_names=[topics.INBOUND.name],
            handler=InboundHandler(
                runtime.state["catalog"], runtime.state["ingestor"], config.default_sandbox
            ),
            dead_letters=runtime.producer,
            service="ingestion",
        ),
        ConsumerLoop(
            settings=config,
            group=config.ingestion_feedback_consumer_group,
            topic_names=[topics.FEEDBACK.name],
            handler=FeedbackHandler(
                FeedbackIngestor(
                    FeedbackConverter(
                        runtime.state["registry"].library,
                        config.schemas_dir,
                        config.ingestion_feedback_push_namespace,
                    ),
                    runtime.producer,
                )
            ),
            dead_letters=runtime.producer,
            service="ingestion",
        ),
    ]


SERVICE = Service(
    name="ingestion",
    port=8001,
    schema="ingestion",
    migrations="itinera.ingestion.migrations",
    settings=settings,
    routers=_routers,
    setup=_setup,
    workers=_workers,
    title="Itinera ingestion",
    description=(
        "AEP-compatible streaming ingestion (/collection), the schema registry "
        "(/data/foundation/schemaregistry), datasets, streaming connections and dead letters."
    ),
)
