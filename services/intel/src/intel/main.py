"""The intel service app: routes, consumers, the clustering worker and the platform runtime in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from fastapi import FastAPI

from shouwang_shared.app import create_service_app

from intel.config import IntelSettings, get_settings
from intel.context import IntelContext
from intel.handlers import consumer_specs
from intel.placement import ClusteringWorker
from intel.routes import router

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: IntelSettings | None = None) -> FastAPI:
    """Build the intel app (uvicorn runs it with `--factory intel.main:create_app`)."""
    settings = settings or get_settings()
    ctx = IntelContext(settings)
    app = create_service_app(
        settings,
        title="Shouwang intel",
        routers=[router],
        migrations_dir=MIGRATIONS,
        consumers=consumer_specs(ctx.org_units),
    )
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
