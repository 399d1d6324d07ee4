"""Foundation throughput: outbox rows committed → published, and events consumed with inbox + effect."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

import psutil
from sqlalchemy import text

from shouwang_shared.contracts import EventPayload
from shouwang_shared.db import make_engine, make_session_factory, raw_connection
from shouwang_shared.inbox import ConsumerRunner, batch_handler
from shouwang_shared.kafka import make_producer
from shouwang_shared.migrations import migrate
from shouwang_shared.outbox import SHARD_LOCK_NAMESPACE, OutboxRelay, enqueue_many, outbox_row
from shouwang_shared.topics import TopicSpec, dead_letter_topic, ensure_topics

from bench.stats import CpuMeter, cpu_steadiness, machine_busy_s, process_cpu_seconds, scaleout_ceiling, settle_database

ROWS = 60_000
SCALEOUT_ROWS = 200_000
SCALEOUT_KEYS = 20_000
EVENT_TYPE = "shouwang.bench.thing_happened.v1"


class ThingHappened(EventPayload):
    """The bench's event: a sequence number and a short text, on its own topic."""

    TYPE = EVENT_TYPE
    TOPIC = "bench.events.v1"
    SOURCE = "/services/bench"

    seq: int
    text: str


async def _drained(engine) -> bool:
    """Whether no outbox row is pending (one look at the pending index, not a count the relays would compete with)."""
    async with engine.connect() as conn:
        return await conn.scalar(text("SELECT NOT EXISTS (SELECT 1 FROM outbox WHERE sent_at IS NULL)"))


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


async def _start_relay_process(url: str, servers: str, prefix: str) -> asyncio.subprocess.Process:
    """One relay process (`bench._relay_process`), returned once it runs."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench._relay_process", url, servers, prefix, stdout=asyncio.subprocess.PIPE
    )
    assert (await process.stdout.readline()).strip() == b"relay started"
    return process


async def _shard_holders(engine) -> list[int]:
    """How many shards each relay session holds, fewest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid::bigint = :ns"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) GROUP BY pid ORDER BY 1"
        ), {"ns": SHARD_LOCK_NAMESPACE})
        return [n for (n,) in rows]


async def relay_scaleout(stack) -> dict[str, float]:
    """Rows/s that 1 and 2 relay processes publish from one outbox of SCALEOUT_ROWS rows over SCALEOUT_KEYS keys, the
    ratio, and the CPU per row of the relays, PostgreSQL and the broker (what a second replica shares). The relays
    run first and share the shards, then the rows land in one commit; the rate is from the first row marked sent to
    the last, so process start-up and the shard split are left out. `relay_scaleout_ceiling_ratio`: the ratio the host
    allows, every core busy at what two relays cost the whole machine a row."""
    figures: dict[str, float] = {}
    rows = [outbox_row(ThingHappened(seq=i, text="巡逻签到"), subject=f"agg-{i % SCALEOUT_KEYS}") for i in range(SCALEOUT_ROWS)]
    for replicas in (1, 2):
        await settle_database(stack)
        prefix = f"bench{uuid.uuid4().hex[:8]}."
        await ensure_topics(stack.bootstrap_servers, [TopicSpec("bench.events.v1", partitions=6)], prefix=prefix)
        url = await stack.create_database(f"bench_relay{replicas}_{uuid.uuid4().hex[:8]}")
        engine = make_engine(url, pool_size=2)
        await migrate(engine, None)
        processes = [await _start_relay_process(url, stack.bootstrap_servers, prefix) for _ in range(replicas)]
        try:
            deadline = time.monotonic() + 30
            while await _shard_holders(engine) != [16 // replicas] * replicas:
                assert time.monotonic() < deadline, "the relays did not share the shards"
                await asyncio.sleep(0.1)
            async with make_session_factory(engine)() as session, session.begin():
                await enqueue_many(session, rows)
            servers = {name: CpuMeter(psutil.Process(server.process.pid)) for name, server in (("db", stack.pg), ("kafka", stack.kafka))
                       if server is not None}
            for meter in servers.values():
                meter.start()
            cpu_before = sum(process_cpu_seconds(p.pid) for p in processes)
            machine_before, wall_before = machine_busy_s(), time.monotonic()
            while not await _drained(engine):
                await asyncio.sleep(0.1)
            cpu = sum(process_cpu_seconds(p.pid) for p in processes) - cpu_before
            machine, wall = machine_busy_s() - machine_before, time.monotonic() - wall_before
            server_cpu = {name: meter.stop() for name, meter in servers.items()}
            async with engine.connect() as conn:
                span = await conn.scalar(text("SELECT extract(epoch FROM max(sent_at) - min(sent_at)) FROM outbox"))
                marks = await conn.scalar(text("SELECT count(DISTINCT sent_at) FROM outbox"))  # a batch is marked sent at once
        finally:
            for process in processes:
                process.terminate()
                await process.wait()
            await engine.dispose()
        figures[f"relay_{replicas}_replicas_rows_per_s"] = SCALEOUT_ROWS / float(span)
        figures[f"relay_{replicas}_replicas_cpu_us_per_row"] = cpu * 1e6 / SCALEOUT_ROWS
        figures[f"relay_{replicas}_replicas_rows_per_batch"] = SCALEOUT_ROWS / marks
        for name, seconds in server_cpu.items():  # includes the drain check's queries (one every 0.1 s)
            figures[f"relay_{replicas}_replicas_{name}_cpu_us_per_row"] = seconds * 1e6 / SCALEOUT_ROWS
        figures[f"relay_{replicas}_replicas_machine_cpu_us_per_row"] = machine * 1e6 / SCALEOUT_ROWS  # every process of the host
        figures[f"relay_{replicas}_replicas_machine_busy_cores"] = machine / wall
    figures["relay_scaleout_ratio"] = figures["relay_2_replicas_rows_per_s"] / figures["relay_1_replicas_rows_per_s"]
    figures["relay_scaleout_ceiling_ratio"] = scaleout_ceiling(
        figures["relay_1_replicas_rows_per_s"], figures["relay_2_replicas_machine_cpu_us_per_row"] / 1e6)
    return figures


async def run(stack) -> dict[str, float]:
    """The foundation figures on isolated databases and topics, and the relay's scale-out over processes."""
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
    figures = {"outbox_publish_per_s": publish, "inbox_consume_per_s": consume}
    figures.update(await cpu_steadiness(3.0, prefix="relay_machine"))
    figures.update(await relay_scaleout(stack))
    return figures
