"""Per-dataset time-to-live of experience events: not stored once expired, never read,
and deleted by the expiry sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI

from itinera.common.kafka import topics
from itinera.common.testing import StackInfo, eventually
from itinera.common.testing import publish_entity as send
from itinera.profile.retention.service import ExpirySweep

EVENTS = "/data/core/ups/access/entities"


def _at(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")


async def _event(
    infrastructure: StackInfo, sandbox: str, dataset: str, event_id: str, days_ago: float
) -> None:
    body = {
        "_id": event_id,
        "timestamp": _at(days_ago),
        "identityMap": {"Email": [{"id": "rae@example.com"}]},
    }
    await send(infrastructure, sandbox, topics.EVENTS.name, "Email:rae@example.com", dataset, body)


async def _event_ids(http: httpx.AsyncClient) -> list[str]:
    response = await http.get(
        EVENTS,
        params={
            "schema.name": "_xdm.context.experienceevent",
            "relatedSchema.name": "_xdm.context.profile",
            "relatedEntityId": "rae@example.com",
            "relatedEntityIdNS": "Email",
        },
    )
    return sorted(c["entityId"] for c in response.json()["children"]) if response.status_code == 200 else []


class TestEventTimeToLive:
    async def test_a_ttl_is_set_read_listed_and_removed(self, http: httpx.AsyncClient) -> None:
        assert (await http.get("/v1/datasets/web/event-ttl")).status_code == 404
        put = await http.put("/v1/datasets/web/event-ttl", json={"ttlDays": 30})
        assert put.json() == {"datasetId": "web", "ttlDays": 30}
        assert (await http.get("/v1/event-ttls")).json() == {
            "children": [{"datasetId": "web", "ttlDays": 30}]
        }
        assert (await http.delete("/v1/datasets/web/event-ttl")).status_code == 204
        assert (await http.delete("/v1/datasets/web/event-ttl")).status_code == 404

    async def test_a_ttl_out_of_range_is_refused_with_its_path(self, http: httpx.AsyncClient) -> None:
        response = await http.put("/v1/datasets/web/event-ttl", json={"ttlDays": 0})
        assert response.status_code == 422
        assert [e["path"] for e in response.json()["errors"]] == ["/body/ttlDays"]

    async def test_events_already_expired_on_arrival_are_not_kept(
        self, http: httpx.AsyncClient, infrastructure: StackInfo, sandbox: str
    ) -> None:
        await http.put("/v1/datasets/short/event-ttl", json={"ttlDays": 1})
        await _event(infrastructure, sandbox, "short", "old-short", days_ago=3)
        await _event(infrastructure, sandbox, "short", "new-short", days_ago=0.1)
        await _event(infrastructure, sandbox, "long", "old-long", days_ago=3)

        async def stored() -> bool:
            return await _event_ids(http) == ["new-short", "old-long"]

        await eventually(stored, timeout_s=30)

    async def test_events_expire_from_reads_at_once_and_from_storage_at_the_sweep(
        self, http: httpx.AsyncClient, infrastructure: StackInfo, sandbox: str, profile_app: FastAPI
    ) -> None:
        await _event(infrastructure, sandbox, "later", "kept-then-expired", days_ago=3)
        await _event(infrastructure, sandbox, "later", "recent", days_ago=0.1)

        async def stored() -> bool:
            return await _event_ids(http) == ["kept-then-expired", "recent"]

        await eventually(stored, timeout_s=30)
        await http.put("/v1/datasets/later/event-ttl", json={"ttlDays": 2})
        assert await _event_ids(http) == ["recent"]
        profile = (await http.get("/v1/profiles", params={"identity": "Email:rae@example.com"})).json()
        assert profile["eventCount"] == 1

        sweep = next(w for w in profile_app.state.runtime.workers if isinstance(w, ExpirySweep))
        assert await sweep.sweep() >= 1
        await http.delete("/v1/datasets/later/event-ttl")  # gone for good, not only hidden
        assert await _event_ids(http) == ["recent"]
