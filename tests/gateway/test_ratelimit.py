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
