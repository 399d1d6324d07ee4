"""The one way to publish: a contract payload model becomes an outbox row, written by `enqueue`, a CTE or a COPY."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest
from sqlalchemy import text

from shouwang_dev.testing import read_topic
from shouwang_shared.contracts import EventPayload
from shouwang_shared.contracts.dispatch import AssignmentOffered, Place
from shouwang_shared.contracts.rewards import LedgerEntryPosted
from shouwang_shared.db import StatementPool
from shouwang_shared.envelope import Envelope, new_event
from shouwang_shared.outbox import OUTBOX_COLUMNS, OutboxRelay, OutboxRow, enqueue, enqueue_many, outbox_row, shard_of

AT = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


class ThingHappened(EventPayload):
    """A test event on the test lane."""

    TYPE = "shouwang.test.thing_happened.v1"
    TOPIC = "lane.events.v1"
    SOURCE = "/services/test"

    seq: int
    note: str = ""


def _offer(volunteer_id: str = "志愿者-1") -> AssignmentOffered:
    return AssignmentOffered(
        assignment_id=str(uuid.uuid4()), operation_id="op-1", operation_name='G20 "峰会" 安保', post_id="p-1",
        volunteer_id=volunteer_id, shift_start=AT, shift_end=AT, place=Place(name="断桥\n路口", lat=30.25, lon=120.15),
        respond_by=AT, wave=1,
    )


def test_a_row_parses_back_as_its_envelope_and_its_contract_model():
    cause = new_event(source="/services/dispatch", type=AssignmentOffered.TYPE, subject="x", data={}, correlation_id="corr-1")
    offer = _offer()
    row = outbox_row(offer, subject=offer.assignment_id, key=offer.volunteer_id, caused_by=cause, at=AT)

    assert isinstance(row, OutboxRow) and len(row) == len(OUTBOX_COLUMNS)
    assert (row.topic, row.key, row.shard) == (AssignmentOffered.TOPIC, "志愿者-1", shard_of("志愿者-1"))
    envelope = Envelope.from_bytes(row.payload)
    assert envelope.id == row.event_id and uuid.UUID(row.event_id).version == 7
    assert (envelope.source, envelope.type, envelope.subject) == (AssignmentOffered.SOURCE, AssignmentOffered.TYPE, offer.assignment_id)
    assert envelope.time == AT and envelope.correlationid == "corr-1" and envelope.causationid == cause.id
    assert AssignmentOffered.model_validate(envelope.data) == offer


def test_a_row_is_the_same_json_as_the_envelope_model_gives():
    entry = LedgerEntryPosted(
        entry_id=str(uuid.uuid4()), account="volunteer:甲", volunteer_id="甲", unit="points", amount=10.0, balance_after=12.5,
        reason="线索奖励", rule_version="2026.1", rule_line="tip.report", source_event_id="e-1", posted_at=AT,
    )
    row = outbox_row(entry, subject=entry.account, correlation_id="corr-2", at=AT)
    built = new_event(source=entry.SOURCE, type=entry.TYPE, subject=entry.account, data=entry, correlation_id="corr-2")
    built.id, built.time = row.event_id, AT
    ours, theirs = orjson.loads(row.payload), orjson.loads(built.to_bytes())
    assert list(ours) == list(theirs), "same attributes in the same order"
    assert {**ours, "time": None} == {**theirs, "time": None}
    assert Envelope.model_validate(ours).time == Envelope.model_validate(theirs).time


def test_only_contract_models_become_rows_and_the_key_defaults_to_the_subject():
    with pytest.raises(TypeError):
        outbox_row({"seq": 1}, subject="k")  # type: ignore[arg-type]
    row = outbox_row(ThingHappened(seq=1), subject="agg-1")
    assert row.key == "agg-1" and row.topic == "lane.events.v1"
    first, second = outbox_row(ThingHappened(seq=1), subject="a"), outbox_row(ThingHappened(seq=1), subject="a")
    assert first.event_id != second.event_id


def test_an_effect_applied_later_carries_the_stored_cause_and_correlation():
    row = outbox_row(ThingHappened(seq=2), subject="agg-2", causation_id="cause-9", correlation_id="corr-9")
    envelope = Envelope.from_bytes(row.payload)
    assert (envelope.causationid, envelope.correlationid) == ("cause-9", "corr-9")
    cause = new_event(source="/services/test", type=ThingHappened.TYPE, subject="x", data={})
    assert Envelope.from_bytes(outbox_row(ThingHappened(seq=3), subject="a", caused_by=cause, causation_id="other").payload).causationid == cause.id


async def _outbox(engine) -> list:
    async with engine.connect() as conn:
        return (await conn.execute(text("SELECT event_id::text, topic, key, shard, payload FROM outbox ORDER BY id"))).all()


@pytest.mark.parametrize("count", [3, 25])  # a few are inserted, many are COPYed
async def test_enqueue_many_writes_the_rows_as_made(db, count):
    engine, sessions = db
    rows = [outbox_row(ThingHappened(seq=i, note="巡逻"), subject=f"agg-{i % 4}") for i in range(count)]
    async with sessions() as session, session.begin():
        assert await enqueue_many(session, rows) == count
    stored = await _outbox(engine)
    assert [(r.event_id, r.topic, r.key, r.shard, bytes(r.payload)) for r in stored] == [tuple(r) for r in rows]


async def test_enqueue_writes_one_payload_and_refuses_an_envelope_built_without_the_contract(db):
    engine, sessions = db
    untyped = new_event(source="/services/registry", type=ThingHappened.TYPE, subject="v-1", data={"seq": 2})
    async with sessions() as session, session.begin():
        await enqueue(session, ThingHappened(seq=1), subject="agg-1", key="k-1")
        with pytest.raises(TypeError):
            await enqueue(session, untyped, subject="v-1")
        with pytest.raises(TypeError):
            await enqueue_many(session, [("lane.events.v1", "v-2", untyped)])
    stored = await _outbox(engine)
    assert [(r.topic, r.key) for r in stored] == [("lane.events.v1", "k-1")]
    assert ThingHappened.model_validate(Envelope.from_bytes(stored[0].payload).data).seq == 1


async def test_a_row_fills_a_callers_own_statement_with_its_business_row(db):
    engine, _ = db
    pool = StatementPool(engine.url.render_as_string(hide_password=False), max_size=1)
    await pool.start()
    try:
        row = outbox_row(ThingHappened(seq=7), subject="agg-7")
        await pool.fetch(
            "WITH thing AS (INSERT INTO effects (event_id, consumer, subject) VALUES ($1, 'cte', 'agg-7') RETURNING 1)"
            f" INSERT INTO outbox ({', '.join(OUTBOX_COLUMNS)}) SELECT $2, $3, $4, $5, $6 FROM thing",
            row.event_id, *row,
        )
    finally:
        await pool.close()
    assert [tuple(r[:4]) + (bytes(r.payload),) for r in await _outbox(engine)] == [tuple(row)]


async def test_the_relay_publishes_rows_with_their_headers_and_consumers_read_the_model(db, lane, producer, stack):
    engine, sessions = db
    rows = [outbox_row(ThingHappened(seq=i), subject=f"agg-{i % 3}") for i in range(30)]
    async with sessions() as session, session.begin():
        await enqueue_many(session, rows)
    relay = OutboxRelay(engine=engine, producer=producer, bootstrap_servers=stack.bootstrap_servers, service="test", topic_prefix=lane)
    await relay._ensure_shards()
    assert await relay.publish_pending() == 30
    await relay._drop_lock_conn()
    on_topic = await read_topic(stack.bootstrap_servers, f"{lane}lane.events.v1")
    assert sorted(env.id for _, env, _ in on_topic) == sorted(r.event_id for r in rows)
    by_id = {r.event_id: r for r in rows}
    for key, env, headers in on_topic:
        assert key == by_id[env.id].key.encode()
        assert headers["ce_id"] == env.id.encode() and headers["ce_type"] == ThingHappened.TYPE.encode()
    assert sorted(ThingHappened.model_validate(env.data).seq for _, env, _ in on_topic) == list(range(30))
