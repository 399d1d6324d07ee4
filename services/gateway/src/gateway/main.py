"""The gateway app: auth, notifications, home and the proxied API, with its consumer in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.middleware import Middleware

from shouwang_shared.app import create_service_app
from shouwang_shared.logs import CORRELATION_HEADER

from gateway.codes import CodeSender
from gateway.config import GatewaySettings, get_settings
from gateway.console.routes import install_console
from gateway.context import GatewayContext
from gateway.edge import EdgeGuard
from gateway.fastpath import ProxyFastPath
from gateway.handlers import consumer_specs
from gateway.ratelimit import forget_full_buckets
from gateway.routes import auth_router, me_router, proxied_openapi_paths, proxy_router

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: GatewaySettings | None = None, *, sender: CodeSender | None = None) -> FastAPI:
    """Build the gateway app (uvicorn runs it with `--factory gateway.main:create_app`)."""
    settings = settings or get_settings()
    context = GatewayContext.from_settings(settings, sender=sender)
    own_routers, proxied = [auth_router(settings), me_router()], proxy_router()
    app = create_service_app(
        settings,
        title="守望 Shouwang 公共 API",
        routers=[*own_routers, proxied],
        migrations_dir=MIGRATIONS,
        consumers=consumer_specs(context.hub, context.session_cache),
    )
    app.description = "移动端、群众和运维控制台的唯一入口：/api/v1/<资源>，按资源转发到 registry、dispatch、intel、rewards。"
    app.state.gateway = context
    _declare_proxied_paths(app)
    install_console(app, settings)
    # Innermost of the middleware (inside the correlation id and metrics): the proxied families' hot path.
    app.user_middleware.append(Middleware(
        ProxyFastPath, context=context, own_routes=[r for router in own_routers for r in router.routes],
        proxy_routes=proxied.routes,
    ))
    app.add_middleware(EdgeGuard, context=context)
    app.add_middleware(
        CORSMiddleware, allow_origins=settings.console_origin_list, allow_methods=["*"],
        allow_headers=["authorization", "content-type", "accept-language", CORRELATION_HEADER, "last-event-id", "x-receipt-secret"],
        expose_headers=[CORRELATION_HEADER, "Retry-After"], max_age=600,
    )
    runtime_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime_lifespan(app):
            statements = context.limiter.statements = app.state.runtime.statements
            cleaner = asyncio.create_task(forget_full_buckets(statements), name="gateway-rate-buckets")
            try:
                yield
            finally:
                cleaner.cancel()
                await context.upstreams.aclose()

    app.router.lifespan_context = lifespan
    return app


def _declare_proxied_paths(app: FastAPI) -> None:
    """Put the proxied path families into the one OpenAPI document, next to the gateway's own routes."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["HTTPBearer"] = {"type": "http", "scheme": "bearer"}
            schema["paths"].update(proxied_openapi_paths())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
