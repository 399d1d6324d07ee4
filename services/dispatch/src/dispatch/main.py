"""The dispatch service app: routes, consumers, the offer sweeps and the platform runtime in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from starlette.middleware import Middleware

from shouwang_shared.app import HotRoutes, Runtime, create_service_app

from dispatch.config import DispatchSettings, get_settings
from dispatch.fill_rate import refresh_fill_gauges
from dispatch.handlers import consumer_specs
from dispatch.offers import auto_check_out, expire_overdue_offers, mark_no_shows
from dispatch.projects.attendance import auto_check_out as auto_check_out_shifts
from dispatch.projects.routes import router as projects_router
from dispatch.projects.service import generate_due_shifts
from dispatch.routes import HOT_ROUTES, router

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


async def run_sweeps(runtime: Runtime, interval_s: float) -> None:
    """Every `interval_s`: expire offers past their deadline and mark no-shows (each followed by backfill), check out
    volunteers who forgot to, refresh the fill-rate gauges the dashboard and the fill alert read, and top up service
    projects' shifts to their horizon."""
    while True:
        await asyncio.sleep(interval_s)
        if not runtime.db_ready:
            continue
        try:
            expired = await expire_overdue_offers(sessions=runtime.sessions)
            no_shows = await mark_no_shows(sessions=runtime.sessions)
            checked_out = await auto_check_out(sessions=runtime.sessions) + await auto_check_out_shifts(sessions=runtime.sessions)
            await refresh_fill_gauges(sessions=runtime.sessions)
            await generate_due_shifts(sessions=runtime.sessions)
            if expired or no_shows or checked_out:
                log.info("sweep: %d offers expired, %d no-shows, %d checked out automatically", expired, no_shows, checked_out)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the next sweep retries; the failure is logged
            log.warning("offer sweep failed, retrying next round: %s: %s", type(exc).__name__, exc)


def create_app(settings: DispatchSettings | None = None) -> FastAPI:
    """Build the dispatch app (uvicorn runs it with `--factory dispatch.main:create_app`)."""
    settings = settings or get_settings()
    app = create_service_app(
        settings,
        title="Shouwang dispatch",
        routers=[router, projects_router],
        migrations_dir=MIGRATIONS,
        consumers=consumer_specs(),
    )
    # Innermost of the middleware (inside the correlation id and metrics): the phones' hottest read.
    app.user_middleware.append(Middleware(HotRoutes, routes=HOT_ROUTES))
    platform_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with platform_lifespan(app):
            sweeps = None
            if settings.sweep_interval_s > 0:
                sweeps = asyncio.create_task(run_sweeps(app.state.runtime, settings.sweep_interval_s), name="dispatch-sweeps")
            try:
                yield
            finally:
                if sweeps is not None:
                    sweeps.cancel()
                    await asyncio.gather(sweeps, return_exceptions=True)

    app.router.lifespan_context = lifespan
    return app
