"""Schemathesis over an OpenAPI document served by a running process, as several callers; collects every 5xx."""

from __future__ import annotations

from collections.abc import Callable

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

# 503/504 name a dependency that is away; a fuzz run must not meet them with everything up.
ALLOWED = set(range(200, 500))


def fuzz_operations(url: str, tokens: dict[str, str | None], *, examples: int,
                    keep: Callable[[object], bool] = lambda op: True) -> tuple[int, list[str]]:
    """Fuzz each kept operation of `url`'s OpenAPI as each caller of `tokens`; (operations fuzzed, failures)."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    session = requests.Session()
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        op = result.ok()
        if not keep(op):
            continue
        operations += 1
        for who, token in tokens.items():
            _calls(op, url, session, who, token, examples, failures)()
    return operations, failures


def _calls(op, url: str, session: requests.Session, who: str, token: str | None, examples: int, failures: list[str]):
    """A hypothesis test calling one operation as one caller, noting every answer outside ALLOWED."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy())
    def run(case):
        response = case.call(base_url=url, session=session, headers=headers, timeout=30)
        if response.status_code not in ALLOWED:
            failures.append(f"{case.method} {case.formatted_path} as {who}: {response.status_code} {response.text[:200]}")

    return run
