"""Small statistics and measures shared by the benchmarks."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q` quantile (0..1) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


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
