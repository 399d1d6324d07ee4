"""Object-level access rules: which principals may see or change what, by role and org scope."""

from __future__ import annotations

from typing import Any

from shouwang_shared.auth import Principal, Role
from shouwang_shared.errors import Forbidden, NotFound

ADMINS = (Role.COUNTY_ADMIN, Role.TOWN_ADMIN, Role.STATION_ADMIN, Role.OPERATOR)
VOLUNTEER_READERS = (*ADMINS, Role.GRID_WORKER, Role.SERVICE)
VOLUNTEER_WRITERS = ADMINS
INVITE_ISSUERS = (Role.GRID_WORKER, Role.STATION_ADMIN, Role.TOWN_ADMIN, Role.COUNTY_ADMIN, Role.OPERATOR)
REVEALERS = (Role.COUNTY_ADMIN, Role.OPERATOR)
ORG_READERS = (*ADMINS, Role.GRID_WORKER, Role.ANALYST, Role.POLICE_LIAISON, Role.SERVICE)

# Which staff roles an admin of a given role may create (always inside their own scope).
GRANTABLE_ROLES: dict[Role, frozenset[str]] = {
    Role.OPERATOR: frozenset(r.value for r in Role) - {"volunteer", "service"},
    Role.COUNTY_ADMIN: frozenset(r.value for r in Role) - {"volunteer", "service", "operator"},
    Role.TOWN_ADMIN: frozenset({"town_admin", "station_admin", "grid_worker"}),
    Role.STATION_ADMIN: frozenset({"grid_worker"}),
}


def ensure_covers(principal: Principal, org_path: str | None, *, field: str) -> None:
    """Refuse (403) when the object under `org_path` lies outside the principal's org scope."""
    if not principal.covers(org_path):
        raise Forbidden("该对象不在您的管理范围内", field=field, code="out_of_scope")


def found_in_scope(principal: Principal, row: Any, *, path_column: str, field: str, missing: str) -> Any:
    """The row when there is one (404 with the message `missing` otherwise) whose `path_column` lies in the principal's
    org scope (403 otherwise)."""
    if row is None:
        raise NotFound(missing, field=field)
    ensure_covers(principal, row[path_column], field=field)
    return row
