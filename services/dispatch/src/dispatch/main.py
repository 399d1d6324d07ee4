"""The dispatch service app: routes, consumers, the offer sweeps and the platform runtime in the lifespan."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from starlette.middleware import Middleware

from shouwang_shared.app import HotRoutes, Runtime, create_service_app
from shouwang_shared.memory import retain_freed_memory

from dispatch.config import DispatchSettings, get_settings
from dispatch.fill_rate import Sessions, refresh_fill_gauges
from dispatch.handlers import consumer_specs
from dispatch.offers import auto_check_out, expire_overdue_offers, mark_no_shows
from dispatch.projects.attendance import auto_check_out as auto_check_out_shifts
from dispatch.projects.routes import router as projects_router
from dispatch.projects.service import generate_due_shifts
from dispatch.routes import HOT_ROUTES, router

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


async def sweep(sessions: Sessions) -> None:
    """Expire offers past their deadline and mark no-shows (each followed by backfill), check out volunteers who forgot
    to, refresh the fill-rate gauges the dashboard and the fill alert read, and top up service projects' shifts to their
    horizon."""
    expired = await expire_overdue_offers(sessions=sessions)
    no_shows = await mark_no_shows(sessions=sessions)
    checked_out = await auto_check_out(sessions=sessions) + await auto_check_out_shifts(sessions=sessions)
    await refresh_fill_gauges(sessions=sessions)
    await generate_due_shifts(sessions=sessions)
    if expired or no_shows or checked_out:
        log.info("sweep: %d offers expired, %d no-shows, %d checked out automatically", expired, no_shows, checked_out)


def create_app(settings: DispatchSettings | None = None) -> FastAPI:
    """Build the dispatch app (uvicorn runs it with `--factory dispatch.main:create_app`)."""
    settings = settings or get_settings()
    retain_freed_memory()  # the planner builds and drops arrays of up to hundreds of MB a plan: keep their pages

    def start_sweeps(runtime: Runtime) -> None:
        if settings.sweep_interval_s > 0:
            runtime.every(settings.sweep_interval_s, lambda: sweep(runtime.sessions), name="sweeps")

    app = create_service_app(settings, routers=[router, projects_router], migrations_dir=MIGRATIONS, consumers=consumer_specs(), on_start=[start_sweeps])
    # Innermost of the middleware (inside the correlation id and metrics): the phones' hottest read.
    app.user_middleware.append(Middleware(HotRoutes, routes=HOT_ROUTES))
    return app
