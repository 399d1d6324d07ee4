"""Who may do what in dispatch: staff roles with org scope, volunteers only their own assignments."""

from __future__ import annotations

from shouwang_shared.auth import Principal, Role
from shouwang_shared.errors import Forbidden

STAFF_ROLES = (Role.COUNTY_ADMIN, Role.TOWN_ADMIN, Role.STATION_ADMIN, Role.OPERATOR)


def ensure_staff_covers(principal: Principal, org_path: str | None, *, field: str = "org_path") -> None:
    """403 unless the principal is dispatch staff whose org scope covers `org_path`."""
    if principal.role not in STAFF_ROLES:
        raise Forbidden(f"角色 {principal.role} 无权管理行动 (role may not manage operations)", code="role_forbidden")
    if not principal.covers(org_path):
        raise Forbidden("该组织不在您的管辖范围内 (outside your org scope)", field=field, code="out_of_scope")


def volunteer_id_of(principal: Principal) -> str:
    """The caller's volunteer id; 403 for anyone who is not a volunteer."""
    if principal.role != Role.VOLUNTEER or not principal.volunteer_id:
        raise Forbidden("仅志愿者本人可操作 (only the volunteer may do this)", code="volunteer_only")
    return principal.volunteer_id
