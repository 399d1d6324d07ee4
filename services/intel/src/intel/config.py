"""Settings of the intel service, read from the environment."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from shouwang_shared.config import PiiKeySettings, ServiceSettings


class IntelSettings(ServiceSettings, PiiKeySettings):
    """What the intel service needs beyond the platform settings."""

    service_name: str = "intel"
    receipt_key: str = Field(default="", description="secret key for receipt hashes, claim references and submission keys")
    pseudonym_key: str = Field(default="", description="secret key of the informant pseudonyms analysts and the police see")
    default_org_path: str = Field(default="", description="org path of tips and needs no org unit covers (the county)")
    violation_lookup: str = Field(
        default="", description="the police traffic system for 违章查询: an http(s) base URL, `fake` (development), or '' (503)"
    )
    attachment_max_bytes: int = 5 * 1024 * 1024
    cluster_window_days: int = 10
    cluster_max_candidates: int = Field(
        default=50,
        description="open cases of the category within ~12 km a tip is compared with, most recently active first (a shared attachment always counts)",
    )
    cluster_profile_tips: int = Field(default=20, ge=1, description="most recent tips of a candidate case a new tip is compared with")
    run_clustering: bool = Field(default=True, description="run the worker that places accepted tips in cases")
    cluster_batch_size: int = 200
    cluster_poll_interval_s: float = 0.5
    cluster_linger_s: float = Field(default=0.02, description="after a wake, wait this long so tips arriving together cluster in one batch")
    org_unit_cache_s: float = 5.0
    case_lock_minutes: int = 15
    liaison_sla_hours_urgent: int = 2
    liaison_sla_hours_high: int = 24
    liaison_sla_hours_normal: int = 72
    sweep_interval_s: float = Field(default=2.0, description="how often bulletin deliveries and unclaimed urgent cases are swept (0 = never)")
    urgent_claim_sla_s: float = Field(default=900.0, gt=0, description="an urgent case not claimed this long after its alert goes one level up")
    bulletin_retry_s: float = Field(default=30.0, description="first wait before a failed channel delivery is tried again (doubling)")
    receipt_failures_per_code: int = 5
    receipt_lockout_s: int = 900


@lru_cache
def get_settings() -> IntelSettings:
    """The settings of this process."""
    return IntelSettings()
