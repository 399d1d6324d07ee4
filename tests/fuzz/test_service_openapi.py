"""Schemathesis over every service's own OpenAPI document, as each kind of caller: never a 5xx."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from shouwang_shared.auth import Role

from tests.openapi_fuzz import fuzz_operations

SERVICES = ("registry", "dispatch", "intel", "rewards")


def _fuzz_service(url: str, tokens: dict[str, str | None], *, examples: int) -> tuple[int, list[str]]:
    return fuzz_operations(url, tokens, examples=examples, keep=lambda op, who: op.path not in ("/readyz", "/healthz", "/metrics"))


def _tokens(stack, *, all_roles: bool) -> dict[str, str | None]:
    tokens = {"county_admin": stack.token(Role.COUNTY_ADMIN, scope_path="/county")}
    if all_roles:
        tokens.update({
            "anonymous": None,
            "volunteer": stack.token(Role.VOLUNTEER, sub="v-fuzz", volunteer_id=str(uuid.uuid4())),
            "analyst": stack.token(Role.ANALYST, scope_path="/county"),
            "service": stack.token(Role.SERVICE, sub="gateway"),
        })
    return tokens


@pytest.mark.parametrize("service", SERVICES)
async def test_service_openapi_short_fuzz_has_no_5xx(fuzz_platform, stack, service):
    url = fuzz_platform.services[service].url
    operations, failures = await asyncio.to_thread(_fuzz_service, url, _tokens(stack, all_roles=False), examples=2)
    assert operations >= 5, f"{service} documents only {operations} operations"
    assert failures == [], "\n".join(failures[:20])


@pytest.mark.fuzz
@pytest.mark.parametrize("service", SERVICES)
async def test_service_openapi_full_fuzz_has_no_5xx(fuzz_platform, stack, service):
    url = fuzz_platform.services[service].url
    operations, failures = await asyncio.to_thread(_fuzz_service, url, _tokens(stack, all_roles=True), examples=15)
    assert failures == [], "\n".join(failures[:20])
