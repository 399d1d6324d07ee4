"""Schemathesis over an OpenAPI document served by a running process, as several callers; collects every failed check."""

from __future__ import annotations

from collections.abc import Callable

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

# 503/504 name a dependency that is away; a fuzz run must not meet them with everything up, so every 5xx fails.
SERVER_ERRORS = (not_a_server_error,)
# The public contract's promise: documented status codes and content types, bodies that match their schemas, and no
# operation that asks for a token answering without one.
CONTRACT = (*SERVER_ERRORS, status_code_conformance, content_type_conformance, response_schema_conformance, ignored_auth)


def fuzz_operations(url: str, tokens: dict[str, str | None], *, examples: int, checks=SERVER_ERRORS,
                    keep: Callable[[object, str], bool] = lambda op, who: True) -> tuple[int, list[str]]:
    """Fuzz each operation of `url`'s OpenAPI as each caller of `tokens` that `keep` allows; (operations fuzzed, failures)."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    session = requests.Session()
    failures: dict[str, str] = {}  # one example per operation, caller, failed check and status
    operations = set()
    for result in schema.get_all_operations():
        op = result.ok()
        for who, token in tokens.items():
            if keep(op, who):
                operations.add(op.label)
                _calls(op, url, session, who, token, examples, checks, failures)()
    return len(operations), [f"{kind}: {example}" for kind, example in sorted(failures.items())]


def _calls(op, url: str, session: requests.Session, who: str, token: str | None, examples: int, checks, failures: dict[str, str]):
    """A hypothesis test calling one operation as one caller, noting every failed check."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy())
    def run(case):
        response = case.call(base_url=url, session=session, headers=headers, timeout=30)
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except BaseException as failed:  # schemathesis raises a FailureGroup (an exception group) of every failed check
            for failure in getattr(failed, "exceptions", [failed]):
                title = getattr(failure, "title", type(failure).__name__)
                kind = f"{case.method} {op.path} as {who}: {title}: {response.status_code}"
                failures.setdefault(kind, f"{case.formatted_path} {response.text[:200]}")

    return run
