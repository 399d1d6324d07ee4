"""Who may see or change what in intel: roles per resource family, and the org scope of each object.

Outside the caller's scope an object does not exist for them: 404 naming the field, never 403, so nobody learns
that a case, dispute or bulletin is there (a tip's existence can point at an informant).
"""

from __future__ import annotations

from collections.abc import Iterable

from shouwang_shared.auth import Principal, Role
from shouwang_shared.errors import Forbidden, NotFound

CASE_ROLES = (Role.ANALYST, Role.COUNTY_ADMIN, Role.OPERATOR)
LIAISON_ROLES = (*CASE_ROLES, Role.POLICE_LIAISON)
COMMUNITY_ROLES = (Role.GRID_WORKER, Role.STATION_ADMIN, Role.TOWN_ADMIN, Role.COUNTY_ADMIN, Role.ANALYST, Role.OPERATOR)
BULLETIN_ROLES = (Role.ANALYST, Role.TOWN_ADMIN, Role.COUNTY_ADMIN, Role.OPERATOR)
ROSTER_EDITORS = (Role.TOWN_ADMIN, Role.COUNTY_ADMIN, Role.OPERATOR)
COLUMN_ADMINS = (Role.COUNTY_ADMIN, Role.OPERATOR)


def scope_clause(principal: Principal, column: str = "org_path") -> tuple[str, dict]:
    """SQL restricting rows to the principal's org scope, with its parameters."""
    if principal.role in (Role.OPERATOR, Role.SERVICE):
        return "TRUE", {}
    if not principal.scope_path:
        return "FALSE", {}
    scope = principal.scope_path.rstrip("/")
    return f"({column} = :scope OR {column} LIKE :scope_like)", {"scope": scope, "scope_like": scope + "/%"}


def ensure_in_scope(principal: Principal, org_path: str, *, field: str = "org_path") -> None:
    """404 naming `field` unless the principal's scope covers the org path the caller names."""
    if not principal.covers(org_path):
        raise NotFound("组织不在您的管辖范围内", field=field)


def found_in_scope(principal: Principal, row, *, field: str, message: str):
    """The row when it exists and lies in the principal's scope; otherwise 404 naming `field`."""
    if row is None or not principal.covers(row.org_path):
        raise NotFound(message, field=field)
    return row


def covers_all(principal: Principal, org_paths: Iterable[str]) -> bool:
    """Whether every org path (a bulletin's audience) lies in the principal's scope."""
    return all(principal.covers(p) for p in org_paths)


def reporting_volunteer(principal: Principal | None) -> str | None:
    """The volunteer id a tip is reported under; staff entering a hotline call report it anonymously."""
    if principal is None or principal.role != Role.VOLUNTEER:
        return None
    if not principal.volunteer_id:
        raise Forbidden("志愿者令牌缺少 vid", field="vid", code="missing_volunteer_id")
    return principal.volunteer_id
