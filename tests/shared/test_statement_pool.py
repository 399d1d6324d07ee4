"""The statement pool of the hot paths, against the real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from sqlalchemy import text

from shouwang_shared.db import StatementPool, make_engine
from shouwang_shared.outbox import outbox_row, shard_of

from tests.shared.test_outbox_rows import ThingHappened


async def test_one_statement_writes_a_row_and_its_outbox_event_together(db):
    url = db[0].url.render_as_string(hide_password=False)
    pool = StatementPool(url, max_size=2)
    await pool.start()
    try:
        row = outbox_row(ThingHappened(seq=1), subject="k1")
        ids = await pool.fetch(
            "WITH thing AS (INSERT INTO effects (event_id, consumer, subject) VALUES ($1, 'pool', $3) RETURNING event_id)"
            " INSERT INTO outbox (event_id, topic, key, shard, payload) SELECT $2::uuid, $4, $3, $5, $6 FROM thing RETURNING key",
            "e1", row.event_id, row.key, row.topic, row.shard, row.payload,
        )
        assert [r["key"] for r in ids] == ["k1"]
        assert await pool.fetchval("SELECT shard FROM outbox WHERE key = 'k1'") == shard_of("k1")
        assert await pool.fetchval("SELECT count(*) FROM effects WHERE consumer = 'pool'") == 1, "committed without a transaction"
    finally:
        await pool.close()


async def test_a_refused_write_in_an_explicit_transaction_leaves_nothing_and_the_connection_clean(db):
    url = db[0].url.render_as_string(hide_password=False)
    pool = StatementPool(url, max_size=1)
    await pool.start()
    try:
        with pytest.raises(RuntimeError):
            async with pool.connection() as conn, conn.transaction():
                await conn.execute("INSERT INTO effects (event_id, consumer) VALUES ('e2', 'refused')")
                raise RuntimeError("refused")
        assert await pool.fetchval("SELECT count(*) FROM effects WHERE consumer = 'refused'") == 0
        async with pool.connection() as conn:
            assert not conn.is_in_transaction()
    finally:
        await pool.close()


async def test_connections_killed_while_idle_are_replaced_without_failing_the_next_statement(db, stack):
    url = db[0].url.render_as_string(hide_password=False)
    pool = StatementPool(url, max_size=2, min_size=2)
    await pool.start()
    try:
        pids = {await pool.fetchval("SELECT pg_backend_pid()") for _ in range(4)}
        admin = await asyncpg.connect(stack.pg_admin_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", list(pids))
        finally:
            await admin.close()
        await asyncio.sleep(0.2)  # the server has closed them; the pool has not used them since
        assert await pool.fetchval("SELECT 41 + 1") == 42
        assert await pool.fetchval("SELECT pg_backend_pid()") not in pids
    finally:
        await pool.close()


async def test_a_pool_not_started_refuses_with_a_connection_error():
    pool = StatementPool(f"postgresql+asyncpg://nobody@127.0.0.1:1/{uuid.uuid4().hex}")
    with pytest.raises(ConnectionError):
        await pool.fetchval("SELECT 1")


async def test_a_session_whose_pooled_connection_was_killed_gets_a_new_one_from_the_one_round_trip_ping(db, stack):
    """The engine's pre-ping (`db._ping_in_one_round_trip`, one `;` instead of SQLAlchemy's three round trips) still
    finds a connection the server closed while it sat in the pool, and the session gets a fresh one."""
    engine, sessions = db
    async with sessions() as session:
        pid = await session.scalar(text("SELECT pg_backend_pid()"))
    admin = await asyncpg.connect(stack.pg_admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    await asyncio.sleep(0.2)
    async with sessions() as session:
        assert await session.scalar(text("SELECT pg_backend_pid()")) != pid
        assert await session.scalar(text("SELECT 41 + 1")) == 42


async def test_the_session_pool_hands_out_the_connection_used_last(db):
    """After a burst opened several connections, requests one at a time keep to one hot backend, not rotate over all."""
    engine = make_engine(db[0].url.render_as_string(hide_password=False), pool_size=4)
    try:
        burst = [await engine.connect() for _ in range(4)]
        for connection in burst:
            await connection.close()
        backends = set()
        for _ in range(6):
            async with engine.connect() as connection:
                backends.add(await connection.scalar(text("SELECT pg_backend_pid()")))
        assert len(backends) == 1, f"{len(backends)} backends for six requests one at a time"
    finally:
        await engine.dispose()
