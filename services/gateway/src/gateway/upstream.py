"""Calls to the four services: pooled clients, retries for idempotent calls, a circuit breaker each."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import httpx

from shouwang_shared.auth import Role, TokenSigner
from shouwang_shared.errors import AppError, ServiceUnavailable
from shouwang_shared.http import make_http_client, send_with_retry

from gateway.breaker import CircuitBreaker

UNAVAILABLE_STATUSES = frozenset({502, 503, 504})


class UpstreamUnavailable(ServiceUnavailable):
    """A service cannot be reached (down, or its circuit is open): 503 naming the service."""

    code = "service_unavailable"

    def __init__(self, service: str, *, retry_after_s: int) -> None:
        super().__init__(f"{service} 服务暂时不可用，请稍后再试")
        self.service = service
        self.retry_after_s = retry_after_s

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["detail"]["service"] = self.service
        return body


class UpstreamTimeout(AppError):
    """A service did not answer within the time allowed: 504 naming the service."""

    status_code = 504
    code = "upstream_timeout"

    def __init__(self, service: str) -> None:
        super().__init__(f"{service} 服务响应超时，请稍后再试")
        self.service = service
        self.retry_after_s = 2

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["detail"]["service"] = self.service
        return body


class Upstreams:
    """One pooled client and one circuit breaker per service; signs the gateway's service token."""

    def __init__(
        self, urls: Mapping[str, str], *, signer: TokenSigner | None, timeout_s: float = 5.0,
        max_connections: int = 100, failure_threshold: int = 5, reset_timeout_s: float = 10.0,
        service_token_ttl_s: int = 300,
    ) -> None:
        self.clients = {name: make_http_client(url, timeout_s=timeout_s, max_connections=max_connections) for name, url in urls.items()}
        self.breakers = {name: CircuitBreaker(failure_threshold, reset_timeout_s) for name in urls}
        self._signer = signer
        self._service_token_ttl_s = service_token_ttl_s
        self._service_token: tuple[str, float] | None = None

    async def send(
        self, service: str, method: str, path: str, *, headers: Mapping[str, str] | None = None,
        content: bytes | None = None, json: object = None, params: Sequence[tuple[str, str]] | None = None,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        """The service's response; UpstreamUnavailable (503) or UpstreamTimeout (504) naming it otherwise."""
        breaker = self.breakers[service]
        if not breaker.allow():
            raise UpstreamUnavailable(service, retry_after_s=breaker.retry_after_s())
        client = self.clients[service]
        extra = {"timeout": timeout_s} if timeout_s is not None else {}
        request = client.build_request(method, path, headers=headers, content=content, json=json, params=params, **extra)
        try:
            response = await send_with_retry(client, request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            breaker.record_failure()
            raise UpstreamUnavailable(service, retry_after_s=breaker.retry_after_s()) from exc
        except httpx.TimeoutException as exc:
            breaker.record_failure()
            raise UpstreamTimeout(service) from exc
        except httpx.TransportError as exc:
            breaker.record_failure()
            raise UpstreamUnavailable(service, retry_after_s=breaker.retry_after_s()) from exc
        if response.status_code in UNAVAILABLE_STATUSES:
            breaker.record_failure()
        else:
            breaker.record_success()
        return response

    def service_token(self) -> str:
        """A short-lived token of role `service` for `/internal/v1/...` calls (re-signed before it expires)."""
        if self._signer is None:
            raise ServiceUnavailable("网关未配置签名密钥", code="signing_key_missing")
        now = time.monotonic()
        if self._service_token is None or self._service_token[1] - now < 30:
            token = self._signer.issue(sub="gateway", role=Role.SERVICE, ttl_s=self._service_token_ttl_s)
            self._service_token = (token, now + self._service_token_ttl_s)
        return self._service_token[0]

    async def call_internal(self, service: str, method: str, path: str, *, json: object = None) -> httpx.Response:
        """An internal call signed with the gateway's service token."""
        return await self.send(service, method, path, json=json, headers={"authorization": f"Bearer {self.service_token()}"})

    async def aclose(self) -> None:
        """Close every pooled connection."""
        for client in self.clients.values():
            await client.aclose()
