"""Settings of the dispatch service, read from the environment."""

from __future__ import annotations

from functools import lru_cache

from shouwang_shared.config import ServiceSettings


class DispatchSettings(ServiceSettings):
    """What the dispatch service needs beyond the platform settings."""

    service_name: str = "dispatch"
    sweep_interval_s: float = 5.0  # how often offers past their deadline expire and no-shows are marked (0 = never)


@lru_cache
def get_settings() -> DispatchSettings:
    """The settings of this process."""
    return DispatchSettings()
