"""In-process sliding-window limits for the public receipt look-up (kept in memory, nothing stored)."""

from __future__ import annotations

import time
from collections import defaultdict, deque


class SlidingWindowLimiter:
    """At most `limit` hits per `window_s` for each key; `retry_after` says how long to wait."""

    def __init__(self, *, limit: int, window_s: float, max_keys: int = 100_000) -> None:
        self.limit, self.window_s, self.max_keys = limit, window_s, max_keys
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def _window(self, key: str, now: float) -> deque[float]:
        hits = self._hits[key]
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        return hits

    def retry_after(self, key: str) -> int:
        """Seconds until `key` may try again, or 0 when it may now."""
        now = time.monotonic()
        hits = self._window(key, now)
        if len(hits) < self.limit:
            return 0
        return max(1, int(hits[0] + self.window_s - now) + 1)

    def hit(self, key: str) -> None:
        """Count one attempt of `key`."""
        if len(self._hits) > self.max_keys:
            self._hits.clear()
        self._hits[key].append(time.monotonic())
