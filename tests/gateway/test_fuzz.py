"""Schemathesis over the gateway's one OpenAPI document, against the running platform: never a 5xx."""

from __future__ import annotations

import asyncio

import pytest
import requests

from shouwang_shared.auth import Role
from tests.openapi_fuzz import fuzz_operations

QUICK_TAGS = {"auth", "me"}
QUICK_RESOURCES = ("/api/v1/tips", "/api/v1/assignments")


def _quick(op) -> bool:
    return bool(set(op.tags or ()) & QUICK_TAGS) or op.path.startswith(QUICK_RESOURCES)


def _fuzz(url: str, tokens: dict[str, str | None], *, quick: bool, examples: int) -> list[str]:
    checked, failures = fuzz_operations(url, tokens, examples=examples, keep=_quick if quick else (lambda op: True))
    assert checked >= (25 if quick else 250), f"only {checked} operations in the document"
    return failures


async def _tokens(logins) -> dict[str, str | None]:
    return {"anonymous": None, "volunteer": await logins.token(Role.VOLUNTEER),
            "county_admin": await logins.token(Role.COUNTY_ADMIN, scope_path="/county")}


async def test_openapi_fuzz_short_has_no_5xx(platform, logins):
    tokens = await _tokens(logins)
    del tokens["county_admin"]
    failures = await asyncio.to_thread(_fuzz, platform.gateway_url, tokens, quick=True, examples=3)
    assert failures == [], "\n".join(failures[:20])


@pytest.mark.fuzz
async def test_openapi_fuzz_every_operation_has_no_5xx(platform, logins):
    failures = await asyncio.to_thread(_fuzz, platform.gateway_url, await _tokens(logins), quick=False, examples=10)
    assert failures == [], "\n".join(failures[:20])


async def test_the_openapi_document_declares_every_path_family(platform):
    schema = await asyncio.to_thread(lambda: requests.get(f"{platform.gateway_url}/openapi.json", timeout=30).json())
    paths = schema["paths"]
    from gateway.routing import ROUTES

    for route in ROUTES:
        assert f"/api/v1/{route.resource}" in paths and f"/api/v1/{route.resource}/{{path}}" in paths
    for own in ("/api/v1/auth/login", "/api/v1/auth/codes", "/api/v1/auth/code-login", "/api/v1/auth/refresh",
                "/api/v1/auth/logout", "/api/v1/notifications", "/api/v1/notifications/stream", "/api/v1/me/home"):
        assert own in paths
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
