"""The gateway's upstream client against small local servers: answers, timeouts, refusals, retries, correlation id."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from shouwang_dev.stack.infra import free_port
from shouwang_shared.logs import reset_correlation_id, set_correlation_id

from gateway.upstream import Upstreams, UpstreamTimeout, UpstreamUnavailable


@asynccontextmanager
async def tiny_server(handle: Callable) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A one-off HTTP server on a free port: `handle(request_bytes, writer)` answers each request; yields (url, requests)."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                request = head + (await reader.readexactly(length) if length else b"")
                seen.append(request)
                if not await handle(request, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()


def _answer(status: int, body: bytes, extra: bytes = b"") -> bytes:
    return (f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n".encode()
            + extra + b"\r\n" + body)


async def test_answers_pass_through_with_body_headers_and_correlation_id():
    async def ok(request, writer):
        writer.write(_answer(200, '{"名":"守望"}'.encode(), b"x-extra: 1\r\n"))
        await writer.drain()
        return True

    async with tiny_server(ok) as (url, seen):
        upstreams = Upstreams({"dispatch": url}, signer=None, timeout_s=2)
        token = set_correlation_id("corr-1")
        try:
            response = await upstreams.send("dispatch", "GET", "/v1/a%20b", params=[("q", "守望"), ("q", "2")],
                                            headers={"authorization": "Bearer t"})
            again = await upstreams.send("dispatch", "POST", "/v1/x", json={"k": "值"})
        finally:
            reset_correlation_id(token)
            await upstreams.aclose()
    assert response.status_code == 200 and response.json() == {"名": "守望"} and response.headers["x-extra"] == "1"
    assert (b"x-extra", b"1") in response.raw_headers
    first_line = seen[0].split(b"\r\n", 1)[0]
    assert first_line == b"GET /v1/a%20b?q=%E5%AE%88%E6%9C%9B&q=2 HTTP/1.1"
    assert b"authorization: bearer t" in seen[0].lower()
    assert b"x-correlation-id: corr-1" in seen[0].lower()
    assert again.status_code == 200 and seen[1].endswith('{"k":"值"}'.encode())
    assert upstreams.breakers["dispatch"].failures == 0


async def test_a_slow_service_is_504_and_a_refusing_one_503_both_naming_it():
    async def hang(request, writer):
        await asyncio.sleep(5)
        return False

    async with tiny_server(hang) as (url, _):
        upstreams = Upstreams({"intel": url, "rewards": f"http://127.0.0.1:{free_port()}"}, signer=None, timeout_s=0.3)
        try:
            with pytest.raises(UpstreamTimeout) as slow:
                await upstreams.send("intel", "GET", "/v1/tips")
            with pytest.raises(UpstreamUnavailable) as down:
                await upstreams.send("rewards", "GET", "/v1/stars")
        finally:
            await upstreams.aclose()
    assert slow.value.status_code == 504 and slow.value.to_dict()["detail"]["service"] == "intel"
    assert down.value.status_code == 503 and down.value.to_dict()["detail"]["service"] == "rewards"
    assert down.value.retry_after_s >= 1


async def test_reads_are_retried_after_a_dropped_connection_writes_are_not():
    drops = {"left": 1}

    async def drop_first(request, writer):
        if drops["left"]:
            drops["left"] -= 1
            return False  # close without answering, like a server dropping an idle keep-alive connection
        writer.write(_answer(200, b"[]"))
        await writer.drain()
        return True

    async with tiny_server(drop_first) as (url, seen):
        upstreams = Upstreams({"dispatch": url}, signer=None, timeout_s=2)
        try:
            read = await upstreams.send("dispatch", "GET", "/v1/assignments/mine")
            drops["left"] = 1
            with pytest.raises(UpstreamUnavailable):
                await upstreams.send("dispatch", "POST", "/v1/assignments/x/accept")
        finally:
            await upstreams.aclose()
    assert read.status_code == 200 and len([r for r in seen if r.startswith(b"GET")]) == 2
    assert len([r for r in seen if r.startswith(b"POST")]) == 1, "a write is sent once: it may have been applied"


async def test_a_read_whose_every_attempt_is_dropped_is_503_after_three_attempts():
    async def drop(request, writer):
        return False

    async with tiny_server(drop) as (url, seen):
        upstreams = Upstreams({"dispatch": url}, signer=None, timeout_s=2)
        try:
            with pytest.raises(UpstreamUnavailable) as down:
                await upstreams.send("dispatch", "GET", "/v1/assignments/mine")
        finally:
            await upstreams.aclose()
    assert down.value.to_dict()["detail"]["service"] == "dispatch"
    assert len(seen) == 6, "three attempts, each of which aiohttp itself sends twice on a dropped connection, then 503"


async def test_the_circuit_opens_after_consecutive_failures_and_fails_fast():
    upstreams = Upstreams({"rewards": f"http://127.0.0.1:{free_port()}"}, signer=None, timeout_s=0.5,
                          failure_threshold=2, reset_timeout_s=30)
    try:
        for _ in range(2):
            with pytest.raises(UpstreamUnavailable):
                await upstreams.send("rewards", "GET", "/v1/stars")
        with pytest.raises(UpstreamUnavailable) as fast:
            await upstreams.send("rewards", "GET", "/v1/stars")
    finally:
        await upstreams.aclose()
    assert fast.value.retry_after_s > 20, "open: no call is made for the reset period"
