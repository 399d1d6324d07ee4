"""Who may see and decide what in rewards: staff roles with org scope, volunteers only their own accounts."""

from __future__ import annotations

from shouwang_shared.auth import Principal, Role
from shouwang_shared.errors import Forbidden, NotFound

STAFF_ROLES = (Role.GRID_WORKER, Role.STATION_ADMIN, Role.TOWN_ADMIN, Role.COUNTY_ADMIN, Role.OPERATOR)
DESK_ROLES = (Role.STATION_ADMIN, Role.TOWN_ADMIN, Role.COUNTY_ADMIN, Role.OPERATOR)  # hand over / decline redemptions
RULE_ADMINS = (Role.COUNTY_ADMIN, Role.OPERATOR)
COMMENDERS = (Role.TOWN_ADMIN, Role.COUNTY_ADMIN, Role.OPERATOR)


def volunteer_id_of(principal: Principal) -> str:
    """The caller's volunteer id; 403 naming `vid` when the token has none."""
    if not principal.volunteer_id:
        raise Forbidden("令牌缺少志愿者编号", field="vid")
    return principal.volunteer_id


def ensure_covers_path(principal: Principal, org_path: str) -> None:
    """403 naming `org_path` unless the principal's scope covers it (a county admin's empty path is the whole county)."""
    if principal.role != Role.OPERATOR and not principal.covers(org_path or "/"):
        if not (org_path == "" and principal.role == Role.COUNTY_ADMIN):
            raise Forbidden("超出您的管辖范围", field="org_path")


def listing_path(principal: Principal, org_path: str | None) -> str:
    """The org path a staff list is filtered by: the one asked for (403 outside the scope), else the caller's own scope."""
    if org_path is None or org_path == "":
        return "" if principal.role in (Role.OPERATOR, Role.SERVICE) else principal.scope_path
    if not principal.covers(org_path):
        raise Forbidden("超出您的管辖范围", field="org_path")
    return org_path


def covers_volunteer(principal: Principal, org_path: str | None) -> bool:
    """True when the principal's scope covers a volunteer's org path (operator and service see all, unknown paths too)."""
    return principal.role in (Role.OPERATOR, Role.SERVICE) or (org_path is not None and principal.covers(org_path))


def ensure_covers_volunteer(principal: Principal, org_path: str | None) -> None:
    """404 naming `volunteer_id` for a volunteer rewards does not know, 403 outside the scope (operator and service see all)."""
    if principal.role in (Role.OPERATOR, Role.SERVICE):
        return
    if org_path is None:
        raise NotFound("没有该志愿者的积分记录", field="volunteer_id")
    if not principal.covers(org_path):
        raise Forbidden("该志愿者不在您的管辖范围内", field="volunteer_id")
