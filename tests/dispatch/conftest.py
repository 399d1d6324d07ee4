"""Fixtures for the dispatch tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.dispatch.service import DispatchUnderTest, dispatch_service


@pytest.fixture(scope="module")
async def dispatch(stack) -> AsyncIterator[DispatchUnderTest]:
    """One dispatch service shared by the tests of a module (each test uses its own place and day)."""
    async with dispatch_service(stack, "m") as service:
        yield service
