"""Foundation throughput: outbox rows committed → published, and events consumed with inbox + effect."""

from __future__ import annotations

import asyncio
import time
import uuid

from sqlalchemy import text

from shouwang_shared.contracts import EventPayload
from shouwang_shared.db import make_engine, make_session_factory, raw_connection
from shouwang_shared.inbox import ConsumerRunner, batch_handler
from shouwang_shared.kafka import make_producer
from shouwang_shared.migrations import migrate
from shouwang_shared.outbox import OutboxRelay, enqueue_many, outbox_row
from shouwang_shared.topics import TopicSpec, dead_letter_topic, ensure_topics

ROWS = 60_000
EVENT_TYPE = "shouwang.bench.thing_happened.v1"


class ThingHappened(EventPayload):
    """The bench's event: a sequence number and a short text, on its own topic."""

    TYPE = EVENT_TYPE
    TOPIC = "bench.events.v1"
    SOURCE = "/services/bench"

    seq: int
    text: str


async def _drained(engine) -> bool:
    async with engine.connect() as conn:
        return await conn.scalar(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL")) == 0


async def outbox_publish_per_s(stack, engine, sessions, producer, prefix: str) -> float:
    """Commit ROWS outbox rows in business-sized transactions while the relay publishes them; rows/s end to end."""
    relay = OutboxRelay(engine=engine, producer=producer, bootstrap_servers=stack.bootstrap_servers, service="bench",
                        topic_prefix=prefix, batch_size=2000, poll_interval_s=0.01)
    task = asyncio.create_task(relay.run())
    started = time.perf_counter()
    for start in range(0, ROWS, 500):
        rows = [outbox_row(ThingHappened(seq=i, text="巡逻签到"), subject=f"agg-{i % 977}") for i in range(start, start + 500)]
        async with sessions() as session, session.begin():
            await enqueue_many(session, rows)
    while not await _drained(engine):
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    relay.stop()
    await task
    return ROWS / elapsed


async def inbox_consume_per_s(stack, sessions, producer, prefix: str) -> float:
    """Consume ROWS already-published events with inbox + one effect row each, committed; events/s."""
    @batch_handler
    async def effect(session, events):
        conn = await raw_connection(session)
        await conn.executemany("INSERT INTO effects (event_id, seq) VALUES ($1, $2)", [(e.id, e.data["seq"]) for e in events])

    runner = ConsumerRunner(name="bench", topics=["bench.events.v1"], handlers={("bench.events.v1", EVENT_TYPE): effect}, sessions=sessions,
                            producer=producer, bootstrap_servers=stack.bootstrap_servers, service="bench",
                            topic_prefix=prefix, max_records=2000)
    started = time.perf_counter()
    task = asyncio.create_task(runner.run())
    while runner.processed < ROWS:
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    runner.stop()
    await task
    return ROWS / elapsed


async def run(stack) -> dict[str, float]:
    """Both foundation figures on an isolated database and topic."""
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    await ensure_topics(stack.bootstrap_servers, [TopicSpec("bench.events.v1", partitions=6), TopicSpec(dead_letter_topic("bench"), partitions=1)], prefix=prefix)
    url = await stack.create_database(f"bench_{uuid.uuid4().hex[:6]}")
    engine = make_engine(url, pool_size=8)
    await migrate(engine, None)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE effects (event_id TEXT PRIMARY KEY, seq INT)"))
    sessions = make_session_factory(engine)
    producer = make_producer(stack.bootstrap_servers, linger_ms=5)
    await producer.start()
    try:
        publish = await outbox_publish_per_s(stack, engine, sessions, producer, prefix)
        consume = await inbox_consume_per_s(stack, sessions, producer, prefix)
    finally:
        await producer.stop()
        await engine.dispose()
    return {"outbox_publish_per_s": publish, "inbox_consume_per_s": consume}
