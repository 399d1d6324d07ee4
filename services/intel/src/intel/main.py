"""The intel service app: routes, consumers, the clustering worker, the sweeps and the platform runtime in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.app import Runtime, create_service_app

from intel.cases.placement import ClusteringWorker
from intel.cases.urgent import refresh_unclaimed_gauges, send_urgent_alerts
from intel.config import IntelSettings, get_settings
from intel.context import IntelContext
from intel.handlers import consumer_specs
from intel.outreach.bulletins import deliver_due_bulletins
from intel.routes import router

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)
Sessions = async_sessionmaker[AsyncSession]


async def sweep(sessions: Sessions, ctx: IntelContext) -> None:
    """Alert on-duty staff of urgent cases and escalate unclaimed ones, refresh the unclaimed gauges, and send due
    bulletin deliveries through their channels."""
    alerts = await send_urgent_alerts(sessions=sessions, claim_sla_s=ctx.settings.urgent_claim_sla_s)
    await refresh_unclaimed_gauges(sessions=sessions)
    delivered = await deliver_due_bulletins(sessions=sessions, channels=ctx.channels, retry_s=ctx.settings.bulletin_retry_s)
    if alerts or delivered:
        log.info("sweep: %d urgent-case alerts, %d bulletin deliveries", alerts, delivered)


def create_app(settings: IntelSettings | None = None) -> FastAPI:
    """Build the intel app (uvicorn runs it with `--factory intel.main:create_app`)."""
    settings = settings or get_settings()
    ctx = IntelContext(settings)

    def start_sweeps(runtime: Runtime) -> None:
        if settings.sweep_interval_s > 0:
            runtime.every(settings.sweep_interval_s, lambda: sweep(runtime.sessions, ctx), name="sweeps")

    app = create_service_app(settings, routers=[router], migrations_dir=MIGRATIONS, consumers=consumer_specs(ctx.org_units), on_start=[start_sweeps])
    app.state.intel = ctx
    platform_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """The platform runtime, and the clustering worker once the database is migrated (it needs no broker)."""
        async with platform_lifespan(app):
            if not settings.run_clustering:
                yield
                return
            runtime = app.state.runtime
            worker = ClusteringWorker(statements=runtime.statements, ctx=ctx, database_ready=lambda: runtime.db_ready)
            task = asyncio.create_task(worker.run(), name="intel-clustering")
            try:
                yield
            finally:
                worker.stop()
                try:
                    await asyncio.wait_for(asyncio.shield(task), timeout=3)
                except (TimeoutError, Exception):  # noqa: BLE001 - shutting down: a batch in flight rolls back
                    task.cancel()
                    with suppress(asyncio.CancelledError, Exception):
                        await task

    app.router.lifespan_context = lifespan
    return app
