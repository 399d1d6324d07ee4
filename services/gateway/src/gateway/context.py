"""What the gateway's edges share: upstream clients, token policy, limits, the notification hub."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from shouwang_shared.auth import TokenSigner
from shouwang_shared.db import StatementPool
from shouwang_shared.errors import ServiceUnavailable
from shouwang_shared.pii import BlindIndex

from gateway.accounts import SessionCheckCache, TokenPolicy
from gateway.cards import CardVerifierCache
from gateway.codes import CodeSender, DevCodeSender, NoopCodeSender
from gateway.config import GatewaySettings
from gateway.notifications import NotificationHub
from gateway.ratelimit import Limit, SharedRateLimiter
from gateway.routing import SERVICES
from gateway.upstream import Upstreams

RATE_LEASE = 10  # tokens a gateway process may take at once for a busy client or account (gateway/ratelimit.py)


@dataclass(frozen=True)
class Limits:
    """The rate limits in force, from the settings."""

    ip: Limit
    account: Limit
    login: Limit
    anonymous_write: Limit
    receipt_lookup: Limit
    code_guesses: Limit  # wrong login-code guesses per phone, across codes

    @classmethod
    def from_settings(cls, s: GatewaySettings) -> Limits:
        return cls(
            ip=Limit("ip", s.rate_ip_per_min, lease=RATE_LEASE),  # every request pays these two: a busy key leases
            account=Limit("account", s.rate_account_per_min, lease=RATE_LEASE),
            login=Limit("login", s.rate_login_per_min),
            anonymous_write=Limit("anonymous_write", s.rate_anonymous_write_per_min),
            receipt_lookup=Limit("receipt_lookup", s.rate_receipt_lookup_per_min),
            code_guesses=Limit.per_day("code_guesses", s.login_code_max_failures_per_day),
        )


@dataclass
class GatewayContext:
    """One per gateway process."""

    settings: GatewaySettings
    upstreams: Upstreams
    policy: TokenPolicy | None
    cipher: BlindIndex | None
    sender: CodeSender
    limits: Limits
    limiter: SharedRateLimiter = field(default_factory=SharedRateLimiter)
    hub: NotificationHub = field(default_factory=NotificationHub)
    session_cache: SessionCheckCache = field(default_factory=SessionCheckCache)
    cards: CardVerifierCache | None = None  # set by from_settings: it needs the upstreams
    feeds: StatementPool | None = None  # set by from_settings: the feed reads' own connections (`feed_events`)

    def require_policy(self) -> TokenPolicy:
        """The token policy; 503 while the gateway has no signing key (nobody can log in)."""
        if self.policy is None:
            raise ServiceUnavailable("网关未配置签名密钥，暂不能登录", code="signing_key_missing")
        return self.policy

    @classmethod
    def from_settings(cls, s: GatewaySettings, *, sender: CodeSender | None = None) -> GatewayContext:
        """Build the context; signing and code login are unavailable (503) until their keys are set."""
        signer = (
            TokenSigner(s.jwt_private_key, s.jwt_active_kid, issuer=s.jwt_issuer, audience=s.jwt_audience)
            if s.jwt_private_key and s.jwt_active_kid else None
        )
        urls = s.service_urls
        upstreams = Upstreams(
            {name: urls[name] for name in SERVICES}, signer=signer, timeout_s=s.upstream_timeout_s,
            max_connections=s.upstream_max_connections, failure_threshold=s.breaker_failure_threshold,
            reset_timeout_s=s.breaker_reset_timeout_s, service_token_ttl_s=s.service_token_ttl_s,
        )
        return cls(
            settings=s,
            upstreams=upstreams,
            policy=TokenPolicy(signer, s.access_token_ttl_s, s.refresh_token_ttl_s) if signer else None,
            cipher=BlindIndex(s.login_code_key, label="login-code") if s.login_code_key else None,
            sender=sender or (DevCodeSender() if s.dev_mode else NoopCodeSender()),
            limits=Limits.from_settings(s),
            session_cache=SessionCheckCache(ttl_s=s.session_check_cache_s),
            cards=CardVerifierCache(upstreams, revocations_max_age_s=s.card_revocations_max_age_s),
            feeds=StatementPool(s.database_url, max_size=s.db_pool_size, min_size=1),
        )


async def get_context(request: Request) -> GatewayContext:
    """FastAPI dependency: the gateway context of the app."""
    return request.app.state.gateway
