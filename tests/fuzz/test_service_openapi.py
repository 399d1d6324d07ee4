"""Schemathesis over every service's own OpenAPI document, as each kind of caller: never a 5xx."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from shouwang_shared.auth import Role

SERVICES = ("registry", "dispatch", "intel", "rewards")
ALLOWED = set(range(200, 500))


def _fuzz_service(url: str, tokens: dict[str, str | None], *, examples: int) -> tuple[int, list[str]]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    session = requests.Session()
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path in ("/readyz", "/healthz", "/metrics"):
            continue
        operations += 1
        for who, token in tokens.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}

            @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy())
            def run(case):
                response = case.call(base_url=url, session=session, headers=headers, timeout=30)
                if response.status_code not in ALLOWED:
                    failures.append(f"{case.method} {case.formatted_path} as {who}: {response.status_code} {response.text[:200]}")

            run()
    return operations, failures


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
