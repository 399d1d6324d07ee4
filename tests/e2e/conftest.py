"""End-to-end fixtures: the whole platform as separate processes on the session's real PostgreSQL and Kafka."""

from __future__ import annotations

import pytest

from shouwang_shared.stack.platform import ONE_ADDRESS_GATEWAY_ENV, Platform, start_platform
from shouwang_shared.testing import TestStack


@pytest.fixture(scope="session")
async def platform(stack: TestStack) -> Platform:
    """The running platform, shared by the end-to-end tests of a session."""
    started = await start_platform(stack, extra_env={"gateway": {**ONE_ADDRESS_GATEWAY_ENV, "PUSH_ENDPOINT_HOSTS": "127.0.0.1"}})
    yield started
    started.stop()
