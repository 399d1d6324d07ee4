"""Route × role matrix through the real gateway and services: allowed routes reach their service, others 401/403."""

from __future__ import annotations

import asyncio

import httpx

from shouwang_shared.auth import Role

from gateway.routing import ROUTES

UPSTREAM = "x-upstream-service"
CALLER_ROLES = [r for r in Role if r != Role.SERVICE]


async def _call(client: httpx.AsyncClient, method: str, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {} if method == "POST" else None
    return await client.request(method, path, headers=headers, json=body)


async def test_every_route_for_every_role_is_allowed_or_403_and_401_without_token(platform, logins):
    tokens = {role: await logins.token(role) for role in CALLER_ROLES}
    outcomes: list[str] = []
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        for route in ROUTES:
            for method in ("GET", "POST"):
                path = f"/api/v1/{route.resource}"
                callers = [(None, None)] + [(role, tokens[role]) for role in CALLER_ROLES]
                responses = await asyncio.gather(*(_call(client, method, path, tok) for _, tok in callers))
                for (role, _), resp in zip(callers, responses, strict=True):
                    where = f"{method} {path} as {role or 'anonymous'}"
                    if route.is_public(method) or (role is not None and role in route.allowed_roles(method, "")):
                        assert resp.headers.get(UPSTREAM) == route.service, f"{where}: expected to reach {route.service}, got {resp.status_code} {resp.text[:200]}"
                        assert resp.status_code < 500, f"{where}: {resp.status_code} {resp.text[:200]}"
                        outcomes.append("forwarded")
                    elif role is None:
                        assert resp.status_code == 401 and UPSTREAM not in resp.headers, f"{where}: {resp.status_code}"
                        assert resp.json()["detail"]["code"] == "missing_token"
                        outcomes.append("401")
                    else:
                        assert resp.status_code == 403 and UPSTREAM not in resp.headers, f"{where}: {resp.status_code} {resp.text[:200]}"
                        assert resp.json()["detail"]["code"] == "role_forbidden"
                        outcomes.append("403")
    assert outcomes.count("forwarded") > 100 and outcomes.count("403") > 100 and outcomes.count("401") > 40


async def test_own_paths_admit_the_volunteer_only_there(platform, logins):
    token = await logins.token(Role.VOLUNTEER)
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        me = await client.get("/api/v1/volunteers/me")
        others = await client.get("/api/v1/volunteers/some-other-id")
        listing = await client.get("/api/v1/volunteers")
    assert me.headers.get(UPSTREAM) == "registry"
    assert others.status_code == 403 and listing.status_code == 403


async def test_service_tokens_cannot_use_the_public_api(platform, logins):
    token = await logins.token(Role.SERVICE, sub="some-service")
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        resp = await client.get("/api/v1/bulletins", headers={"Authorization": f"Bearer {token}"})
        internal = await client.post("/internal/v1/staff/verify-password", json={"username": "a", "password": "b"})
    assert resp.status_code == 403
    assert internal.status_code == 404, "internal endpoints are never reachable through the gateway"


async def test_staff_naming_an_org_path_outside_their_scope_is_refused(platform, logins):
    token = await logins.token(Role.TOWN_ADMIN, scope_path="/county/town-1")
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        outside = await client.get("/api/v1/operations", params={"org_path": "/county/town-2"})
        inside = await client.get("/api/v1/operations", params={"org_path": "/county/town-1/station-3"})
    assert outside.status_code == 403 and outside.json()["detail"]["field"] == "org_path"
    assert inside.headers.get(UPSTREAM) == "dispatch"
