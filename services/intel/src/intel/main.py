"""The intel service app: routes, consumers and the platform runtime in the lifespan."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shouwang_shared.app import create_service_app

from intel.config import IntelSettings, get_settings
from intel.context import IntelContext
from intel.handlers import consumer_specs
from intel.routes import router

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: IntelSettings | None = None) -> FastAPI:
    """Build the intel app (uvicorn runs it with `--factory intel.main:create_app`)."""
    settings = settings or get_settings()
    app = create_service_app(
        settings,
        title="Shouwang intel",
        routers=[router],
        migrations_dir=MIGRATIONS,
        consumers=consumer_specs(),
    )
    app.state.intel = IntelContext(settings)
    return app
