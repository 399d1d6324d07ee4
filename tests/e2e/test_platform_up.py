"""The five services run as separate processes and report healthy and ready."""

from __future__ import annotations

import httpx


async def test_every_service_is_healthy_and_ready(platform):
    async with httpx.AsyncClient(timeout=10) as client:
        for name, svc in platform.services.items():
            health = await client.get(svc.url + "/healthz")
            ready = await client.get(svc.url + "/readyz")
            assert health.status_code == 200, name
            assert ready.status_code == 200 and ready.json()["ready"] is True, (name, ready.text)
            metrics = await client.get(svc.url + "/metrics")
            assert "shouwang_http_request_seconds" in metrics.text
