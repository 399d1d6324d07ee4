"""httpx client factory: pooled, with timeouts and retries only for idempotent calls."""

from __future__ import annotations

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from shouwang_shared.logs import CORRELATION_HEADER, current_correlation_id

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


async def _add_correlation(request: httpx.Request) -> None:
    if cid := current_correlation_id():
        request.headers.setdefault(CORRELATION_HEADER, cid)


def make_http_client(base_url: str, *, timeout_s: float = 5.0, max_connections: int = 100) -> httpx.AsyncClient:
    """A pooled client for one upstream that forwards the correlation id."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 2.0)),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        event_hooks={"request": [_add_correlation]},
    )


async def send_with_retry(client: httpx.AsyncClient, request: httpx.Request, *, attempts: int = 3) -> httpx.Response:
    """Send `request`; connection failures of idempotent methods are retried with backoff, others are not."""
    if request.method not in IDEMPOTENT_METHODS:
        return await client.send(request)
    async for trying in AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.05, max=0.5),
        retry=retry_if_exception_type((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
        reraise=True,
    ):
        with trying:
            return await client.send(request)
    raise AssertionError("unreachable")
