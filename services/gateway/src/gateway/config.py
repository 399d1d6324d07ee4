"""Settings of the gateway service, read from the environment."""

from __future__ import annotations

from functools import lru_cache

from shouwang_shared.config import ServiceSettings


class GatewaySettings(ServiceSettings):
    """What the gateway service needs beyond the platform settings."""

    service_name: str = "gateway"


@lru_cache
def get_settings() -> GatewaySettings:
    """The settings of this process."""
    return GatewaySettings()
