"""The local read model of org units (from the registry) and routing a place to the unit covering it."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shouwang_shared.contracts.registry import OrgUnitUpserted

from intel.routing import UnitPlace, nearest_unit


async def upsert_org_unit(session: AsyncSession, *, unit: OrgUnitUpserted) -> None:
    """Record the latest state of an org unit (inside the caller's transaction)."""
    await session.execute(
        text(
            "INSERT INTO org_units (id, name, kind, path, lat, lon) VALUES (:id, :name, :kind, :path, :lat, :lon)"
            " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind, path = EXCLUDED.path,"
            " lat = EXCLUDED.lat, lon = EXCLUDED.lon"
        ),
        {"id": unit.org_unit_id, "name": unit.name, "kind": unit.kind, "path": unit.path, "lat": unit.lat, "lon": unit.lon},
    )


async def covering_unit(
    session: AsyncSession, *, lat: float | None, lon: float | None, fallback_path: str
) -> tuple[str | None, str, str]:
    """(org unit id, org path, how it was routed): the nearest unit, else the fallback path, else the county."""
    if lat is not None and lon is not None:
        rows = (
            await session.execute(
                text(
                    "SELECT id, kind, path, lat, lon FROM org_units WHERE lat IS NOT NULL AND lon IS NOT NULL"
                    " AND abs(lat - :lat) < 0.2 AND abs(lon - :lon) < 0.2"
                ),
                {"lat": lat, "lon": lon},
            )
        ).all()
        unit = nearest_unit([UnitPlace(r.id, r.kind, r.path, r.lat, r.lon) for r in rows], lat, lon)
        if unit is not None:
            return unit.id, unit.path, "nearest_unit"
    if not fallback_path:  # no configured default: the county at the root of the org tree, when known
        root = (await session.execute(text("SELECT id, path FROM org_units WHERE kind = 'county' ORDER BY path LIMIT 1"))).first()
        if root is not None:
            return root.id, root.path, "county"
    return None, fallback_path, "fallback"


async def area_names(session: AsyncSession) -> dict[str, str]:
    """Org path → name, for bulletin titles."""
    rows = (await session.execute(text("SELECT path, name FROM org_units"))).all()
    return {r.path: r.name for r in rows}
