"""The whole platform as separate processes (five uvicorn services) on a real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shouwang_dev.stack.infra import free_port
from shouwang_dev.stack.services import SERVICES, ServiceProcess, service_env
from shouwang_dev.testing import TestStack

# Every simulated phone of a test or benchmark comes from 127.0.0.1, so the per-IP and anonymous limits that
# protect a real deployment would throttle the whole population; the limits themselves are tested in tests/gateway.
ONE_ADDRESS_GATEWAY_ENV = {
    "RATE_IP_PER_MIN": "1000000", "RATE_ACCOUNT_PER_MIN": "1000000",
    "RATE_ANONYMOUS_WRITE_PER_MIN": "1000000", "RATE_LOGIN_PER_MIN": "1000000",
}


@dataclass
class Platform:
    """Five service processes wired together, and what a test needs to reach them."""

    stack: TestStack
    prefix: str
    secrets: dict
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    database_urls: dict[str, str] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return self.services["gateway"].url

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        """An HTTP client for the gateway's public API, as a phone or the console would use it."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.gateway_url, headers=headers, timeout=30)

    def restart(self, name: str, *, kill: bool = True) -> None:
        """Kill -9 (or stop) a service and start it again."""
        svc = self.services[name]
        svc.kill() if kill else svc.stop()
        svc.start()

    def wait_ready(self, timeout_s: float = 90) -> None:
        """Wait until every service answers /readyz."""
        for svc in self.services.values():
            svc.wait_healthy(timeout_s, ready=True)

    def stop(self) -> None:
        """Stop every service at once (they shut down in parallel: one after another took a minute)."""
        for svc in self.services.values():
            svc.terminate()
        for svc in self.services.values():
            svc.wait_or_kill()


async def start_platform(stack: TestStack, *, log_dir: Path | None = None, extra_env: dict[str, dict[str, str]] | None = None,
                         prefix: str | None = None) -> Platform:
    """Start the five services as processes against isolated databases and topics (`prefix`, else a new one) of `stack`."""
    prefix = prefix or stack.new_prefix()
    await stack.ensure_topics(prefix)
    secrets = {
        "jwt_kid": stack.jwt_kid, "jwt_private_pem": stack.jwt_private_pem, "jwt_public_pem": stack.jwt_public_pem,
        "keys": stack.service_keys,
    }
    platform = Platform(stack=stack, prefix=prefix, secrets=secrets)
    ports = {s.name: free_port() for s in SERVICES}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="shouwang-e2e-"))
    for definition in SERVICES:
        db_url = await stack.create_database(f"e2e_{prefix.strip('.')}_{definition.name}")
        platform.database_urls[definition.name] = db_url
        env = service_env(
            definition.name, port=ports[definition.name], database_url=db_url, bootstrap_servers=stack.bootstrap_servers,
            secrets=secrets, service_urls={k: v for k, v in urls.items() if k != definition.name}, topic_prefix=prefix,
            extra={"DEV_MODE": "1", "OUTBOX_POLL_INTERVAL_S": "0.02", "LOG_LEVEL": "INFO",
                   **(extra_env or {}).get(definition.name, {})},
        )
        platform.services[definition.name] = ServiceProcess(definition, port=ports[definition.name], env=env, log_dir=log_dir)
    for svc in platform.services.values():
        svc.start()
    try:
        await asyncio.to_thread(platform.wait_ready, 180)
    except BaseException:
        platform.stop()  # never leave service processes behind
        raise
    return platform
