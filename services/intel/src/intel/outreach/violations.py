"""Traffic-violation lookup (违章查询) through an adapter to the police traffic system; the contract is in docs/api.md."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Protocol

import httpx
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from shouwang_shared.errors import AppError


class Violation(BaseModel):
    """One traffic violation as the police system reports it (bounded; unknown fields dropped)."""

    occurred_at: datetime
    place: str = Field(max_length=200)
    behaviour: str = Field(max_length=200, description="违法行为")
    points: int = Field(ge=0, le=12)
    fine_yuan: int = Field(ge=0, le=100_000)
    handled: bool


VIOLATIONS = TypeAdapter(list[Violation])


class ViolationSystemUnavailable(AppError):
    """The police traffic system did not answer usably."""

    def __init__(self, message: str = "违章查询暂不可用，请稍后再试") -> None:
        super().__init__(message, code="violation_lookup_unavailable", status_code=503)


class ViolationLookup(Protocol):
    """What the platform needs of the police traffic system."""

    async def lookup(self, *, plate: str, vin_last6: str) -> list[Violation]:
        """The vehicle's violations; an empty list when the plate and VIN do not match a vehicle."""


class FakeViolationSystem:
    """A stand-in for development and tests: a plate's violations follow from a hash of plate and VIN, and the plate
    京A00000 never matches."""

    async def lookup(self, *, plate: str, vin_last6: str) -> list[Violation]:
        """Zero to two made-up violations, the same on every call."""
        if plate.endswith("00000"):
            return []
        seed = hashlib.sha256(f"{plate}|{vin_last6}".encode()).digest()
        base = datetime(2026, 1, 1, tzinfo=UTC)
        return [
            Violation(occurred_at=base + timedelta(days=seed[i] + 1, hours=seed[i + 3] % 24), place="县城人民路与解放路交叉口",
                      behaviour="机动车不按交通信号灯规定通行" if seed[i] % 2 else "机动车违反规定停放", points=6 if seed[i] % 2 else 0,
                      fine_yuan=200 if seed[i] % 2 else 100, handled=bool(seed[i + 5] % 2))
            for i in range(seed[0] % 3)
        ]


class HttpViolationSystem:
    """The police traffic system over HTTP: `GET {base}/violations?plate=&vin6=` answers a JSON list of violations."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    async def lookup(self, *, plate: str, vin_last6: str) -> list[Violation]:
        """Ask the police system; anything but a 200 with a readable list is 'unavailable'."""
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                answer = await client.get(f"{self.base_url}/violations", params={"plate": plate, "vin6": vin_last6})
        except httpx.HTTPError as exc:
            raise ViolationSystemUnavailable() from exc
        if answer.status_code == 404:
            return []
        if answer.status_code != 200 or len(answer.content) > 256 * 1024:
            raise ViolationSystemUnavailable()
        try:
            return VIOLATIONS.validate_json(answer.content)[:200]
        except ValidationError as exc:
            raise ViolationSystemUnavailable() from exc


def violation_system(setting: str) -> ViolationLookup | None:
    """The adapter a setting names: `fake`, an http(s) base URL, or '' (not configured)."""
    if setting == "fake":
        return FakeViolationSystem()
    if setting.startswith(("http://", "https://")):
        return HttpViolationSystem(setting)
    return None
