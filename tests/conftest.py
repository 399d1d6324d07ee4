"""Session-wide fixtures: one real PostgreSQL and one real Kafka broker for the whole test run, and the platform on them."""

from __future__ import annotations

import pytest

from shouwang_dev.stack.platform import ONE_ADDRESS_GATEWAY_ENV, Platform, start_platform
from shouwang_dev.testing import TestStack, start_test_stack, stop_test_stack


@pytest.fixture(scope="session")
def stack() -> TestStack:
    """The real servers of this test session (started here unless the environment names them)."""
    started = start_test_stack()
    yield started
    stop_test_stack(started)


@pytest.fixture(scope="session")
async def topics(stack: TestStack) -> str:
    """The catalog's topics under the session prefix; returns the prefix."""
    await stack.ensure_topics()
    return stack.topic_prefix


@pytest.fixture(scope="session")
async def platform(stack: TestStack) -> Platform:
    """The whole platform as separate processes, shared by the end-to-end and console tests of a session
    (tests/gateway has its own, with other limits)."""
    started = await start_platform(stack, extra_env={"gateway": {
        **ONE_ADDRESS_GATEWAY_ENV, "PUSH_ENDPOINT_HOSTS": "127.0.0.1",
        "CARD_REVOCATIONS_MAX_AGE_S": "0",  # /verify fetches the revocation list on every check (ETag: 304 when unchanged)
        "CONSOLE_OFFERS_PAGE": "2",  # the console's offers table turns pages at the third offer (tests/console)
    }})
    yield started
    started.stop()
