"""Schemathesis over the gateway's one OpenAPI document, against the running platform: the contract holds, never a 5xx."""

from __future__ import annotations

import asyncio
import json

import pytest
import requests

from shouwang_shared.auth import Role

from gateway.main import PUBLIC_OPENAPI
from tests.openapi_fuzz import CONTRACT, fuzz_operations

QUICK_TAGS = {"auth", "me"}
QUICK_RESOURCES = ("/api/v1/tips", "/api/v1/assignments")


def _kept(op, who: str, *, quick: bool) -> bool:
    """Every operation (or the quick few) as every caller, except a signed-in logout that would end the caller's session mid-run."""
    if who != "anonymous" and op.path == "/api/v1/auth/logout":
        return False
    return not quick or bool(set(op.tags or ()) & QUICK_TAGS) or op.path.startswith(QUICK_RESOURCES)


def _fuzz(url: str, tokens: dict[str, str | None], *, quick: bool, examples: int) -> list[str]:
    checked, failures = fuzz_operations(url, tokens, examples=examples, checks=CONTRACT,
                                        keep=lambda op, who: _kept(op, who, quick=quick))
    assert checked >= (12 if quick else 100), f"only {checked} operations in the document"
    return failures


async def _tokens(logins) -> dict[str, str | None]:
    return {"anonymous": None, "volunteer": await logins.token(Role.VOLUNTEER),
            "county_admin": await logins.token(Role.COUNTY_ADMIN, scope_path="/county")}


async def test_openapi_fuzz_short_keeps_the_contract(platform, logins):
    tokens = await _tokens(logins)
    del tokens["county_admin"]
    failures = await asyncio.to_thread(_fuzz, platform.gateway_url, tokens, quick=True, examples=3)
    assert failures == [], "\n".join(failures[:20])


@pytest.mark.fuzz
async def test_openapi_fuzz_every_operation_keeps_the_contract(platform, logins):
    failures = await asyncio.to_thread(_fuzz, platform.gateway_url, await _tokens(logins), quick=False, examples=10)
    assert failures == [], "\n".join(failures[:20])


async def test_the_gateway_serves_the_merged_public_contract(platform):
    schema = await asyncio.to_thread(lambda: requests.get(f"{platform.gateway_url}/openapi.json", timeout=30).json())
    committed = json.loads(PUBLIC_OPENAPI.read_text(encoding="utf-8"))
    assert schema == committed
    for own in ("/api/v1/auth/login", "/api/v1/auth/codes", "/api/v1/auth/code-login", "/api/v1/auth/refresh",
                "/api/v1/auth/logout", "/api/v1/notifications", "/api/v1/notifications/stream", "/api/v1/me/home"):
        assert own in schema["paths"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
