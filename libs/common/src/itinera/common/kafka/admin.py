"""Topic creation from the declared catalogue (``itinera topics create``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from itinera.common.kafka.topics import CATALOGUE, Topic
from itinera.common.settings import CommonSettings

log = logging.getLogger(__name__)


async def wait_for_broker(bootstrap: str, timeout_s: float = 30.0) -> None:
    """Return once a metadata request succeeds; raise TimeoutError otherwise."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2_000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (TimeoutError, KafkaConnectionError, OSError):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"no Kafka broker answered at {bootstrap}") from None
            await asyncio.sleep(0.25)
        finally:
            await admin.close()


async def create_topics(
    settings: CommonSettings, catalogue: Sequence[Topic] = CATALOGUE, replication: int = 1
) -> list[str]:
    """Create every missing topic of the catalogue; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in catalogue if t.name not in existing]
        created = []
        for topic in missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            name=topic.name,
                            num_partitions=topic.partitions,
                            replication_factor=replication,
                            topic_configs=topic.topic_config(),
                        )
                    ]
                )
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        if created:
            log.info("topics created", extra={"topics": created})
        return created
    finally:
        await admin.close()
