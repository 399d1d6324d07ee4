"""The proxied families without FastAPI's per-request routing and dependency solving (the phones' hot path).

`ProxyFastPath` is pure ASGI middleware, innermost of the app's middleware (after the correlation id and
metrics, the body-size and IP limits). A request for `/api/v1/<resource>[/<path>]` whose resource is proxied
and has none of the gateway's own routes under it is answered here by the same `security.resolve_principal`
and `routes.forward` the FastAPI route uses; everything else goes on to FastAPI unchanged. Errors are
rendered by the app's own exception handlers, so a refused or failed call looks exactly as on the slow path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect, Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from shouwang_shared.app import render_with_app_handlers

from gateway.context import GatewayContext
from gateway.routes import forward
from gateway.routing import API_PREFIX, PROXIED_METHODS, ROUTES
from gateway.security import resolve_principal

PREFIX = API_PREFIX + "/"


def fast_resources(own_routes: Iterable[BaseRoute]) -> frozenset[str]:
    """Proxied resources with none of the gateway's own routes under them (those keep FastAPI's routing)."""
    own = {route.path[len(PREFIX):].split("/", 1)[0] for route in own_routes
           if isinstance(route, APIRoute) and route.path.startswith(PREFIX)}
    return frozenset(r.resource for r in ROUTES) - own


class ProxyFastPath:
    """Pure ASGI middleware: forwards the proxied families itself, hands everything else to the app."""

    def __init__(self, app: ASGIApp, *, context: GatewayContext, own_routes: Sequence[BaseRoute],
                 proxy_routes: Sequence[APIRoute]) -> None:
        self.app = app
        self.context = context
        self.resources = fast_resources(own_routes)
        # The FastAPI proxy routes (collection, and with a sub-path), so metrics carry the same route label.
        self.routes = {"{path" in route.path: route for route in proxy_routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(PREFIX) or scope["method"] not in PROXIED_METHODS or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        resource, slash, subpath = path[len(PREFIX):].partition("/")
        if resource not in self.resources:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.routes.get(bool(slash))
        request = Request(scope, receive)
        try:
            principal = await resolve_principal(request, self.context)
            response = await forward(request, self.context, principal, resource, subpath)
        except ClientDisconnect:  # the caller went away mid-request: nobody to answer, nothing went wrong here
            return
        except Exception as exc:  # noqa: BLE001 - rendered by the app's handler for it, or re-raised as on the slow path
            response = await render_with_app_handlers(request, exc)
        await response(scope, receive, send)
