"""Token-bucket rate limits keyed by client, account, phone or route, kept in the gateway's PostgreSQL: the gateway's
one way to limit anything (requests a minute, and the wrong login-code guesses a phone may make a day).

Every replica takes its tokens from the same rows, so N replicas allow what one does. One hit is one
atomic upsert (refill by the time elapsed, take a token if there is one) on the statement pool; a bucket
idle long enough to be full again is deleted by `forget_full_buckets`, as a missing row is a full bucket.
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


# $1 limit name, $2 key, $3 capacity, $4 tokens per second. `refilled` is the bucket after the time elapsed,
# `left` what remains of it after this hit (one token less when there was one).
_REFILLED = "LEAST($3::float8, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $4::float8)"
_LEFT = f"CASE WHEN {_REFILLED} >= 1 THEN {_REFILLED} - 1 ELSE {_REFILLED} END"
TAKE_TOKEN = (
    "INSERT INTO rate_buckets AS b (name, key, tokens, updated_at, full_at, granted)"
    " VALUES ($1, $2, $3::float8 - 1, now(), now() + make_interval(secs => 1 / $4::float8), true)"
    " ON CONFLICT (name, key) DO UPDATE SET"
    f" tokens = {_LEFT}, granted = {_REFILLED} >= 1, updated_at = GREATEST(b.updated_at, now()),"
    f" full_at = GREATEST(b.updated_at, now()) + make_interval(secs => ($3::float8 - {_LEFT}) / $4::float8)"
    " RETURNING granted, tokens"
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

    async def hit(self, limit: Limit, key: str) -> float:
        """0 when the request may pass (a token is taken); otherwise the seconds until one is available."""
        if limit.per_minute <= 0 or self.statements is None:
            return 0.0
        try:
            row = await self.statements.fetchrow(TAKE_TOKEN, limit.name, key[:200], limit.capacity, limit.rate_per_s)
        except Exception as exc:
            if not (is_transient_db_error(exc) or isinstance(exc, TimeoutError)):
                raise
            self._warn(exc)
            return 0.0
        if row["granted"]:
            return 0.0
        return (1.0 - row["tokens"]) / limit.rate_per_s

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
