"""The rewards service app: routes, consumers and the platform runtime in the lifespan."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shouwang_shared.app import create_service_app

from rewards.config import RewardsSettings, get_settings
from rewards.handlers import consumer_specs
from rewards.routes import router

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: RewardsSettings | None = None) -> FastAPI:
    """Build the rewards app (uvicorn runs it with `--factory rewards.main:create_app`)."""
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="Shouwang rewards",
        routers=[router],
        migrations_dir=MIGRATIONS,
        consumers=consumer_specs(),
    )
