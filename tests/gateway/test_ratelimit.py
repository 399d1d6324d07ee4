"""The shared token buckets on the gateway's real PostgreSQL: refill, separation, one limit for many processes."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from shouwang_shared.db import StatementPool

from gateway.ratelimit import FORGET_FULL, Limit, SharedRateLimiter


@pytest.fixture
async def pools(platform):
    """Two statement pools on the gateway database, as two gateway processes hold."""
    made = [StatementPool(platform.database_urls["gateway"], max_size=5, min_size=1) for _ in range(2)]
    for pool in made:
        await pool.start()
    yield made
    for pool in made:
        await pool.close()


def _key() -> str:
    return f"198.51.100.{uuid.uuid4().int % 250}-{uuid.uuid4().hex[:6]}"


async def test_a_burst_passes_then_the_wait_is_told_and_the_bucket_refills(pools):
    limiter = SharedRateLimiter(pools[0])
    limit, key = Limit("test_refill", per_minute=60, burst=3), _key()
    assert [await limiter.hit(limit, key) for _ in range(3)] == [0, 0, 0]
    wait = await limiter.hit(limit, key)
    assert 0.8 < wait <= 1.0 and limiter.retry_after_header(wait) == 1
    assert await limiter.hit(limit, _key()) == 0, "another key has its own bucket"
    assert await limiter.hit(Limit("test_other", per_minute=60), key) == 0, "another limit has its own bucket"
    await asyncio.sleep(wait + 0.05)
    assert await limiter.hit(limit, key) == 0
    assert await limiter.hit(limit, key) > 0


async def test_a_peek_tells_the_wait_without_taking_and_a_day_cap_refills_slowly(pools):
    limiter = SharedRateLimiter(pools[0])
    guesses, key = Limit.per_day("test_guesses", 3), _key()
    assert (guesses.capacity, round(guesses.rate_per_s * 86400, 6)) == (3.0, 3.0)
    assert await limiter.wait(guesses, key) == 0, "no row is a full bucket"
    assert [await limiter.wait(guesses, key) for _ in range(5)] == [0] * 5, "peeking takes nothing"
    assert [await limiter.hit(guesses, key) for _ in range(3)] == [0, 0, 0]
    wait = await limiter.wait(guesses, key)
    assert 8 * 3600 - 5 < wait <= 8 * 3600, "one guess back every 8 hours"
    assert await limiter.hit(guesses, key) > 0 and await limiter.wait(guesses, _key()) == 0


async def test_concurrent_hits_from_two_processes_take_exactly_the_capacity(pools):
    one, two = SharedRateLimiter(pools[0]), SharedRateLimiter(pools[1])
    limit, key = Limit("test_shared", per_minute=5), _key()
    waits = await asyncio.gather(*(limiter.hit(limit, key) for limiter in [one, two] * 10))
    assert sum(w == 0 for w in waits) == 5, waits


async def test_full_buckets_are_forgotten(pools):
    limiter = SharedRateLimiter(pools[0])
    key = _key()
    await limiter.hit(Limit("test_forget", per_minute=6000), key)  # full again 10 ms later
    await limiter.hit(Limit("test_kept", per_minute=1), key)  # full again in a minute
    await asyncio.sleep(0.05)
    await pools[0].fetch(FORGET_FULL)
    left = await pools[0].fetch("SELECT name FROM rate_buckets WHERE key = $1", key)
    assert [r["name"] for r in left] == ["test_kept"]


async def test_an_unreachable_database_lets_requests_pass(platform):
    never_started = StatementPool(platform.database_urls["gateway"])
    assert await SharedRateLimiter(never_started).hit(Limit("test_down", per_minute=1), _key()) == 0


class _CountingPool:
    """A statement pool that counts its round trips."""

    def __init__(self, pool: StatementPool) -> None:
        self.pool, self.trips = pool, 0

    async def fetchrow(self, *args):
        self.trips += 1
        return await self.pool.fetchrow(*args)


async def test_a_busy_key_leases_tokens_and_two_processes_still_never_exceed_the_bucket(pools):
    one, two = _CountingPool(pools[0]), _CountingPool(pools[1])
    limiters = [SharedRateLimiter(one), SharedRateLimiter(two)]
    limit, key = Limit("test_lease", per_minute=60, burst=200, lease=10), _key()
    assert limit.lease_size == 10 and Limit("x", per_minute=60, lease=10).lease_size == 3, "at most a twentieth of the bucket"
    waits = [await limiters[n % 2].hit(limit, key) for n in range(150)]  # far faster than the 1 a second refill
    assert one.trips + two.trips <= 150 / 5, (one.trips, two.trips)  # while tokens last: a round trip a lease, not a request
    waits += [await limiters[n % 2].hit(limit, key) for n in range(250)]
    passed = sum(w == 0 for w in waits)
    assert passed <= 200 + 2, "never more than the bucket held (and the ~2 tokens it refilled meanwhile)"
    assert passed >= 200 - 2 * 9, "at most a lease's spare tokens lapse per process"
    assert all(w > 0 for w in waits[-20:]), "an empty bucket is empty for both processes"


async def test_a_key_used_now_and_then_takes_one_token_a_trip(pools):
    limiter = SharedRateLimiter(_CountingPool(pools[0]))
    limit, key = Limit("test_lease_quiet", per_minute=60, burst=200, lease=10), _key()
    assert await limiter.hit(limit, key) == 0
    left = await pools[0].fetchval("SELECT tokens FROM rate_buckets WHERE name = $1 AND key = $2", limit.name, key)
    assert 199 <= left < 199.5, "the first hit of a quiet key takes one token, leases none"
    assert await limiter.hit(limit, key) == 0  # busy now: this one leases
    left = await pools[0].fetchval("SELECT tokens FROM rate_buckets WHERE name = $1 AND key = $2", limit.name, key)
    assert 189 <= left < 190
