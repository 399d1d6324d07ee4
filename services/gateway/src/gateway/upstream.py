"""Calls to the four services: pooled keep-alive clients, retries for idempotent calls, a circuit breaker each.

The client is aiohttp's (one `ClientSession` per service): on the proxied read it costs a fraction of
the CPU httpx does. It forwards the correlation id, retries connection failures of idempotent methods
(bounded, with backoff) and maps every transport failure to a 503 or 504 naming the service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
from multidict import CIMultiDictProxy
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from yarl import URL

from shouwang_shared.auth import Role, TokenSigner
from shouwang_shared.errors import AppError, ServiceUnavailable
from shouwang_shared.logs import CORRELATION_HEADER, current_correlation_id

from gateway.breaker import CircuitBreaker

UNAVAILABLE_STATUSES = frozenset({502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_ATTEMPTS = 3
RETRY_BACKOFF_S = 0.05  # before the second attempt; doubling after that
RETRYABLE_ERRORS = (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


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


@dataclass(frozen=True)
class UpstreamResponse:
    """What a service answered: status, headers (as parsed and as raw byte pairs) and the whole body."""

    status_code: int
    headers: CIMultiDictProxy[str]
    raw_headers: tuple[tuple[bytes, bytes], ...]
    content: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return orjson.loads(self.content)


class Upstreams:
    """One keep-alive connection pool and one circuit breaker per service; signs the gateway's service token."""

    def __init__(
        self, urls: Mapping[str, str], *, signer: TokenSigner | None, timeout_s: float = 5.0,
        max_connections: int = 100, failure_threshold: int = 5, reset_timeout_s: float = 10.0,
        service_token_ttl_s: int = 300,
    ) -> None:
        self.base_urls = {name: url.rstrip("/") for name, url in urls.items()}
        self.breakers = {name: CircuitBreaker(failure_threshold, reset_timeout_s) for name in urls}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 2.0))
        self._max_connections = max_connections
        self._clients: dict[str, aiohttp.ClientSession] = {}
        self._signer = signer
        self._service_token_ttl_s = service_token_ttl_s
        self._service_token: tuple[str, float] | None = None

    def _client(self, service: str) -> aiohttp.ClientSession:
        """The service's pooled session, made on first use (it must belong to the running loop)."""
        client = self._clients.get(service)
        if client is None or client.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=30, enable_cleanup_closed=False)
            client = self._clients[service] = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auto_decompress=True, raise_for_status=False,
            )
        return client

    def _url(self, service: str, path: str, params: Sequence[tuple[str, str]] | None) -> URL:
        url = self.base_urls[service] + path
        if params:
            url += "?" + urlencode(params)
        return URL(url, encoded=True)

    async def send(
        self, service: str, method: str, path: str, *, headers: Mapping[str, str] | None = None,
        content: bytes | None = None, json: object = None, params: Sequence[tuple[str, str]] | None = None,
        timeout_s: float | None = None,
    ) -> UpstreamResponse:
        """The service's response; UpstreamUnavailable (503) or UpstreamTimeout (504) naming it otherwise."""
        breaker = self.breakers[service]
        if not breaker.allow():
            raise UpstreamUnavailable(service, retry_after_s=breaker.retry_after_s())
        request_headers = dict(headers or {})
        if json is not None:
            content = orjson.dumps(json)
            request_headers["content-type"] = "application/json"
        if (cid := current_correlation_id()) and not any(k.lower() == CORRELATION_HEADER.lower() for k in request_headers):
            request_headers[CORRELATION_HEADER] = cid
        url = self._url(service, path, params)
        timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 2.0)) if timeout_s is not None else None
        attempts = RETRY_ATTEMPTS if method in IDEMPOTENT_METHODS else 1
        try:
            response = await self._send_with_retry(service, method, url, request_headers, content, timeout, attempts)
        except aiohttp.ConnectionTimeoutError as exc:
            breaker.record_failure()
            raise UpstreamUnavailable(service, retry_after_s=breaker.retry_after_s()) from exc
        except TimeoutError as exc:
            breaker.record_failure()
            raise UpstreamTimeout(service) from exc
        except (aiohttp.ClientError, OSError) as exc:
            breaker.record_failure()
            raise UpstreamUnavailable(service, retry_after_s=breaker.retry_after_s()) from exc
        if response.status_code in UNAVAILABLE_STATUSES:
            breaker.record_failure()
        else:
            breaker.record_success()
        return response

    async def _send_with_retry(
        self, service: str, method: str, url: URL, headers: dict[str, str], content: bytes | None,
        timeout: aiohttp.ClientTimeout | None, attempts: int,
    ) -> UpstreamResponse:
        """One request; connection failures of idempotent methods are tried again after a short backoff.

        The first attempt runs without the retry machinery (building it costs as much CPU as a tenth of a
        proxied read); only a failed idempotent call enters it, for the attempts left.
        """
        client = self._client(service)
        extra = {"timeout": timeout} if timeout is not None else {}
        try:
            return await self._send_once(client, method, url, headers, content, extra)
        except RETRYABLE_ERRORS:
            if attempts <= 1:
                raise
        await asyncio.sleep(RETRY_BACKOFF_S)
        async for trying in AsyncRetrying(
            stop=stop_after_attempt(attempts - 1), wait=wait_exponential(multiplier=2 * RETRY_BACKOFF_S, max=0.5),
            retry=retry_if_exception_type(RETRYABLE_ERRORS), reraise=True,
        ):
            with trying:
                return await self._send_once(client, method, url, headers, content, extra)
        raise AssertionError("unreachable")  # tenacity returns or re-raises above

    @staticmethod
    async def _send_once(
        client: aiohttp.ClientSession, method: str, url: URL, headers: dict[str, str], content: bytes | None,
        extra: dict[str, Any],
    ) -> UpstreamResponse:
        """One request on the service's pooled session, its body read whole."""
        async with client.request(method, url, headers=headers, data=content, allow_redirects=False, **extra) as response:
            body = await response.read()
            return UpstreamResponse(response.status, response.headers, response.raw_headers, body)

    def service_token(self) -> str:
        """A short-lived token of role `service` for `/internal/v1/...` calls (re-signed before it expires)."""
        if self._signer is None:
            raise ServiceUnavailable("网关未配置签名密钥", code="signing_key_missing")
        now = time.monotonic()
        if self._service_token is None or self._service_token[1] - now < 30:
            token = self._signer.issue(sub="gateway", role=Role.SERVICE, ttl_s=self._service_token_ttl_s)
            self._service_token = (token, now + self._service_token_ttl_s)
        return self._service_token[0]

    async def call_internal(self, service: str, method: str, path: str, *, json: object = None) -> UpstreamResponse:
        """An internal call signed with the gateway's service token."""
        return await self.send(service, method, path, json=json, headers={"authorization": f"Bearer {self.service_token()}"})

    async def aclose(self) -> None:
        """Close every pooled connection."""
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
