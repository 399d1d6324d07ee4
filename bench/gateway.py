"""Gateway benchmark: authenticated reads through the gateway to dispatch and its database.

One uvicorn worker each (gateway, dispatch), on the bench's PostgreSQL and Kafka. A raw-socket,
keep-alive HTTP/1.1 load generator (cheap on CPU) sends `GET /api/v1/assignments/mine` with a
volunteer's session token: the gateway verifies the token, checks the session, applies the rate
limits, and forwards to dispatch, which reads the volunteer's assignments from its database.
Figures: the closed-loop maximum rate (and, for comparison, the same read sent straight to dispatch),
the CPU time per read of the gateway and of dispatch (the honest guide on a shared machine), and the
p50/p99 latency of an open-loop 500 requests/s (latency counted from each request's scheduled time, so
queueing is not hidden).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from shouwang_shared.auth import Role
from shouwang_shared.db import make_engine, make_session_factory
from shouwang_shared.stack.infra import free_port
from shouwang_shared.stack.services import ServiceDef, ServiceProcess, service_env
from shouwang_shared.testing import TestStack

from gateway.accounts import TokenPolicy, open_session
from bench.stats import percentile, process_cpu_seconds

PATH = "/api/v1/assignments/mine"


class Connection:
    """One keep-alive HTTP/1.1 connection that sends a fixed GET and reads the status and body."""

    def __init__(self, port: int, request: bytes) -> None:
        self.port, self.request = port, request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> "Connection":
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def get(self) -> int:
        """Send the request, read the whole response; the status code."""
        self.writer.write(self.request)
        line = await self.reader.readline()
        if not line:  # the server closed an idle keep-alive connection: reconnect and resend
            self.close()
            await self.open()
            self.writer.write(self.request)
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
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer:
            self.writer.close()


async def closed_loop(conns: list[Connection], seconds: float) -> tuple[int, int, float]:
    """Every connection sends back-to-back for `seconds`: (ok responses, errors, elapsed)."""
    ok = errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(conn: Connection) -> None:
        nonlocal ok, errors
        while time.perf_counter() < deadline:
            if await conn.get() == 200:
                ok += 1
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    return ok, errors, time.perf_counter() - started


async def open_loop(conns: list[Connection], rate: float, seconds: float) -> tuple[list[float], int]:
    """Requests scheduled at `rate`/s for `seconds` over a pool of connections: latencies (ms) and errors."""
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for c in conns:
        idle.put_nowait(c)
    latencies: list[float] = []
    errors = 0

    async def one(scheduled: float) -> None:
        nonlocal errors
        conn = await idle.get()
        try:
            status = await conn.get()
        finally:
            idle.put_nowait(conn)
        latencies.append((time.perf_counter() - scheduled) * 1000)
        if status != 200:
            errors += 1

    tasks = []
    start = time.perf_counter()
    total = int(rate * seconds)
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    return latencies, errors


async def run(stack: TestStack) -> dict[str, float]:
    """Start dispatch and the gateway, then measure authenticated reads through the gateway."""
    prefix = stack.new_prefix()
    await stack.ensure_topics(prefix)
    secrets = {"jwt_kid": stack.jwt_kid, "jwt_private_pem": stack.jwt_private_pem, "jwt_public_pem": stack.jwt_public_pem,
               **{k.lower(): v for k, v in stack.service_env("x", "x").items() if k in ("PII_KEY", "PII_INDEX_KEY", "RECEIPT_KEY")}}
    ports = {"dispatch": free_port(), "gateway": free_port()}
    dead = f"http://127.0.0.1:{free_port()}"
    urls = {"registry": dead, "intel": dead, "rewards": dead, "dispatch": f"http://127.0.0.1:{ports['dispatch']}"}
    log_dir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    procs = []
    gateway_db = ""
    for name, factory in (("dispatch", "dispatch.main:create_app"), ("gateway", "gateway.main:create_app")):
        db = await stack.create_database(f"bench_gw_{name}")
        gateway_db = db if name == "gateway" else gateway_db
        env = service_env(name, port=ports[name], database_url=db, bootstrap_servers=stack.bootstrap_servers, secrets=secrets,
                          service_urls={k: v for k, v in urls.items() if k != name}, topic_prefix=prefix,
                          extra={"LOG_LEVEL": "WARNING", "RATE_IP_PER_MIN": "10000000", "RATE_ACCOUNT_PER_MIN": "10000000"})
        procs.append(ServiceProcess(ServiceDef(name, factory, 0), port=ports[name], env=env, log_dir=log_dir))
    for p in procs:
        p.start()
    conns: list[Connection] = []
    try:
        for p in procs:
            await asyncio.to_thread(p.wait_healthy, 120, ready=True)
        engine = make_engine(gateway_db, pool_size=1)
        pair = await open_session(sessions=make_session_factory(engine), policy=TokenPolicy(stack.signer()),
                                  subject="bench-volunteer", role=Role.VOLUNTEER, volunteer_id="bench-volunteer")
        await engine.dispose()
        request = (f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {pair.access_token}\r\n"
                   f"Accept: application/json\r\n\r\n").encode()
        conns = [await Connection(ports["gateway"], request).open() for _ in range(64)]
        assert await conns[0].get() == 200, "the read must succeed before it is measured"
        await closed_loop(conns[:32], 2.0)  # warm-up: pools, caches
        dispatch_pid, gateway_pid = procs[0].process.pid, procs[1].process.pid
        cpu_before = process_cpu_seconds(gateway_pid), process_cpu_seconds(dispatch_pid)
        ok, errors, elapsed = await closed_loop(conns[:32], 8.0)
        cpu_used = process_cpu_seconds(gateway_pid) - cpu_before[0]
        dispatch_cpu_used = process_cpu_seconds(dispatch_pid) - cpu_before[1]
        direct_request = (f"GET /v1/assignments/mine HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          f"Authorization: Bearer {pair.access_token}\r\nAccept: application/json\r\n\r\n").encode()
        direct = [await Connection(ports["dispatch"], direct_request).open() for _ in range(32)]
        try:
            direct_cpu_before = process_cpu_seconds(dispatch_pid)
            direct_ok, direct_errors, direct_elapsed = await closed_loop(direct, 8.0)
            direct_cpu_used = process_cpu_seconds(dispatch_pid) - direct_cpu_before
        finally:
            for c in direct:
                c.close()
        await asyncio.sleep(1.0)
        latencies, open_errors = await open_loop(conns, 500, 6.0)
        print(f"   gateway bench: load average {os.getloadavg()[0]:.2f} (1 min) at the end", flush=True)
        return {
            "gateway_read_rps": round(ok / elapsed, 1),
            "gateway_cpu_ms_per_read": round(cpu_used * 1000 / max(ok, 1), 3),
            "dispatch_cpu_ms_per_read": round(dispatch_cpu_used * 1000 / max(ok, 1), 3),
            "dispatch_direct_cpu_ms_per_read": round(direct_cpu_used * 1000 / max(direct_ok, 1), 3),
            "gateway_read_errors": float(errors + open_errors + direct_errors),
            "dispatch_direct_read_rps": round(direct_ok / direct_elapsed, 1),
            "gateway_read_p50_ms": round(statistics.median(latencies), 2),
            "gateway_read_p99_ms": round(percentile(latencies, 0.99), 2),
        }
    finally:
        for c in conns:
            c.close()
        for p in procs:
            p.stop()
