"""Machine benchmark: how steadily the CPUs run busy code, as context for every latency figure of the run.

On this kind of shared virtual machine the host periodically takes the CPUs away (measured: both cores down
to a few percent of their speed for 50-150 ms, about every 1.5 s, with no steal time in the guest). A
latency percentile measured during such pauses includes them whatever the code does.
"""

from __future__ import annotations

from shouwang_dev.testing import TestStack

from bench.stats import cpu_steadiness


async def run(stack: TestStack) -> dict[str, float]:
    """Spin one process per core for a few seconds and report the slow windows."""
    return await cpu_steadiness(6.0)
