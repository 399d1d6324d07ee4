"""The dispatch service app: routes, consumers and the platform runtime in the lifespan."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shouwang_shared.app import create_service_app

from dispatch.config import DispatchSettings, get_settings
from dispatch.handlers import consumer_specs
from dispatch.routes import router

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: DispatchSettings | None = None) -> FastAPI:
    """Build the dispatch app (uvicorn runs it with `--factory dispatch.main:create_app`)."""
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="Shouwang dispatch",
        routers=[router],
        migrations_dir=MIGRATIONS,
        consumers=consumer_specs(),
    )
