"""Small statistics and measures shared by the benchmarks."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from statistics import median_high

import asyncpg
import psutil


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q` quantile (0..1) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def machine_busy_s() -> float:
    """CPU-seconds the whole host has spent busy (not idle or waiting on I/O) since boot, over all its cores."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def scaleout_ceiling(one_replica_rate: float, two_replicas_machine_cpu_s_per_item: float) -> float:
    """The 2-vs-1 ratio the host allows: every core busy at what two replicas cost the whole machine an item (their
    processes, PostgreSQL, the broker, the bench), over one replica's rate. A ratio near it: the cores are the limit."""
    return (psutil.cpu_count() / two_replicas_machine_cpu_s_per_item) / one_replica_rate


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time another process (a service under test) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def settle_database(stack, seconds: float = 2.0, *, wait_s: float = 60.0) -> None:
    """Let the server finish what earlier work left (autovacuum workers, dirty pages: CHECKPOINT), then pause, so a
    figure is not measured during another benchmark's aftermath (the server is shared by every module of a run)."""
    conn = await asyncpg.connect(stack.pg_admin_url.replace("+asyncpg", ""))
    try:
        deadline = asyncio.get_running_loop().time() + wait_s
        while asyncio.get_running_loop().time() < deadline:
            busy = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")
            if not busy:
                break
            await asyncio.sleep(0.5)
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    await asyncio.sleep(seconds)


_SPIN = """
import json, sys, time
end = time.perf_counter() + float(sys.argv[1]); counts = []
while time.perf_counter() < end:
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 0.01:
        for _ in range(100):
            pass
        n += 1
    counts.append(n)
print(json.dumps(counts))
"""


async def cpu_steadiness(seconds: float = 4.0, *, prefix: str = "machine") -> dict[str, float]:
    """How steadily this machine runs busy code: one spinning process per core counts its work per 10 ms window.

    On a shared virtual machine the host may take the CPUs away for tens of milliseconds (the guest sees no
    steal time); every latency figure measured on it carries those pauses. Returns (as `<prefix>_cpu_...`)
    the share of windows in which a core did less than 30 % of its usual work, the longest run of them, and the
    usual work itself (loop turns per 10 ms, the median over cores): the host's speed also drifts for minutes at a
    time, by up to ~40 %, which a throughput figure carries too.
    """
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", _SPIN, str(seconds), stdout=asyncio.subprocess.PIPE)
             for _ in range(os.cpu_count() or 1)]
    slow_windows, windows, longest_ms, usual_work = 0, 0, 0.0, []
    for proc in procs:
        out, _ = await proc.communicate()
        counts = json.loads(out)
        usual = median_high(counts)
        usual_work.append(usual)
        run = 0
        for n in counts:
            run = run + 1 if n < 0.3 * usual else 0
            slow_windows += run > 0
            longest_ms = max(longest_ms, run * 10.0)
        windows += len(counts)
    return {f"{prefix}_cpu_slow_window_pct": round(100.0 * slow_windows / max(windows, 1), 2), f"{prefix}_cpu_longest_slow_ms": longest_ms,
            f"{prefix}_cpu_work_per_10ms": median_high(usual_work)}


class CpuMeter:
    """CPU seconds (user + system) a process tree spends between `start` and `stop`, children that exit meanwhile included.

    A child that exits is counted by its parent's reaped-children times (PostgreSQL's postmaster reaps its backends);
    `own_only` leaves children out (the bench's children are the stack's servers and py-spy, counted apart).
    """

    def __init__(self, root: psutil.Process, *, own_only: bool = False) -> None:
        self.root = root
        self.own_only = own_only
        self._start: tuple[dict[int, float], float] = ({}, 0.0)

    def _snapshot(self) -> tuple[dict[int, float], float]:
        """Each live process's CPU seconds, and the root's reaped children's."""
        times: dict[int, float] = {}
        tree = [self.root] if self.own_only else [self.root, *self.root.children(recursive=True)]
        reaped = 0.0
        for proc in tree:
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            times[proc.pid] = t.user + t.system
            if proc is self.root and not self.own_only:
                reaped = t.children_user + t.children_system
        return times, reaped

    def start(self) -> None:
        """Take the starting snapshot."""
        self._start = self._snapshot()

    def stop(self) -> float:
        """CPU seconds since `start`."""
        (before, reaped_before), (after, reaped_after) = self._start, self._snapshot()
        live = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
        exited = sum(cpu for pid, cpu in before.items() if pid not in after)  # counted again in the reaped times
        return live + (reaped_after - reaped_before) - exited
