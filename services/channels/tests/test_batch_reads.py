"""Recording sends reads the messages sent and no others, however many are being sent:
each is looked up by its key. Looked up with its state as well, the planner went through
the partial index of leases (every message being sent) for each one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from itinera.channels.messages.repository import finish_sent
from itinera.common.testing import rows_read

BEING_SENT = 2_000


async def test_recording_sends_reads_only_the_messages_sent(pool: asyncpg.Pool, sandbox: str) -> None:
    now = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in range(BEING_SENT)]
    await pool.execute(
        """INSERT INTO messages (sandbox, message_id, profile_id, channel, category, state, address,
                                 lease_until, attempts)
           SELECT $1, m, gen_random_uuid(), 'email', 'marketing', 'sending', 'someone@example.com', $3, 1
             FROM unnest($2::uuid[]) AS m""",
        sandbox,
        ids,
        now + timedelta(minutes=5),
    )
    await pool.execute("ANALYZE messages")
    sent = [(sandbox, ids[0], 1, "provider-1", None), (sandbox, ids[1], 1, "provider-2", None)]

    async with pool.acquire() as conn, conn.transaction():
        before = await rows_read(conn, ["messages"])
        recorded = await finish_sent(conn, sent, now)
        read = (await rows_read(conn, ["messages"]))["messages"] - before["messages"]

    assert recorded == {(sandbox, ids[0]), (sandbox, ids[1])}
    assert read <= 4 * len(sent)  # each read a few times (found, locked, updated), no others


async def test_a_claim_lost_to_another_worker_is_not_recorded(pool: asyncpg.Pool, sandbox: str) -> None:
    now = datetime.now(UTC)
    taken, resent = uuid.uuid4(), uuid.uuid4()
    await pool.execute(
        """INSERT INTO messages (sandbox, message_id, profile_id, channel, category, state, address, attempts)
           VALUES ($1, $2, gen_random_uuid(), 'email', 'marketing', 'sent', 'a@example.com', 1),
                  ($1, $3, gen_random_uuid(), 'email', 'marketing', 'sending', 'b@example.com', 2)""",
        sandbox,
        taken,
        resent,
    )

    async with pool.acquire() as conn:
        recorded = await finish_sent(
            conn, [(sandbox, taken, 1, None, None), (sandbox, resent, 1, None, None)], now
        )

    assert recorded == set()  # one already sent, the other claimed again since (attempt 2)
