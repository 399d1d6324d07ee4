"""The gateway service app: routes, consumers and the platform runtime in the lifespan."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shouwang_shared.app import create_service_app

from gateway.config import GatewaySettings, get_settings
from gateway.handlers import consumer_specs
from gateway.routes import router

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """Build the gateway app (uvicorn runs it with `--factory gateway.main:create_app`)."""
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="Shouwang gateway",
        routers=[router],
        migrations_dir=MIGRATIONS,
        consumers=consumer_specs(),
    )
