"""The outbox relay against a real broker and database: exactly-once publication, order, crashes, outages."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import text

from shouwang_dev.testing import read_topic
from shouwang_shared import outbox
from shouwang_shared.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_SECONDS
from shouwang_shared.outbox import OutboxRelay, enqueue, enqueue_many, outbox_row

from tests.shared.test_outbox_rows import ThingHappened


class RelayCrash(Exception):
    """Stands for the relay process dying."""


class CrashAfterPublish(OutboxRelay):
    """A relay that dies after the broker acknowledged the batch but before marking it sent."""

    async def _mark(self, sent_ids, errors):
        raise RelayCrash("killed between publish and mark")


def _relay(cls, engine, producer, stack, prefix):
    return cls(engine=engine, producer=producer, bootstrap_servers=stack.bootstrap_servers,
               service="test", topic_prefix=prefix, batch_size=500, poll_interval_s=0.02)


async def _enqueue_events(sessions, count, keys=5):
    rows = [outbox_row(ThingHappened(seq=i), subject=f"agg-{i % keys}") for i in range(count)]
    async with sessions() as session, session.begin():
        await enqueue_many(session, rows)
    return rows


async def test_outbox_row_is_published_once_even_when_relay_dies_between_publish_and_mark(db, lane, producer, stack):
    engine, sessions = db
    events = await _enqueue_events(sessions, 50)
    crashing = _relay(CrashAfterPublish, engine, producer, stack, lane)
    await crashing._ensure_shards()
    with pytest.raises(RelayCrash):
        await crashing.publish_pending()
    await crashing._drop_lock_conn()  # the dead relay's connection (and shard locks) go away

    survivor = _relay(OutboxRelay, engine, producer, stack, lane)
    await survivor._ensure_shards()
    assert await survivor.publish_pending() == 50
    await survivor._drop_lock_conn()

    on_topic = await read_topic(stack.bootstrap_servers, f"{lane}lane.events.v1")
    counts = Counter(env.id for _, env, _ in on_topic)
    assert set(counts) == {r.event_id for r in events}
    assert max(counts.values()) == 1, "an event was published twice"
    async with engine.connect() as conn:
        pending = await conn.scalar(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
    assert pending == 0


async def test_relay_keeps_per_key_order(db, lane, producer, stack):
    engine, sessions = db
    await _enqueue_events(sessions, 300, keys=7)
    relay = _relay(OutboxRelay, engine, producer, stack, lane)
    task = asyncio.create_task(relay.run())
    try:
        async def all_sent():
            async with engine.connect() as conn:
                return await conn.scalar(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL")) == 0
        from shouwang_dev.testing import eventually
        await eventually(all_sent, message="outbox drained")
    finally:
        relay.stop()
        await task
    on_topic = await read_topic(stack.bootstrap_servers, f"{lane}lane.events.v1")
    by_key: dict[str, list[int]] = {}
    for key, env, _ in on_topic:
        by_key.setdefault(key.decode(), []).append(env.data["seq"])
    assert sum(len(v) for v in by_key.values()) == 300
    for seqs in by_key.values():
        assert seqs == sorted(seqs)


async def test_relay_drains_many_batches_in_one_pass_each_row_once_and_in_key_order(db, lane, producer, stack):
    engine, sessions = db
    await _enqueue_events(sessions, 1_050, keys=7)
    relay = _relay(OutboxRelay, engine, producer, stack, lane)
    relay.batch_size = 100  # eleven batches: each picked while the one before is acknowledged, none picked twice
    await relay._ensure_shards()
    assert await relay.publish_pending() == 1_050
    await relay._drop_lock_conn()
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL")) == 0
        assert await conn.scalar(text("SELECT max(attempts) FROM outbox")) == 1, "a row was picked twice"
    on_topic = await read_topic(stack.bootstrap_servers, f"{lane}lane.events.v1")
    assert Counter(env.id for _, env, _ in on_topic).most_common(1)[0][1] == 1 and len(on_topic) == 1_050
    by_key: dict[str, list[int]] = {}
    for key, env, _ in on_topic:
        by_key.setdefault(key.decode(), []).append(env.data["seq"])
    assert all(seqs == sorted(seqs) for seqs in by_key.values())


async def test_relay_crash_in_a_later_batch_leaves_no_row_lost_or_doubled(db, lane, producer, stack):
    engine, sessions = db
    events = await _enqueue_events(sessions, 350)

    class CrashOnThirdMark(OutboxRelay):
        marks = 0

        async def _mark(self, sent_ids, errors):
            self.marks += 1
            if self.marks == 3:
                raise RelayCrash("killed between publish and mark of the third batch")
            await super()._mark(sent_ids, errors)

    crashing = _relay(CrashOnThirdMark, engine, producer, stack, lane)
    crashing.batch_size = 100
    await crashing._ensure_shards()
    with pytest.raises(RelayCrash):
        await crashing.publish_pending()
    await crashing._drop_lock_conn()
    survivor = _relay(OutboxRelay, engine, producer, stack, lane)
    await survivor._ensure_shards()
    assert await survivor.publish_pending() == 150  # the unmarked third batch (found on the topic) and the fourth
    await survivor._drop_lock_conn()
    on_topic = await read_topic(stack.bootstrap_servers, f"{lane}lane.events.v1")
    counts = Counter(env.id for _, env, _ in on_topic)
    assert set(counts) == {r.event_id for r in events} and max(counts.values()) == 1


async def test_rolled_back_transaction_publishes_nothing(db, lane, producer, stack):
    engine, sessions = db
    with pytest.raises(RuntimeError):
        async with sessions() as session, session.begin():
            await enqueue(session, ThingHappened(seq=1), subject="x")
            raise RuntimeError("business rule failed")
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM outbox")) == 0


async def test_the_backlog_gauge_counts_pending_rows_up_to_its_cap_and_ages_the_oldest_by_the_first_of_each_shard(
        db, lane, producer, stack, monkeypatch):
    engine, sessions = db
    await _enqueue_events(sessions, 30, keys=7)
    async with engine.begin() as conn:  # the first row enqueued waits a minute longer than the rest
        await conn.execute(text("UPDATE outbox SET created_at = now() - interval '60 seconds' WHERE id = (SELECT min(id) FROM outbox)"))
        await conn.execute(text("UPDATE outbox SET sent_at = now() WHERE id = (SELECT max(id) FROM outbox)"))  # one already sent
    relay = _relay(OutboxRelay, engine, producer, stack, lane)
    await relay._housekeeping()
    assert OUTBOX_BACKLOG.labels("test")._value.get() == 29
    assert 60 <= OUTBOX_OLDEST_SECONDS.labels("test")._value.get() < 90

    monkeypatch.setattr(outbox, "BACKLOG_COUNTED_UP_TO", 10)  # a backlog past the cap reads as the cap
    relay._last_housekeeping = 0.0
    await relay._housekeeping()
    assert OUTBOX_BACKLOG.labels("test")._value.get() == 10

    async with engine.begin() as conn:  # nothing pending: no age
        await conn.execute(text("UPDATE outbox SET sent_at = now()"))
    relay._last_housekeeping = 0.0
    await relay._housekeeping()
    assert OUTBOX_BACKLOG.labels("test")._value.get() == 0 and OUTBOX_OLDEST_SECONDS.labels("test")._value.get() == 0
