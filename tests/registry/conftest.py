"""Fixtures for the registry tests: one running registry app on a fresh database, a county to work in, people to register."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from shouwang_dev.testing import TestStack, eventually, running_app
from shouwang_shared.db import make_engine

from registry.config import RegistrySettings
from registry.main import create_app
from tests.registry.people import new_person


def registry_settings(stack: TestStack, database_url: str, **extra: str) -> RegistrySettings:
    """Settings for a registry under test (cheap argon2 so tests stay fast)."""
    env = stack.service_env("registry", database_url, argon2_time_cost="1", argon2_memory_kib="8192", **extra)
    return RegistrySettings(**{k.lower(): v for k, v in env.items()})


@dataclass
class Registry:
    """The registry under test: an HTTP client, its database URL and the stack it runs on."""

    client: object
    database_url: str
    stack: TestStack
    county: dict

    def auth(self, role: str, *, scope: str | None = None, sub: str = "tester", vid: str | None = None) -> dict:
        """Authorization header for a principal of `role` (county-wide scope by default for staff)."""
        scope_path = self.county["path"] if scope is None and role not in ("volunteer", "operator", "service") else (scope or "")
        return {"Authorization": f"Bearer {self.stack.token(role, sub=sub, scope_path=scope_path, volunteer_id=vid)}"}

    @property
    def admin(self) -> dict:
        """A county admin of the whole county."""
        return self.auth("county_admin")

    async def unit(self, kind: str, parent: dict, name: str | None = None, **extra) -> dict:
        """Create an org unit as the county admin."""
        body = {"name": name or f"{kind}-{uuid.uuid4().hex[:6]}", "kind": kind, "parent_id": parent["id"], **extra}
        response = await self.client.post("/v1/org-units", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return response.json()

    async def town_with_station(self) -> tuple[dict, dict]:
        """A fresh town with one station under it."""
        town = await self.unit("town", self.county, name=f"测试镇{uuid.uuid4().hex[:8]}")
        station = await self.unit("station", town, name=f"测试村{uuid.uuid4().hex[:8]}")
        return town, station

    async def volunteer(self, org_unit: dict, **extra) -> tuple[dict, dict]:
        """Register a volunteer as the county admin; returns (response body, the plain person sent)."""
        person = new_person()
        response = await self.client.post(
            "/v1/volunteers", json={**person, "org_unit_id": org_unit["id"], **extra}, headers=self.admin
        )
        assert response.status_code == 201, response.text
        return response.json(), person

    async def upload_roster(self, body: bytes, headers: dict | None = None, filename: str = "roster.csv"):
        """Upload a roster and follow its import job to the end: the job's last answer (the upload's own when refused)."""
        headers = headers or self.admin
        queued = await self.client.post("/v1/imports", files={"file": (filename, body, "text/csv")}, headers=headers)
        if queued.status_code != 202:
            return queued

        async def ended():
            answer = await self.client.get(f"/v1/imports/{queued.json()['id']}", headers=headers)
            return answer if answer.json()["status"] in ("done", "failed") else None

        return await eventually(ended, timeout_s=60, message="the import job to end")

    async def sql(self, statement: str, **params):
        """Run one statement on the registry database and return all rows (for checks tests cannot make over HTTP)."""
        engine = make_engine(self.database_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(statement), params)
                return result.all() if result.returns_rows else []
        finally:
            await engine.dispose()


@pytest.fixture(scope="session")
async def registry(stack, topics) -> Registry:
    """A running registry app (relay and consumers included) on a fresh database, with a county alliance."""
    url = await stack.create_database("registry")
    app = create_app(registry_settings(stack, url))
    async with running_app(app) as client:
        operator = {"Authorization": f"Bearer {stack.token('operator', sub='ops')}"}
        response = await client.post("/v1/org-units", json={"name": "平安县志愿者联盟", "kind": "county", "lat": 30.2, "lon": 120.2}, headers=operator)
        assert response.status_code == 201, response.text
        yield Registry(client=client, database_url=url, stack=stack, county=response.json())
