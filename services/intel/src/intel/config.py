"""Settings of the intel service, read from the environment."""

from __future__ import annotations

from functools import lru_cache

from shouwang_shared.config import ServiceSettings


class IntelSettings(ServiceSettings):
    """What the intel service needs beyond the platform settings."""

    service_name: str = "intel"


@lru_cache
def get_settings() -> IntelSettings:
    """The settings of this process."""
    return IntelSettings()
