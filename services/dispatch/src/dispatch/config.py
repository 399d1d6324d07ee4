"""Settings of the dispatch service, read from the environment."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from shouwang_shared.config import PiiKeySettings, ServiceSettings

from dispatch.attendance import HoursApproval


class DispatchSettings(ServiceSettings, PiiKeySettings):
    """What the dispatch service needs beyond the platform settings (its own PII_KEY seals care projects' beneficiaries)."""

    service_name: str = "dispatch"
    sweep_interval_s: float = 5.0  # how often offers past their deadline expire and no-shows are marked (0 = never)
    hours_approval: HoursApproval = Field(
        default="all", description="`all`: every check-out's hours wait for a station admin's approval; `flagged`: only"
        " flagged attendance waits (stale QR, far from post, late sync, device clock, auto check-out), the rest is approved by rule",
    )


@lru_cache
def get_settings() -> DispatchSettings:
    """The settings of this process."""
    return DispatchSettings()
