"""The console tests' shared parts: one Chromium, one county with staff who sign in by password, where screenshots go.

Screenshots go to a temporary folder, or to `docs/console/` when CONSOLE_SCREENSHOTS names it
(`CONSOLE_SCREENSHOTS=docs/console make test PYTEST_ARGS=tests/console`).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from shouwang_shared.auth import Role

from tests.console.pages import CHROMIUM, PASSWORD, POST_LAT, POST_LON
from tests.e2e.journey import bearer, build_county, expect, register_volunteer, wait_until_known_to_dispatch


@pytest.fixture(scope="package")
def shots(tmp_path_factory) -> Path:
    """Where the screenshots go."""
    wanted = os.environ.get("CONSOLE_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("console")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="package")
async def browser() -> Browser:
    """Debian's Chromium driven by Playwright (`playwright install` cannot download here)."""
    assert Path(CHROMIUM).exists(), "the console tests need Debian's chromium package: apt-get install -y chromium"
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture(scope="package")
async def county(platform):
    """A county with a town admin and an analyst who sign in with passwords, and two volunteers near the post."""
    async with platform.client() as client:
        built = await build_county(platform, client)
        ops = bearer(platform.stack.token(Role.OPERATOR, sub="console-bootstrap"))
        logins = {}
        for role, unit in (("town_admin", built.town), ("analyst", built.county), ("county_admin", built.county)):
            username = f"console_{role}_{uuid.uuid4().hex[:6]}"
            expect(await client.post("/api/v1/staff", headers=ops, json={
                "username": username, "password": PASSWORD, "role": role, "display_name": "控制台测试", "org_unit_id": unit["id"]}), 201)
            logins[role] = username
        crew = [await register_volunteer(client, built, lat=POST_LAT + 0.0005 * i, lon=POST_LON) for i in range(2)]
        await wait_until_known_to_dispatch(platform, [v.volunteer_id for v in crew])
    return {"built": built, "logins": logins, "crew": crew}
