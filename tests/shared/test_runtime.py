"""A service started while its database or broker is away: clear log line, not ready, recovers, loses nothing."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import uuid4

from fastapi import APIRouter

from shouwang_dev.stack.infra import KafkaBroker, PostgresServer, free_port
from shouwang_dev.testing import eventually, read_topic, running_app
from shouwang_shared.app import Runtime, Sessions, create_service_app
from shouwang_shared.config import ServiceSettings
from shouwang_shared.contracts import EventPayload
from shouwang_shared.db import make_engine, make_session_factory
from shouwang_shared.outbox import enqueue

router = APIRouter()


class ThingAccepted(EventPayload):
    """The probe's event, on a topic of the catalog."""

    TYPE = "shouwang.probe.thing_accepted.v1"
    TOPIC = "intel.bulletins.v1"
    SOURCE = "/services/probe"

    id: str


@router.post("/v1/things/{thing_id}", status_code=202)
async def accept_thing(thing_id: str, sessions: Sessions) -> dict:
    """Accept a thing: one outbox row, committed before the answer."""
    async with sessions() as session, session.begin():
        await enqueue(session, ThingAccepted(id=thing_id), subject=thing_id)
    return {"accepted": thing_id}


def probe_app(database_url: str, bootstrap: str, prefix: str, **settings_over: object):
    settings = ServiceSettings(
        service_name="probe", database_url=database_url, kafka_bootstrap_servers=bootstrap, topic_prefix=prefix,
        outbox_poll_interval_s=0.02, **settings_over,
    )
    return create_service_app(settings, title="probe", routers=[router], configure_logs=False)


async def test_database_down_at_start_is_reported_then_recovered(stack, caplog):
    port = free_port()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    app = probe_app(url, stack.bootstrap_servers, stack.new_prefix())
    caplog.set_level(logging.ERROR)
    pg = PostgresServer(Path(tempfile.mkdtemp(prefix="sw-late-pg-")) / "pgdata", port, durable=False)
    async with running_app(app, wait_ready=False) as client:
        await eventually(lambda: any("database unreachable at" in r.getMessage() and str(port) in r.getMessage() for r in caplog.records),
                         message="a log line naming the database and where")
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["database"] is False
        assert (await client.get("/healthz")).status_code == 200
        refused = await client.post("/v1/things/a")
        assert refused.status_code == 503, refused.text  # nothing is accepted that cannot be kept
        await asyncio.to_thread(pg.start)
        try:
            await eventually(lambda: _ready(client), timeout_s=40, message="ready after the database came")
            assert (await client.post("/v1/things/b")).status_code == 202
        finally:
            await asyncio.to_thread(pg.stop)
            shutil.rmtree(pg.data_dir.parent, ignore_errors=True)


async def _ready(client) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def test_broker_down_keeps_accepting_and_publishes_once_it_is_back(stack, caplog):
    kafka_port, controller_port = free_port(), free_port()
    bootstrap = f"127.0.0.1:{kafka_port}"
    url = await stack.create_database("late_kafka")
    prefix = "late."
    app = probe_app(url, bootstrap, prefix)
    caplog.set_level(logging.ERROR)
    broker_dir = Path(tempfile.mkdtemp(prefix="sw-late-kafka-"))
    broker = KafkaBroker(broker_dir / "kafka", kafka_port, controller_port, heap_mb=384)
    async with running_app(app, wait_ready=False) as client:
        await eventually(lambda: any("Kafka broker unreachable at" in r.getMessage() and bootstrap in r.getMessage() for r in caplog.records),
                         timeout_s=30, message="a log line naming the broker and where")
        assert (await client.get("/readyz")).json()["checks"]["kafka"] is False
        accepted = [f"thing-{i}" for i in range(5)]
        for thing in accepted:
            assert (await client.post(f"/v1/things/{thing}")).status_code == 202
        await asyncio.to_thread(broker.start)
        try:
            await eventually(lambda: _ready(client), timeout_s=60, message="ready after the broker came")

            async def all_published():
                on_topic = await read_topic(bootstrap, f"{prefix}intel.bulletins.v1", timeout_s=2)
                return sorted(env.subject for _, env, _ in on_topic) == sorted(accepted)

            await eventually(all_published, timeout_s=30, message="every accepted thing published exactly once")
        finally:
            await asyncio.to_thread(broker.stop)
            shutil.rmtree(broker_dir, ignore_errors=True)


async def test_readyz_answers_a_plain_status_per_check_and_logs_the_failure_only(stack, caplog):
    """A failing relay's error (SQL, table names, hosts) goes to the log; /readyz says only which check fails."""
    url = await stack.create_database("readyz_plain")
    app = probe_app(url, stack.bootstrap_servers, stack.new_prefix())
    caplog.set_level(logging.INFO)
    async with running_app(app) as client:
        engine = app.state.runtime.engine
        async with engine.begin() as conn:
            await conn.exec_driver_sql("ALTER TABLE outbox RENAME TO outbox_moved_away")
        try:
            async def failing():
                answer = await client.get("/readyz")
                return answer if answer.status_code == 503 else None

            answer = await eventually(failing, timeout_s=20, message="the relay failing")
        finally:
            async with engine.begin() as conn:
                await conn.exec_driver_sql("ALTER TABLE outbox_moved_away RENAME TO outbox")
        assert answer.json() == {"ready": False, "checks": {"database": True, "kafka": True, "relay": False, "consumers": True}}
        assert "outbox" not in answer.text and "Error" not in answer.text
        assert any(r.getMessage().startswith("probe not ready: relay") and "outbox" in r.getMessage() for r in caplog.records)


async def test_a_sweep_runs_once_the_database_is_migrated_outlives_a_failed_round_and_ends_with_the_runtime(stack, caplog):
    url = await stack.create_database(f"sweep_{uuid4().hex[:8]}")
    rounds: list[bool] = []

    def start_sweep(runtime: Runtime) -> None:
        async def sweep() -> None:
            rounds.append(runtime.db_ready)
            if len(rounds) == 1:
                raise RuntimeError("the first round fails")

        runtime.every(0.05, sweep, name="probe-sweep")

    settings = ServiceSettings(service_name="probe", database_url=url, kafka_bootstrap_servers=stack.bootstrap_servers,
                               topic_prefix=stack.new_prefix())
    app = create_service_app(settings, routers=[router], on_start=[start_sweep], configure_logs=False)
    assert app.title == "Shouwang probe"
    caplog.set_level(logging.WARNING)
    async with running_app(app):
        await eventually(lambda: len(rounds) >= 3, message="rounds after the failed one")
        assert all(rounds), "no round before the database is migrated"
        assert any("probe-sweep failed, retrying next round: RuntimeError: the first round fails" in r.getMessage() for r in caplog.records)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 2.5, "the sweep ends at stop instead of holding it for the 3 s grace"
    ended = len(rounds)
    await asyncio.sleep(0.2)
    assert len(rounds) == ended


async def test_the_relay_publishes_while_requests_hold_every_pooled_connection(stack):
    """The relay has connections of its own: on the requests' statement pool it queued behind them, and rows committed
    under load were picked seconds later."""
    url = await stack.create_database(f"relay_own_pool_{uuid4().hex[:8]}")
    prefix = stack.new_prefix()
    app = probe_app(url, stack.bootstrap_servers, prefix)
    async with running_app(app) as client:
        runtime: Runtime = app.state.runtime
        held = [await runtime.statements._pool.acquire() for _ in range(runtime.settings.db_pool_size)]
        try:
            assert (await client.post("/v1/things/under-load")).status_code == 202  # the session pool is the engine's

            async def published() -> bool:
                return any(getattr(env, "data", {}).get("id") == "under-load"
                           for _, env, _ in await read_topic(stack.bootstrap_servers, f"{prefix}intel.bulletins.v1", timeout_s=1))

            await eventually(published, timeout_s=10, message="the row published while the statement pool is exhausted")
        finally:
            for conn in held:
                await runtime.statements._pool.release(conn)


async def test_the_relay_publishes_while_the_service_event_loop_is_blocked(stack):
    """With `RELAY_IN_THREAD` the relay runs on a loop of its own: work that holds the service's loop does not hold the
    publishing of what another replica committed. Here the test blocks the loop it shares with the app while a thread
    commits an outbox row (its notice wakes the relay) and waits for the event on the topic (fails on the service's loop)."""
    url = await stack.create_database(f"relay_thread_{uuid4().hex[:8]}")
    prefix = stack.new_prefix()
    app = probe_app(url, stack.bootstrap_servers, prefix, relay_in_thread=True)
    async with running_app(app):
        await eventually(lambda: app.state.runtime.relay is not None and app.state.runtime.relay.healthy, message="relay up")

        async def commit_then_look() -> bool:
            engine = make_engine(url, pool_size=1)
            try:
                async with make_session_factory(engine)() as session, session.begin():
                    await enqueue(session, ThingAccepted(id="from-another-replica"), subject="from-another-replica")
            finally:
                await engine.dispose()
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                on_topic = await read_topic(stack.bootstrap_servers, f"{prefix}intel.bulletins.v1", timeout_s=1)
                if any(getattr(env, "data", {}).get("id") == "from-another-replica" for _, env, _ in on_topic):
                    return True
            return False

        with ThreadPoolExecutor(1) as pool:
            published = pool.submit(asyncio.run, commit_then_look()).result()  # blocks this loop, and so the app's
        assert published
