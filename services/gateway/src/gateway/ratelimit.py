"""Token-bucket rate limits keyed by client, account or route (pure: the clock is passed in).

Buckets live in the memory of one gateway process; with N replicas behind a balancer a client
gets at most N times the limit, which is acceptable for abuse control (sticky balancing keeps it 1x).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limit:
    """`per_minute` requests a minute, with bursts up to `burst` (defaults to the per-minute figure)."""

    name: str
    per_minute: int
    burst: int | None = None

    @property
    def capacity(self) -> float:
        return float(self.burst if self.burst is not None else self.per_minute)

    @property
    def rate_per_s(self) -> float:
        return self.per_minute / 60.0


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """Takes one token per request from the bucket of (limit, key); says how long to wait when empty."""

    clock: Callable[[], float] = time.monotonic
    max_keys: int = 100_000
    _buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict, repr=False)

    def hit(self, limit: Limit, key: str) -> float:
        """0 when the request may pass (a token is taken); otherwise the seconds until one is available."""
        if limit.per_minute <= 0:
            return 0.0
        now = self.clock()
        slot = (limit.name, key)
        bucket = self._buckets.get(slot)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._prune(now)
            bucket = self._buckets[slot] = _Bucket(tokens=limit.capacity, updated=now)
        else:
            bucket.tokens = min(limit.capacity, bucket.tokens + (now - bucket.updated) * limit.rate_per_s)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / limit.rate_per_s

    @staticmethod
    def retry_after_header(wait_s: float) -> int:
        """Whole seconds for a Retry-After header (at least 1)."""
        return max(1, math.ceil(wait_s))

    def _prune(self, now: float) -> None:
        """Forget buckets idle for more than a minute (they would be full again anyway)."""
        stale = [slot for slot, b in self._buckets.items() if now - b.updated > 60.0]
        for slot in stale:
            del self._buckets[slot]
        if len(self._buckets) >= self.max_keys:
            self._buckets.clear()
