"""The rewards service app: routes, consumers, the periodic star sweep and the platform runtime in the lifespan."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI

from shouwang_shared.app import Runtime, create_service_app

from rewards.config import RewardsSettings, get_settings
from rewards.handlers import consumer_specs
from rewards.routes import internal, router
from rewards.stars import run_star_sweeps

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: RewardsSettings | None = None) -> FastAPI:
    """Build the rewards app (uvicorn runs it with `--factory rewards.main:create_app`)."""
    settings = settings or get_settings()

    def start_star_sweeps(runtime: Runtime) -> None:
        if settings.star_sweep_interval_s > 0:
            task = asyncio.create_task(
                run_star_sweeps(sessions=runtime.sessions, interval_s=settings.star_sweep_interval_s), name="rewards-star-sweep"
            )
            runtime._tasks.append(task)  # stopped with the runtime's own tasks

    return create_service_app(
        settings,
        title="Shouwang rewards",
        routers=[router, internal],
        migrations_dir=MIGRATIONS,
        consumers=consumer_specs(),
        on_ready=[start_star_sweeps],
    )
