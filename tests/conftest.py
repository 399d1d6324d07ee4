"""Session-wide fixtures: one real PostgreSQL and one real Kafka broker for the whole test run."""

from __future__ import annotations

import pytest

from shouwang_shared.testing import TestStack, start_test_stack, stop_test_stack


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
