"""The whole loop, as a newcomer runs it: ``itinera run`` (every service, local delivery
and the demo seeds) on a broker and a database of its own; a customer's record and then
a sign-up event go in over HTTP; the profile service stitches them, the demo welcome
journey takes the sign-up, the channels service renders the demo template in the
customer's language and the email lands in the local inbox; opening it (the tracking
pixel) comes back as feedback, is ingested as a ``message.tracking`` event of the
profile, and the journey, which was waiting for that open, ends without sending the SMS.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from itinera.common.devstack import Broker, free_port
from itinera.common.testing import StackInfo, environment_for, eventually
from itinera.ingestion.demo import store

PORT_OFFSET = 21_000
INGESTION = f"http://127.0.0.1:{8001 + PORT_OFFSET}"
PROFILE = f"http://127.0.0.1:{8002 + PORT_OFFSET}"
SEGMENTATION = f"http://127.0.0.1:{8003 + PORT_OFFSET}"
JOURNEYS = f"http://127.0.0.1:{8004 + PORT_OFFSET}"
INBOX = f"http://127.0.0.1:{8025 + PORT_OFFSET}"


@dataclass
class Stack:
    token: str
    web_events: str
    crm_profiles: str
    output: str

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker of the loop's own: its consumer groups start from an empty history."""
    started = Broker(port=free_port(), log_path=Path(tmp_path_factory.mktemp("broker")) / "tansu.log")
    started.start()
    try:
        yield started.bootstrap
    finally:
        started.stop()


@pytest.fixture(scope="module")
async def stack(topics_created: StackInfo, broker: str) -> AsyncIterator[Stack]:
    import asyncpg

    name = f"loop_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(topics_created.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = topics_created.database_url.rpartition("/")
    env = environment_for(
        topics_created, ITINERA_KAFKA_BOOTSTRAP=broker, ITINERA_DATABASE_URL=f"{base}/{name}"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "itinera.common.cli",
        "run",
        "--port-offset",
        str(PORT_OFFSET),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    output: list[str] = []
    drained: asyncio.Task[None] | None = None

    async def started() -> None:
        assert process.stdout is not None
        while "Stop with Ctrl-C" not in (output[-1] if output else ""):
            line = await process.stdout.readline()
            if not line:
                raise RuntimeError("itinera run exited early:\n" + "".join(output))
            output.append(line.decode())

    try:
        await asyncio.wait_for(started(), timeout=180)
        text = "".join(output)
        token = re.search(r"export TOKEN=(\S+)", text)
        web = re.search(r"Demo web events: +dataset \w+, connection (\w+)", text)
        crm = re.search(r"Demo CRM profiles: dataset \w+, connection (\w+)", text)
        assert token, text
        assert web, text
        assert crm, text
        drained = asyncio.create_task(_drain(process))  # keep the pipe from filling up
        yield Stack(token[1], web[1], crm[1], text)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            await asyncio.wait_for(process.wait(), timeout=90)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
    if drained is not None:
        drained.cancel()


async def _drain(process: asyncio.subprocess.Process) -> None:
    assert process.stdout is not None
    while await process.stdout.readline():
        pass


async def test_a_sign_up_gets_the_welcome_email_in_the_customers_language(stack: Stack) -> None:
    email = f"jane-{uuid.uuid4().hex[:8]}@example.com"
    identity = {"Email": [{"id": email, "primary": True}]}
    record = {
        "_id": str(uuid.uuid4()),
        "identityMap": identity,
        "person": {"name": {"firstName": "Jane"}},
        "personalEmail": {"address": email},
        "preferredLanguage": "fr-FR",
    }
    async with httpx.AsyncClient(headers=stack.headers, timeout=30) as http:
        sent = await http.post(f"{INGESTION}/collection/{stack.crm_profiles}", json=record)
        assert sent.status_code < 300, sent.text

        async def stitched() -> bool:
            found = await http.get(f"{PROFILE}/v1/profiles", params={"identity": f"Email:{email}"})
            return found.status_code == 200 and "personalEmail" in found.json()["entity"]

        await eventually(stitched, timeout_s=60)
        signup = {
            "_id": str(uuid.uuid4()),
            "timestamp": "2026-11-28T12:01:00Z",
            "eventType": "demo.signup",
            "identityMap": identity,
        }
        sent = await http.post(f"{INGESTION}/collection/{stack.web_events}", json=signup)
        assert sent.status_code < 300, sent.text

        mails: list[dict[str, Any]] = []

        async def delivered() -> bool:
            found = (await http.get(f"{INBOX}/api/messages", params={"to": email})).json()["messages"]
            mails[:] = found
            return bool(found)

        await eventually(delivered, timeout_s=90)
    (mail,) = mails
    assert mail["subject"] == "Bienvenue, Jane !"
    assert "Bienvenue, Jane !" in mail["html"]
    assert "Merci de votre inscription." in mail["html"]
    assert mail["messageId"]
    assert mail["listUnsubscribe"]

    # Opening it: the pixel is fetched, the channels report it, ingestion brings it back
    # as a message.tracking event of the profile, and the journey that waited for the
    # open ends there, without the SMS.
    pixel = re.search(r'<img src="([^"]+/v1/t/o/[^"]+\.gif)"', mail["html"])
    assert pixel, mail["html"]
    async with httpx.AsyncClient(headers=stack.headers, timeout=30) as http:
        opened = await http.get(pixel[1])
        assert opened.status_code == 200
        assert opened.headers["content-type"] == "image/gif"
        profile_id = (await http.get(f"{PROFILE}/v1/profiles", params={"identity": f"Email:{email}"})).json()[
            "profileId"
        ]
        journey = next(
            j
            for j in (await http.get(f"{JOURNEYS}/v1/journeys")).json()["items"]
            if j["name"] == "Demo: welcome"
        )
        instances = f"{JOURNEYS}/v1/journeys/{journey['id']}/instances"
        ended: list[dict[str, Any]] = []

        async def open_reached_the_journey() -> bool:
            found = (await http.get(instances, params={"profileId": profile_id})).json()["items"]
            ended[:] = [i for i in found if i["status"] != "waiting"]
            return bool(ended)

        await eventually(open_reached_the_journey, timeout_s=60)
        (instance,) = ended
        history = (await http.get(f"{instances}/{instance['instanceId']}")).json()["history"]
        steps = [(s["kind"], s["nodeId"], s["reason"]) for s in history]
        events = (
            await http.get(
                f"{PROFILE}/data/core/ups/access/entities",
                params={
                    "schema.name": "_xdm.context.experienceevent",
                    "relatedSchema.name": "_xdm.context.profile",
                    "relatedEntityId": profile_id,
                },
            )
        ).json()
    assert instance["status"] == "completed"
    assert ("finished", "opened", "event received") in steps
    assert not [s for s in steps if s[1] == "reminder"]  # no SMS
    kinds = [e["entity"]["eventType"] for e in events["children"]]
    assert "message.tracking" in kinds
    assert "demo.signup" in kinds


async def test_the_demo_store_fills_its_audiences(stack: Stack) -> None:
    sent = re.search(r"Demo store: +(\d+) customers and (\d+) product views and purchases sent", stack.output)
    assert sent, stack.output
    assert int(sent[1]) == 40
    assert int(sent[2]) > 40
    buyers = re.search(r"Demo audience: +'Demo: bought in the last 30 days' \(([0-9a-f-]+)\)", stack.output)
    assert buyers, stack.output
    async with httpx.AsyncClient(headers=stack.headers, timeout=30) as http:
        customers, _ = store(datetime.now(UTC))
        emails = [c["personalEmail"]["address"] for c in customers]

        async def stitched() -> bool:
            for email in emails:
                if (
                    await http.get(f"{PROFILE}/v1/profiles", params={"identity": f"Email:{email}"})
                ).status_code != 200:
                    return False
            return True

        await eventually(stitched, timeout_s=90)
        await asyncio.sleep(2)  # their events follow them through the projection
        job = await http.post(f"{SEGMENTATION}/data/core/ups/segment/jobs", json=[{"segmentId": buyers[1]}])
        assert job.status_code == 200, job.text

        async def has_members() -> bool:
            found = await http.get(f"{SEGMENTATION}/v1/audiences/{buyers[1]}/members")
            return bool(found.json()["children"])

        await eventually(has_members, timeout_s=90)
