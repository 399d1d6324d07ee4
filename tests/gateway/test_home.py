"""The volunteer's home screen: one call, within budget, partial and marked when a service is slow."""

from __future__ import annotations

import os
import signal
import time

import httpx

from shouwang_shared.auth import Role

PARTS = ("profile", "offers", "shifts", "points", "star")
STATUSES = {"ok", "timeout", "unavailable", "error"}


async def test_home_gathers_every_part_and_marks_each(platform, logins):
    token = await logins.token(Role.VOLUNTEER)
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        resp = await client.get("/api/v1/me/home")
    assert resp.status_code == 200, resp.text
    home = resp.json()
    assert all(home[p]["status"] in STATUSES for p in PARTS)
    assert {home["profile"]["service"], home["offers"]["service"], home["points"]["service"]} == {"registry", "dispatch", "rewards"}
    assert home["complete"] == all(home[p]["status"] == "ok" for p in PARTS)


async def test_home_answers_within_budget_when_a_service_hangs(platform, logins):
    token = await logins.token(Role.VOLUNTEER)
    rewards = platform.services["rewards"].process
    os.kill(rewards.pid, signal.SIGSTOP)
    try:
        async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
            started = time.perf_counter()
            resp = await client.get("/api/v1/me/home")
            elapsed = time.perf_counter() - started
    finally:
        os.kill(rewards.pid, signal.SIGCONT)
    assert resp.status_code == 200, resp.text
    home = resp.json()
    assert home["points"]["status"] == "timeout" and home["star"]["status"] in ("timeout", "ok")
    assert home["profile"]["status"] != "timeout" and home["offers"]["status"] != "timeout"
    assert home["complete"] is False
    assert 1.4 <= elapsed < 3.0, f"budget 1.5 s, answered in {elapsed:.2f} s"


async def test_home_is_for_volunteers(platform, logins):
    staff = await logins.token(Role.STATION_ADMIN)
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        assert (await client.get("/api/v1/me/home")).status_code == 401
        assert (await client.get("/api/v1/me/home", headers={"Authorization": f"Bearer {staff}"})).status_code == 403
