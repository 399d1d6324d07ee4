"""Build the gateway's public OpenAPI document from the services' own documents: one typed contract for phones.

The gateway forwards `/api/v1/<resource>/...` to the service that owns the resource (`gateway.routing.ROUTES`).
This generator takes each service's OpenAPI document (its FastAPI app, built in-process, nothing started), keeps
the public routes of the resources that service owns under their gateway paths, and adds the gateway's own
routes (sign-in, notifications, home). Internal routes (`/internal/...`, health, metrics) are left out. Each
operation says which roles may call it (`x-roles`, the gateway's role gate; the service then checks org scope)
and whether anyone may call it without a token (`x-public`); every error answer has the one error shape (`Error`). Schemas keep their service's
name unless two services use one name for different shapes; then the later one is prefixed with its service.

    make contract     # writes services/gateway/src/gateway/openapi/public.json
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PUBLIC = REPO / "services/gateway/src/gateway/openapi/public.json"
SERVICES = {
    "registry": ("registry.main", "registry.config", "RegistrySettings"),
    "dispatch": ("dispatch.main", "dispatch.config", "DispatchSettings"),
    "intel": ("intel.main", "intel.config", "IntelSettings"),
    "rewards": ("rewards.main", "rewards.config", "RewardsSettings"),
    "reports": ("reports.main", "reports.config", "ReportsSettings"),
}
METHODS = ("get", "put", "post", "delete", "patch")
ERROR = {
    "title": "Error", "type": "object", "required": ["detail"],
    "description": "Every refusal of every service and of the gateway: a stable code, a message for people (Chinese) and "
                   "the field at fault when there is one (`query.status`, `body.phone`, `Idempotency-Key`, ...).",
    "properties": {"detail": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string", "examples": ["invalid", "not_found", "role_forbidden", "rate_limited"]},
        "message": {"type": "string"},
        "field": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}, "description": "every invalid field, on a 422"},
    }}},
}
# What any operation may answer besides its own documented codes (docs/api.md, "Errors"): the gateway's refusals, a thing
# the request names (in the path, query or body) that does not exist or is outside the caller's scope, and for writes a
# conflict with the stored state.
ANY_OPERATION_ERRORS = {
    "401": "没有令牌、令牌无效、过期或已注销", "403": "角色或管辖范围不允许",
    "404": "请求所指的对象（路径、查询或请求体中）不存在，或不在管辖范围内", "409": "与已保存的状态冲突（如状态不允许、幂等键已用于另一请求）",
    "413": "请求体或附件超过大小上限",
    "429": "请求过于频繁（带 Retry-After）", "502": "服务应答异常", "503": "服务暂不可用（带 Retry-After）", "504": "服务超时",
}
PUBLIC_DESCRIPTIONS = {  # a public operation needs no token, but a token that is sent is checked
    "401": "带了令牌但令牌无效、过期或已注销（公开接口不带令牌即可调用）",
    "403": "带了令牌的调用者请求了其管辖范围以外的数据",
}


def _settings(service: str, settings_class: type) -> Any:
    """Settings good enough to build the app (and its document): nothing is started or connected."""
    from shouwang_dev.stack.services import make_secrets, service_env

    env = service_env(service, port=0, database_url="postgresql+asyncpg://contract@127.0.0.1:1/contract",
                      bootstrap_servers="127.0.0.1:1", secrets=make_secrets(), service_urls={})
    return settings_class(**{k.lower(): v for k, v in env.items()})


def service_document(service: str) -> dict:
    """The OpenAPI document of one service, as its app describes itself."""
    app_module, config_module, settings_name = SERVICES[service]
    settings = _settings(service, getattr(importlib.import_module(config_module), settings_name))
    return importlib.import_module(app_module).create_app(settings).openapi()


def gateway_document() -> dict:
    """The gateway's own routes (auth, notifications, home), without the proxied families."""
    from gateway.config import GatewaySettings
    from gateway.main import create_app, own_openapi

    return own_openapi(create_app(_settings("gateway", GatewaySettings)))


def _renamed(node: Any, renames: dict[str, str]) -> Any:
    """`node` with every schema reference to a renamed schema pointing at its new name."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/components/schemas/"):
                name = value.rsplit("/", 1)[1]
                value = f"#/components/schemas/{renames.get(name, name)}"
            out[key] = _renamed(value, renames)
        return out
    if isinstance(node, list):
        return [_renamed(v, renames) for v in node]
    return node


def _error_responses(operation: dict, *, public: bool, method: str) -> None:
    """Every error answer of an operation has the one error shape; the answers any operation may give are listed too."""
    responses = operation.setdefault("responses", {})
    shape = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for code in list(responses):
        if code.isdigit() and int(code) >= 400:
            responses[code] = {"description": responses[code].get("description", ""), "content": shape}
    for code, description in ANY_OPERATION_ERRORS.items():
        if code in ("409", "413") and method == "get":
            continue
        if public and code in PUBLIC_DESCRIPTIONS:
            description = PUBLIC_DESCRIPTIONS[code]
        responses.setdefault(code, {"description": description, "content": shape})


def _short_id(operation_id: str) -> str:
    """FastAPI's `list_operations_v1_operations_get` as the function's name, `list_operations`, for generated clients."""
    return re.split(r"_(?:api_)?v1_", operation_id, maxsplit=1)[0]


def _referenced(node: Any, schemas: dict[str, dict]) -> set[str]:
    """The schemas `node` refers to, directly or through other schemas."""
    found: set[str] = set()
    todo = [node]
    while todo:
        current = todo.pop()
        if isinstance(current, dict):
            ref = current.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                if name not in found:
                    found.add(name)
                    todo.append(schemas.get(name, {}))
            todo.extend(v for k, v in current.items() if k != "$ref")
        elif isinstance(current, list):
            todo.extend(current)
    return found


def build_public_openapi() -> dict:
    """The merged public document (deterministic: same code, same bytes)."""
    from shouwang_shared.auth import Role

    from gateway.routing import API_PREFIX, VOLUNTEER_OWN_RESOURCES, resolve

    document = gateway_document()
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    paths = {p: item for p, item in document["paths"].items() if p.startswith(API_PREFIX)}
    signed_in = sorted(str(r) for r in Role if r != Role.SERVICE)
    for path, item in paths.items():  # the gateway's own routes: sign-in is public, a volunteer's feed is theirs
        resource = path.split("/")[3]
        for method in (m for m in METHODS if m in item):
            operation, route = item[method], resolve(resource)
            public = "security" not in operation or (route is not None and route.is_public(method.upper(), "/".join(path.split("/")[4:])))
            operation["x-roles"] = [] if public else ["volunteer"] if resource in VOLUNTEER_OWN_RESOURCES else signed_in
            operation["x-public"] = public
            operation["operationId"] = _short_id(operation["operationId"])
            _error_responses(operation, public=public, method=method)
    for service in SERVICES:
        source = copy.deepcopy(service_document(service))
        renames = {}
        for name, schema in source.get("components", {}).get("schemas", {}).items():
            if name in schemas and schemas[name] != schema:
                renames[name] = f"{service.capitalize()}{name}"
        source = _renamed(source, renames)
        for name, schema in source.get("components", {}).get("schemas", {}).items():
            schemas[renames.get(name, name)] = schema
        for path, item in sorted(source["paths"].items()):
            parts = path.split("/")
            if len(parts) < 3 or parts[1] != "v1" or (route := resolve(parts[2])) is None or route.service != service:
                continue  # internal, health, metrics, or a resource another service owns
            subpath = "/".join(parts[3:])
            public_item = {}
            for method in METHODS:
                if method not in item:
                    continue
                operation = item[method]
                allowed = sorted(str(r) for r in route.allowed_roles(method.upper(), subpath))
                public = route.is_public(method.upper(), subpath)
                operation["tags"] = [service]
                operation["operationId"] = f"{service}_{_short_id(operation.get('operationId', method + path.replace('/', '_')))}"
                operation["x-roles"] = allowed
                operation["x-public"] = public  # callable without a token (citizens)
                operation["security"] = [{"HTTPBearer": []}, {}] if public else [{"HTTPBearer": []}]
                _error_responses(operation, public=public, method=method)
                public_item[method] = operation
            if public_item:
                paths[f"/api{path}"] = public_item
    ids = [op["operationId"] for item in paths.values() for m, op in item.items() if m in METHODS]
    assert len(ids) == len(set(ids)), f"two operations share an id: {sorted(i for i in ids if ids.count(i) > 1)}"
    schemas["Error"] = ERROR
    document["components"].setdefault("securitySchemes", {})["HTTPBearer"] = {"type": "http", "scheme": "bearer"}
    document["paths"] = dict(sorted(paths.items()))
    used = _referenced(document["paths"], schemas)  # schemas only internal routes or replaced 422 bodies used stay out
    document["components"]["schemas"] = {name: schemas[name] for name in sorted(used)}
    document["info"] = {
        "title": "守望 Shouwang 公共 API", "version": "1",
        "description": "移动端、群众和运维控制台的唯一入口。由 `make contract` 从各服务自己的 OpenAPI 文档生成；"
                       "`x-roles` 为网关允许调用的角色（服务再按管辖范围检查）；所有错误应答为 `Error`。",
    }
    return document


def render(document: dict) -> str:
    """The document as committed: stable key order, UTF-8, a newline at the end."""
    return json.dumps(document, ensure_ascii=False, indent=1) + "\n"


def main() -> int:
    PUBLIC.parent.mkdir(parents=True, exist_ok=True)
    PUBLIC.write_text(render(build_public_openapi()), encoding="utf-8")
    print(f"wrote {PUBLIC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
