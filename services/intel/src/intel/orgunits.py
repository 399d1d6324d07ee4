"""The local read model of org units (from the registry) and routing a place to the unit covering it."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shouwang_shared.contracts.registry import OrgUnitUpserted

from intel.routing import UnitPlace, nearest_unit

ORG_UNIT_ROWS = "SELECT id, kind, path, lat, lon FROM org_units ORDER BY path"  # what `OrgUnitDirectory.load` takes
_UPSERT_ORG_UNIT = text(
    "INSERT INTO org_units (id, name, kind, path, lat, lon) VALUES (:id, :name, :kind, :path, :lat, :lon)"
    " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind, path = EXCLUDED.path,"
    " lat = EXCLUDED.lat, lon = EXCLUDED.lon"
)
ROUTING_BOX_DEG = 0.2  # units farther than this in latitude or longitude are never the nearest within reach


@dataclass
class OrgUnitDirectory:
    """The org units of this database, kept in process and reloaded when older than `max_age_s` or changed here.

    It does no I/O: whoever uses it reloads a stale snapshot through its own connection (`fresh_directory` under a
    session; tip intake on its pooled connection, see `intake._routed_place`)."""

    max_age_s: float = 5.0
    min_reload_s: float = 0.5
    placed: list[UnitPlace] = field(default_factory=list)
    paths: frozenset[str] = frozenset()
    county: tuple[str, str] | None = None
    loaded_at: float | None = None

    def stale(self, path: str | None = None) -> bool:
        """True when the snapshot must be (re)loaded before use: older than `max_age_s`, or it does not know `path`
        and is older than `min_reload_s` (a unit the registry just added)."""
        if self.loaded_at is None or time.monotonic() - self.loaded_at > self.max_age_s:
            return True
        return bool(path) and path not in self.paths and time.monotonic() - self.loaded_at > self.min_reload_s

    def invalidate(self, *_: object) -> None:
        """Forget the snapshot (an org unit changed); the next use reloads it."""
        self.loaded_at = None

    def load(self, rows: Iterable[Sequence]) -> None:
        """Take a new snapshot from the rows of `ORG_UNIT_ROWS` (a county has a few hundred units)."""
        units = [tuple(r) for r in rows]
        self.placed = [UnitPlace(uid, kind, path, lat, lon) for uid, kind, path, lat, lon in units if lat is not None and lon is not None]
        self.paths = frozenset(path for _, _, path, _, _ in units)
        self.county = next(((uid, path) for uid, kind, path, _, _ in units if kind == "county"), None)
        self.loaded_at = time.monotonic()

    def knows(self, path: str) -> bool:
        """True when `path` is the path of an org unit."""
        return path in self.paths

    def covering(self, *, lat: float | None, lon: float | None, fallback_path: str) -> tuple[str | None, str, str]:
        """(org unit id, org path, how it was routed): the nearest unit, else the fallback path, else the county."""
        if lat is not None and lon is not None:
            near = [u for u in self.placed if abs(u.lat - lat) < ROUTING_BOX_DEG and abs(u.lon - lon) < ROUTING_BOX_DEG]
            unit = nearest_unit(near, lat, lon)
            if unit is not None:
                return unit.id, unit.path, "nearest_unit"
        if not fallback_path and self.county is not None:  # no configured default: the county at the root of the org tree
            return self.county[0], self.county[1], "county"
        return None, fallback_path, "fallback"


async def fresh_directory(session: AsyncSession, directory: OrgUnitDirectory) -> OrgUnitDirectory:
    """The directory, reloaded in the session's transaction first when its snapshot is stale."""
    if directory.stale():
        directory.load((await session.execute(text(ORG_UNIT_ROWS))).all())
    return directory


async def upsert_org_unit(session: AsyncSession, *, unit: OrgUnitUpserted, directory: OrgUnitDirectory | None = None) -> None:
    """Record the latest state of an org unit (inside the caller's transaction); the directory reloads after commit."""
    await session.execute(
        _UPSERT_ORG_UNIT,
        {"id": unit.org_unit_id, "name": unit.name, "kind": unit.kind, "path": unit.path, "lat": unit.lat, "lon": unit.lon},
    )
    if directory is not None:
        directory.invalidate()
        sa_event.listen(session.sync_session, "after_commit", directory.invalidate, once=True)


async def area_names(session: AsyncSession) -> dict[str, str]:
    """Org path → name, for bulletin titles."""
    rows = (await session.execute(text("SELECT path, name FROM org_units"))).all()
    return {r.path: r.name for r in rows}
