"""Rewards throughput and latency: mixed facts consumed, scored and committed with the inbox; tip → ledger entry p99.

Scale-out (`rewards_scaleout_ratio`): the same pre-published stream of mixed facts (on topics of 3-6 partitions) drained by
1 and then 2 consumer-replica processes of one consumer group (each its own uvicorn, relay off). The ratio compares the
settled rates: events per second credited from the moment the group is stable with every replica holding partitions to
the last inbox transaction. The replicas start together but join one at a time, and until the group settles the
first replica drains alone and a rebalance pauses both; that one-off start-up is reported apart, as the whole-stream rate
(first to last inbox transaction). Also: the replicas', the database's and the whole host's CPU per event (and how many of
the host's cores were busy while the stream drained), and what the database's
backends were doing meanwhile (pg_stat_activity sampled every 20 ms: on CPU, waiting on a lock, on an LWLock, on I/O,
or idle in a transaction waiting for Python). `rewards_scaleout_ceiling_ratio` is the ratio the host allows: every core
busy at what two replicas cost the whole machine an event, over one replica's rate (a ratio near it: the cores, not a
queue of ours, are the limit).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import asyncpg
import psutil
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from shouwang_dev.testing import running_app
from shouwang_shared.contracts.dispatch import ServiceHoursRecorded
from shouwang_shared.contracts.intel import Reporter, TipReviewed, TipSubmitted
from shouwang_shared.contracts.registry import TrainingAttended
from shouwang_shared.envelope import new_event
from shouwang_shared.kafka import make_admin, make_producer

from bench.httpload import start_service_process
from bench.stats import machine_busy_s, percentile, process_cpu_seconds, scaleout_ceiling, settle_database
from rewards.config import RewardsSettings
from rewards.handlers import CONSUMER
from rewards.main import create_app

EVENTS = int(os.environ.get("BENCH_REWARDS_EVENTS", "50000"))
SCALEOUT_EVENTS = int(os.environ.get("BENCH_REWARDS_SCALEOUT_EVENTS", "80000"))
VOLUNTEERS = int(os.environ.get("BENCH_REWARDS_VOLUNTEERS", "3000"))  # reporters: 3,000 over 50,000 facts is ~8 tips each a day, a dense stream
LATENCY_TIPS = 1_000
LATENCY_RATE_PER_S = 100
CATEGORIES = ["fugitive", "drugs", "fraud", "counterfeit", "public_order", "dispute", "missing_person", "other"]


def mixed_facts(count: int, rng: random.Random):
    """About half tips (some reviewed), a third service hours, the rest training attendance."""
    now = datetime.now(UTC)
    tips: list[TipSubmitted] = []
    for i in range(count):
        roll = rng.random()
        vid = f"bv-{rng.randrange(VOLUNTEERS)}"
        if roll < 0.05 and tips:
            t = rng.choice(tips)
            payload = TipReviewed(tip_id=t.tip_id, verdict=rng.choice(["verified", "rejected"]), quality=rng.randint(1, 3), category=t.category, reporter=t.reporter)
            subject = t.tip_id
        elif roll < 0.55:
            payload = TipSubmitted(tip_id=f"bt-{i}", category=rng.choice(CATEGORIES), channel="app",
                                   reporter=Reporter(kind="volunteer", volunteer_id=vid), submitted_at=now, text_length=80)
            tips.append(payload)
            subject = payload.tip_id
        elif roll < 0.9:
            payload = ServiceHoursRecorded(record_id=f"bh-{i}", assignment_id=f"ba-{i}", volunteer_id=vid, operation_id="op", post_id="p",
                                           hours=rng.choice([2, 4, 6, 8]), difficulty=rng.randint(1, 3), risk=rng.randint(1, 3),
                                           started_at=now - timedelta(hours=4), ended_at=now, org_path=f"/c/t{rng.randrange(10)}/s{rng.randrange(208)}")
            subject = vid
        else:
            payload = TrainingAttended(attendance_id=f"btr-{i}", volunteer_id=vid, session_id="s", level=rng.choice(["county", "town", "village"]),
                                       topic="skills", attended_on=now.date(), org_unit_id="s", org_path="/c/t/s")
            subject = vid
        yield payload.TOPIC, new_event(source=payload.SOURCE, type=payload.TYPE, subject=subject, data=payload)


async def _facts_and_database(stack, producer, *, name: str, count: int, seed: int) -> tuple[str, str]:
    """A fresh topic prefix holding `count` mixed facts (seeded, flushed to the broker) and a fresh database: (prefix, url)."""
    prefix = stack.new_prefix()
    await stack.ensure_topics(prefix)
    url = await stack.create_database(f"{name}_{uuid.uuid4().hex[:6]}")
    for topic, event in mixed_facts(count, random.Random(seed)):
        await producer.send(f"{prefix}{topic}", event.to_bytes(), key=event.subject.encode())
    await producer.flush()
    return prefix, url


async def run(stack) -> dict[str, float]:
    """Pre-publish EVENTS mixed facts and time the real rewards consumers draining them; tips at 100/s for latency; then the relay.

    Deployed as the settings allow (`RUN_RELAY` / `RUN_CONSUMERS`): the consumer replica runs without the outbox
    relay, which runs in its own replica; the relay's drain of the ledger events is measured afterwards.
    """
    producer = make_producer(stack.bootstrap_servers, linger_ms=20)
    await producer.start()
    try:
        prefix, url = await _facts_and_database(stack, producer, name="bench_rewards", count=EVENTS, seed=7)

        env = stack.service_env("rewards", url, prefix, star_sweep_interval_s="0", db_pool_size="8", run_relay="false")
        consumers = create_app(RewardsSettings(**{k.lower(): v for k, v in env.items()}))
        async with running_app(consumers, wait_ready=False):
            await _until_runtime(consumers)
            runner = consumers.state.runtime.runners[0]
            batches = _time_batches(runner)
            while runner.processed == 0:
                await asyncio.sleep(0.005)
            started, first = time.perf_counter(), runner.processed
            cpu_started, db_cpu_started, batches_started = time.process_time(), _cpu_of(stack.pg), len(batches)
            while runner.processed < EVENTS:
                await asyncio.sleep(0.01)
            drained = runner.processed - first
            throughput = drained / (time.perf_counter() - started)
            consumer_cpu_ms = (time.process_time() - cpu_started) * 1000 / drained
            db_cpu_ms = (_cpu_of(stack.pg) - db_cpu_started) * 1000 / drained if stack.pg else None
            timed = batches[batches_started:]
            load = os.getloadavg()[0]
            p50, p99 = await _tip_latency(producer, prefix, url)
        relay_env = {**env, "RUN_RELAY": "true", "RUN_CONSUMERS": "false"}
        relay = create_app(RewardsSettings(**{k.lower(): v for k, v in relay_env.items()}))
        conn = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            pending = await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            async with running_app(relay, wait_ready=False):
                started = time.perf_counter()
                while await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") > 0:
                    await asyncio.sleep(0.1)
                published = pending / (time.perf_counter() - started)
        finally:
            await conn.close()
    finally:
        await producer.stop()
    figures = {"rewards_events_per_s": throughput, "tip_to_reward_p50_ms": p50, "tip_to_reward_p99_ms": p99,
               "rewards_ledger_events_published_per_s": published, "rewards_consumer_cpu_ms_per_event": consumer_cpu_ms,
               "rewards_events_per_batch": sum(n for n, _, _ in timed) / len(timed),
               "rewards_batch_ms_p50": percentile([w for _, w, _ in timed], 0.50),
               "rewards_batch_waiting_ms_p50": percentile([w - c for _, w, c in timed], 0.50),
               "rewards_load_average_1m": load}
    if db_cpu_ms is not None:
        figures["rewards_db_cpu_ms_per_event"] = db_cpu_ms
    figures.update(await _rewards_scaleout(stack))
    return figures


async def _rewards_scaleout(stack) -> dict[str, float]:
    """Events per second that 1 and 2 consumer-replica processes of one group credit from the same pre-published stream."""
    figures: dict[str, float] = {}
    for replicas in (1, 2):
        await settle_database(stack)
        producer = make_producer(stack.bootstrap_servers, linger_ms=20)
        await producer.start()
        try:
            prefix, url = await _facts_and_database(stack, producer, name=f"bench_rewards_scaleout{replicas}", count=SCALEOUT_EVENTS, seed=11)
        finally:
            await producer.stop()
        await settle_database(stack)
        env = stack.service_env("rewards", url, prefix, star_sweep_interval_s="0", db_pool_size="4", run_relay="false", log_level="WARNING")
        started = await asyncio.gather(*(start_service_process("rewards", env) for _ in range(replicas)), return_exceptions=True)
        processes = [p for p in started if not isinstance(p, BaseException)]
        conn = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            if len(processes) < replicas:
                raise next(p for p in started if isinstance(p, BaseException))
            cpu_before, db_cpu_before = sum(process_cpu_seconds(p.process.pid) for p in processes), _cpu_of(stack.pg)
            machine_before, wall_before = machine_busy_s(), time.monotonic()
            waits = asyncio.create_task(_sample_waits(stack, url))
            settled = asyncio.create_task(_group_settled_at(stack, f"{prefix}{CONSUMER}", replicas))
            deadline = time.monotonic() + 600
            while await conn.fetchval("SELECT count(*) FROM inbox") < SCALEOUT_EVENTS:
                if time.monotonic() > deadline:
                    raise RuntimeError("the stream was not drained in 600 s")
                await asyncio.sleep(0.5)
            cpu = sum(process_cpu_seconds(p.process.pid) for p in processes) - cpu_before
            db_cpu = _cpu_of(stack.pg) - db_cpu_before
            machine, wall = machine_busy_s() - machine_before, time.monotonic() - wall_before
            waits.cancel()
            sampled = await asyncio.gather(waits, return_exceptions=True)
            settled_at = await asyncio.wait_for(settled, 1)
            after_settled = await conn.fetchval("SELECT count(*) FROM inbox WHERE received_at >= to_timestamp($1)", settled_at)
            first, last = await conn.fetchrow("SELECT extract(epoch FROM min(received_at)) AS a, extract(epoch FROM max(received_at)) AS b FROM inbox")
            half, three_quarters = await conn.fetchrow(
                "SELECT extract(epoch FROM percentile_disc(0.5) WITHIN GROUP (ORDER BY received_at)),"
                " extract(epoch FROM percentile_disc(0.75) WITHIN GROUP (ORDER BY received_at)) FROM inbox"
            )
        finally:
            await conn.close()
            for process in processes:
                process.stop()
        name = f"rewards_{replicas}_replicas"
        figures[f"{name}_events_per_s"] = after_settled / (float(last) - settled_at)
        figures[f"{name}_whole_stream_events_per_s"] = SCALEOUT_EVENTS / float(last - first)
        figures[f"{name}_settled_after_s"] = settled_at - float(first)  # from the first credit to a stable group
        # the first half's rate and the last quarter's: a replica whose partitions drained early leaves the other alone
        figures[f"{name}_first_half_events_per_s"] = SCALEOUT_EVENTS / 2 / float(half - first)
        figures[f"{name}_last_quarter_events_per_s"] = SCALEOUT_EVENTS / 4 / float(last - three_quarters)
        figures[f"{name}_cpu_ms_per_event"] = cpu * 1000 / SCALEOUT_EVENTS
        if stack.pg:
            figures[f"{name}_db_cpu_ms_per_event"] = db_cpu * 1000 / SCALEOUT_EVENTS
        figures[f"{name}_load_average_1m"] = os.getloadavg()[0]
        figures[f"{name}_machine_busy_cores"] = machine / wall  # of the host's cores, every process (Kafka, the bench, ...)
        figures[f"{name}_machine_cpu_ms_per_event"] = machine * 1000 / SCALEOUT_EVENTS
        if isinstance(sampled[0], dict):
            figures.update({f"{name}_db_{k}": v for k, v in sampled[0].items()})
    figures["rewards_scaleout_ratio"] = figures["rewards_2_replicas_events_per_s"] / figures["rewards_1_replicas_events_per_s"]
    figures["rewards_scaleout_ceiling_ratio"] = scaleout_ceiling(
        figures["rewards_1_replicas_events_per_s"], figures["rewards_2_replicas_machine_cpu_ms_per_event"] / 1000)
    return figures


async def _group_settled_at(stack, group: str, replicas: int) -> float:
    """The wall-clock time (epoch s) at which `group` is first seen stable with `replicas` members, each holding partitions."""
    admin = make_admin(stack.bootstrap_servers)
    await admin.start()
    try:
        while True:
            described = await admin.describe_consumer_groups([group])
            # DescribeGroupsResponse: groups of (error_code, group_id, state, protocol_type, protocol, members[, ...]);
            # a member is (member_id, client_id, client_host, member_metadata, member_assignment)
            for g in (g for response in described for g in response.groups):
                if g[2] == "Stable" and len(g[5]) == replicas and all(_partitions_in(m[4]) for m in g[5]):
                    return time.time()
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


def _partitions_in(member_assignment: bytes) -> int:
    """How many partitions a group member's assignment (as the coordinator describes it) holds."""
    return len(ConsumerProtocolMemberAssignment.decode(member_assignment).partitions()) if member_assignment else 0


WAIT_CLASSES = ("cpu", "lock", "lwlock", "io", "idle_in_transaction")


async def _sample_waits(stack, url: str) -> dict[str, float]:
    """Until cancelled: what the database's backends serving `url` do, as a share of sampled backend-time per class."""
    database = url.rsplit("/", 1)[1].split("?", 1)[0]
    conn = await asyncpg.connect(stack.pg_admin_url.replace("+asyncpg", ""))
    counts = dict.fromkeys(WAIT_CLASSES, 0)
    waits: Counter[str] = Counter()
    total = 0
    try:
        while True:
            rows = await conn.fetch(
                "SELECT state, wait_event_type, wait_event, left(regexp_replace(query, '\\s+', ' ', 'g'), 70) AS query "
                "FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend' AND state IN ('active', 'idle in transaction')", database,
            )
            for r in rows:
                total += 1
                kind = r["wait_event_type"]
                if r["state"] == "idle in transaction":
                    counts["idle_in_transaction"] += 1
                elif kind is None:
                    counts["cpu"] += 1
                elif kind in ("Lock", "LWLock", "IO"):
                    counts[kind.lower()] += 1
                    waits[f"{kind}:{r['wait_event']} in {r['query']}"] += 1
            await asyncio.sleep(0.02)
    except asyncio.CancelledError:
        for what, n in waits.most_common(5):  # what the waits were, in the bench's log
            print(f"   rewards db wait {100.0 * n / max(total, 1):5.1f} %  {what}", flush=True)
        return {f"{k}_pct": round(100.0 * n / max(total, 1), 1) for k, n in counts.items()}
    finally:
        await conn.close()


def _cpu_of(pg) -> float:
    """CPU seconds used so far by the stack's PostgreSQL (postmaster and backends); 0 when the stack is not ours."""
    total = 0.0
    for proc in pg.processes() if pg else []:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def _time_batches(runner) -> list[tuple[int, float, float]]:
    """Record (events, wall ms, in-process CPU ms) of each inbox transaction of `runner`; wall − CPU = waiting (database, or a CPU on a busy machine)."""
    timed: list[tuple[int, float, float]] = []
    apply = runner._apply

    async def timed_apply(items):
        wall, cpu = time.perf_counter(), time.process_time()
        await apply(items)
        timed.append((len(items), (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000))

    runner._apply = timed_apply
    return timed


async def _until_runtime(app) -> None:
    while not getattr(app.state, "runtime", None) or not app.state.runtime.runners:
        await asyncio.sleep(0.01)


async def _tip_latency(producer, prefix: str, url: str) -> tuple[float, float]:
    """Publish tips at LATENCY_RATE_PER_S; latency = ledger entry written (in the inbox transaction) − tip published."""
    sent: dict[str, float] = {}
    interval = 1 / LATENCY_RATE_PER_S
    next_at = time.time()
    for i in range(LATENCY_TIPS):  # one tip per reporter: the daily tip cap never leaves a timed tip unposted
        tip = TipSubmitted(tip_id=f"lat-{i}-{uuid.uuid4().hex[:6]}", category="fraud", channel="app",
                           reporter=Reporter(kind="volunteer", volunteer_id=f"lv-{i}"), submitted_at=datetime.now(UTC))
        event = new_event(source=tip.SOURCE, type=tip.TYPE, subject=tip.tip_id, data=tip)
        await asyncio.sleep(max(0.0, next_at - time.time()))
        sent[f"tip:{tip.tip_id}|tip.report"] = time.time()
        await producer.send(f"{prefix}{TipSubmitted.TOPIC}", event.to_bytes(), key=event.subject.encode())
        next_at += interval
    await producer.flush()
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            rows = await conn.fetch("SELECT effect_key, extract(epoch FROM posted_at) AS at FROM ledger_entries WHERE effect_key LIKE 'tip:lat-%'")
            if len(rows) >= LATENCY_TIPS:
                break
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    latencies = sorted((float(r["at"]) - sent[r["effect_key"]]) * 1000 for r in rows)
    if len(latencies) < LATENCY_TIPS:
        raise RuntimeError(f"only {len(latencies)} of {LATENCY_TIPS} tips credited")
    return percentile(latencies, 0.50), percentile(latencies, 0.99)
