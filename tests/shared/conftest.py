"""Fixtures for the shared-library tests: a scratch database with the platform tables and an effects table."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from shouwang_shared.db import make_engine, make_session_factory
from shouwang_shared.kafka import make_producer
from shouwang_shared.migrations import migrate
from shouwang_shared.topics import TopicSpec, dead_letter_topic, ensure_topics


@pytest.fixture
async def db(stack):
    """A fresh database with outbox, inbox and an `effects` table (one row per handled event)."""
    url = await stack.create_database(f"shared_{uuid.uuid4().hex[:6]}")
    engine = make_engine(url, pool_size=5)
    await migrate(engine, None)
    async with engine.begin() as conn:
        await conn.execute(text(
            "CREATE TABLE effects (event_id TEXT NOT NULL, consumer TEXT NOT NULL, subject TEXT, seq INT)"
        ))
    yield engine, make_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def lane(stack):
    """An isolated topic `lane.events.v1` (4 partitions) and the dead-letter topics, under a fresh prefix."""
    prefix = stack.new_prefix()
    specs = [TopicSpec("lane.events.v1", partitions=4), TopicSpec(dead_letter_topic("lane"), partitions=1)]
    await ensure_topics(stack.bootstrap_servers, specs, prefix=prefix)
    return prefix


@pytest.fixture
async def producer(stack):
    """A started producer with the platform settings."""
    p = make_producer(stack.bootstrap_servers)
    await p.start()
    yield p
    await p.stop()
