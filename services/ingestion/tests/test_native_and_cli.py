"""``POST /v1/datasets/{id}/events`` (JSON array or NDJSON) and ``itinera ingest``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI

from itinera.common.cli import main as itinera
from itinera.common.devstack import free_port
from itinera.common.kafka import topics
from itinera.common.testing import StackInfo, topic_reader

ECID = "11112222333344445555666677778888999900"


def entity(n: int) -> dict[str, Any]:
    return {
        "_id": f"native-{uuid.uuid4()}",
        "timestamp": "2026-11-28T12:00:00Z",
        "eventType": "web.webpagedetails.pageViews",
        "identityMap": {"ECID": [{"id": ECID, "primary": True}]},
        "web": {"webPageDetails": {"name": f"page {n}"}},
    }


class TestNativeEndpoint:
    async def test_an_ndjson_stream_gets_one_result_per_line(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str], infrastructure: StackInfo
    ) -> None:
        lines = [orjson.dumps(entity(n)) for n in range(5)]
        lines.insert(2, b"{broken")
        lines.insert(4, orjson.dumps({"_id": "no-time"}))
        async with topic_reader(infrastructure, topics.EVENTS.name) as reader:
            response = await client.post(
                f"/v1/datasets/{events_inlet['dataset']}/events",
                content=b"\n".join(lines) + b"\n",
                headers={"content-type": "application/x-ndjson"},
            )
            assert response.status_code == 207, response.text
            body = response.json()
            accepted = {r["xactionId"] for r in body["results"] if r["status"] == 200}
            records = await reader.wait_for(lambda rs: accepted <= {r.ce_id for r in rs})
        assert (body["accepted"], body["refused"]) == (5, 2)
        assert [r["index"] for r in body["results"] if r["status"] != 200] == [2, 4]
        assert {r.headers["ce_source"] for r in records if r.ce_id in accepted} == {
            f"/itinera/ingestion/datasets/{events_inlet['dataset']}"
        }

    async def test_a_json_array_that_is_all_valid_answers_200(
        self, client: httpx.AsyncClient, events_inlet: dict[str, str]
    ) -> None:
        response = await client.post(
            f"/v1/datasets/{events_inlet['dataset']}/events", json=[entity(n) for n in range(3)]
        )
        assert response.status_code == 200
        assert response.json()["accepted"] == 3

    async def test_an_unknown_dataset_is_a_404(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/v1/datasets/nope/events", json=[entity(0)])
        assert response.status_code == 404


@pytest.fixture
async def http_url(app: FastAPI) -> AsyncIterator[str]:
    """The session's app behind a real socket (its lifespan already runs)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn exposes a flag, not an event)
        await asyncio.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


class TestIngestCommand:
    async def test_a_csv_file_is_mapped_and_streamed_with_a_summary(
        self,
        http_url: str,
        token: str,
        events_inlet: dict[str, str],
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        source = tmp_path / "views.csv"
        rows = ["id,when,email,page"] + [
            f"csv-{uuid.uuid4()},2026-11-28T09:00:0{n}Z,user{n}@example.com,page {n}" for n in range(7)
        ]
        rows.append("csv-bad,not-a-time,bad@example.com,page x")
        source.write_text("\n".join(rows) + "\n")
        args = [
            "ingest",
            str(source),
            "--dataset",
            events_inlet["dataset"],
            "--url",
            http_url,
            "--token",
            token,
            "--chunk",
            "3",
            "--map",
            "id=_id",
            "--map",
            "when=timestamp",
            "--map",
            "email=identityMap.Email",
            "--map",
            "page=web.webPageDetails.name",
        ]
        status = await asyncio.to_thread(itinera, args)
        out = capsys.readouterr().out
        assert status == 1
        assert "8 record(s): 7 accepted, 1 refused" in out
        assert "record 8: /timestamp" in out

    async def test_an_ndjson_file_with_only_good_records_exits_0(
        self, http_url: str, token: str, events_inlet: dict[str, str], tmp_path: Path
    ) -> None:
        source = tmp_path / "events.ndjson"
        source.write_bytes(b"\n".join(orjson.dumps(entity(n)) for n in range(20)))
        args = [
            "ingest",
            str(source),
            "--dataset",
            events_inlet["dataset"],
            "--url",
            http_url,
            "--token",
            token,
        ]
        assert await asyncio.to_thread(itinera, args) == 0
