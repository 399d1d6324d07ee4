"""Settings of the registry service, read from the environment."""

from __future__ import annotations

from functools import lru_cache

from shouwang_shared.config import ServiceSettings


class RegistrySettings(ServiceSettings):
    """What the registry service needs beyond the platform settings."""

    service_name: str = "registry"


@lru_cache
def get_settings() -> RegistrySettings:
    """The settings of this process."""
    return RegistrySettings()
