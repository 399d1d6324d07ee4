"""A cheap HTTP/1.1 load generator for the latency benchmarks: keep-alive raw sockets, open-loop schedules.

The services under test share this 2-core machine with the load generator, so the generator must cost as
little CPU as it can (httpx spends about 3 ms of CPU per request, as much as the service it measures):
requests are pre-built bytes written to connections opened before the clock starts, and responses are
parsed just enough to read the status and body. Latency counts from each request's scheduled send time,
so a server that falls behind shows up as queueing instead of being hidden by a slower send rate.
"""

from __future__ import annotations

import asyncio
import gc
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import orjson

from shouwang_dev.stack.infra import free_port
from shouwang_dev.stack.services import SERVICES, ServiceProcess


def build_request(method: str, path: str, *, body: object | None = None, headers: dict[str, str] | None = None) -> bytes:
    """The bytes of one HTTP/1.1 request (a JSON body when `body` is given)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: application/json"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    payload = b""
    if body is not None:
        payload = orjson.dumps(body)
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class Connection:
    """One keep-alive HTTP/1.1 connection: send a request, read the status and body."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """Send `request` and read the whole response: (status, body)."""
        self.writer.write(request)
        line = await self.reader.readline()
        if not line:  # the server closed an idle keep-alive connection: reconnect and resend
            self.close()
            await self.open()
            self.writer.write(request)
            line = await self.reader.readline()
        status = int(line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer:
            self.writer.close()


async def open_connections(port: int, count: int) -> list[Connection]:
    """`count` connections to 127.0.0.1:`port`, opened before any clock starts."""
    return [await Connection(port).open() for _ in range(count)]


async def closed_loop(conns: Sequence[Connection], request: bytes, seconds: float) -> tuple[int, int, float]:
    """Every connection sends `request` back-to-back for `seconds`: (2xx responses, other responses, elapsed)."""
    ok = errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(conn: Connection) -> None:
        nonlocal ok, errors
        while time.perf_counter() < deadline:
            status, _ = await conn.send(request)
            if 200 <= status < 300:
                ok += 1
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    return ok, errors, time.perf_counter() - started


async def open_loop(
    conns: Sequence[Connection], requests: Sequence[bytes], rate: float
) -> tuple[list[float], list[tuple[int, bytes]], float]:
    """Send `requests` in order at `rate`/s over a pool of connections, whatever the answers do.

    Returns each request's latency in ms (from its scheduled time), its (status, body), and the elapsed seconds.
    A request waits for a free connection like a client with a bounded pool; that wait counts as latency.
    """
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for c in conns:
        idle.put_nowait(c)
    latencies: list[float] = [0.0] * len(requests)
    answers: list[tuple[int, bytes]] = [(0, b"")] * len(requests)

    async def one(i: int, scheduled: float) -> None:
        conn = await idle.get()
        try:
            answers[i] = await conn.send(requests[i])
        finally:
            idle.put_nowait(conn)
        latencies[i] = (time.perf_counter() - scheduled) * 1000

    gc.collect()
    gc.freeze()  # the pre-built requests and everything before them: no full collection pauses the schedule
    tasks = []
    start = time.perf_counter()
    for i in range(len(requests)):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    gc.unfreeze()
    return latencies, answers, elapsed


async def start_service_process(name: str, env: dict[str, str]) -> ServiceProcess:
    """A service as deployed: its own uvicorn process (as the launcher runs it) on a free port, once `/readyz` answers."""
    definition = next(d for d in SERVICES if d.name == name)
    service = ServiceProcess(definition, port=free_port(), env=env, log_dir=Path(tempfile.mkdtemp(prefix=f"bench-{name}-")))
    service.start()
    try:
        await asyncio.to_thread(service.wait_healthy, 60, ready=True)
    except BaseException:
        service.stop()
        raise
    return service
