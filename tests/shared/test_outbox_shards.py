"""Outbox relay replicas share the shards: both publish, a new replica gets its share, a dead one's shards move on."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import asyncpg
from sqlalchemy import text

from shouwang_dev.testing import eventually, read_topic
from shouwang_shared import outbox
from shouwang_shared.outbox import OUTBOX_SHARDS, OutboxRelay, enqueue_many, fair_share, outbox_row

from tests.shared.test_outbox_rows import ThingHappened

ROOT = Path(__file__).resolve().parents[2]


class CountingRelay(OutboxRelay):
    """A relay that remembers which rows it marked sent."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.marked: list[int] = []

    async def _mark(self, sent_ids, errors):
        self.marked.extend(sent_ids)
        await super()._mark(sent_ids, errors)


def _relay(engine, producer, stack, prefix) -> CountingRelay:
    return CountingRelay(engine=engine, producer=producer, bootstrap_servers=stack.bootstrap_servers,
                         service="test", topic_prefix=prefix, batch_size=100, poll_interval_s=0.02, idle_poll_interval_s=0.1)


async def _enqueue(sessions, seqs: range, keys: int) -> None:
    rows = [outbox_row(ThingHappened(seq=i), subject=f"agg-{i % keys}") for i in seqs]
    async with sessions() as session, session.begin():
        await enqueue_many(session, rows)


async def _pending(engine) -> int:
    async with engine.connect() as conn:
        return await conn.scalar(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))


async def _drained(engine) -> bool:
    return await _pending(engine) == 0


async def _published_once_in_key_order(stack, lane, expected: int) -> None:
    on_topic = await read_topic(stack.bootstrap_servers, f"{lane}lane.events.v1")
    counts = Counter(env.id for _, env, _ in on_topic)
    assert len(counts) == expected, f"{expected - len(counts)} rows lost"
    assert max(counts.values()) == 1, "an event was published twice"
    by_key: dict[str, list[int]] = {}
    for key, env, _ in on_topic:
        by_key.setdefault(key.decode(), []).append(env.data["seq"])
    for key, seqs in by_key.items():
        assert seqs == sorted(seqs), f"key {key} out of order"


def test_fair_share_splits_every_shard_once_whatever_the_slots():
    for slots in ([0], [0, 1], [0, 5], [1, 2, 9], [0, 1, 2, 3, 4], list(range(16)), list(range(20))):
        shares = [fair_share(slots, s) for s in slots]
        assert sum(shares) == OUTBOX_SHARDS
        assert max(shares) - min(shares) <= 1
    assert fair_share([0, 1], 1) == 8 and fair_share([3], 3) == 16
    assert fair_share([0, 1, 2], 0) == 6 and fair_share([0, 1, 2], 2) == 5
    assert fair_share([0], 4) == 8  # a relay counts itself even if it was not in the list read


async def test_a_second_replica_gets_half_the_shards_and_takes_all_when_the_first_dies(db, lane, producer, stack):
    engine, sessions = db
    first, second = _relay(engine, producer, stack, lane), _relay(engine, producer, stack, lane)
    await first._ensure_shards()
    assert len(first.owned_shards) == OUTBOX_SHARDS
    await second._ensure_shards()
    assert second.owned_shards == [] and second.live_relays == 2  # the first still holds them all
    first._last_shard_claim = second._last_shard_claim = 0.0  # the claim interval has passed
    await first._ensure_shards()
    await second._ensure_shards()
    assert len(first.owned_shards) == len(second.owned_shards) == OUTBOX_SHARDS // 2
    assert set(first.owned_shards).isdisjoint(second.owned_shards)
    await _enqueue(sessions, range(400), keys=97)
    published = await first.publish_pending() + await second.publish_pending()
    assert published == 400 and first.marked and second.marked  # both published
    await first._drop_lock_conn()  # the first replica dies: its member slot and shard locks go with its session
    second._last_shard_claim = 0.0
    await second._ensure_shards()
    assert sorted(second.owned_shards) == list(range(OUTBOX_SHARDS)) and second.live_relays == 1
    await _enqueue(sessions, range(400, 500), keys=97)
    assert await second.publish_pending() == 100
    await second._drop_lock_conn()
    await _published_once_in_key_order(stack, lane, 500)


async def test_running_replicas_split_the_shards_and_hand_over_without_loss_double_or_reorder(db, lane, producer, stack, monkeypatch):
    monkeypatch.setattr(outbox, "SHARD_CLAIM_INTERVAL_S", 0.2)
    engine, sessions = db
    first, second = _relay(engine, producer, stack, lane), _relay(engine, producer, stack, lane)
    tasks = {first: asyncio.create_task(first.run())}
    seq = 0

    async def write(batches: int) -> None:
        nonlocal seq
        for _ in range(batches):
            await _enqueue(sessions, range(seq, seq + 150), keys=61)
            seq += 150
            await asyncio.sleep(0.02)

    try:
        await write(5)
        tasks[second] = asyncio.create_task(second.run())  # a replica comes while rows keep coming
        await write(10)
        await eventually(lambda: len(first.owned_shards) == len(second.owned_shards) == OUTBOX_SHARDS // 2,
                         timeout_s=10, message="the shards split 8/8")
        assert set(first.owned_shards).isdisjoint(second.owned_shards)
        await write(10)
        await eventually(lambda: _drained(engine), timeout_s=20, message="outbox drained by two relays")
        assert len(first.marked) > 300 and len(second.marked) > 300, (len(first.marked), len(second.marked))
        first.stop()  # a replica goes while rows keep coming
        await tasks.pop(first)
        await write(5)
        await eventually(lambda: len(second.owned_shards) == OUTBOX_SHARDS, timeout_s=5, message="the survivor takes every shard")
        await eventually(lambda: _drained(engine), timeout_s=20, message="outbox drained by the survivor")
    finally:
        for relay, task in tasks.items():
            relay.stop()
            await task
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT max(attempts) FROM outbox")) == 1, "a row was picked twice"
    assert len(set(first.marked) | set(second.marked)) == seq == len(first.marked) + len(second.marked)
    await _published_once_in_key_order(stack, lane, seq)


def _start_relay_process(url: str, stack, lane: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench._relay_process", url, stack.bootstrap_servers, lane],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout.readline().strip() == "relay started"
    return process


async def _owners(engine) -> Counter:
    """How many shard locks each database session holds."""
    async with engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid::bigint = :ns"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ), {"ns": outbox.SHARD_LOCK_NAMESPACE})
        return Counter(pid for (pid,) in rows)


async def test_relay_processes_share_the_shards_and_a_killed_one_is_taken_over(db, lane, stack):
    engine, sessions = db
    url = engine.url.render_as_string(hide_password=False)
    processes = [_start_relay_process(url, stack, lane) for _ in range(2)]
    try:
        await eventually(lambda: _owners(engine), timeout_s=10, message="a relay holds shards")
        await eventually(lambda: _split_evenly(engine), timeout_s=15, message="two processes hold 8 shards each")
        await _enqueue(sessions, range(2000), keys=211)
        await eventually(lambda: _drained(engine), timeout_s=20, message="outbox drained by two processes")
        processes[0].send_signal(signal.SIGKILL)  # a crash: no clean stop, the session just ends
        processes[0].wait()
        await eventually(lambda: _all_with_one(engine), timeout_s=5, message="the survivor holds every shard")
        await _enqueue(sessions, range(2000, 2500), keys=211)
        await eventually(lambda: _drained(engine), timeout_s=20, message="outbox drained by the survivor")
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=20)
    await _published_once_in_key_order(stack, lane, 2500)


async def _split_evenly(engine) -> bool:
    return sorted((await _owners(engine)).values()) == [OUTBOX_SHARDS // 2, OUTBOX_SHARDS // 2]


async def _all_with_one(engine) -> bool:
    return list((await _owners(engine)).values()) == [OUTBOX_SHARDS]



async def test_rows_another_process_commits_wake_the_relay_at_once_through_the_commit_notice(db, lane, producer, stack):
    engine, _ = db
    relay = CountingRelay(engine=engine, producer=producer, bootstrap_servers=stack.bootstrap_servers, service="test",
                          topic_prefix=lane, batch_size=100, poll_interval_s=0.02, idle_poll_interval_s=60.0)
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: len(relay.owned_shards) == OUTBOX_SHARDS, timeout_s=15, message="the relay holds every shard")
        # Idle now: its polls back off 0.02 s, 0.04 s, … (doubling), so after 6 s the next one is 4 s away.
        await asyncio.sleep(6)
        rows = [outbox_row(ThingHappened(seq=i), subject=f"agg-{i % 7}") for i in range(20)]
        # Another process's commit: a plain INSERT on a connection of its own, which no in-process wake follows.
        other = await asyncpg.connect(engine.url.set(drivername="postgresql").render_as_string(hide_password=False))
        try:
            await other.copy_records_to_table("outbox", records=rows, columns=list(outbox.OUTBOX_COLUMNS))
        finally:
            await other.close()
        await eventually(lambda: _drained(engine), timeout_s=2, interval_s=0.05, message="rows published before the next poll")
    finally:
        relay.stop()
        await asyncio.wait_for(task, 15)
    await _published_once_in_key_order(stack, lane, 20)
