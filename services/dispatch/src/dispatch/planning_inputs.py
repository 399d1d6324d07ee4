"""Turn stored volunteer states and posts into the planner's inputs (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from dispatch.solver import Post, Volunteer


@lru_cache(maxsize=2048)
def minutes_of(hhmm: str) -> int:
    """Minutes after midnight of an `HH:MM` time (`24:00` is the end of the day)."""
    hours, _, minutes = hhmm.partition(":")
    return int(hours) * 60 + int(minutes or 0)


def _expiry(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


@lru_cache(maxsize=4096)
def reliability(accepted: int = 0, declined: int = 0, expired: int = 0, shows: int = 0, no_shows: int = 0) -> float:
    """Expected chance a volunteer accepts and shows up, from their answered offers and attendance (smoothed to a prior)."""
    accept_rate = (accepted + 4 * 0.85) / (accepted + declined + expired + 4)
    show_rate = (shows + 4 * 0.95) / (shows + no_shows + 4)
    return round(accept_rate * show_rate, 4)


def reliability_of(record: Mapping[str, Any] | None) -> float:
    """`reliability` of a stored volunteer record (the prior when there is none)."""
    if not record:
        return reliability()
    return reliability(record["accepted"] or 0, record["declined"] or 0, record["expired"] or 0, record["shows"] or 0, record["no_shows"] or 0)


def volunteer_from_state(
    state: Mapping[str, Any],
    *,
    busy: Iterable[tuple[datetime, datetime]] = (),
    load: float = 0.0,
    reliability: float = 0.8,
) -> Volunteer:
    """A planner volunteer from a stored (or published) volunteer state."""
    return Volunteer(
        id=str(state["volunteer_id"]),
        lat=state["lat"],
        lon=state["lon"],
        star=int(state["star"] or 1),
        core=bool(state["core"]),
        active=state["status"] == "active",  # behind on training keeps ordinary duties (see specialised_eligible)
        specialised_eligible=bool(state["specialised_eligible"]),
        recruitment_mode=state["recruitment_mode"] or "long_term",
        skills=frozenset(state["skills"] or ()),
        teams=frozenset(state["teams"] or ()),
        certificates=tuple((c["code"], _expiry(c.get("expires_on"))) for c in (state["certificates"] or ())),
        availability=tuple(
            (int(w["weekday"]), minutes_of(w["start"]), minutes_of(w["end"])) for w in (state["availability"] or ())
        ),
        busy=tuple(busy),
        load=load,
        reliability=reliability,
    )


def post_for_planner(row: Mapping[str, Any]) -> Post:
    """A planner post from a stored post row."""
    return Post(
        id=str(row["id"]),
        lat=row["lat"],
        lon=row["lon"],
        shift_start=row["shift_start"],
        shift_end=row["shift_end"],
        headcount=int(row["headcount"]),
        required_skills=frozenset(row["required_skills"] or ()),
        required_teams=frozenset(row["required_teams"] or ()),
        required_certificates=frozenset(row["required_certificates"] or ()),
        min_star=int(row["min_star"]),
        core_only=bool(row["core_only"]),
        priority=int(row["priority"]),
        max_distance_km=row.get("max_distance_km"),
    )
