"""Fixtures for the rewards tests: the real rewards app on its own database and topics, and a producer for facts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import BaseModel

from shouwang_dev.testing import TestStack, eventually, fetch_rows, running_app
from shouwang_shared.auth import Role
from shouwang_shared.envelope import Envelope, new_event
from shouwang_shared.kafka import make_producer

from rewards.config import RewardsSettings
from rewards.main import create_app


@dataclass
class RewardsUnderTest:
    """A running rewards service: HTTP client, its database, its topic prefix and a producer of facts."""

    stack: TestStack
    client: httpx.AsyncClient
    database_url: str
    prefix: str
    producer: object
    app: object

    async def publish(self, payload: BaseModel, *, subject: str, rule_version: str | None = None, event: Envelope | None = None) -> Envelope:
        """Publish a fact (or re-publish `event` as a replay) onto its real topic."""
        if event is None:
            data = payload.model_dump(mode="json")
            if rule_version is not None:
                data["rule_version"] = rule_version
            event = new_event(source=payload.SOURCE, type=payload.TYPE, subject=subject, data=data)
        await self.producer.send_and_wait(f"{self.prefix}{payload.TOPIC}", event.to_bytes(), key=event.subject.encode())
        return event

    async def sql(self, query: str, *args):
        """Rows of a query on the service's database."""
        return await fetch_rows(self.database_url, query, *args)

    async def processed(self) -> int:
        """Events the consumer has taken in so far."""
        rows = await self.sql("SELECT count(*) AS n FROM inbox")
        return rows[0]["n"]

    async def settle(self, expected: int, timeout_s: float = 30) -> None:
        """Wait until the inbox holds at least `expected` events."""
        async def done():
            return await self.processed() >= expected
        await eventually(done, timeout_s=timeout_s, message=f"{expected} events consumed")

    def headers(self, role: Role | str = Role.VOLUNTEER, **claims) -> dict:
        """Authorization header of a principal."""
        return {"Authorization": f"Bearer {self.stack.token(role, **claims)}"}

    async def balance(self, account: str, unit: str = "points") -> float:
        """The stored balance of an account (the sum of its slot rows: an alliance account has several)."""
        rows = await self.sql("SELECT sum(balance) AS balance FROM balances WHERE account = $1 AND unit = $2", account, unit)
        return float(rows[0]["balance"] or 0)


@asynccontextmanager
async def rewards_service(stack: TestStack, name: str, **env: str) -> AsyncIterator[RewardsUnderTest]:
    """Start the real rewards app on a fresh database and fresh topics (relay and consumers running)."""
    prefix = stack.new_prefix()
    await stack.ensure_topics(prefix)
    url = await stack.create_database(f"rewards_{name}_{uuid.uuid4().hex[:6]}")
    settings = RewardsSettings(**{k.lower(): v for k, v in stack.service_env("rewards", url, prefix, **env).items()})
    app = create_app(settings)
    producer = make_producer(stack.bootstrap_servers)
    await producer.start()
    try:
        async with running_app(app) as client:
            yield RewardsUnderTest(stack=stack, client=client, database_url=url, prefix=prefix, producer=producer, app=app)
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
async def rewards(stack: TestStack) -> AsyncIterator[RewardsUnderTest]:
    """One rewards service shared by a test module (tests use their own ids)."""
    async with rewards_service(stack, "shared", star_sweep_interval_s="0") as service:
        yield service


def uid(prefix: str = "") -> str:
    """A fresh id."""
    return f"{prefix}{uuid.uuid4()}"


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)
