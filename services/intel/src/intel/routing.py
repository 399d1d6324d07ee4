"""Which org unit covers a place: the nearest station (else town) within reach. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from intel.cases.clustering import haversine_km

KIND_PREFERENCE = ("station", "town", "branch", "county")


@dataclass(frozen=True)
class UnitPlace:
    """An org unit with a location."""

    id: str
    kind: str
    path: str
    lat: float
    lon: float


def nearest_unit(units: Sequence[UnitPlace], lat: float, lon: float, *, reach_km: float = 15.0) -> UnitPlace | None:
    """The closest unit of the most local kind that lies within `reach_km` of the place."""
    for kind in KIND_PREFERENCE:
        near = [(haversine_km(lat, lon, u.lat, u.lon), u) for u in units if u.kind == kind]
        near = [(d, u) for d, u in near if d <= reach_km]
        if near:
            return min(near, key=lambda du: du[0])[1]
    return None
