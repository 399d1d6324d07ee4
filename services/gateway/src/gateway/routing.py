"""The route table of the public API: which service owns each resource and who may call it (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from shouwang_shared.auth import Principal, Role
from shouwang_shared.errors import Forbidden, Unauthorized

API_PREFIX = "/api/v1"
READ_METHODS = frozenset({"GET", "HEAD"})
# Anonymous reads limited per client IP (receipt code + secret guessing); intel sees no client address.
LOOKUP_LIMITED = frozenset({"receipts", "violations"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PROXIED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

V = Role.VOLUNTEER
GRID = Role.GRID_WORKER
STATION, TOWN, COUNTY = Role.STATION_ADMIN, Role.TOWN_ADMIN, Role.COUNTY_ADMIN
ANALYST, POLICE, OPERATOR = Role.ANALYST, Role.POLICE_LIAISON, Role.OPERATOR

STAFF = frozenset(Role) - {Role.VOLUNTEER, Role.SERVICE}
ADMINS = frozenset({STATION, TOWN, COUNTY, OPERATOR})
TOP = frozenset({COUNTY, OPERATOR})
EVERYONE = STAFF | {V}
NOBODY: frozenset[Role] = frozenset()
ROOT = frozenset({""})  # a route's public part is its family's root only (POST /tips, not /tips/...)


def roles(*items: Iterable[Role] | Role) -> frozenset[Role]:
    """A role set from roles and role sets."""
    out: set[Role] = set()
    for item in items:
        out |= {item} if isinstance(item, Role) else set(item)
    return frozenset(out)


@dataclass(frozen=True)
class Route:
    """A path family `/api/v1/<resource>/...` served by `service` at `/v1/<resource>/...`."""

    resource: str
    service: str
    read: frozenset[Role]
    write: frozenset[Role]
    public: frozenset[str] = frozenset()
    public_at: frozenset[str] | None = None  # the first subpath segments where `public` holds ("" = the family's root); None: all
    own: dict[str, frozenset[Role]] = field(default_factory=dict, hash=False)
    summary: str = ""

    def allowed_roles(self, method: str, subpath: str) -> frozenset[Role]:
        """Roles that may call `method` on `<resource>/<subpath>` (before the service's object checks)."""
        base = self.read if method in READ_METHODS else self.write
        first = subpath.split("/", 1)[0]
        return base | self.own.get(first, NOBODY)

    def is_public(self, method: str, subpath: str = "") -> bool:
        """True when anyone may call `method` on `<resource>/<subpath>` without a token (anonymous citizens)."""
        return method in self.public and (self.public_at is None or subpath.split("/", 1)[0] in self.public_at)


ROUTES: tuple[Route, ...] = (
    # registry
    Route("org-units", "registry", EVERYONE, TOP, summary="组织架构：县联盟、镇街联盟、行业分会、村社站点"),
    Route("grids", "registry", STAFF - {POLICE}, ADMINS, summary="网格与网格员"),
    Route("volunteers", "registry", roles(ADMINS, GRID), roles(ADMINS, GRID), own={"me": frozenset({V})},
          summary="志愿者（实名，证件号和手机号加密并脱敏）；志愿者本人用 /volunteers/me"),
    Route("teams", "registry", EVERYONE, ADMINS, summary="16 支专业队伍"),
    Route("invites", "registry", roles(ADMINS, GRID), roles(ADMINS, GRID), summary="扫码注册邀请"),
    Route("registrations", "registry", roles(ADMINS, GRID), roles(ADMINS, GRID), public=frozenset({"POST"}), public_at=ROOT,
          summary="扫码注册（公开提交，审核需工作人员）"),
    Route("training", "registry", EVERYONE, ADMINS, summary="培训场次与签到"),
    Route("staff", "registry", roles(TOWN, COUNTY, OPERATOR), roles(TOWN, COUNTY, OPERATOR), own={"me": STAFF},
          summary="工作人员账号与角色"),
    Route("cards", "registry", NOBODY, NOBODY, public=READ_METHODS, public_at=frozenset({"keys", "revocations"}),
          summary="志愿者证核验：签发公钥与吊销名单（公开，供离线核验缓存）；本人的证用 /volunteers/me/card"),
    Route("imports", "registry", roles(TOWN, COUNTY, OPERATOR), roles(TOWN, COUNTY, OPERATOR), summary="批量导入"),
    # dispatch
    Route("operations", "dispatch", ADMINS, ADMINS, summary="安保行动（计划与应急）；行动的邀请：按状态列出、批量取消、重新派发"),  # dispatch serves staff only
    Route("posts", "dispatch", roles(ADMINS, GRID, ANALYST), ADMINS, summary="岗位：地点、班次、人数、技能"),
    Route("assignments", "dispatch", roles(V, ADMINS, GRID), roles(V, ADMINS),
          summary="派遣任务：志愿者接受、拒绝、签到、签退（只能操作本人的任务）"),
    Route("fill-rate", "dispatch", roles(ADMINS, GRID, ANALYST), NOBODY, summary="到岗率"),
    Route("hours", "dispatch", ADMINS, ADMINS, summary="服务时长审核"),
    Route("projects", "dispatch", roles(ADMINS, GRID), ADMINS, summary="常态化服务项目：护学、关爱、普法/调解（排班规则、班次、报名确认）"),
    Route("shifts", "dispatch", roles(V), roles(V), summary="项目班次：志愿者查找附近班次、报名（单次或整个系列）、取消"),
    # intel
    Route("tips", "intel", roles(V, ANALYST, ADMINS), roles(ANALYST, ADMINS), public=frozenset({"POST"}), public_at=ROOT,
          summary="线索：志愿者实名或群众匿名提交；志愿者用 /tips/mine 查看本人线索"),
    Route("receipts", "intel", NOBODY, NOBODY, public=frozenset(READ_METHODS | WRITE_METHODS),
          summary="匿名线索回执（回执码 + 密钥头），查询进度和领取奖励"),
    Route("cases", "intel", roles(ANALYST, POLICE, ADMINS), roles(ANALYST, POLICE, TOWN, COUNTY, OPERATOR),
          summary="案件：线索聚类、去重、处置结果"),
    Route("triage", "intel", roles(ANALYST, ADMINS), roles(ANALYST, ADMINS), summary="研判队列"),
    Route("needs", "intel", roles(ANALYST, ADMINS, GRID), roles(ANALYST, ADMINS, GRID), public=frozenset({"POST"}), public_at=ROOT,
          summary="群众需求（公开提交）"),
    Route("disputes", "intel", roles(ANALYST, ADMINS, GRID), roles(ANALYST, ADMINS, GRID), summary="矛盾纠纷调解"),
    Route("bulletins", "intel", roles(ANALYST, ADMINS), roles(ANALYST, ADMINS), public=frozenset(READ_METHODS), public_at=ROOT,
          summary="平安信息发布（公开列表；草稿与发布需工作人员）"),
    Route("columns", "intel", EVERYONE, roles(ANALYST, TOWN, COUNTY, OPERATOR), public=frozenset(READ_METHODS),
          summary="信息栏目（公开只读：群众需求采集、平安法治播报、警务服务、违章查询等）"),
    Route("violations", "intel", EVERYONE, NOBODY, public=frozenset(READ_METHODS), summary="违章查询（号牌号码 + 车辆识别代号后六位）"),
    Route("duty-roster", "intel", roles(ANALYST, ADMINS), roles(TOWN, COUNTY, OPERATOR),
          summary="研判值班表：紧急案件推送给当班研判员，超时未认领逐级上报"),
    Route("liaison", "intel", roles(POLICE, ANALYST, OPERATOR), roles(POLICE, ANALYST, OPERATOR), summary="警务联络"),
    # rewards
    Route("ledger", "rewards", roles(V, ADMINS), TOP, summary="联盟银行流水（积分与服务时长），志愿者用 /ledger/mine"),
    Route("balances", "rewards", roles(V, ADMINS), NOBODY, summary="积分与时长余额，志愿者用 /balances/me"),
    Route("rules", "rewards", EVERYONE, TOP, summary="积分与星级规则（有版本）"),
    Route("stars", "rewards", EVERYONE, TOP, summary="星级评定"),
    Route("leaderboards", "rewards", EVERYONE, NOBODY, summary="排行榜"),
    Route("redemptions", "rewards", roles(V, ADMINS), roles(V, ADMINS), summary="积分兑换"),
    Route("benefits", "rewards", EVERYONE, TOP, summary="可兑换的权益"),
    Route("commendations", "rewards", EVERYONE, ADMINS, summary="表彰"),
    # reports
    Route("reports", "reports", roles(STATION, TOWN, COUNTY, ANALYST, OPERATOR), roles(OPERATOR),
          summary="统计报表（任意时段、任意组织；JSON 或 CSV）与行动总结"),
)

ROUTES_BY_RESOURCE: dict[str, Route] = {r.resource: r for r in ROUTES}
# Resources the gateway answers itself instead of forwarding: sign-in, and a volunteer's own feed, home, sync and push.
VOLUNTEER_OWN_RESOURCES = frozenset({"notifications", "me", "sync", "push"})
GATEWAY_RESOURCES = VOLUNTEER_OWN_RESOURCES | {"auth"}
SERVICES: tuple[str, ...] = ("registry", "dispatch", "intel", "rewards", "reports")


def resolve(resource: str) -> Route | None:
    """The route of a resource name, or None for an unknown resource."""
    return ROUTES_BY_RESOURCE.get(resource)


def authorize(route: Route, method: str, subpath: str, principal: Principal | None) -> None:
    """Coarse gate: raise Unauthorized without a needed token, Forbidden for a role the route excludes."""
    if principal is not None and principal.role == Role.SERVICE:
        raise Forbidden("服务令牌不能调用公共接口", code="role_forbidden")
    if route.is_public(method, subpath):
        return
    if principal is None:
        raise Unauthorized("需要登录", code="missing_token")
    if principal.role not in route.allowed_roles(method, subpath):
        raise Forbidden(f"角色 {principal.role} 无权 {method} /{route.resource}", code="role_forbidden")


def check_scope_param(principal: Principal | None, org_path: str | None) -> None:
    """A staff caller naming an org path outside their scope is refused here (the service checks again)."""
    if principal is None or org_path is None or principal.role == Role.VOLUNTEER:
        return
    if not principal.covers(org_path):
        raise Forbidden("超出本人管辖范围", field="org_path", code="scope_forbidden")
