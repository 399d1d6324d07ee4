"""Rules of the "1+x" org hierarchy and materialized paths. Pure."""

from __future__ import annotations

# Which kind of unit may sit under which: county → town / industry branch → village/community station.
ALLOWED_PARENTS: dict[str, frozenset[str]] = {
    "county": frozenset(),
    "town": frozenset({"county"}),
    "branch": frozenset({"county"}),
    "station": frozenset({"town", "branch"}),
}


def child_path(parent_path: str | None, unit_id: str) -> str:
    """The path of a unit under `parent_path` (the root's path is `/<id>`)."""
    return f"{parent_path or ''}/{unit_id}"


def ids_of(path: str) -> list[str]:
    """The ids along a path, root first."""
    return [part for part in path.split("/") if part]


def depth_of(path: str) -> int:
    """0 for the root, 1 for its children, …"""
    return len(ids_of(path)) - 1


def parent_allowed(kind: str, parent_kind: str | None) -> bool:
    """True when a unit of `kind` may hang under a unit of `parent_kind` (None = no parent)."""
    allowed = ALLOWED_PARENTS[kind]
    return parent_kind is None if not allowed else parent_kind in allowed
