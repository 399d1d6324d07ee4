"""Settings of the registry service, read from the environment."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from shouwang_shared.config import PiiKeySettings, ServiceSettings


class RegistrySettings(ServiceSettings, PiiKeySettings):
    """What the registry service needs beyond the platform settings."""

    service_name: str = "registry"
    invite_key: str = Field(default="", description="secret that signs QR invite tokens (defaults to one derived from PII_INDEX_KEY)")
    registration_url: str = Field(
        default="http://127.0.0.1:8000/register", description="page the QR code opens; the invite token is appended"
    )
    training_notice_days: int = Field(default=30, description="days a volunteer behind on training is flagged before losing specialised-team eligibility")
    training_review_hour: int = Field(default=2, description="hour (county time) of the daily training review; -1 turns it off")
    county_timezone: str = Field(default="Asia/Shanghai", description="time zone of the county's calendar days")
    star_apply_interval_s: float = Field(default=60.0, description="how often star changes that have come into effect are applied; 0 turns it off")
    import_workers: int = Field(default=2, description="worker processes preparing roster import chunks; 0 prepares them in a thread")
    import_jobs_in_service: bool = Field(
        default=True, description="run queued roster imports in this service's process; false when `python -m registry.import_worker` runs them"
    )
    import_poll_interval_s: float = Field(default=5.0, gt=0, description="how often an idle import worker looks for jobs queued by other processes")
    card_signing_key: str = Field(default="", description="Ed25519 private key (PEM) that signs volunteer cards; empty: no cards are issued")
    card_retired_public_keys: str = Field(
        default="[]", description="JSON list of public keys (PEM) of earlier card signing keys, still published until their last card expires"
    )
    card_validity_hours: float = Field(default=24.0, gt=0, le=24 * 7, description="how long a volunteer card is valid; phones refresh it daily")
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536


@lru_cache
def get_settings() -> RegistrySettings:
    """The settings of this process."""
    return RegistrySettings()
