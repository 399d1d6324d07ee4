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
from pathlib import Path

from shouwang_dev.stack.infra import free_port
from shouwang_dev.stack.services import ServiceDef, ServiceProcess, service_env
from shouwang_dev.testing import TestStack
from shouwang_shared.auth import Role
from shouwang_shared.db import make_engine, make_session_factory

from bench.httpload import Connection, build_request, closed_loop, open_connections, open_loop
from bench.stats import cpu_steadiness, percentile, process_cpu_seconds
from gateway.accounts import TokenPolicy, open_session

PATH = "/api/v1/assignments/mine"


async def run(stack: TestStack) -> dict[str, float]:
    """Start dispatch and the gateway, then measure authenticated reads through the gateway."""
    prefix = stack.new_prefix()
    await stack.ensure_topics(prefix)
    secrets = {"jwt_kid": stack.jwt_kid, "jwt_private_pem": stack.jwt_private_pem, "jwt_public_pem": stack.jwt_public_pem,
               "keys": stack.service_keys}
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
        request = build_request("GET", PATH, headers={"Authorization": f"Bearer {pair.access_token}"})
        conns = await open_connections(ports["gateway"], 64)
        assert (await conns[0].send(request))[0] == 200, "the read must succeed before it is measured"
        await closed_loop(conns[:32], request, 2.0)  # warm-up: pools, caches
        dispatch_pid, gateway_pid = procs[0].process.pid, procs[1].process.pid
        cpu_before = process_cpu_seconds(gateway_pid), process_cpu_seconds(dispatch_pid)
        ok, errors, elapsed = await closed_loop(conns[:32], request, 8.0)
        cpu_used = process_cpu_seconds(gateway_pid) - cpu_before[0]
        dispatch_cpu_used = process_cpu_seconds(dispatch_pid) - cpu_before[1]
        direct_request = build_request("GET", "/v1/assignments/mine", headers={"Authorization": f"Bearer {pair.access_token}"})
        direct = await open_connections(ports["dispatch"], 32)
        try:
            direct_cpu_before = process_cpu_seconds(dispatch_pid)
            direct_ok, direct_errors, direct_elapsed = await closed_loop(direct, direct_request, 8.0)
            direct_cpu_used = process_cpu_seconds(dispatch_pid) - direct_cpu_before
        finally:
            for c in direct:
                c.close()
        steadiness = await cpu_steadiness(3.0, prefix="gateway_machine")  # the host's CPU pauses just before, as context for the p99
        await asyncio.sleep(1.0)
        latencies, answers, _ = await open_loop(conns, [request] * 3000, 500)
        open_errors = sum(1 for status, _ in answers if status != 200)
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
            **steadiness,
        }
    finally:
        for c in conns:
            c.close()
        for p in procs:
            p.stop()
