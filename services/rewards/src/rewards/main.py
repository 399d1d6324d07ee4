"""The rewards service app: routes, consumers, the periodic star sweep and the platform runtime in the lifespan."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shouwang_shared.app import Runtime, create_service_app
from shouwang_shared.pii import PiiCipher

from rewards.config import RewardsSettings, get_settings
from rewards.handlers import consumer_specs
from rewards.routes import internal, router
from rewards.stars import sweep_star_backlog

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: RewardsSettings | None = None) -> FastAPI:
    """Build the rewards app (uvicorn runs it with `--factory rewards.main:create_app`)."""
    settings = settings or get_settings()

    def start_star_sweeps(runtime: Runtime) -> None:
        if settings.star_sweep_interval_s > 0:
            runtime.every(settings.star_sweep_interval_s, lambda: sweep_star_backlog(sessions=runtime.sessions), name="star-sweep")

    app = create_service_app(settings, routers=[router, internal], migrations_dir=MIGRATIONS, consumers=consumer_specs(), on_ready=[start_star_sweeps])
    app.state.payout_cipher = PiiCipher(settings.payout_key)  # payout targets at rest
    return app
