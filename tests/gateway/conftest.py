"""Gateway fixtures: the real platform (five service processes) plus a second, strictly limited gateway."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shouwang_dev.stack.infra import free_port
from shouwang_dev.stack.platform import Platform, start_platform
from shouwang_dev.stack.services import ServiceDef, ServiceProcess
from shouwang_dev.testing import TestStack
from shouwang_shared.auth import Role, generate_keypair
from shouwang_shared.db import make_engine, make_session_factory
from shouwang_shared.kafka import make_producer

from gateway.accounts import TokenPolicy, open_session

GATEWAY = ServiceDef("gateway", "gateway.main:create_app", 0)
UNLIMITED = {"RATE_IP_PER_MIN": "1000000", "RATE_ACCOUNT_PER_MIN": "1000000", "RATE_ANONYMOUS_WRITE_PER_MIN": "1000000",
             "RATE_LOGIN_PER_MIN": "30"}  # logins stay limited: they cost the registry an argon2 hash each


@pytest.fixture(scope="session")
async def platform(stack: TestStack) -> AsyncIterator[Platform]:
    """All five services as processes on the session's PostgreSQL and Kafka; the gateway without rate limits."""
    started = await start_platform(stack, extra_env={"gateway": {**UNLIMITED, "HOME_BUDGET_S": "1.5"}})
    yield started
    started.stop()


@dataclass
class Logins:
    """Opens sessions in a gateway's database as a successful login would, and hands out the tokens."""

    sessions: object
    policy: TokenPolicy

    async def login(self, role: Role | str, *, scope_path: str = "/county/town-1", volunteer_id: str | None = None,
                    sub: str | None = None):
        """A token pair for a fresh session of `role` (volunteers get a volunteer id and no scope)."""
        role = Role(role)
        if role == Role.VOLUNTEER:
            volunteer_id = volunteer_id or f"vol-{free_port()}"
            scope_path = ""
        return await open_session(
            sessions=self.sessions, policy=self.policy, subject=sub or volunteer_id or f"staff-{role}-{free_port()}",
            role=role, scope_path=scope_path, volunteer_id=volunteer_id, display_name="测试用户",
        )

    async def token(self, role: Role | str, **kwargs) -> str:
        """Just the access token of `login`."""
        return (await self.login(role, **kwargs)).access_token


@pytest.fixture(scope="session")
async def logins(platform: Platform, stack: TestStack) -> AsyncIterator[Logins]:
    """Sessions of the platform gateway."""
    engine = make_engine(platform.database_urls["gateway"], pool_size=2)
    yield Logins(make_session_factory(engine), TokenPolicy(stack.signer()))
    await engine.dispose()


@dataclass
class StrictGateway:
    """A second gateway process with tight limits, a dead rewards service and a rotated signing key."""

    url: str
    process: ServiceProcess
    logins: Logins
    old_key_logins: Logins

    def client(self, ip: str, token: str | None = None) -> httpx.AsyncClient:
        """A client that appears to come from `ip` (this gateway trusts X-Forwarded-For)."""
        headers = {"X-Forwarded-For": ip}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


STRICT_LIMITS = {"RATE_IP_PER_MIN": "40", "RATE_ACCOUNT_PER_MIN": "20", "RATE_ANONYMOUS_WRITE_PER_MIN": "5",
                 "RATE_LOGIN_PER_MIN": "3", "MAX_BODY_BYTES": "2048", "TRUSTED_PROXY_HOPS": "1"}


@pytest.fixture(scope="session")
async def strict_gateway(platform: Platform, stack: TestStack) -> AsyncIterator[StrictGateway]:
    """The strict gateway: shares the platform gateway's database, runs no consumer, signs with a new key."""
    from shouwang_shared.auth import TokenSigner

    new_private, new_public = generate_keypair()
    port = free_port()
    env = dict(platform.services["gateway"].env)
    env.update(STRICT_LIMITS)
    env.update({
        "HTTP_PORT": str(port), "RUN_CONSUMERS": "0", "REWARDS_URL": f"http://127.0.0.1:{free_port()}",
        "BREAKER_FAILURE_THRESHOLD": "3", "BREAKER_RESET_TIMEOUT_S": "30",
        "JWT_PRIVATE_KEY": new_private, "JWT_ACTIVE_KID": "key-2",
        "JWT_PUBLIC_KEYS": json.dumps({stack.jwt_kid: stack.jwt_public_pem, "key-2": new_public}),
    })
    process = await _start_gateway(env)
    engine = make_engine(platform.database_urls["gateway"], pool_size=2)
    sessions = make_session_factory(engine)
    new_signer = TokenSigner(new_private, "key-2", issuer="shouwang", audience="shouwang")
    yield StrictGateway(process.url, process, Logins(sessions, TokenPolicy(new_signer)), Logins(sessions, TokenPolicy(stack.signer())))
    process.stop()
    await engine.dispose()


async def _start_gateway(env: dict[str, str]) -> ServiceProcess:
    """A gateway process with `env` (its HTTP_PORT included), ready."""
    process = ServiceProcess(GATEWAY, port=int(env["HTTP_PORT"]), env=env, log_dir=Path(tempfile.mkdtemp(prefix="gw-strict-")))
    process.start()
    await asyncio.to_thread(process.wait_healthy, 60, ready=True)
    return process


@pytest.fixture(scope="session")
async def strict_twin(strict_gateway: StrictGateway) -> AsyncIterator[StrictGateway]:
    """A second replica of the strict gateway: the same settings and database, another process."""
    port = free_port()
    process = await _start_gateway({**strict_gateway.process.env, "HTTP_PORT": str(port)})
    yield StrictGateway(process.url, process, strict_gateway.logins, strict_gateway.old_key_logins)
    process.stop()


@dataclass
class Ingress:
    """A reverse proxy in front of the strict gateway that appends the peer it saw to X-Forwarded-For, as the
    Kubernetes ingress does; clients reach it from their own loopback address (127.0.0.x)."""

    url: str

    def client(self, source_ip: str, headers: dict | None = None) -> httpx.AsyncClient:
        """A client whose connections come from `source_ip`."""
        transport = httpx.AsyncHTTPTransport(local_address=source_ip)
        return httpx.AsyncClient(base_url=self.url, transport=transport, headers=headers or {}, timeout=30)


@pytest.fixture(scope="session")
async def ingress(strict_gateway: StrictGateway) -> AsyncIterator[Ingress]:
    """The proxy, on a free port of this process's event loop."""
    import aiohttp
    from aiohttp import web

    upstream = aiohttp.ClientSession(base_url=strict_gateway.url)

    async def forward(request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length", "x-forwarded-for")}
        seen = request.headers.getall("X-Forwarded-For", [])
        headers["X-Forwarded-For"] = ", ".join([*seen, request.remote])
        async with upstream.request(request.method, request.rel_url, headers=headers, data=await request.read()) as resp:
            body = await resp.read()
            kept = {k: v for k, v in resp.headers.items() if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")}
            return web.Response(status=resp.status, body=body, headers=kept)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield Ingress(f"http://127.0.0.1:{port}")
    await runner.cleanup()
    await upstream.close()


@pytest.fixture(scope="session")
async def county(platform, stack):
    """A county, a town and a station created through the gateway by an operator."""
    operator = {"Authorization": f"Bearer {stack.token(Role.OPERATOR, sub='ops')}"}
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30, headers=operator) as client:
        made = {}
        parent = None
        for kind, name in (("county", "平安县志愿者联盟"), ("town", "城关镇联盟"), ("station", "东门社区站")):
            body = {"name": name, "kind": kind, "lat": 30.2, "lon": 120.2, **({"parent_id": parent["id"]} if parent else {})}
            resp = await client.post("/api/v1/org-units", json=body)
            assert resp.status_code == 201, resp.text
            made[kind] = parent = resp.json()
    return made


@pytest.fixture
async def producer(stack):
    """A Kafka producer on the test stack (events as another service would publish them)."""
    p = make_producer(stack.bootstrap_servers)
    await p.start()
    yield p
    await p.stop()
