"""What the benchmarks share: CPU accounting from Linux /proc (per process tree and for
the whole machine), the process listening on a loopback port, the line that names the
machine in a report, progress lines and nearest-rank percentiles."""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after "pid (comm)": [0] state, [1] ppid, ... [11] utime, [12] stime,
    # [13] cutime, [14] cstime.
    return text.rsplit(")", 1)[1].split()


def tree_cpu_s(pid: int) -> float | None:
    """CPU seconds of a process, its reaped children and its live children (the
    PostgreSQL backends are children of the postmaster)."""
    root = _stat_fields(pid)
    if root is None:
        return None
    ticks = sum(int(v) for v in root[11:15])
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[1] == str(pid):
                ticks += sum(int(v) for v in fields[11:15])
    return ticks / CLOCK_TICKS


def machine_ticks() -> tuple[float, float, float]:
    """(busy, steal, total) CPU seconds over every core since boot."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return (math.nan, math.nan, math.nan)
    values = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    idle = values[3] + values[4]
    total = sum(values)
    return ((total - idle) / CLOCK_TICKS, values[7] / CLOCK_TICKS, total / CLOCK_TICKS)


@dataclass(frozen=True)
class CpuSample:
    wall: float
    machine: tuple[float, float, float]
    client: float
    processes: dict[str, float | None]


def cpu_sample(watched: dict[str, int]) -> CpuSample:
    return CpuSample(
        wall=time.perf_counter(),
        machine=machine_ticks(),
        client=time.process_time(),
        processes={name: tree_cpu_s(pid) for name, pid in watched.items()},
    )


@dataclass(frozen=True)
class CpuUse:
    """Cores busy on average (CPU seconds / wall seconds) during a phase."""

    wall_s: float
    machine: float
    steal: float
    client: float
    processes: dict[str, float | None]


def cpu_use(before: CpuSample, after: CpuSample) -> CpuUse:
    wall = max(after.wall - before.wall, 1e-9)
    processes: dict[str, float | None] = {}
    for name, start in before.processes.items():
        end = after.processes.get(name)
        processes[name] = None if start is None or end is None else (end - start) / wall
    # /proc/stat counts every core, so busy / (total / cores) is in cores too.
    busy, steal, total = (a - b for a, b in zip(after.machine, before.machine, strict=True))
    cores_seconds_per_second = total / wall if total > 0 else math.nan
    scale = (os.cpu_count() or 1) / cores_seconds_per_second if cores_seconds_per_second else math.nan
    return CpuUse(
        wall_s=wall,
        machine=busy / wall * scale,
        steal=steal / wall * scale,
        client=(after.client - before.client) / wall,
        processes=processes,
    )


def listening_pid(address: str) -> int | None:
    """The local process listening on ``host:port`` when the host is loopback."""
    host, _, port = address.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "[::1]") or not port.isdigit():
        return None
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[1].rsplit(":", 1)[1] == f"{int(port):04X}" and cols[3] == "0A":  # 0A: LISTEN
                inodes.add(f"socket:[{cols[9]}]")
    if not inodes:
        return None
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                if os.readlink(fd.path) in inodes:
                    return int(entry.name)
        except OSError:
            continue
    return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line() -> str:
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (
        f"machine: {os.cpu_count()} cores, {cpu_model()} (platform.processor: "
        f"{platform.processor() or 'empty'}), {platform.system()} {platform.release()}, "
        f"{platform.python_implementation()} {platform.python_version()}; load average {load}"
    )


def num(value: float, digits: int = 0) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def say(message: str) -> None:
    """A progress line, told apart from the report."""
    print(f"bench | {message}", flush=True)


def percentile_ms(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of durations in seconds, in milliseconds."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000


@dataclass(frozen=True)
class Spread:
    """One histogram's observations between two readings of a service's metrics."""

    count: float
    total: float
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def quantile(self, q: float) -> float:
        """The upper bound of the bucket holding the q-quantile (an over-estimate)."""
        wanted = q * self.count
        for bound, cumulative in self.buckets:
            if cumulative >= wanted:
                return bound
        return math.inf


def histogram_sums(text: str, name: str, **labels: str) -> dict[str, float]:
    """``<name>_count``, ``_sum`` and each ``_bucket`` (by its ``le``) of a Prometheus
    exposition, summed over the series whose labels include ``labels``."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.startswith(name) or any(sample.labels.get(k) != v for k, v in labels.items()):
                continue
            key = sample.name[len(name) :] + (f"|{sample.labels['le']}" if "le" in sample.labels else "")
            found[key] = found.get(key, 0.0) + sample.value
    return found


def spread(before: dict[str, float], after: dict[str, float]) -> Spread:
    delta = {k: v - before.get(k, 0.0) for k, v in after.items()}
    buckets = sorted((float(k.split("|")[1]), v) for k, v in delta.items() if k.startswith("_bucket|"))
    return Spread(delta.get("_count", 0.0), delta.get("_sum", 0.0), tuple(buckets))
