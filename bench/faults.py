"""Fault injection on a private platform: kill -9 services, stop the broker, freeze the database."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from shouwang_dev.stack.platform import Platform
from shouwang_dev.testing import TestStack, consumer_positions


@dataclass
class FaultRecord:
    """One injected fault: what, when it ended, and how long the platform took to catch up."""

    kind: str
    target: str
    ended_at: float = 0.0
    recovery_s: float | None = None


@dataclass
class FaultInjector:
    """Injects faults into a platform whose PostgreSQL and Kafka this run owns (`stack.pg`, `stack.kafka`)."""

    stack: TestStack
    platform: Platform
    records: list[FaultRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.stack.pg is None or self.stack.kafka is None:
            raise RuntimeError("fault injection needs a stack whose PostgreSQL and Kafka it started itself")

    async def kill_service(self, name: str, down_s: float = 1.0) -> FaultRecord:
        """kill -9 a service process, leave it down a moment, start it again."""
        svc = self.platform.services[name]
        await asyncio.to_thread(svc.kill)
        await asyncio.sleep(down_s)
        svc.start()
        await asyncio.to_thread(svc.wait_healthy, 120)
        return self._ended("kill -9", name)

    async def restart_broker(self, down_s: float = 2.0) -> FaultRecord:
        """Stop the Kafka broker, leave it down, start it again on the same port and data."""
        kafka = self.stack.kafka
        await asyncio.to_thread(kafka.stop)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(kafka.start)
        return self._ended("broker restart", "kafka")

    async def pause_database(self, paused_s: float = 3.0) -> FaultRecord:
        """Freeze every PostgreSQL process (SIGSTOP) for a while, then let it go on."""
        pg = self.stack.pg
        await asyncio.to_thread(pg.pause)
        try:
            await asyncio.sleep(paused_s)
        finally:
            await asyncio.to_thread(pg.resume)
        return self._ended("database pause", "postgresql")

    def _ended(self, kind: str, target: str) -> FaultRecord:
        record = FaultRecord(kind=kind, target=target, ended_at=time.monotonic())
        self.records.append(record)
        return record

    async def wait_recovered(self, record: FaultRecord, *, timeout_s: float = 120) -> float:
        """Seconds from the fault's end until every service is ready and every consumer group has consumed all that
        was on its partitions when the fault ended (consumer lag back to 0 for the backlog the fault caused)."""
        deadline = time.monotonic() + timeout_s
        backlog: dict | None = None
        while time.monotonic() < deadline:
            try:
                if backlog is None:
                    _, backlog = await consumer_positions(self.stack.bootstrap_servers, self.platform.prefix)
                ready = all(await asyncio.gather(*(_ready(s.url) for s in self.platform.services.values())))
                if ready:
                    committed, _ = await consumer_positions(self.stack.bootstrap_servers, self.platform.prefix)
                    if all(committed.get(key, -1) >= end for key, end in backlog.items()):
                        record.recovery_s = time.monotonic() - record.ended_at
                        return record.recovery_s
            except Exception:  # noqa: BLE001 - still recovering (broker or services not back yet)
                pass
            await asyncio.sleep(0.25)
        record.recovery_s = float(timeout_s)
        return record.recovery_s


async def _ready(url: str) -> bool:
    import httpx

    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(url + "/readyz")).status_code == 200
    except httpx.HTTPError:
        return False
