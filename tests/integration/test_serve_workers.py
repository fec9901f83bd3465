"""``itinera serve --workers N``: N server processes share one port, each with its own
event loop, and stop together."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx

from itinera.common.devstack import free_port
from itinera.common.testing import StackInfo, environment_for


async def _ready(url: str, timeout_s: float = 60) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(int(timeout_s / 0.2)):
            try:
                if (await http.get(f"{url}/readyz", timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{url} did not become ready")


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == str(pid):
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _served_metrics_requests(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith("itinera_http_requests_total{") and 'route="/metrics"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class TestSeveralWorkers:
    async def test_serve_on_one_port_and_stop_together(self, topics_created: StackInfo) -> None:
        port = free_port()
        env = environment_for(topics_created, ITINERA_LOG_LEVEL="WARNING")
        supervisor = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "itinera.common.cli", "serve", "ingestion", "--role", "api"),
            *("--port", str(port), "--workers", "2"),
            env=env,
        )
        try:
            await _ready(f"http://127.0.0.1:{port}")
            workers = _children(supervisor.pid)
            assert len(workers) == 2
            # Each process counts only the requests it served: over separate connections
            # (SO_REUSEPORT spreads them) the /metrics counts read back are not one
            # increasing sequence, as they would be from a single process.
            counts = []
            for _ in range(40):
                async with httpx.AsyncClient() as http:
                    response = await http.get(f"http://127.0.0.1:{port}/metrics")
                assert response.status_code == 200
                counts.append(_served_metrics_requests(response.text))
            assert counts != sorted(counts) or len(set(counts)) < len(counts)
            supervisor.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(supervisor.wait(), 60) == 0
            assert not any(_alive(pid) for pid in workers)
        finally:
            if supervisor.returncode is None:
                supervisor.kill()
                await supervisor.wait()
