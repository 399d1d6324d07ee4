"""The registry service app: routes, consumers and the platform runtime in the lifespan."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shouwang_shared.app import create_service_app
from shouwang_shared.pii import PiiCipher

from registry.config import RegistrySettings, get_settings
from registry.handlers import consumer_specs
from registry.invite_token import invite_key
from registry.routes import router
from registry.staff import password_hasher

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    """Build the registry app (uvicorn runs it with `--factory registry.main:create_app`)."""
    settings = settings or get_settings()
    app = create_service_app(
        settings,
        title="Shouwang registry",
        routers=[router],
        migrations_dir=MIGRATIONS,
        consumers=consumer_specs(),
    )
    app.state.cipher = PiiCipher(settings.pii_key, settings.pii_index_key)
    app.state.hasher = password_hasher(settings.argon2_time_cost, settings.argon2_memory_kib)
    app.state.invite_key = invite_key(settings.invite_key, settings.pii_index_key)
    return app
