"""`retain_freed_memory`: a process that frees a large block keeps its pages for the next allocation."""

from __future__ import annotations

import json
import subprocess
import sys

# Allocates 96 MB through malloc (a bytearray), writes every page, frees it, and prints the resident memory (in MB)
# after each step; with the argument `retain` it calls retain_freed_memory first.
PROBE = """
import json, sys
from shouwang_shared.memory import retain_freed_memory

def rss_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20

retained = retain_freed_memory() if sys.argv[1:] == ["retain"] else None
before = rss_mb()
block = bytearray(96 * 2**20)
block[::4096] = b"x" * len(block[::4096])
held = rss_mb()
del block
print(json.dumps({"retained": retained, "before": before, "held": held, "after": rss_mb()}))
"""


def probe(*args: str) -> dict:
    """The probe's resident memory figures, run in a process of its own (the setting is process-wide)."""
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_a_freed_block_goes_back_to_the_kernel_by_default():
    figures = probe()
    assert figures["held"] - figures["before"] > 90
    assert figures["held"] - figures["after"] > 90  # unmapped at once: the next block is faulted in anew


def test_retained_memory_stays_with_the_process():
    figures = probe("retain")
    assert figures["retained"] is True
    assert figures["held"] - figures["before"] > 90
    assert figures["held"] - figures["after"] < 5  # kept for the next allocation
