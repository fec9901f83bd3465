"""The runtime writes what a batch or a timer pass did to instances at its end, in a few
statements for all of them (``Run.write``), and takes the entries that the rows read at
its start allow for granted: these tests hold it to the same rules as writing each
change at once. Batches are handed to the runtime's handler directly (as the consumer
would), on the real database; a concurrent entry is made from a transaction of the
test's own, and the handler is seen waiting for it in ``pg_stat_activity`` before that
transaction commits, so nothing depends on timing.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itinera.common.kafka import topics
from itinera.common.kafka.consumer import Record
from itinera.common.kafka.producer import Producer
from itinera.common.testing import eventually
from itinera.journeys.runtime.consumers import RuntimeHandler, TimerRunner
from itinera.journeys.runtime.service import Contended, Run, compiled
from itinera.journeys.runtime.walker import message_id, uuid5

from .test_runtime import JANE, happened, history, instances, live

PAUSING: list[dict[str, Any]] = [
    {"id": "signup", "type": "event", "eventType": "account.created", "next": "pause"},
    {"id": "pause", "type": "wait", "duration": "P1D", "next": "done"},
    {"id": "done", "type": "end"},
]
QUICK: list[dict[str, Any]] = [
    {"id": "signup", "type": "event", "eventType": "account.created", "next": "done"},
    {"id": "done", "type": "end"},
]


def event_record(sandbox: str, profile: str, event_id: str, offset: int) -> Record:
    """A profile event as the consumer hands it to the handler."""
    event = {"_id": event_id, "timestamp": datetime.now(UTC).isoformat(), "eventType": "account.created"}
    data = {"sandbox": sandbox, "profileId": profile, "event": event, "profile": JANE}
    return Record(
        topic=topics.PROFILE_EVENTS.name,
        partition=0,
        offset=offset,
        key=profile,
        value=orjson.dumps(data),
        headers={"ce_id": str(uuid.uuid4()), "itinera_sandbox": sandbox},
        timestamp_ms=0,
    )


async def entered_meanwhile(conn: asyncpg.Connection, sandbox: str, journey_id: str, profile: str) -> None:
    """A live instance of the profile in the journey, as another worker's entry writes it."""
    await conn.execute(
        """INSERT INTO instances (sandbox, id, journey_id, version, profile_id, status, node, context,
                                  steps, trigger_id, entered_at)
           VALUES ($1, $2, $3, 1, $4, 'waiting', 'pause', '{}', 3, 'elsewhere', now())""",
        sandbox,
        uuid.uuid4(),
        uuid.UUID(journey_id),
        uuid.UUID(profile),
    )


async def waiting_on_a_lock(pool: asyncpg.Pool, backends: set[int]) -> bool:
    async with pool.acquire() as conn:
        waiting = await conn.fetchval(
            """SELECT count(*) FROM pg_stat_activity
                WHERE wait_event_type = 'Lock' AND NOT (pid = ANY($1::int[]))""",
            list(backends),
        )
    return bool(waiting)


class TestIds:
    @settings(max_examples=300, deadline=None)
    @given(namespace=st.uuids(), name=st.text())
    def test_ids_are_the_standard_uuid5(self, namespace: uuid.UUID, name: str) -> None:
        assert uuid5(namespace, name) == str(uuid.uuid5(namespace, name))

    def test_message_ids_are_what_they_always_were(self) -> None:
        assert message_id("7c9e6679-7425-40de-944b-e07fc1f90ae7", 3) == str(
            uuid.uuid5(
                uuid.UUID("8f1d2c6e-3a57-5b0e-9c41-6d7e2f0a9b13"), "7c9e6679-7425-40de-944b-e07fc1f90ae7|3"
            )
        )


class TestEntriesWrittenTogether:
    async def test_an_entry_another_transaction_made_first_wins_and_the_batch_is_done_again(
        self, api: httpx.AsyncClient, sandbox: str, pool: asyncpg.Pool
    ) -> None:
        journey_id = await live(api, PAUSING)
        profile, other = str(uuid.uuid4()), str(uuid.uuid4())
        handler = RuntimeHandler(pool, sandbox)
        batch = [
            event_record(sandbox, profile, str(uuid.uuid4()), 0),
            event_record(sandbox, other, str(uuid.uuid4()), 1),
        ]
        async with pool.acquire() as elsewhere:
            transaction = elsewhere.transaction()
            await transaction.start()
            try:
                await entered_meanwhile(elsewhere, sandbox, journey_id, profile)
                backend = await elsewhere.fetchval("SELECT pg_backend_pid()")
                applying = asyncio.create_task(handler(batch))
                # The batch read no live instance of the profile, so it enters it, and
                # waits at the end for the uncommitted one to commit or roll back.
                await eventually(lambda: waiting_on_a_lock(pool, {backend}), timeout_s=30)
            finally:
                await transaction.commit()
            await applying

        found = {(i["profileId"], i["status"]) for i in await instances(api, journey_id)}
        assert found == {(profile, "waiting"), (other, "waiting")}
        (mine,) = [i for i in await instances(api, journey_id) if i["profileId"] == other]
        assert [kind for kind, _, _ in await history(api, journey_id, mine["instanceId"])] == [
            "entered",
            "started",
        ]
        async with pool.acquire() as conn:
            timers = await conn.fetch(
                "SELECT kind, i.profile_id FROM timers t JOIN instances i ON i.id = t.instance_id "
                "WHERE t.sandbox = $1 ORDER BY kind",
                sandbox,
            )
        # The profile entered elsewhere has no timer from this batch; the other has both.
        assert sorted((r["kind"], str(r["profile_id"])) for r in timers) == [
            ("resume", other),
            ("timeout", other),
        ]

    async def test_a_run_that_writes_an_entry_made_meanwhile_says_so(
        self, api: httpx.AsyncClient, sandbox: str, pool: asyncpg.Pool
    ) -> None:
        journey_id = await live(api, PAUSING)
        profile = str(uuid.uuid4())
        async with pool.acquire() as conn:
            version = compiled(
                await conn.fetchrow(
                    "SELECT journey_id, version, definition FROM journey_versions WHERE journey_id = $1",
                    uuid.UUID(journey_id),
                )
            )
            transaction = conn.transaction()
            await transaction.start()
            try:
                run = Run(conn, sandbox, datetime.now(UTC), eager=False)
                await run.load_entries([(uuid.UUID(profile), uuid.UUID(journey_id), "event:1")])
                assert await run.enter(version, uuid.UUID(profile), JANE, {}, "event:1") is not None
                # The same trigger again in the run: known taken, not left to the database.
                assert await run.enter(version, uuid.UUID(profile), JANE, {}, "event:1") is None
                await entered_meanwhile(conn, sandbox, journey_id, profile)
                with pytest.raises(Contended):
                    await run.flush()
            finally:
                await transaction.rollback()
            async with conn.transaction():  # eager: the entry is refused, nothing is left of it
                run = Run(conn, sandbox, datetime.now(UTC), eager=True)
                await entered_meanwhile(conn, sandbox, journey_id, profile)
                assert await run.enter(version, uuid.UUID(profile), JANE, {}, "event:2") is None
                await run.flush()
                assert await conn.fetchval("SELECT count(*) FROM instances WHERE sandbox = $1", sandbox) == 1

    async def test_the_same_event_twice_in_one_batch_enters_once(
        self, api: httpx.AsyncClient, sandbox: str, pool: asyncpg.Pool
    ) -> None:
        journey_id = await live(api, QUICK, reentrance={"allowed": True, "waitSeconds": 0})
        profile, event_id = str(uuid.uuid4()), str(uuid.uuid4())
        handler = RuntimeHandler(pool, sandbox)
        await handler([event_record(sandbox, profile, event_id, n) for n in range(3)])
        await handler([event_record(sandbox, profile, event_id, 3)])  # delivered again later
        await handler([event_record(sandbox, profile, str(uuid.uuid4()), 4)])  # another event
        found = await instances(api, journey_id)
        assert [i["status"] for i in found] == ["completed", "completed"]

    async def test_an_exit_and_a_re_entry_in_one_batch_see_each_other(
        self, api: httpx.AsyncClient, sandbox: str, pool: asyncpg.Pool
    ) -> None:
        nodes = [dict(n) for n in PAUSING]
        journey_id = await live(
            api,
            nodes,
            reentrance={"allowed": True, "waitSeconds": 0},
            exitCriteria=[{"name": "again", "type": "event", "eventType": "account.created"}],
        )
        profile = str(uuid.uuid4())
        handler = RuntimeHandler(pool, sandbox)
        # The first enters; the second makes it exit, then enters anew; the third too.
        await handler([event_record(sandbox, profile, str(uuid.uuid4()), n) for n in range(3)])
        found = sorted((i["status"], i["endReason"]) for i in await instances(api, journey_id))
        assert found == [
            ("exited", "exit criteria: again"),
            ("exited", "exit criteria: again"),
            ("waiting", None),
        ]
        async with pool.acquire() as conn:
            timers = await conn.fetchval("SELECT count(*) FROM timers WHERE sandbox = $1", sandbox)
        assert timers == 2  # the live instance's resume and timeout; the others' are gone


class TestJumps:
    async def test_a_jump_enters_the_other_journey_once_from_an_event_and_from_a_timer(
        self, api: httpx.AsyncClient, producer: Producer, sandbox: str, pool: asyncpg.Pool
    ) -> None:
        target = await live(
            api,
            [
                {"id": "landing", "type": "event", "eventType": "never.sent", "next": "pause"},
                {"id": "pause", "type": "wait", "duration": "P1D", "next": "done"},
                {"id": "done", "type": "end"},
            ],
        )
        at_once = await live(
            api,
            [
                {"id": "signup", "type": "event", "eventType": "account.created", "next": "go"},
                {"id": "go", "type": "jump", "journeyId": target},
            ],
        )
        later = await live(
            api,
            [
                {"id": "signup", "type": "event", "eventType": "cart.abandoned", "next": "pause"},
                {"id": "pause", "type": "wait", "duration": "PT1H", "next": "go"},
                {"id": "go", "type": "jump", "journeyId": target},
            ],
        )
        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        await happened(producer, sandbox, first, "account.created")
        await happened(producer, sandbox, second, "cart.abandoned")

        async def arrived(count: int) -> bool:
            return len(await instances(api, target, status="waiting")) == count

        async def paused() -> bool:
            return len(await instances(api, later, status="waiting")) == 1

        await eventually(lambda: arrived(1), timeout_s=30)
        await eventually(paused, timeout_s=30)
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE timers SET due_at = $2 WHERE sandbox = $1 AND kind = 'resume' AND instance_id IN "
                "(SELECT id FROM instances WHERE sandbox = $1 AND journey_id = $3)",
                sandbox,
                datetime.now(UTC) - timedelta(minutes=1),
                uuid.UUID(later),
            )
        await eventually(lambda: arrived(2), timeout_s=30)
        assert sorted(i["profileId"] for i in await instances(api, target)) == sorted([first, second])
        for journey_id in (at_once, later):
            ((status, reason),) = [(i["status"], i["endReason"]) for i in await instances(api, journey_id)]
            assert (status, reason) == ("exited", "jump")


class TestTimerPasses:
    async def test_passes_fire_the_due_timers_of_many_instances_and_move_or_drop_the_others(
        self, api: httpx.AsyncClient, sandbox: str, pool: asyncpg.Pool
    ) -> None:
        nodes = [
            {"id": "signup", "type": "event", "eventType": "account.created", "next": "pause"},
            {"id": "pause", "type": "wait", "duration": "PT1H", "next": "again"},
            {"id": "again", "type": "wait", "duration": "PT1H", "next": "done"},
            {"id": "done", "type": "end"},
        ]
        journey_id = await live(api, nodes)
        handler = RuntimeHandler(pool, sandbox)
        profiles = [str(uuid.uuid4()) for _ in range(20)]
        await handler([event_record(sandbox, p, str(uuid.uuid4()), n) for n, p in enumerate(profiles)])
        # Half wait for their first wait to end, half for the journey's timeout.
        async with pool.acquire() as conn:
            await conn.execute(
                """UPDATE timers t SET due_at = now() - interval '1 minute'
                     FROM instances i
                    WHERE t.sandbox = $1 AND i.sandbox = t.sandbox AND i.id = t.instance_id
                      AND ((t.kind = 'resume' AND i.profile_id = ANY($2::uuid[]))
                           OR (t.kind = 'timeout' AND i.profile_id = ANY($3::uuid[])))""",
                sandbox,
                [uuid.UUID(p) for p in profiles[:10]],
                [uuid.UUID(p) for p in profiles[10:]],
            )
        await TimerRunner(pool, 1.0, 1000).tick()  # the runner in the app may take some first

        async def fired() -> bool:
            return not [i for i in await instances(api, journey_id) if i["node"] == "pause"]

        await eventually(fired, timeout_s=30)
        found = {i["profileId"]: (i["status"], i["node"]) for i in await instances(api, journey_id)}
        assert found == {
            **dict.fromkeys(profiles[:10], ("waiting", "again")),
            **dict.fromkeys(profiles[10:], ("exited", None)),
        }
        async with pool.acquire() as conn:
            timers = await conn.fetch(
                """SELECT i.profile_id, t.kind, t.node, t.due_at > now() AS ahead FROM timers t
                     JOIN instances i ON i.sandbox = t.sandbox AND i.id = t.instance_id
                    WHERE t.sandbox = $1""",
                sandbox,
            )
        assert sorted((str(r["profile_id"]), r["kind"], r["node"], r["ahead"]) for r in timers) == sorted(
            [(p, "resume", "again", True) for p in profiles[:10]]
            + [(p, "timeout", None, True) for p in profiles[:10]]
        )


class TestDeliveryWaits:
    async def test_a_timed_out_delivery_then_a_new_one_of_the_same_instance_keep_their_order(
        self, api: httpx.AsyncClient, sandbox: str, pool: asyncpg.Pool
    ) -> None:
        """The first message's wait times out and the error branch sends a second message
        that waits too: written together, the time-out must not reach the new wait."""
        nodes: list[dict[str, Any]] = [
            {"id": "signup", "type": "event", "eventType": "account.created", "next": "email"},
            {
                "id": "email",
                "type": "message",
                "channel": "email",
                "templateId": "welcome",
                "errorPath": True,
                "errorNext": "sms",
                "timeout": "PT1H",
                "next": "done",
            },
            {
                "id": "sms",
                "type": "message",
                "channel": "sms",
                "templateId": "welcome-sms",
                "errorPath": True,
                "errorNext": "done",
                "timeout": "PT1H",
                "next": "done",
            },
            {"id": "done", "type": "end"},
        ]
        journey_id = await live(api, nodes)
        await RuntimeHandler(pool, sandbox)([event_record(sandbox, str(uuid.uuid4()), str(uuid.uuid4()), 0)])
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE timers SET due_at = now() - interval '1 minute' "
                "WHERE sandbox = $1 AND kind = 'resume'",
                sandbox,
            )
        await TimerRunner(pool, 1.0, 1000).tick()  # or the app's runner, first

        async def at_the_sms() -> bool:
            return [i["node"] for i in await instances(api, journey_id)] == ["sms"]

        await eventually(at_the_sms, timeout_s=30)
        async with pool.acquire() as conn:
            waits = await conn.fetch(
                "SELECT node, status FROM delivery_waits WHERE sandbox = $1 ORDER BY step", sandbox
            )
            timer = await conn.fetchrow(
                "SELECT node, due_at > now() AS ahead FROM timers WHERE sandbox = $1 AND kind = 'resume'",
                sandbox,
            )
        assert [(w["node"], w["status"]) for w in waits] == [("email", "timeout"), ("sms", None)]
        assert (timer["node"], timer["ahead"]) == ("sms", True)
