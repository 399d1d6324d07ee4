"""What the console's pages do: each calls one service through the gateway's upstream client as the signed-in person.

The gateway's coarse role gate (`routing.authorize`, the same as the API's) runs first; the service then checks
role and org scope again with the person's own token. A refusal comes back as a `ServiceAnswer` carrying the
service's own Chinese message and the field it names, for the page to show next to that field.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from shouwang_shared.errors import AppError

from gateway.console.session import ConsoleUser
from gateway.context import GatewayContext
from gateway.routing import authorize, resolve

OPERATION_STATUS = {"draft": "草稿", "activated": "已启动", "running": "派遣中", "closed": "已结束"}
OPERATION_KIND = {"planned": "计划行动", "emergency": "应急行动"}
ROLE_NAMES = {
    "county_admin": "县级管理员", "town_admin": "镇街管理员", "station_admin": "站点管理员", "grid_worker": "网格员",
    "analyst": "研判员", "police_liaison": "公安联络员", "operator": "平台运维",
}


@dataclass
class ServiceAnswer:
    """A service's answer: its data, or the message and field of its refusal."""

    status: int
    data: Any = None
    message: str | None = None
    field: str | None = None

    @property
    def ok(self) -> bool:
        return self.status < 400


async def call(
    ctx: GatewayContext, user: ConsoleUser, resource: str, method: str, subpath: str = "", *, json: object = None,
    content: bytes | None = None, content_type: str | None = None, params: list[tuple[str, str]] | None = None,
) -> ServiceAnswer:
    """One call to the service of `resource` at /v1/<resource>/<subpath>, with the API's role gate first."""
    route = resolve(resource)
    assert route is not None, resource
    try:
        authorize(route, method, subpath, user.principal)
        headers = {"authorization": f"Bearer {user.access_token}"}
        if content_type:
            headers["content-type"] = content_type
        path = f"/v1/{resource}" + (f"/{subpath}" if subpath else "")
        response = await ctx.upstreams.send(route.service, method, path, headers=headers, json=json, content=content, params=params)
    except AppError as exc:
        return ServiceAnswer(exc.status_code, message=exc.message, field=exc.field)
    body = response.json() if response.content else None
    if response.status_code < 400:
        return ServiceAnswer(response.status_code, data=body)
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        return ServiceAnswer(response.status_code, message=detail.get("message") or "操作失败", field=detail.get("field"))
    return ServiceAnswer(response.status_code, message=f"服务返回错误（HTTP {response.status_code}）")


async def list_operations(ctx: GatewayContext, user: ConsoleUser, status: str | None) -> ServiceAnswer:
    """The operations the person's scope covers, newest first."""
    return await call(ctx, user, "operations", "GET", params=[("status", status)] if status else None)


async def create_operation(ctx: GatewayContext, user: ConsoleUser, form: dict[str, str]) -> ServiceAnswer:
    """A draft operation from the create form (its org defaults to the person's own scope)."""
    body = {
        "name": form.get("name", "").strip(), "kind": form.get("kind") or "planned",
        "description": form.get("description", "").strip(),
        "org_path": form.get("org_path", "").strip() or user.principal.scope_path,
    }
    minutes = form.get("respond_within_minutes", "").strip()
    if minutes:
        if not minutes.isdigit():
            return ServiceAnswer(422, message="请填写分钟数（整数）", field="respond_within_minutes")
        body["respond_within_minutes"] = int(minutes)
    return await call(ctx, user, "operations", "POST", json=body)


async def import_posts(ctx: GatewayContext, user: ConsoleUser, operation_id: str, csv: bytes) -> ServiceAnswer:
    """Posts from an uploaded CSV file into a draft operation."""
    if not csv.strip():
        return ServiceAnswer(422, message="请选择要导入的 CSV 文件", field="file")
    return await call(ctx, user, "operations", "POST", f"{operation_id}/posts", content=csv, content_type="text/csv")


async def change_operation(ctx: GatewayContext, user: ConsoleUser, operation_id: str, action: str) -> ServiceAnswer:
    """Activate or close an operation."""
    return await call(ctx, user, "operations", "POST", f"{operation_id}/{action}")


async def get_operation(ctx: GatewayContext, user: ConsoleUser, operation_id: str) -> ServiceAnswer:
    """One operation."""
    return await call(ctx, user, "operations", "GET", operation_id)


@dataclass
class Board:
    """The live board of one operation: totals, and the same figures by zone and by post."""

    operation_id: str
    status: str
    totals: dict[str, float]
    fill_pct: float
    zones: list[dict] = field(default_factory=list)
    posts: list[dict] = field(default_factory=list)


BOARD_MEASURES = ("required", "offered", "accepted", "checked_in", "on_post", "declined", "no_show", "shortfall")


async def board(ctx: GatewayContext, user: ConsoleUser, operation_id: str) -> tuple[Board | None, ServiceAnswer]:
    """The operation's fill rate as the board shows it, from dispatch's fill-rate view."""
    answer = await call(ctx, user, "fill-rate", "GET", operation_id)
    if not answer.ok:
        return None, answer
    data = answer.data
    zones: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(BOARD_MEASURES, 0.0))
    for post in data["posts"]:
        for m in BOARD_MEASURES:
            zones[post.get("zone") or "未分区"][m] += post[m]
    return Board(
        operation_id=operation_id, status=data["status"], totals={m: data[m] for m in BOARD_MEASURES}, fill_pct=data["fill_pct"],
        zones=[{"zone": z, **v, "fill_pct": round(100 * v["accepted"] / v["required"], 1) if v["required"] else 0.0}
               for z, v in sorted(zones.items())],
        posts=data["posts"],
    ), answer


CASE_STATUS = {"new": "新线索", "triaged": "已分拣", "verified": "已核实", "forwarded": "已移交公安", "rejected": "已驳回", "closed": "已结案"}
PRIORITY = {"urgent": "紧急", "high": "高", "normal": "中", "low": "低"}
CATEGORY = {
    "fugitive": "在逃人员", "drugs": "涉毒", "fraud": "诈骗", "counterfeit": "假冒伪劣", "public_order": "治安",
    "dispute": "纠纷", "missing_person": "失踪走失", "other": "其他",
}
REJECTION = {"unfounded": "查无实据", "prank": "恶意或玩笑", "duplicate": "重复"}
REMOVED_KIND = {
    "phone": "电话号码", "national_id": "身份证号", "bank_account": "银行卡号", "qq": "QQ号", "wechat": "微信号", "email": "电子邮箱",
    "url": "网址", "plate": "车牌", "handle": "网络账号", "name": "姓名/称呼", "address": "住址", "role": "身份/职务",
}
CASE_ACTIONS = ("claim", "release", "verify", "reject", "forward")


async def triage_queue(ctx: GatewayContext, user: ConsoleUser) -> ServiceAnswer:
    """Open cases of the person's scope by priority, then age."""
    return await call(ctx, user, "triage", "GET", "queue")


async def case_detail(ctx: GatewayContext, user: ConsoleUser, case_id: str) -> ServiceAnswer:
    """A case with its tips (reporters as pseudonyms), reasons and history."""
    return await call(ctx, user, "cases", "GET", case_id)


async def police_draft(ctx: GatewayContext, user: ConsoleUser, case_id: str) -> ServiceAnswer:
    """The summary drafted for the police, with what was taken out and why."""
    return await call(ctx, user, "cases", "GET", f"{case_id}/police-draft")


async def case_action(ctx: GatewayContext, user: ConsoleUser, case_id: str, action: str, form: dict[str, str]) -> ServiceAnswer:
    """Claim or release the edit lock, verify, reject with a reason, or forward (the draft, or the edited summary)."""
    if action == "claim":
        return await call(ctx, user, "cases", "POST", f"{case_id}/claim")
    if action == "release":
        return await call(ctx, user, "cases", "DELETE", f"{case_id}/claim")
    if action == "verify":
        return await call(ctx, user, "cases", "POST", f"{case_id}/verify")
    if action == "reject":
        return await call(ctx, user, "cases", "POST", f"{case_id}/reject", json={"reason": form.get("reason", "")})
    summary = form.get("summary", "").strip()
    return await call(ctx, user, "cases", "POST", f"{case_id}/forward", json={"summary": summary} if summary else {})


VOLUNTEER_STATUS = {"applicant": "待审核", "active": "在册", "suspended": "暂停", "retired": "退出"}
UNIT_KIND = {"county": "县联盟", "town": "镇街联盟", "branch": "行业分会", "station": "村社站点"}
REVEAL_FIELDS = {"national_id": "身份证号", "phone": "手机号", "birth_date": "出生日期"}
ROSTER_PAGE = 50


def home_unit(user: ConsoleUser) -> str | None:
    """The org unit the person's scope starts at (the last id of their scope path)."""
    return user.principal.scope_path.rstrip("/").rsplit("/", 1)[-1] or None


async def roster(ctx: GatewayContext, user: ConsoleUser, *, unit: str | None, status: str | None, offset: int) -> ServiceAnswer:
    """One page of the volunteers in scope (identity numbers masked), filtered by unit and status."""
    params = [("limit", str(ROSTER_PAGE)), ("offset", str(offset))]
    params += [("org_unit_id", unit)] if unit else []
    params += [("status", status)] if status else []
    return await call(ctx, user, "volunteers", "GET", params=params)


async def volunteer_profile(ctx: GatewayContext, user: ConsoleUser, volunteer_id: str) -> tuple[ServiceAnswer, ServiceAnswer]:
    """A volunteer (masked) and their status history."""
    return await asyncio.gather(
        call(ctx, user, "volunteers", "GET", volunteer_id), call(ctx, user, "volunteers", "GET", f"{volunteer_id}/status-history"),
    )


async def reveal(ctx: GatewayContext, user: ConsoleUser, volunteer_id: str, reason: str, fields: list[str]) -> ServiceAnswer:
    """The unmasked identity fields, through registry's audited reveal (the reason is recorded with who asked)."""
    if not reason.strip():
        return ServiceAnswer(422, message="请填写查看原因（将记入审计）", field="reason")
    return await call(ctx, user, "volunteers", "POST", f"{volunteer_id}/reveal", json={"reason": reason, "fields": fields or ["phone"]})


async def hierarchy(ctx: GatewayContext, user: ConsoleUser, unit: str) -> dict[str, ServiceAnswer | list]:
    """A unit: its path from the county, its counts, and each unit directly below it with its own counts."""
    path, counts, below = await asyncio.gather(
        call(ctx, user, "org-units", "GET", f"{unit}/path"), call(ctx, user, "org-units", "GET", f"{unit}/counts"),
        call(ctx, user, "org-units", "GET", f"{unit}/subtree", params=[("depth", "1")]),
    )
    units = [child for child in below.data if child["id"] != unit] if below.ok else []
    their_counts = await asyncio.gather(*(call(ctx, user, "org-units", "GET", f"{child['id']}/counts") for child in units))
    children = [{**child, "counts": answer.data} for child, answer in zip(units, their_counts, strict=True)]
    return {"path": path, "counts": counts, "below": below, "children": children}
