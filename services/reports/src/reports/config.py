"""Settings of the reports service, read from the environment."""

from __future__ import annotations

from functools import lru_cache

from shouwang_shared.config import ServiceSettings


class ReportsSettings(ServiceSettings):
    """What the reports service needs beyond the platform settings."""

    service_name: str = "reports"
    report_time_zone: str = "Asia/Shanghai"  # a report's `from`/`to` dates are the county's calendar days
    national_push_interval_s: float = 0.0  # > 0: push new service records to the national system that often
    national_receiver: str = "log"  # the adapter of the receiving system (only "log" until its interface is agreed)


@lru_cache
def get_settings() -> ReportsSettings:
    """The settings of this process."""
    return ReportsSettings()
