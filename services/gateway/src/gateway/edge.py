"""The outer edge of every request: body size limit (413) and the per-client-IP rate limit (429)."""

from __future__ import annotations

import ipaddress

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shouwang_shared.logs import CORRELATION_HEADER

from gateway.context import GatewayContext

UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def client_ip(scope: Scope, *, proxy_hops: int) -> str:
    """The caller's IP: the socket peer, or, behind `proxy_hops` trusted proxies, the address the outermost one saw.

    Each proxy appends the peer it saw to X-Forwarded-For, so the entries a client cannot forge are the last
    `proxy_hops`; the client's own is the `proxy_hops`-th from the right. Anything left of it is whatever the
    client sent and is ignored. With fewer entries than hops (a request that bypassed the proxies) or an entry
    that is no IP address, the socket peer is used.
    """
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    if proxy_hops <= 0:
        return peer
    hops = [hop.strip() for name, value in scope.get("headers", ()) if name == b"x-forwarded-for"
            for hop in value.decode("latin-1").split(",")]
    if len(hops) < proxy_hops:
        return peer
    try:
        return str(ipaddress.ip_address(hops[-proxy_hops]))
    except ValueError:
        return peer


class EdgeGuard:
    """ASGI middleware: refuses oversize bodies and clients over their IP limit before any work is done."""

    def __init__(self, app: ASGIApp, context: GatewayContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        ctx = self.context
        limit = ctx.settings.max_body_bytes
        headers = dict(scope.get("headers", ()))
        cid = headers.get(CORRELATION_HEADER.lower().encode(), b"").decode("latin-1")
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _reply(send, 413, {"code": "too_large", "message": f"请求体超过 {limit} 字节上限", "field": "body"}, cid)
            return
        ip = client_ip(scope, proxy_hops=ctx.settings.trusted_proxy_hops)
        wait = await ctx.limiter.hit(ctx.limits.ip, ip)
        if wait:
            retry = ctx.limiter.retry_after_header(wait)
            await _reply(send, 429, {"code": "rate_limited", "message": f"请求过于频繁，请 {retry} 秒后再试"}, cid,
                         retry_after=retry)
            return
        scope.setdefault("state", {})["client_ip"] = ip
        if declared is not None:
            await self.app(scope, receive, send)
            return
        # No Content-Length (chunked): read the body up to the limit here, then replay it to the app.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([], message), send)
                return
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            if received > limit:
                await _reply(send, 413, {"code": "too_large", "message": f"请求体超过 {limit} 字节上限", "field": "body"}, cid)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay([b"".join(chunks)], None, receive), send)


def _replay(bodies: list[bytes], final: Message | None, receive: Receive | None = None) -> Receive:
    """A receive callable that hands out an already-read body, then defers to the real one (disconnects)."""
    pending = [{"type": "http.request", "body": b, "more_body": False} for b in bodies]
    if final is not None:
        pending.append(final)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        if receive is None:
            return {"type": "http.disconnect"}
        return await receive()

    return replayed


async def _reply(send: Send, status: int, detail: dict, correlation_id: str, *, retry_after: int | None = None) -> None:
    body = orjson.dumps({"detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if correlation_id:
        headers.append((CORRELATION_HEADER.lower().encode(), correlation_id.encode("latin-1")))
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
