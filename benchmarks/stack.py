"""The stack a benchmark starts for itself: a broker and PostgreSQL (the local
infrastructure, ``itinera.common.devstack``) and services as processes of their own
(``itinera serve NAME --role all``), each logging to the run's folder; what to watch for
CPU accounting; stopping all of it; and a run bounded in time that stops it whatever
happens (:func:`run_bounded`)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import uvloop
from machine import say

from itinera.common.devstack import Infrastructure, free_port

T = TypeVar("T")


def run_bounded(work: Callable[[], Awaitable[T]], time_limit_s: float, stop: Callable[[], None]) -> T | None:
    """Run ``work`` on uvloop for at most ``time_limit_s`` seconds (SIGTERM and Ctrl-C
    end it too), then ``stop`` what the benchmark started, whatever happened. None when
    the run was stopped before it finished."""

    async def bounded() -> T:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        async with asyncio.timeout(time_limit_s):
            return await work()

    try:
        return uvloop.run(bounded())
    except (TimeoutError, KeyboardInterrupt, asyncio.CancelledError) as exc:
        say(f"stopped ({type(exc).__name__}) before the end; what was measured until then follows")
        return None
    finally:
        say("stopping what the benchmark started")
        stop()


def drop_database_files(state_dir: Path) -> None:
    """Delete the PostgreSQL data a run left in its folder (gigabytes after a long run);
    the logs beside it stay for a look after the run."""
    for data in [state_dir / "postgres", *state_dir.glob("*/postgres")]:
        shutil.rmtree(data, ignore_errors=True)


@dataclass
class Stack:
    """Started by the benchmark, stopped by :meth:`stop` whatever happened."""

    state_dir: Path | None = None
    infra: Infrastructure | None = None
    servers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, env: dict[str, str], role: str = "all", label: str | None = None) -> str:
        """Start ``itinera serve NAME --role ROLE``, known (in CPU accounting and its log's
        name) as ``label`` (default: NAME); its URL."""
        assert self.state_dir is not None
        port = free_port()
        label = label or name
        with open(self.state_dir / f"{label}.log", "ab") as log:
            self.servers[label] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "itinera.common.cli",
                    "serve",
                    name,
                    "--role",
                    role,
                    "--port",
                    str(port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        return f"http://127.0.0.1:{port}"

    def watched(self) -> dict[str, int]:
        pids = {name: p.pid for name, p in self.servers.items()}
        if self.infra is not None and self.infra.broker is not None and self.infra.broker.process:
            pids["broker"] = self.infra.broker.process.pid
        if self.infra is not None and self.infra.database is not None and self.infra.database.process:
            pids["postgres"] = self.infra.database.process.pid
        return pids

    def stop(self) -> None:
        for process in self.servers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.servers.values():
            try:
                process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.servers.clear()
        if self.infra is not None:
            self.infra.stop()
            self.infra = None
        if self.state_dir is not None:
            drop_database_files(self.state_dir)
