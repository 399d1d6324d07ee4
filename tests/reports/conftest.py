"""Fixtures for the reports tests: the real reports app on its own database and topics, and a producer of events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import BaseModel

from shouwang_dev.testing import TestStack, eventually, fetch_rows, running_app
from shouwang_shared.auth import Role
from shouwang_shared.envelope import Envelope, new_event
from shouwang_shared.kafka import make_producer

from reports.config import ReportsSettings
from reports.main import create_app


@dataclass
class ReportsUnderTest:
    """A running reports service: HTTP client, its database, its topic prefix and a producer of events."""

    stack: TestStack
    client: httpx.AsyncClient
    database_url: str
    prefix: str
    producer: object

    async def publish(self, payload: BaseModel, *, subject: str, event: Envelope | None = None, source: str | None = None) -> Envelope:
        """Publish an event (or re-publish `event`, as a replay) on the payload's real topic."""
        if event is None:
            event = new_event(source=source or payload.SOURCE, type=payload.TYPE, subject=subject, data=payload.model_dump(mode="json"))
        await self.producer.send_and_wait(f"{self.prefix}{payload.TOPIC}", event.to_bytes(), key=event.subject.encode())
        return event

    async def sql(self, query: str, *args):
        """Rows of a query on the service's database."""
        return await fetch_rows(self.database_url, query, *args)

    async def settle(self, expected: int, timeout_s: float = 60) -> None:
        """Wait until the inbox holds at least `expected` events."""
        async def done():
            return (await self.sql("SELECT count(*) AS n FROM inbox"))[0]["n"] >= expected
        await eventually(done, timeout_s=timeout_s, message=f"{expected} events consumed")

    def headers(self, role: Role | str = Role.COUNTY_ADMIN, **claims) -> dict:
        """Authorization header of a principal (by default the county's admin)."""
        if role == Role.COUNTY_ADMIN:
            claims.setdefault("scope_path", "/c")
        return {"Authorization": f"Bearer {self.stack.token(role, **claims)}"}


@pytest.fixture(scope="module")
async def reports(stack: TestStack) -> AsyncIterator[ReportsUnderTest]:
    """One reports service for a test module, on a fresh database and fresh topics (consumer running)."""
    prefix = stack.new_prefix()
    await stack.ensure_topics(prefix)
    url = await stack.create_database(f"reports_{uuid.uuid4().hex[:6]}")
    settings = ReportsSettings(**{k.lower(): v for k, v in stack.service_env("reports", url, prefix).items()})
    producer = make_producer(stack.bootstrap_servers)
    await producer.start()
    try:
        async with running_app(create_app(settings)) as client:
            yield ReportsUnderTest(stack=stack, client=client, database_url=url, prefix=prefix, producer=producer)
    finally:
        await producer.stop()
