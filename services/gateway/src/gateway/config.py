"""Settings of the gateway service, read from the environment."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from shouwang_shared.config import ServiceSettings


class GatewaySettings(ServiceSettings):
    """What the gateway needs beyond the platform settings: upstreams, signing key, limits."""

    service_name: str = "gateway"
    run_relay: bool = Field(default=False, description="the gateway publishes no events, so it needs no outbox relay")
    dev_mode: bool = Field(default=False, description="log one-time codes and serve them at a dev-only endpoint")

    registry_url: str = "http://127.0.0.1:8001"
    dispatch_url: str = "http://127.0.0.1:8002"
    intel_url: str = "http://127.0.0.1:8003"
    rewards_url: str = "http://127.0.0.1:8004"
    reports_url: str = "http://127.0.0.1:8005"
    upstream_timeout_s: float = 5.0
    upstream_max_connections: int = 100
    breaker_failure_threshold: int = 5
    breaker_reset_timeout_s: float = 10.0

    jwt_private_key: str = Field(default="", description="PEM Ed25519 private key that signs access tokens")
    jwt_active_kid: str = Field(default="", description="key id of `jwt_private_key`; JWT_PUBLIC_KEYS must hold it")
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600
    service_token_ttl_s: int = 300
    session_check_cache_s: float = 2.0

    login_code_key: str = Field(default="", description="secret key of the login codes' phone and code hashes (the gateway's only key)")
    login_code_ttl_s: int = 300
    login_code_max_attempts: int = Field(default=5, description="wrong guesses that burn one code")
    login_code_max_failures_per_day: int = Field(
        default=10, description="wrong guesses per phone a day, across codes (a token bucket: then one more every 24 h / this)")

    console_origins: str = Field(default="http://localhost:5173", description="comma-separated CORS origins of the ops console")
    console_offers_page: int = Field(default=200, ge=1, le=999, description="offers a page of the console's operation page lists")
    max_body_bytes: int = 1_048_576
    trusted_proxy_hops: int = Field(
        default=0, ge=0, description="proxies in front of the gateway that append to X-Forwarded-For (the Kubernetes "
        "ingress: 1); the client IP is the entry this many from the right; 0 = the socket peer")

    rate_ip_per_min: int = 600
    rate_account_per_min: int = 300
    rate_login_per_min: int = 10
    rate_anonymous_write_per_min: int = 5
    rate_receipt_lookup_per_min: int = Field(default=20, description="anonymous receipt look-ups per client IP")

    home_budget_s: float = 0.8
    card_revocations_max_age_s: float = Field(
        default=30.0, ge=0, description="how old the cached card revocation list may be before /verify fetches it again")

    vapid_private_key: str = Field(default="", description="VAPID private key (P-256, base64url or PEM) that signs Web Push; empty: no push")
    vapid_subject: str = Field(default="mailto:ops@shouwang.invalid", description="who runs this deployment, for push services (VAPID `sub`)")
    push_endpoint_hosts: str = Field(
        default="fcm.googleapis.com,updates.push.services.mozilla.com,*.notify.windows.com,web.push.apple.com,*.push.apple.com",
        description="comma-separated push service hosts a phone may register (the gateway posts to them); `*.` matches subdomains",
    )

    @property
    def push_endpoint_host_list(self) -> list[str]:
        """The trusted push service hosts as a list."""
        return [h.strip() for h in self.push_endpoint_hosts.split(",") if h.strip()]

    @property
    def console_origin_list(self) -> list[str]:
        """The CORS origins as a list."""
        return [o.strip() for o in self.console_origins.split(",") if o.strip()]

    @property
    def service_urls(self) -> dict[str, str]:
        """Base URL of each upstream service by name."""
        return {"registry": self.registry_url, "dispatch": self.dispatch_url, "intel": self.intel_url, "rewards": self.rewards_url,
                "reports": self.reports_url}


@lru_cache
def get_settings() -> GatewaySettings:
    """The settings of this process."""
    return GatewaySettings()
