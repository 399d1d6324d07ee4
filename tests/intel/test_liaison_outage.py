"""Liaison delivery survives a broker outage: forwarded cases wait in the outbox and go out once the broker is back."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import text

from shouwang_dev.stack.infra import free_port
from shouwang_dev.testing import eventually, read_topic, running_app
from shouwang_shared.auth import Role
from shouwang_shared.db import make_engine

from intel.main import create_app
from intel_helpers import COUNTY, case_of
from tests.intel.conftest import intel_settings


async def _pending_liaison(engine) -> int:
    async with engine.connect() as conn:
        return await conn.scalar(text("SELECT count(*) FROM outbox WHERE topic = 'intel.liaison.v1' AND sent_at IS NULL"))


async def test_forwarded_case_is_held_while_the_broker_is_away_and_sent_after(stack):
    prefix = stack.new_prefix()
    await stack.ensure_topics(prefix)
    url = await stack.create_database(f"intel_outage_{uuid.uuid4().hex[:6]}")
    engine = make_engine(url, pool_size=2)
    analyst = {"Authorization": f"Bearer {stack.token(Role.ANALYST, sub='analyst-1', scope_path=COUNTY)}"}

    dead_broker = f"127.0.0.1:{free_port()}"
    away = create_app(intel_settings(stack, url, prefix, kafka_bootstrap_servers=dead_broker))
    async with running_app(away, wait_ready=False) as client:
        async def database_ready():
            report = (await client.get("/readyz")).json()
            return report["checks"]["database"]

        await eventually(database_ready, timeout_s=30, message="database migrated while the broker is away")
        tip = await client.post("/v1/tips", json={"category": "drugs", "text": "沙湾村河堤边废弃厂房有人制毒，味道很大", "lat": 29.77, "lon": 120.05})
        assert tip.status_code == 202, tip.text  # intake does not need the broker
        case_id = await case_of(None, tip.json()["tip_id"], engine=engine)  # clustering needs only the database
        assert (await client.post(f"/v1/cases/{case_id}/verify", headers=analyst)).status_code == 200
        forwarded = await client.post(f"/v1/cases/{case_id}/forward", headers=analyst)
        assert forwarded.status_code == 200 and forwarded.json()["status"] == "forwarded"
        report = (await client.get("/readyz")).json()
        assert report["ready"] is False and report["checks"]["kafka"] is False
        await asyncio.sleep(1.0)
        assert await _pending_liaison(engine) == 1  # held, not lost

    back = create_app(intel_settings(stack, url, prefix))
    async with running_app(back):
        await eventually(lambda: _drained(engine), timeout_s=30, message="liaison row published")

    on_topic = [env for _, env, _ in await read_topic(stack.bootstrap_servers, f"{prefix}intel.liaison.v1") if not isinstance(env, bytes)]
    assert [e.subject for e in on_topic] == [case_id]
    assert on_topic[0].type == "shouwang.intel.case_forwarded.v1"
    await engine.dispose()


async def _drained(engine) -> bool:
    return await _pending_liaison(engine) == 0
