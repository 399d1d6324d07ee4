"""Settings of the rewards service, read from the environment."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from shouwang_shared.config import ServiceSettings


class RewardsSettings(ServiceSettings):
    """What the rewards service needs beyond the platform settings."""

    service_name: str = "rewards"
    star_sweep_interval_s: float = 60.0
    payout_key: str = Field(default="", description="AES-GCM key of anonymous payout targets at rest (rewards only)")


@lru_cache
def get_settings() -> RewardsSettings:
    """The settings of this process."""
    return RewardsSettings()
