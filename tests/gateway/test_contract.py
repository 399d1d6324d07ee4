"""The public contract (`services/gateway/src/gateway/openapi/public.json`) is what the services say today."""

from __future__ import annotations

import json

from gateway.main import PUBLIC_OPENAPI
from gateway.routing import GATEWAY_RESOURCES, resolve
from tools.contract import build_public_openapi

METHODS = ("get", "put", "post", "delete", "patch")


def _operations(document: dict) -> dict[str, dict]:
    return {f"{m.upper()} {p}": op for p, item in document["paths"].items() for m, op in item.items() if m in METHODS}


def test_the_committed_contract_is_what_the_services_describe_now():
    committed, current = json.loads(PUBLIC_OPENAPI.read_text(encoding="utf-8")), build_public_openapi()
    before, now = _operations(committed), _operations(current)
    added, removed = sorted(now.keys() - before.keys()), sorted(before.keys() - now.keys())
    changed = sorted(k for k in now.keys() & before.keys() if now[k] != before[k])
    assert (added, removed, changed) == ([], [], []), f"run `make contract`: added {added}, removed {removed}, changed {changed}"
    assert committed == current, "run `make contract`: the shared schemas or the document's header changed"


def test_every_operation_is_routed_typed_and_says_who_may_call_it():
    document = json.loads(PUBLIC_OPENAPI.read_text(encoding="utf-8"))
    schemas = document["components"]["schemas"]
    for name, op in _operations(document).items():
        path = name.split(" ", 1)[1]
        assert path.startswith("/api/v1/") and "/internal/" not in path, name
        resource = path.split("/")[3]
        if resource not in GATEWAY_RESOURCES:  # the gateway's own routes
            assert resolve(resource) is not None and (op["x-roles"] or op["x-public"]), name
        for code, answer in op["responses"].items():
            if int(code) >= 400:
                assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, (name, code)
    assert "Error" in schemas and "HTTPValidationError" not in schemas
