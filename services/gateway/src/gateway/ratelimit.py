"""Token-bucket rate limits keyed by client, account, phone or route, kept in the gateway's PostgreSQL: the gateway's
one way to limit anything (requests a minute, and the wrong login-code guesses a phone may make a day).

Every replica takes its tokens from the same rows, so N replicas allow what one does. One hit is one
atomic upsert (refill by the time elapsed, take a token if there is one) on the statement pool; a bucket
idle long enough to be full again is deleted by `forget_full_buckets`, as a missing row is a full bucket.

A busy key leases (`Limit.lease`, the per-client and per-account limits): when this process took a token for the same
key less than `LEASE_S` ago, it takes up to `lease` at once (never more than a twentieth of the bucket) and spends
them itself within `LEASE_S`, one round trip where there were `lease`. Tokens are taken before they are spent, so
N replicas still never allow more than one would; a lease's unspent tokens lapse, so a client may get up to
N × (lease − 1) fewer a second than the limit, only while it is busy. A key used now and then takes one token a trip.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

from shouwang_shared.db import StatementPool, is_transient_db_error

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    """`per_minute` requests a minute, with bursts up to `burst` (defaults to the per-minute figure)."""

    name: str
    per_minute: float
    burst: int | None = None
    lease: int = 1  # tokens a process may take at once for a busy key (see the module's docstring)

    @classmethod
    def per_day(cls, name: str, count: int) -> Limit:
        """`count` a day: all of them at once at most, then one more each 24 h / `count` (a guess cap, not a quota)."""
        return cls(name, per_minute=count / (24 * 60), burst=count)

    @property
    def capacity(self) -> float:
        return float(self.burst if self.burst is not None else self.per_minute)

    @property
    def rate_per_s(self) -> float:
        return self.per_minute / 60.0

    @property
    def lease_size(self) -> int:
        """Tokens one round trip may take for a busy key: `lease`, but never more than a twentieth of the bucket."""
        return max(1, min(self.lease, int(self.capacity // 20)))


LEASE_S = 1.0  # how long a process keeps the tokens it leased, and how recent a hit must be for the key to count as busy


# $1 limit name, $2 key, $3 capacity, $4 tokens per second, $5 tokens wanted (1, or a lease). `refilled` is the bucket
# after the time elapsed, `taken` what this hit takes (as many as wanted, at most the whole tokens there are), `left`
# what remains.
_REFILLED = "LEAST($3::float8, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $4::float8)"
_TAKEN = f"CASE WHEN {_REFILLED} >= 1 THEN LEAST($5::float8, floor({_REFILLED})) ELSE 0 END"
_LEFT = f"{_REFILLED} - {_TAKEN}"
TAKE_TOKENS = (
    "INSERT INTO rate_buckets AS b (name, key, tokens, updated_at, full_at, granted, taken)"
    " VALUES ($1, $2, $3::float8 - LEAST($5::float8, floor($3::float8)), now(),"
    " now() + make_interval(secs => LEAST($5::float8, floor($3::float8)) / $4::float8), true, LEAST($5::float8, floor($3::float8)))"
    " ON CONFLICT (name, key) DO UPDATE SET"
    f" tokens = {_LEFT}, granted = {_REFILLED} >= 1, taken = {_TAKEN}, updated_at = GREATEST(b.updated_at, now()),"
    f" full_at = GREATEST(b.updated_at, now()) + make_interval(secs => ($3::float8 - ({_LEFT})) / $4::float8)"
    " RETURNING granted, tokens, taken"
)
# The wait before a bucket holds a token again, without taking one (0 for a missing row: a full bucket).
PEEK_WAIT = (
    "SELECT GREATEST(0, 1 - LEAST($3::float8, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $4::float8))"
    " / $4::float8 FROM rate_buckets b WHERE name = $1 AND key = $2"
)
FORGET_FULL = "DELETE FROM rate_buckets WHERE full_at < now()"


@dataclass
class SharedRateLimiter:
    """Takes one token per request from the shared bucket of (limit, key); says how long to wait when empty.

    The statement pool is bound when the app is built. While the database cannot be reached the limits are
    not enforced (logged): the gateway's sessions need the database anyway, anonymous calls keep working.
    """

    statements: StatementPool | None = None
    _warned_at: float = field(default=0.0, repr=False)
    _leased: dict[tuple[str, str], list[float]] = field(default_factory=dict, repr=False)  # (limit, key) → [tokens, until]
    _last_trip: dict[tuple[str, str], float] = field(default_factory=dict, repr=False)  # (limit, key) → monotonic time

    async def hit(self, limit: Limit, key: str) -> float:
        """0 when the request may pass (a token is taken); otherwise the seconds until one is available."""
        if limit.per_minute <= 0 or self.statements is None:
            return 0.0
        key = key[:200]
        lease, busy = limit.lease_size, False
        now = time.monotonic()
        if lease > 1:
            held = self._leased.get((limit.name, key))
            if held is not None and held[0] >= 1 and held[1] > now:
                held[0] -= 1
                return 0.0
            busy = now - self._last_trip.get((limit.name, key), -LEASE_S) < LEASE_S
            self._remember_trip(limit.name, key, now)
        wanted = lease if busy else 1
        try:
            row = await self.statements.fetchrow(TAKE_TOKENS, limit.name, key, limit.capacity, limit.rate_per_s, float(wanted))
        except Exception as exc:
            if not (is_transient_db_error(exc) or isinstance(exc, TimeoutError)):
                raise
            self._warn(exc)
            return 0.0
        if not row["granted"]:
            return (1.0 - row["tokens"]) / limit.rate_per_s
        if row["taken"] > 1:  # one for this request, the rest for this process's next ones (with any still held)
            held = self._leased.get((limit.name, key))
            still = held[0] if held is not None and held[1] > now else 0.0
            self._leased[(limit.name, key)] = [still + row["taken"] - 1, now + LEASE_S]
        return 0.0

    def _remember_trip(self, name: str, key: str, now: float) -> None:
        """Note a round trip for (limit, key); past 10,000 keys, forget the lapsed leases and trips."""
        self._last_trip[(name, key)] = now
        if len(self._last_trip) > 10_000:
            self._last_trip = {k: t for k, t in self._last_trip.items() if now - t < LEASE_S}
            self._leased = {k: held for k, held in self._leased.items() if held[1] > now}

    async def wait(self, limit: Limit, key: str) -> float:
        """The seconds until the bucket of (limit, key) holds a token, taking none (0 when the request would pass)."""
        if limit.per_minute <= 0 or self.statements is None:
            return 0.0
        try:
            return float(await self.statements.fetchval(PEEK_WAIT, limit.name, key[:200], limit.capacity, limit.rate_per_s) or 0.0)
        except Exception as exc:
            if not (is_transient_db_error(exc) or isinstance(exc, TimeoutError)):
                raise
            self._warn(exc)
            return 0.0

    @staticmethod
    def retry_after_header(wait_s: float) -> int:
        """Whole seconds for a Retry-After header (at least 1)."""
        return max(1, math.ceil(wait_s))

    def _warn(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned_at > 10.0:
            self._warned_at = now
            log.warning("rate limits not enforced: the gateway database is unreachable (%s)", exc)


async def forget_full_buckets(statements: StatementPool) -> None:
    """Delete the buckets that have refilled (the same as no row): one round of the gateway's sweep (`Runtime.every`)."""
    await statements.fetch(FORGET_FULL)
