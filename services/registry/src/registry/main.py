"""The registry service app: routes, consumers and the platform runtime in the lifespan."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shouwang_shared.app import create_service_app

from registry.config import RegistrySettings, get_settings
from registry.handlers import consumer_specs
from registry.routes import router

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    """Build the registry app (uvicorn runs it with `--factory registry.main:create_app`)."""
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="Shouwang registry",
        routers=[router],
        migrations_dir=MIGRATIONS,
        consumers=consumer_specs(),
    )
