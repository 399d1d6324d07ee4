"""A circuit breaker per upstream service (pure: the clock is passed in)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class BreakerState(StrEnum):
    """Closed: calls flow. Open: calls fail fast. Half-open: one trial call decides."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failures; lets one trial through after `reset_timeout_s`."""

    failure_threshold: int = 5
    reset_timeout_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    _trial_in_flight: bool = field(default=False, repr=False)

    def allow(self) -> bool:
        """True when a call may go to the upstream now."""
        if self.state == BreakerState.CLOSED:
            return True
        if self.state == BreakerState.OPEN:
            if self.clock() - self.opened_at < self.reset_timeout_s:
                return False
            self.state = BreakerState.HALF_OPEN
            self._trial_in_flight = False
        if self._trial_in_flight:
            return False
        self._trial_in_flight = True
        return True

    def record_success(self) -> None:
        """The upstream answered: close the circuit."""
        self.state = BreakerState.CLOSED
        self.failures = 0
        self._trial_in_flight = False

    def record_failure(self) -> None:
        """The upstream did not answer: count it, and open the circuit at the threshold or after a failed trial."""
        self.failures += 1
        self._trial_in_flight = False
        if self.state == BreakerState.HALF_OPEN or self.failures >= self.failure_threshold:
            self.state = BreakerState.OPEN
            self.opened_at = self.clock()

    def retry_after_s(self) -> int:
        """Seconds until a trial call will be allowed (at least 1)."""
        if self.state != BreakerState.OPEN:
            return 1
        return max(1, int(self.reset_timeout_s - (self.clock() - self.opened_at) + 0.999))
