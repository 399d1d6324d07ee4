"""The reports service app: the figures' routes and the consumer that builds them, in the platform runtime."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shouwang_shared.app import create_service_app

from reports.config import ReportsSettings, get_settings
from reports.handlers import consumer_specs
from reports.routes import router

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: ReportsSettings | None = None) -> FastAPI:
    """Build the reports app (uvicorn runs it with `--factory reports.main:create_app`)."""
    settings = settings or get_settings()
    app = create_service_app(
        settings, title="Shouwang reports", routers=[router], migrations_dir=MIGRATIONS, consumers=consumer_specs(),
    )
    app.state.settings = settings
    return app
