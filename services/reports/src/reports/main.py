"""The reports service app: the figures' routes and the consumer that builds them, in the platform runtime."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import FastAPI

from shouwang_shared.app import Runtime, create_service_app

from reports.config import ReportsSettings, get_settings
from reports.handlers import consumer_specs
from reports.national_export import LoggingReceiver, run_national_push
from reports.routes import router

MIGRATIONS = Path(__file__).parent / "migrations"
RECEIVERS = {"log": LoggingReceiver}


def create_app(settings: ReportsSettings | None = None) -> FastAPI:
    """Build the reports app (uvicorn runs it with `--factory reports.main:create_app`)."""
    settings = settings or get_settings()

    def start_national_push(runtime: Runtime) -> None:
        if settings.national_push_interval_s > 0:
            runtime.spawn(run_national_push(sessions=runtime.sessions, receiver=RECEIVERS[settings.national_receiver](),
                                            zone=ZoneInfo(settings.report_time_zone), interval_s=settings.national_push_interval_s),
                          name="national-push")

    app = create_service_app(settings, routers=[router], migrations_dir=MIGRATIONS, consumers=consumer_specs(), on_ready=[start_national_push])
    app.state.settings = settings
    return app
