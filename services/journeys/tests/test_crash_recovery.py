"""A journeys worker killed mid-run (SIGKILL: no cleanup) and started again loses no
instance and takes no step twice: every profile gets each of its journey's messages under
one message id, however many times the outbox relay had to publish it.

The worker under test runs as a process of its own with a database of its own and a
consumer group of its own, so that no other worker of the test session does its work.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.devstack import free_port
from itinera.common.kafka import topics
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.producer import Producer
from itinera.common.testing import StackInfo, environment_for, ready, service_process, topic_reader
from itinera.journeys.config import JourneysSettings

PROFILES = 300
JOURNEY = {
    "name": "crash test",
    "nodes": [
        {"id": "start", "type": "event", "eventType": "crash.test", "next": "first"},
        {"id": "first", "type": "message", "channel": "email", "templateId": "one", "next": "pause"},
        {"id": "pause", "type": "wait", "duration": "PT1S", "next": "second"},
        {"id": "second", "type": "message", "channel": "sms", "templateId": "two"},
    ],
}


async def test_a_worker_killed_mid_run_and_restarted_sends_every_message_once(
    topics_created: StackInfo, journeys_settings: JourneysSettings, own_database: str
) -> None:
    sandbox = f"crash-{uuid.uuid4().hex[:8]}"
    env = environment_for(
        topics_created,
        ITINERA_DATABASE_URL=own_database,
        ITINERA_JOURNEYS_CONSUMER_GROUP=f"journeys-crash-{uuid.uuid4().hex[:8]}",
        ITINERA_AUTH_SECRET=journeys_settings.auth_secret.get_secret_value(),
        ITINERA_OUTBOX_POLL_INTERVAL_MS="50",
        ITINERA_JOURNEYS_TIMER_INTERVAL_S="0.1",
        ITINERA_JOURNEYS_CHECK_TEMPLATES="false",
        ITINERA_LOG_LEVEL="ERROR",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    token = mint_token(journeys_settings, scopes=ALL_SCOPES, sandbox=sandbox)
    headers = {"authorization": f"Bearer {token}"}
    profiles = [str(uuid.uuid4()) for _ in range(PROFILES)]
    producer = Producer(journeys_settings)
    await producer.start()
    try:
        async with topic_reader(topics_created, topics.MESSAGES.name) as messages:
            with service_process("journeys", env, port) as first:
                await ready(url)
                async with httpx.AsyncClient(base_url=url, headers=headers) as api:
                    created = (await api.post("/v1/journeys", json=JOURNEY)).json()
                    published = await api.post(f"/v1/journeys/{created['id']}/versions/1/publish")
                    assert published.status_code == 200, published.text
                envelopes = [
                    Envelope(
                        type="com.itinera.profile.event.v1",
                        source="/t",
                        sandbox=sandbox,
                        key=profile,
                        data={
                            "sandbox": sandbox,
                            "profileId": profile,
                            "event": {
                                "_id": str(uuid.uuid4()),
                                "timestamp": datetime.now(UTC).isoformat(),
                                "eventType": "crash.test",
                            },
                            "profile": {"person": {"name": {"firstName": "P"}}},
                        },
                    )
                    for profile in profiles
                ]
                await producer.publish(topics.PROFILE_EVENTS.name, envelopes)
                # Kill it in the middle: some messages are out, most are not.
                await messages.wait_for(
                    lambda r: sum(1 for x in r if x.sandbox == sandbox) >= 20, timeout_s=60
                )
                os.killpg(first.pid, signal.SIGKILL)
                first.wait(timeout=30)
                sent_before = {
                    orjson.loads(x.value or b"")["messageId"]
                    for x in messages.records
                    if x.sandbox == sandbox
                }
                assert len(sent_before) < 2 * PROFILES  # killed with work left
            with service_process("journeys", env, port):
                await ready(url)

                def all_sent(records: list[Any]) -> bool:
                    ids = {orjson.loads(x.value or b"")["messageId"] for x in records if x.sandbox == sandbox}
                    return len(ids) >= 2 * PROFILES

                found = await messages.wait_for(all_sent, timeout_s=120)
                await asyncio.sleep(1)  # anything sent twice would be out by now
                found = list(messages.records)
                async with httpx.AsyncClient(base_url=url, headers=headers) as api:
                    listed = (
                        await api.get(f"/v1/journeys/{created['id']}/instances", params={"limit": 1000})
                    ).json()
    finally:
        await producer.stop()

    by_profile: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for record in found:
        if record.sandbox != sandbox:
            continue
        data = orjson.loads(record.value or b"")
        by_profile[data["profileId"]][data["origin"]["nodeId"]].add(data["messageId"])
    assert sorted(by_profile) == sorted(profiles)  # no instance lost
    assert all(  # no step taken twice: one id per message of each profile
        {node: len(ids) for node, ids in sent.items()} == {"first": 1, "second": 1}
        for sent in by_profile.values()
    )
    instances = listed["items"]
    assert len(instances) == PROFILES
    assert {i["status"] for i in instances} == {"completed"}
