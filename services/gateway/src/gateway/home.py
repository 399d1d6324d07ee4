"""A volunteer's home screen gathered from three services within a time budget (partial when one is slow)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gateway.schemas import Home, HomePartPublic
from gateway.upstream import Upstreams, UpstreamTimeout, UpstreamUnavailable

OFFER_STATUSES = frozenset({"offered"})
SHIFT_STATUSES = frozenset({"accepted", "checked_in"})

SOURCES = {
    "profile": ("registry", "/v1/volunteers/me"),
    "assignments": ("dispatch", "/v1/assignments/mine"),
    "balances": ("rewards", "/v1/balances/me"),
}


def _items(data: Any) -> list[dict]:
    """The list inside a list response (bare list, or under `items`)."""
    if isinstance(data, dict):
        data = data.get("items", [])
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def _with_data(part: HomePartPublic, data: Any) -> HomePartPublic:
    return part.model_copy(update={"data": data}) if part.status == "ok" else part


def assemble_home(parts: dict[str, HomePartPublic], elapsed_ms: float) -> Home:
    """Shape the fetched parts into the home screen (pure)."""
    profile, assignments, balances = parts["profile"], parts["assignments"], parts["balances"]
    items = _items(assignments.data)
    offers = _with_data(assignments, [a for a in items if str(a.get("status")) in OFFER_STATUSES])
    shifts = _with_data(assignments, [a for a in items if str(a.get("status")) in SHIFT_STATUSES])
    if balances.status == "ok" and isinstance(balances.data, dict) and "star" in balances.data:
        star = balances.model_copy(update={"data": balances.data["star"]})
    elif profile.status == "ok" and isinstance(profile.data, dict) and "star" in profile.data:
        star = profile.model_copy(update={"data": profile.data["star"]})
    else:
        star = balances.model_copy(update={"data": None})
    home_parts = {"profile": profile, "offers": offers, "shifts": shifts, "points": balances, "star": star}
    return Home(**home_parts, complete=all(p.status == "ok" for p in parts.values()), elapsed_ms=round(elapsed_ms, 1))


async def _fetch(upstreams: Upstreams, service: str, path: str, authorization: str, budget_s: float) -> HomePartPublic:
    try:
        response = await upstreams.send(service, "GET", path, headers={"authorization": authorization}, timeout_s=budget_s)
    except UpstreamUnavailable:
        return HomePartPublic(status="unavailable", service=service)
    except UpstreamTimeout:
        return HomePartPublic(status="timeout", service=service)
    if response.status_code != 200:
        return HomePartPublic(status="error", service=service, http_status=response.status_code)
    return HomePartPublic(status="ok", service=service, data=response.json(), http_status=200)


async def gather_home(*, upstreams: Upstreams, authorization: str, budget_s: float) -> Home:
    """Ask the services in parallel with the caller's token; whatever misses `budget_s` is marked `timeout`."""
    started = time.perf_counter()
    tasks = {
        name: asyncio.create_task(_fetch(upstreams, service, path, authorization, budget_s))
        for name, (service, path) in SOURCES.items()
    }
    done, pending = await asyncio.wait(tasks.values(), timeout=budget_s)
    for task in pending:
        task.cancel()
    parts = {
        name: task.result() if task in done else HomePartPublic(status="timeout", service=SOURCES[name][0])
        for name, task in tasks.items()
    }
    return assemble_home(parts, (time.perf_counter() - started) * 1000)
