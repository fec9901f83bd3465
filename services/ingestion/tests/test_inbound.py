"""``itinera.inbound.v1``: any producer may publish what the HTTP API takes; the same
validation applies, and a bad record is dead-lettered without stopping the consumer."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from itinera.common.kafka import topics
from itinera.common.kafka.consumer import Record
from itinera.common.testing import StackInfo, eventually, topic_reader
from itinera.ingestion.consumers import xaction_id

ECID = "98765432109876543210987654321098765432"


def entity() -> dict[str, Any]:
    return {
        "_id": str(uuid.uuid4()),
        "timestamp": "2026-11-28T11:00:00Z",
        "eventType": "web.webpagedetails.pageViews",
        "identityMap": {"ECID": [{"id": ECID, "primary": True}]},
        "web": {"webPageDetails": {"name": "home", "URL": "https://shop.example.com/"}},
    }


async def produce(infrastructure: StackInfo, value: bytes, headers: dict[str, str]) -> tuple[int, int]:
    producer = AIOKafkaProducer(bootstrap_servers=infrastructure.kafka_bootstrap)
    await producer.start()
    try:
        meta = await producer.send_and_wait(
            topics.INBOUND.name,
            value=value,
            key=b"ECID:" + ECID.encode(),
            headers=[(k, v.encode()) for k, v in headers.items()],
        )
    finally:
        await producer.stop()
    return meta.partition, meta.offset


class TestInboundTopic:
    async def test_a_bare_entity_with_a_connection_header_is_validated_and_published(
        self, app: Any, events_inlet: dict[str, str], infrastructure: StackInfo
    ) -> None:
        sent = entity()
        async with topic_reader(infrastructure, topics.EVENTS.name) as reader:
            partition, offset = await produce(
                infrastructure, orjson.dumps(sent), {"itinera_connection": events_inlet["connection"]}
            )
            wanted = position_id(partition, offset)
            records = await reader.wait_for(lambda rs: any(r.ce_id == wanted for r in rs), timeout_s=30)
        (published,) = [r for r in records if r.ce_id == wanted]
        assert orjson.loads(published.value or b"") == sent
        assert published.key == f"ECID:{ECID}"
        assert published.headers["itinera_connection"] == events_inlet["connection"]

    async def test_an_aep_message_names_its_dataset_in_the_header(
        self, app: Any, events_inlet: dict[str, str], infrastructure: StackInfo
    ) -> None:
        message = {"header": {"datasetId": events_inlet["dataset"]}, "body": {"xdmEntity": entity()}}
        async with topic_reader(infrastructure, topics.EVENTS.name) as reader:
            await produce(infrastructure, orjson.dumps(message), {"itinera_sandbox": "prod"})
            records = await reader.wait_for(
                lambda rs: any(
                    r.headers.get("itinera_dataset") == events_inlet["dataset"]
                    and r.headers.get("ce_source") == f"/itinera/ingestion/datasets/{events_inlet['dataset']}"
                    for r in rs
                ),
                timeout_s=30,
            )
        assert records

    async def test_a_record_that_is_not_json_is_dead_lettered_and_listed(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str], infrastructure: StackInfo
    ) -> None:
        partition, offset = await produce(
            infrastructure, b"\x00\x01 not json", {"itinera_connection": events_inlet["connection"]}
        )
        letter_id = position_id(partition, offset)

        async def listed() -> bool:
            return (await client.get(f"/v1/dlq/{letter_id}")).status_code == 200

        await eventually(listed, timeout_s=30)
        letter = (await client.get(f"/v1/dlq/{letter_id}")).json()
        assert letter["payloadBase64"]
        assert letter["origin"]["topic"] == topics.INBOUND.name
        assert letter["origin"]["offset"] == offset

    async def test_a_record_without_a_destination_is_dead_lettered_and_the_consumer_goes_on(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str], infrastructure: StackInfo
    ) -> None:
        partition, offset = await produce(infrastructure, orjson.dumps(entity()), {})
        letter_id = position_id(partition, offset)

        async def listed() -> bool:
            return (await client.get(f"/v1/dlq/{letter_id}")).status_code == 200

        await eventually(listed, timeout_s=30)
        reasons = (await client.get(f"/v1/dlq/{letter_id}")).json()["reasons"]
        assert reasons[0]["code"] == "destination"
        # The consumer is still alive: a good record after the bad one gets through.
        await self.test_a_bare_entity_with_a_connection_header_is_validated_and_published(
            None, events_inlet, infrastructure
        )


def position_id(partition: int, offset: int) -> str:
    """The transaction id a record at this position gets, on every delivery."""
    return xaction_id(Record(topics.INBOUND.name, partition, offset, None, None, {}, 0))
