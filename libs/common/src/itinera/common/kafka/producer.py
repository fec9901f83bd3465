"""The producer: CloudEvents envelopes onto topics, acknowledged before we answer.

``publish`` hands every envelope to aiokafka at once and then waits for all the
acknowledgements, so a batch of a thousand events costs one round of broker
requests, not a thousand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter

from itinera.common.kafka.envelope import Envelope
from itinera.common.settings import CommonSettings

PUBLISHED = Counter("itinera_kafka_published_records", "Records acknowledged by the broker", ["topic"])


class Producer:
    def __init__(self, settings: CommonSettings, *, client_id: str | None = None) -> None:
        self._kafka = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            client_id=client_id or settings.kafka_client_id,
            acks="all",
            linger_ms=5,
            max_batch_size=256 * 1024,
            max_request_size=2 * 1024 * 1024,
            request_timeout_ms=30_000,
        )

    async def start(self) -> None:
        await self._kafka.start()

    async def stop(self) -> None:
        await self._kafka.stop()

    @property
    def client(self) -> AIOKafkaProducer:
        return self._kafka

    async def publish(self, topic: str, envelopes: Iterable[Envelope]) -> None:
        """Send every envelope and return once the broker has acknowledged all of them."""
        pending: list[asyncio.Future[Any]] = []
        for envelope in envelopes:
            pending.append(
                await self._kafka.send(
                    topic,
                    value=envelope.value(),
                    key=envelope.key.encode() if envelope.key is not None else None,
                    headers=envelope.headers(),
                )
            )
        if pending:
            await asyncio.gather(*pending)
            PUBLISHED.labels(topic).inc(len(pending))

    async def publish_raw(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> None:
        """Send bytes as they are (the outbox relay stores records ready to send)."""
        await self._kafka.send_and_wait(topic, value=value, key=key, headers=headers)
        PUBLISHED.labels(topic).inc()

    async def reachable(self) -> bool:
        try:
            await asyncio.wait_for(self._kafka.client.fetch_all_metadata(), timeout=2)
        except Exception:
            return False
        return True
