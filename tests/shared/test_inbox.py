"""The idempotent consumer runner against a real broker and database."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError
from pydantic import BaseModel
from sqlalchemy import text

from shouwang_dev.testing import eventually, read_topic
from shouwang_shared import inbox
from shouwang_shared.envelope import EventMeta, new_event
from shouwang_shared.inbox import ConsumerRunner, PoisonMessage, replay_dead_letters, typed_handlers
from shouwang_shared.kafka import make_consumer
from shouwang_shared.topics import TopicSpec, ensure_topics

EVENT_TYPE = "shouwang.test.thing_happened.v1"


def effect_handler(consumer: str):
    """A handler whose effect is one row in `effects`; it refuses events marked poison."""

    async def handle(session, event):
        if event.data.get("poison"):
            raise PoisonMessage(f"event {event.id} is poison: {event.data['poison']}")
        await session.execute(
            text("INSERT INTO effects (event_id, consumer, subject, seq) VALUES (:e, :c, :s, :q)"),
            {"e": event.id, "c": consumer, "s": event.subject, "q": event.data.get("seq")},
        )

    return handle


def make_runner(sessions, producer, stack, prefix, name="lane", handler=None):
    return ConsumerRunner(
        name=name, topics=["lane.events.v1"], handlers={("lane.events.v1", EVENT_TYPE): handler or effect_handler(name)},
        sessions=sessions, producer=producer, bootstrap_servers=stack.bootstrap_servers, service="test",
        topic_prefix=prefix, group_id="lane",
    )


async def publish(producer, prefix, count, *, start=0, poison_at=(), keys=8):
    events = []
    for i in range(start, start + count):
        data = {"seq": i}
        if i in poison_at:
            data["poison"] = "refused by the handler"
        ev = new_event(source="/services/lane", type=EVENT_TYPE, subject=f"agg-{i % keys}", data=data)
        await producer.send(f"{prefix}lane.events.v1", ev.to_bytes(), key=ev.subject.encode())
        events.append(ev)
    await producer.flush()
    return events


async def effect_rows(engine):
    async with engine.connect() as conn:
        return (await conn.execute(text("SELECT event_id, count(*) FROM effects GROUP BY event_id"))).all()


async def run_until(runner, condition, timeout_s=30):
    task = asyncio.create_task(runner.run())
    try:
        await eventually(condition, timeout_s=timeout_s)
    finally:
        runner.stop()
        await asyncio.wait_for(task, 15)


async def test_consumer_crash_after_db_commit_before_offset_commit_changes_nothing(db, lane, producer, stack, monkeypatch):
    engine, sessions = db
    events = await publish(producer, lane, 40)

    crashed = make_runner(sessions, producer, stack, lane)

    async def die_on_commit(*_args, **_kwargs):
        raise KafkaConnectionError("process killed before the offset commit")

    real_make_consumer = inbox.make_consumer

    def consumer_that_never_commits(*args, **kwargs):
        consumer = real_make_consumer(*args, **kwargs)
        consumer.commit = die_on_commit  # the effects commit, the offsets never do (nor after the runner rebuilds it)
        return consumer

    monkeypatch.setattr(inbox, "make_consumer", consumer_that_never_commits)
    task = asyncio.create_task(crashed.run())
    await eventually(lambda: _count(engine, 40), message="effects of the first run")
    crashed.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    monkeypatch.setattr(inbox, "make_consumer", real_make_consumer)

    again = make_runner(sessions, producer, stack, lane)
    await run_until(again, lambda: again.processed >= 40)
    rows = await effect_rows(engine)
    assert {r[0] for r in rows} == {e.id for e in events}
    assert all(r[1] == 1 for r in rows), "a replayed event changed something twice"


async def _count(engine, expected):
    async with engine.connect() as conn:
        return await conn.scalar(text("SELECT count(*) FROM effects")) >= expected


async def test_duplicate_messages_make_one_effect(db, lane, producer, stack):
    engine, sessions = db
    events = await publish(producer, lane, 10)
    for ev in events:  # the same events again, as a producer retry would
        await producer.send(f"{lane}lane.events.v1", ev.to_bytes(), key=ev.subject.encode())
    await producer.flush()
    runner = make_runner(sessions, producer, stack, lane)
    await run_until(runner, lambda: runner.processed >= 20)
    rows = await effect_rows(engine)
    assert len(rows) == 10 and all(r[1] == 1 for r in rows)


async def test_poison_message_goes_to_dead_letters_and_the_rest_is_processed(db, lane, producer, stack):
    engine, sessions = db
    events = await publish(producer, lane, 30, poison_at={7}, keys=1)
    await producer.send_and_wait(f"{lane}lane.events.v1", b"{not json", key=b"agg-0")
    after = await publish(producer, lane, 5, start=100, keys=1)
    runner = make_runner(sessions, producer, stack, lane)
    await run_until(runner, lambda: _count(engine, 34))
    rows = await effect_rows(engine)
    assert {r[0] for r in rows} == {e.id for e in events + after} - {events[7].id}
    dead = await read_topic(stack.bootstrap_servers, f"{lane}lane.dlq.v1")
    reasons = sorted(h["dlq_reason"].decode() for _, _, h in dead)
    assert len(dead) == 2
    assert any("poison" in r for r in reasons)
    assert any("malformed envelope" in r for r in reasons)


async def test_an_event_on_the_wrong_topic_or_from_the_wrong_source_is_dead_lettered_unhandled(db, lane, producer, stack):
    engine, sessions = db
    await ensure_topics(stack.bootstrap_servers, [TopicSpec("lane.side.v1", partitions=1)], prefix=lane)
    strays = [
        ("lane.side.v1", new_event(source="/services/lane", type=EVENT_TYPE, subject="agg-0", data={"seq": 1})),
        ("lane.events.v1", new_event(source="/services/dispatch", type=EVENT_TYPE, subject="agg-0", data={"seq": 2})),
        ("lane.side.v1", new_event(source="/services/lane", type="shouwang.test.other_thing.v1", subject="agg-0", data={"seq": 3})),
    ]
    for topic, ev in strays:
        await producer.send_and_wait(f"{lane}{topic}", ev.to_bytes(), key=b"agg-0")
    good = await publish(producer, lane, 1, start=4)
    runner = ConsumerRunner(
        name="lane", topics=["lane.events.v1", "lane.side.v1"], handlers={("lane.events.v1", EVENT_TYPE): effect_handler("lane")},
        sessions=sessions, producer=producer, bootstrap_servers=stack.bootstrap_servers, service="test", topic_prefix=lane,
    )
    dead: dict[str, str] = {}

    async def all_handled():
        dead.update({env.id: h["dlq_reason"].decode() for _, env, h in await read_topic(stack.bootstrap_servers, f"{lane}lane.dlq.v1")})
        return len(dead) >= 2 and runner.processed >= 1 and await _count(engine, 1)

    await run_until(runner, all_handled)
    assert {r[0] for r in await effect_rows(engine)} == {good[0].id}
    assert set(dead) == {strays[0][1].id, strays[1][1].id}  # an unknown type is skipped, as before
    assert f"{EVENT_TYPE} does not travel on lane.side.v1" in dead[strays[0][1].id]
    assert "/services/dispatch" in dead[strays[1][1].id] and "/services/lane" in dead[strays[1][1].id]


async def test_handlers_keyed_by_type_alone_are_refused(db, producer, stack):
    _, sessions = db
    with pytest.raises(TypeError, match="keyed by"):
        ConsumerRunner(name="lane", topics=["lane.events.v1"], handlers={EVENT_TYPE: effect_handler("lane")}, sessions=sessions,
                       producer=producer, bootstrap_servers=stack.bootstrap_servers, service="test")


async def test_dead_letters_can_be_replayed_after_a_fix(db, lane, producer, stack):
    engine, sessions = db
    events = await publish(producer, lane, 3, poison_at={1})
    runner = make_runner(sessions, producer, stack, lane)
    await run_until(runner, lambda: _count(engine, 2))

    async def fixed_handler(session, event):  # the bug is fixed: poison is now accepted
        await session.execute(text("INSERT INTO effects (event_id, consumer) VALUES (:e, 'lane')"), {"e": event.id})

    replayed = await replay_dead_letters(bootstrap_servers=stack.bootstrap_servers, group="lane", producer=producer, topic_prefix=lane)
    assert replayed == 1
    fixed = make_runner(sessions, producer, stack, lane, handler=fixed_handler)
    await run_until(fixed, lambda: _count(engine, 3))
    rows = await effect_rows(engine)
    assert {r[0] for r in rows} == {e.id for e in events}


async def test_two_consumers_share_partitions_and_survive_a_rebalance(db, lane, producer, stack):
    engine, sessions = db
    first = make_runner(sessions, producer, stack, lane)
    second = make_runner(sessions, producer, stack, lane)
    t1 = asyncio.create_task(first.run())
    events = await publish(producer, lane, 200)
    await eventually(lambda: first.processed > 0, message="first consumer working")
    t2 = asyncio.create_task(second.run())  # joins: partitions are rebalanced mid-stream
    events += await publish(producer, lane, 400, start=200)
    await eventually(lambda: second._consumer is not None and len(second._consumer.assignment()) > 0, message="second consumer assigned")
    assert len(first._consumer.assignment()) > 0
    events += await publish(producer, lane, 200, start=600)
    await eventually(lambda: _count(engine, 800), timeout_s=40, message="all effects")
    first.stop()  # leaves: the second takes every partition
    await asyncio.wait_for(t1, 15)
    events += await publish(producer, lane, 100, start=800)
    await eventually(lambda: _count(engine, 900), timeout_s=40, message="effects after the first left")
    second.stop()
    await asyncio.wait_for(t2, 15)
    rows = await effect_rows(engine)
    assert {r[0] for r in rows} == {e.id for e in events}
    assert all(r[1] == 1 for r in rows), "an effect was repeated across the rebalance"
    assert first.processed > 0 and second.processed > 0


async def test_batch_handler_gets_new_events_once_in_order(db, lane, producer, stack):
    from shouwang_shared.db import raw_connection
    from shouwang_shared.inbox import batch_handler

    engine, sessions = db
    calls: list[int] = []

    @batch_handler
    async def bulk(session, events):
        calls.append(len(events))
        conn = await raw_connection(session)
        await conn.executemany("INSERT INTO effects (event_id, consumer, seq) VALUES ($1, 'lane', $2)",
                               [(e.id, e.data["seq"]) for e in events])

    events = await publish(producer, lane, 120, keys=1)
    await producer.send_and_wait(f"{lane}lane.events.v1", events[0].to_bytes(), key=b"agg-0")  # a duplicate
    runner = make_runner(sessions, producer, stack, lane, handler=bulk)
    await run_until(runner, lambda: runner.processed >= 121)
    async with engine.connect() as conn:
        seqs = [r[0] for r in (await conn.execute(text("SELECT seq FROM effects ORDER BY seq"))).all()]
    assert seqs == list(range(120))
    assert sum(calls) == 120 and len(calls) < 120


class ThingHappened(BaseModel):
    """A test contract on the lane topic."""

    TOPIC: ClassVar[str] = "lane.events.v1"
    TYPE: ClassVar[str] = EVENT_TYPE
    seq: int


async def test_typed_handlers_get_the_payload_model_and_the_metadata_and_a_bad_payload_is_dead_lettered(db, lane, producer, stack):
    engine, sessions = db
    seen: list[tuple[ThingHappened, EventMeta]] = []

    async def on_thing(session, thing: ThingHappened, event: EventMeta) -> None:
        seen.append((thing, event))
        await session.execute(text("INSERT INTO effects (event_id, consumer, subject, seq) VALUES (:e, 'typed', :s, :q)"),
                              {"e": event.id, "s": event.subject, "q": thing.seq})

    events = await publish(producer, lane, 5, keys=1)
    bad = new_event(source="/services/lane", type=EVENT_TYPE, subject="agg-0", data={"seq": "not a number"})
    await producer.send_and_wait(f"{lane}lane.events.v1", bad.to_bytes(), key=b"agg-0")
    runner = ConsumerRunner(
        name="lane", topics=["lane.events.v1"], handlers=typed_handlers({ThingHappened: on_thing}),
        sessions=sessions, producer=producer, bootstrap_servers=stack.bootstrap_servers, service="test",
        topic_prefix=lane, group_id="lane",
    )
    await run_until(runner, lambda: _count(engine, 5))
    # the batch with the bad payload is rolled back and its events retried one by one: a handler may see an event twice
    assert {meta.id: (thing.seq, meta.subject, meta.type) for thing, meta in seen} == {
        e.id: (e.data["seq"], e.subject, EVENT_TYPE) for e in events}
    assert all(isinstance(thing, ThingHappened) for thing, _ in seen)
    rows = await effect_rows(engine)
    assert {r[0] for r in rows} == {e.id for e in events}
    dead = await read_topic(stack.bootstrap_servers, f"{lane}lane.dlq.v1")
    assert len(dead) == 1
    reason = dead[0][2]["dlq_reason"].decode()
    assert "seq" in reason, reason


async def test_offsets_are_committed_a_few_times_a_second_not_per_batch_and_all_by_the_stop(db, lane, producer, stack, monkeypatch):
    engine, sessions = db
    await publish(producer, lane, 200)
    commits: list[dict] = []
    real_make_consumer = inbox.make_consumer

    def counting_consumer(*args, **kwargs):
        consumer = real_make_consumer(*args, **kwargs)
        real_commit = consumer.commit

        async def commit(offsets=None):
            commits.append(dict(offsets))
            await real_commit(offsets)

        consumer.commit = commit
        return consumer

    monkeypatch.setattr(inbox, "make_consumer", counting_consumer)
    runner = make_runner(sessions, producer, stack, lane)
    runner.max_records = 5  # 40 batches or more
    await run_until(runner, lambda: runner.processed >= 200)
    assert await _count(engine, 200)
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(f"{lane}lane")
    finally:
        await admin.close()
    assert sum(meta.offset for meta in committed.values()) == 200, "the stop commits every applied offset"
    assert len(commits) < 20, f"{len(commits)} commits for 40+ batches: one per batch"


async def test_the_broker_holds_a_fetch_when_told_to_wait_for_more_bytes(lane, producer, stack):
    """aiokafka reads the fetch's minimum size each time it builds a request: `set_fetch_min_bytes` is what a busy group uses."""
    waited = {}
    for min_bytes in (1, inbox.BUSY_FETCH_MIN_BYTES):
        consumer = make_consumer(stack.bootstrap_servers, f"{lane}lane.events.v1", group_id=f"{lane}hold-{min_bytes}",
                                 fetch_max_wait_ms=600)
        await consumer.start()
        try:
            await consumer.getmany(timeout_ms=1000)  # joined, at the end of the topic
            inbox.set_fetch_min_bytes(consumer, min_bytes)
            await asyncio.sleep(0.7)  # the fetch in flight (built before) returns empty
            started = asyncio.get_running_loop().time()
            await publish(producer, lane, 1, start=min_bytes)
            while not await consumer.getmany(timeout_ms=50):
                pass
            waited[min_bytes] = asyncio.get_running_loop().time() - started
        finally:
            await consumer.stop()
    assert waited[1] < 0.3, waited
    assert waited[inbox.BUSY_FETCH_MIN_BYTES] > 0.3, waited


async def test_a_busy_group_lets_the_broker_hold_its_fetches_and_a_quiet_one_does_not(db, lane, producer, stack):
    engine, sessions = db
    runner = make_runner(sessions, producer, stack, lane)
    task = asyncio.create_task(runner.run())
    try:
        await eventually(lambda: runner._consumer is not None and runner._consumer._fetcher is not None)
        await publish(producer, lane, 400)
        await eventually(lambda: runner._consumer._fetcher._fetch_min_bytes == inbox.BUSY_FETCH_MIN_BYTES,
                         message="a group taking 400 records at once holds its fetches")
        await eventually(lambda: runner._consumer._fetcher._fetch_min_bytes == 1, timeout_s=5,
                         message="quiet again: a fetch returns with the first record")
    finally:
        runner.stop()
        await asyncio.wait_for(task, 15)
    assert await _count(engine, 400)


def _waits_of_fetches(consumer) -> list[int]:
    """From now on, the broker wait (ms) of every fetch request the consumer sends, in order."""
    fetcher, waits = consumer._fetcher, []
    send = fetcher._proc_fetch_request

    async def recording(assignment, node_id, request):
        waits.append(request._max_wait_ms)
        return await send(assignment, node_id, request)

    fetcher._proc_fetch_request = recording
    return waits


async def test_an_idle_group_polls_a_few_times_a_second_and_a_record_still_ends_the_held_fetch(db, lane, producer, stack):
    """A quiet group's fetch names every partition and returns on the first record: it is held long, not re-sent every 20 ms."""
    engine, sessions = db
    runner = make_runner(sessions, producer, stack, lane)
    runner.quiet_fetch_max_wait_ms = 5_000  # far above what a record's handling takes: a record must end the hold
    task = asyncio.create_task(runner.run())
    try:
        await eventually(lambda: runner._consumer is not None and runner._consumer._fetcher is not None
                         and runner._consumer.assignment())
        await asyncio.sleep(1.0)  # joined and at the end of the (empty) topic
        waits = _waits_of_fetches(runner._consumer)
        await asyncio.sleep(1.5)
        assert len(waits) <= 3, f"{len(waits)} fetches in 1.5 s of quiet: polled, not held"
        started = asyncio.get_running_loop().time()
        await publish(producer, lane, 1)
        await eventually(lambda: _count(engine, 1), timeout_s=10)
        assert asyncio.get_running_loop().time() - started < 2.5, "the record waited for the hold to run out"
        assert waits and set(waits) <= {runner.quiet_fetch_max_wait_ms}, waits
    finally:
        runner.stop()
        await asyncio.wait_for(task, 15)


async def test_a_fetch_leaving_out_a_partition_with_records_not_taken_is_held_only_briefly(lane, producer, stack):
    """Records handed over but not yet taken keep their partition out of the next fetch: that one must return soon."""
    consumer = make_consumer(stack.bootstrap_servers, f"{lane}lane.events.v1", group_id=f"{lane}partial", fetch_max_wait_ms=20)
    await consumer.start()
    try:
        inbox.hold_quiet_fetches(consumer, 5_000)
        await consumer.getmany(timeout_ms=1000)  # joined, at the end of the topic
        waits = _waits_of_fetches(consumer)
        await publish(producer, lane, 12)
        taken = []
        while len(taken) < 12:
            batch = await consumer.getmany(timeout_ms=2000, max_records=1)  # leaves the rest of a fetch behind
            assert batch, "a record left behind waited out the quiet hold"
            taken += [m for messages in batch.values() for m in messages]
            await asyncio.sleep(0.15)  # longer than aiokafka's prefetch backoff: it fetches the other partitions meanwhile
        assert 20 in waits, f"no fetch left a partition out, or each was held long: {waits}"
        await consumer.getmany(timeout_ms=300)  # every record taken: the next fetch names every partition again
        assert waits[-1] == 5_000, waits
    finally:
        await consumer.stop()
