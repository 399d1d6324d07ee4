"""Fixtures for the intel tests: a running intel service on its own database and topic prefix."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shouwang_dev.testing import TestStack, running_app
from shouwang_shared.auth import Role
from shouwang_shared.db import make_engine

from intel.config import IntelSettings
from intel.main import create_app
from intel_helpers import COUNTY


@dataclass
class IntelUnderTest:
    """The running service and what tests need around it."""

    client: httpx.AsyncClient
    settings: IntelSettings
    prefix: str
    engine: AsyncEngine
    stack: TestStack

    def topic(self, name: str) -> str:
        """Physical name of a catalog topic for this service instance."""
        return f"{self.prefix}{name}"

    def auth(self, role: Role | str, *, sub: str = "tester", scope: str = "", vid: str | None = None) -> dict[str, str]:
        """Authorization header for a principal."""
        return {"Authorization": f"Bearer {self.stack.token(role, sub=sub, scope_path=scope, volunteer_id=vid)}"}

    def analyst(self, sub: str = "analyst-1", scope: str = COUNTY) -> dict[str, str]:
        """Headers of an analyst over the county."""
        return self.auth(Role.ANALYST, sub=sub, scope=scope)

    def volunteer(self, vid: str) -> dict[str, str]:
        """Headers of volunteer `vid`."""
        return self.auth(Role.VOLUNTEER, sub=f"user-{vid}", vid=vid)


def intel_settings(stack: TestStack, url: str, prefix: str, **extra: str) -> IntelSettings:
    """Settings of an intel instance under test."""
    env = stack.service_env("intel", url, prefix=prefix, **{"default_org_path": COUNTY, **extra})
    return IntelSettings(**{k.lower(): v for k, v in env.items()})


@pytest.fixture(scope="module")
async def intel(stack: TestStack) -> IntelUnderTest:
    """One intel service per test module, with its own database and topics."""
    prefix = stack.new_prefix()
    await stack.ensure_topics(prefix)
    url = await stack.create_database(f"intel_{uuid.uuid4().hex[:6]}")
    settings = intel_settings(stack, url, prefix)
    engine = make_engine(url, pool_size=2)
    async with running_app(create_app(settings)) as client:
        yield IntelUnderTest(client=client, settings=settings, prefix=prefix, engine=engine, stack=stack)
    await engine.dispose()
