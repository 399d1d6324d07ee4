"""A small time-limited cache for reference rows read on hot paths (invite targets, team codes). Pure."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    """Values kept for `ttl_s` seconds (at most `max_entries`; full → cleared); `forget` drops one at once."""

    def __init__(self, *, ttl_s: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.max_entries, self._clock = ttl_s, max_entries, clock
        self._entries: dict[Hashable, tuple[float, V]] = {}

    def get(self, key: Hashable) -> V | None:
        """The value stored for `key`, unless absent or older than the time limit."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < self._clock():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: Hashable, value: V) -> None:
        """Keep `value` for `key` for the time limit."""
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (self._clock() + self.ttl_s, value)

    def forget(self, key: Hashable) -> None:
        """Drop `key` (its row is known to have changed)."""
        self._entries.pop(key, None)
