"""How a process's C allocator hands freed memory back to the kernel, for services that build large arrays.

glibc's malloc serves each allocation above its mmap threshold (128 KB, rising to at most 32 MB) with a fresh mapping
and unmaps it when freed, and trims the top of its heap back to the kernel. A process that builds and drops arrays of
tens of MB again and again (the dispatch planner: a province's zones, 920 MB at its peak) then has every page faulted
in and zeroed anew each time. Page faults are cheap on a dedicated server; on a virtual machine whose balloon reports
free memory to its host (virtio `free page reporting`, as on our 2-core bench machine) each page the host took back
costs a trip to the host, ~20 µs per 4 KB page measured there (docs/performance.md, 5 Dec 2026).

`retain_freed_memory` keeps what is freed in the process for its next allocations: its resident memory then stays at
its peak (the dispatch pod's limit is sized for the peak anyway).
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameters (glibc's malloc.h)
M_MMAP_MAX = -4
NEVER_TRIM = 2**31 - 1  # the largest trim threshold mallopt takes (an int): freed heap memory stays


def retain_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory in this process (no mappings per allocation, no heap trims); False where the
    C library is not glibc, which is left as it is."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on; no search for it on disk
    except (OSError, AttributeError):
        log.info("not glibc: freed memory is handed back as the C library decides")
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, NEVER_TRIM) == 1
