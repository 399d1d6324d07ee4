"""The registry service app: routes, consumers, the daily training review, the star applier and the platform runtime in the lifespan."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import FastAPI

from shouwang_shared.app import Runtime, create_service_app

from registry.cards import card_issuer
from registry.config import RegistrySettings, get_settings
from registry.handlers import consumer_specs
from registry.invite_token import invite_key
from registry.roster.job_queue import run_import_worker
from registry.routes import registration_router, router
from registry.staff import password_hasher
from registry.stars import run_star_applier
from registry.training import run_daily_reviews

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    """Build the registry app (uvicorn runs it with `--factory registry.main:create_app`)."""
    settings = settings or get_settings()

    def start_daily_work(runtime: Runtime) -> None:
        if settings.training_review_hour >= 0:
            runtime.spawn(run_daily_reviews(
                sessions=runtime.sessions, notice_days=settings.training_notice_days, hour=settings.training_review_hour,
                tz=ZoneInfo(settings.county_timezone),
            ), name="daily-training-review")
        if settings.star_apply_interval_s > 0:
            runtime.spawn(run_star_applier(sessions=runtime.sessions, interval_s=settings.star_apply_interval_s), name="star-applier")
        if settings.import_jobs_in_service:
            runtime.spawn(run_import_worker(sessions=runtime.sessions, cipher=app.state.cipher, workers=settings.import_workers,
                                            interval_s=settings.import_poll_interval_s), name="roster-imports")

    app = create_service_app(settings, routers=[registration_router, router], migrations_dir=MIGRATIONS, consumers=consumer_specs(), on_ready=[start_daily_work])
    app.state.cipher = settings.pii_cipher()
    app.state.hasher = password_hasher(settings.argon2_time_cost, settings.argon2_memory_kib)
    app.state.invite_key = invite_key(settings.invite_key, settings.pii_index_key)
    app.state.card_issuer = card_issuer(settings)
    return app
