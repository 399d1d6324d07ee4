"""Test helpers for dispatch: the real dispatch app on its own database and topics, a producer for others' events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from pydantic import BaseModel

from shouwang_dev.testing import TestStack, eventually, fetch_rows, read_topic, running_app
from shouwang_shared.auth import Role
from shouwang_shared.contracts.registry import VolunteerState
from shouwang_shared.envelope import Envelope, new_event
from shouwang_shared.kafka import make_producer

from dispatch.config import DispatchSettings
from dispatch.main import create_app

COUNTY = "/c1"
TOWN_A = "/c1/tA"
TOWN_B = "/c1/tB"


@dataclass
class DispatchUnderTest:
    """A running dispatch service: HTTP client, database, topic prefix and a producer of others' events."""

    stack: TestStack
    client: httpx.AsyncClient
    database_url: str
    prefix: str
    producer: object
    app: object

    async def publish(self, payload: BaseModel, *, subject: str, event: Envelope | None = None) -> Envelope:
        """Publish an event (or re-publish `event` as a replay) on the payload's real topic."""
        event = event or new_event(source=payload.SOURCE, type=payload.TYPE, subject=subject, data=payload)
        await self.producer.send_and_wait(f"{self.prefix}{payload.TOPIC}", event.to_bytes(), key=event.subject.encode())
        return event

    async def sql(self, query: str, *args):
        """Rows of a query on the service's database."""
        return await fetch_rows(self.database_url, query, *args)

    async def topic(self, name: str) -> list[Envelope]:
        """Every envelope currently on one of our topics."""
        return [v for _, v, _ in await read_topic(self.stack.bootstrap_servers, f"{self.prefix}{name}") if isinstance(v, Envelope)]

    def headers(self, role: Role | str = Role.COUNTY_ADMIN, *, scope_path: str = COUNTY, volunteer_id: str | None = None) -> dict:
        """Authorization header of a principal."""
        if role == Role.VOLUNTEER:
            scope_path = ""
        return {"Authorization": f"Bearer {self.stack.token(role, scope_path=scope_path, volunteer_id=volunteer_id)}"}

    def volunteer(self, volunteer_id: str) -> dict:
        """Authorization header of a volunteer."""
        return self.headers(Role.VOLUNTEER, volunteer_id=volunteer_id)

    async def add_volunteers(self, states: list[VolunteerState]) -> None:
        """Publish volunteer states as the registry would and wait until the read model has them."""
        for state in states:
            event = new_event(source=state.SOURCE, type=state.TYPE, subject=state.volunteer_id, data=state)
            await self.producer.send(f"{self.prefix}{state.TOPIC}", event.to_bytes(), key=state.volunteer_id.encode())
        await self.producer.flush()
        wanted = {s.volunteer_id: s.version for s in states}

        async def arrived():
            rows = await self.sql("SELECT volunteer_id, version FROM volunteers WHERE volunteer_id = ANY($1::text[])", list(wanted))
            return sum(1 for r in rows if r["version"] >= wanted[r["volunteer_id"]]) == len(wanted)

        await eventually(arrived, timeout_s=30, message="volunteer states in the read model")

    async def create_operation(self, body: dict, *, headers: dict | None = None) -> dict:
        response = await self.client.post("/v1/operations", json=body, headers=headers or self.headers())
        assert response.status_code == 201, response.text
        return response.json()

    async def activate_and_wait(self, operation_id: str, *, headers: dict | None = None) -> dict:
        """Activate an operation and wait until the planner has stored its plan."""
        response = await self.client.post(f"/v1/operations/{operation_id}/activate", headers=headers or self.headers())
        assert response.status_code == 202, response.text

        async def planned():
            r = await self.client.get(f"/v1/operations/{operation_id}", headers=headers or self.headers())
            return r.json() if r.json()["planned_at"] else None

        return await eventually(planned, timeout_s=30, message="operation planned")


@asynccontextmanager
async def dispatch_service(stack: TestStack, name: str, *, prefix: str | None = None, **env: str) -> AsyncIterator[DispatchUnderTest]:
    """Start the real dispatch app on a fresh database and fresh topics, or on `prefix`'s topics shared with other services."""
    if prefix is None:
        prefix = stack.new_prefix()
        await stack.ensure_topics(prefix)
    url = await stack.create_database(f"dispatch_{name}_{uuid.uuid4().hex[:6]}")
    settings_env = stack.service_env("dispatch", url, prefix=prefix, **{"sweep_interval_s": "0", **env})
    app = create_app(DispatchSettings(**{k.lower(): v for k, v in settings_env.items()}))
    producer = make_producer(stack.bootstrap_servers)
    await producer.start()
    try:
        async with running_app(app) as client:
            yield DispatchUnderTest(stack=stack, client=client, database_url=url, prefix=prefix, producer=producer, app=app)
    finally:
        await producer.stop()


def volunteer_state(lat: float, lon: float, **fields) -> VolunteerState:
    """A volunteer as the registry would publish it."""
    values = dict(
        volunteer_id=str(uuid.uuid4()), version=1, display_name="王**", status="active", org_unit_id="s1",
        org_path=TOWN_A + "/s1", lat=lat, lon=lon, star=3, updated_at=datetime.now(UTC),
    )
    values.update(fields)
    return VolunteerState(**values)


def day(n: int, hour: int = 8) -> datetime:
    """A UTC time `n` days from now at `hour` Beijing time (so tests do not share shift windows)."""
    base = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=n)
    return base + timedelta(hours=hour - 8)


def post(name: str, lat: float, lon: float, start: datetime, hours: float = 4, headcount: int = 2, **fields) -> dict:
    """A post as staff would send it."""
    body = {
        "name": name, "lat": lat, "lon": lon, "shift_start": start.isoformat(),
        "shift_end": (start + timedelta(hours=hours)).isoformat(), "headcount": headcount,
    }
    body.update(fields)
    return body
