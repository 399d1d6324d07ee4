"""Small helpers shared by the intel tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text

from shouwang_dev.testing import eventually, read_topic
from shouwang_shared.contracts.registry import OrgUnitUpserted
from shouwang_shared.envelope import Envelope, new_event
from shouwang_shared.kafka import make_producer

COUNTY = "/c1"
OTHER_TOWN = "/c1/t2"


async def submit(intel, body: dict, headers: dict | None = None) -> dict:
    """Submit a tip and return the answer (asserting 202)."""
    resp = await intel.client.post("/v1/tips", json=body, headers=headers or {})
    assert resp.status_code == 202, resp.text
    return resp.json()


async def case_of(intel, tip_id: str, *, engine=None) -> str:
    """The case the clustering worker placed a tip in (waiting for it: intake answers before clustering)."""
    async def placed():
        async with (engine or intel.engine).connect() as conn:
            return await conn.scalar(text("SELECT case_id FROM tips WHERE id = :id"), {"id": tip_id})

    return str(await eventually(placed, timeout_s=10, message=f"tip {tip_id} placed in a case"))


async def events_on(intel, topic: str, *, subject: str | None = None, type_: str | None = None) -> list[Envelope]:
    """Envelopes currently on a catalog topic of this instance, optionally for one subject / type."""
    found = []
    for _, env, _ in await read_topic(intel.stack.bootstrap_servers, intel.topic(topic)):
        if isinstance(env, bytes):
            continue
        if subject and env.subject != subject:
            continue
        if type_ and env.type != type_:
            continue
        found.append(env)
    return found


async def produce(intel, topic: str, values: list[tuple[str, bytes]]) -> None:
    """Publish raw (key, value) messages to a catalog topic of this instance."""
    producer = make_producer(intel.stack.bootstrap_servers)
    await producer.start()
    try:
        for key, value in values:
            await producer.send_and_wait(intel.topic(topic), key=key.encode(), value=value)
    finally:
        await producer.stop()


async def org_unit(intel, unit_id: str, name: str, kind: str, path: str) -> None:
    """Make an org unit known to intel the way the registry does (`OrgUnitUpserted`), and wait until it is consumed."""
    parent = path.rstrip("/").rsplit("/", 2)[-2] or None
    unit = OrgUnitUpserted(org_unit_id=unit_id, name=name, kind=kind, parent_id=parent, path=path)
    await produce(intel, OrgUnitUpserted.TOPIC, [
        (unit_id, new_event(source=OrgUnitUpserted.SOURCE, type=OrgUnitUpserted.TYPE, subject=unit_id, data=unit).to_bytes())
    ])

    async def known():
        async with intel.engine.connect() as conn:
            return await conn.scalar(text("SELECT count(*) FROM org_units WHERE id = :id AND path = :path"), {"id": unit_id, "path": path}) == 1

    await eventually(known, message=f"org unit {path} consumed from the registry")


class IntelInstance:
    """An intel service started by a test module with settings of its own (the `intel` fixture's shape, plus the app)."""

    def __init__(self, client, app, prefix: str, engine, stack) -> None:
        self.client, self.app, self.prefix, self.engine, self.stack = client, app, prefix, engine, stack

    def topic(self, name: str) -> str:
        """Physical name of a catalog topic for this instance."""
        return f"{self.prefix}{name}"

    def auth(self, role, *, sub: str = "tester", scope: str = "") -> dict[str, str]:
        """Authorization header for a staff principal."""
        return {"Authorization": f"Bearer {self.stack.token(role, sub=sub, scope_path=scope)}"}


@asynccontextmanager
async def intel_instance(stack, *, configure=None, **settings: str) -> AsyncIterator[IntelInstance]:
    """Run an intel service on its own database and topic prefix with `settings` (environment names, lower case);
    `configure(app)` may replace parts of the app's context (channel adapters) before it starts."""
    from shouwang_dev.testing import running_app
    from shouwang_shared.db import make_engine

    from intel.config import IntelSettings
    from intel.main import create_app

    prefix = stack.new_prefix()
    await stack.ensure_topics(prefix)
    url = await stack.create_database(f"intel_{uuid.uuid4().hex[:6]}")
    env = stack.service_env("intel", url, prefix=prefix, **{"default_org_path": COUNTY, **settings})
    app = create_app(IntelSettings(**{k.lower(): v for k, v in env.items()}))
    if configure is not None:
        configure(app)
    engine = make_engine(url, pool_size=2)
    try:
        async with running_app(app) as client:
            yield IntelInstance(client, app, prefix, engine, stack)
    finally:
        await engine.dispose()
