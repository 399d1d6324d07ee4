"""Fuzz fixtures: the whole platform as processes, fuzzed through each service's own OpenAPI document."""

from __future__ import annotations

import pytest

from shouwang_dev.stack.platform import ONE_ADDRESS_GATEWAY_ENV, Platform, start_platform
from shouwang_dev.testing import TestStack


@pytest.fixture(scope="session")
async def fuzz_platform(stack: TestStack) -> Platform:
    """Five service processes on the session's PostgreSQL and Kafka."""
    started = await start_platform(stack, extra_env={"gateway": ONE_ADDRESS_GATEWAY_ENV})
    yield started
    started.stop()
