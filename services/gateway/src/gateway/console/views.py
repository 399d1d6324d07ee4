"""What the console's pages do: each calls one service through the gateway's upstream client as the signed-in person.

The gateway's coarse role gate (`routing.authorize`, the same as the API's) runs first; the service then checks
role and org scope again with the person's own token. A refusal comes back as a `ServiceAnswer` carrying the
service's own Chinese message and the field it names, for the page to show next to that field.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

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
    try:
        response = await _send(ctx, user, resource, method, subpath, json=json, content=content, content_type=content_type,
                               params=params)
    except AppError as exc:
        return ServiceAnswer(exc.status_code, message=exc.message, field=exc.field)
    body = response.json() if response.content else None
    if response.status_code < 400:
        return ServiceAnswer(response.status_code, data=body)
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        return ServiceAnswer(response.status_code, message=detail.get("message") or "操作失败", field=detail.get("field"))
    return ServiceAnswer(response.status_code, message=f"服务返回错误（HTTP {response.status_code}）")


async def _send(
    ctx: GatewayContext, user: ConsoleUser, resource: str, method: str, subpath: str = "", *, json: object = None,
    content: bytes | None = None, content_type: str | None = None, params: list[tuple[str, str]] | None = None,
):
    """The service's raw answer to one call, after the API's role gate (an AppError when the gate or the upstream refuses)."""
    route = resolve(resource)
    assert route is not None, resource
    authorize(route, method, subpath, user.principal)
    headers = {"authorization": f"Bearer {user.access_token}"}
    if content_type:
        headers["content-type"] = content_type
    path = f"/v1/{resource}" + (f"/{subpath}" if subpath else "")
    return await ctx.upstreams.send(route.service, method, path, headers=headers, json=json, content=content, params=params)


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
    """The live board of one operation: totals, the same figures by zone and by post, and its map."""

    operation_id: str
    status: str
    totals: dict[str, float]
    fill_pct: float
    zones: list[dict] = field(default_factory=list)
    posts: list[dict] = field(default_factory=list)
    map: dict | None = None


MAP_WIDTH, MAP_HEIGHT, MAP_PAD = 640, 400, 36
OPEN_CASES = ("new", "triaged", "verified")


def operation_map(posts: list[dict], cases: list[dict]) -> dict | None:
    """Posts and the open cases around them placed on a plain SVG (WGS-84 degrees, longitude scaled by the latitude's cosine)."""
    placed = [p for p in posts if p.get("lat") is not None and p.get("lon") is not None]
    if not placed:
        return None
    lats, lons = [p["lat"] for p in placed], [p["lon"] for p in placed]
    margin = 0.01  # about a kilometre around the posts: the cases an operation's people should know of
    south, north, west, east = min(lats) - margin, max(lats) + margin, min(lons) - margin, max(lons) + margin
    squeeze = math.cos(math.radians((south + north) / 2))
    scale = min((MAP_WIDTH - 2 * MAP_PAD) / ((east - west) * squeeze), (MAP_HEIGHT - 2 * MAP_PAD) / (north - south))

    left = (MAP_WIDTH - (east - west) * squeeze * scale) / 2  # the drawing centred in the frame
    bottom = (MAP_HEIGHT + (north - south) * scale) / 2

    def xy(lat: float, lon: float) -> tuple[float, float]:
        return (round(left + (lon - west) * squeeze * scale, 1), round(bottom - (lat - south) * scale, 1))

    biggest = max(p["required"] for p in placed) or 1
    return {
        "width": MAP_WIDTH, "height": MAP_HEIGHT,
        "posts": [{**p, "x": xy(p["lat"], p["lon"])[0], "y": xy(p["lat"], p["lon"])[1], "r": round(6 + 10 * math.sqrt(p["required"] / biggest), 1),
                   "filled": "full" if p["accepted"] >= p["required"] else "part" if p["accepted"] else "empty"} for p in placed],
        "cases": [{**c, "x": xy(c["lat"], c["lon"])[0], "y": xy(c["lat"], c["lon"])[1]} for c in cases
                  if c.get("lat") is not None and c.get("lon") is not None and c["status"] in OPEN_CASES
                  and south <= c["lat"] <= north and west <= c["lon"] <= east],
    }


BOARD_MEASURES = ("required", "offered", "accepted", "checked_in", "on_post", "declined", "no_show", "shortfall")


async def board(ctx: GatewayContext, user: ConsoleUser, operation_id: str) -> tuple[Board | None, ServiceAnswer]:
    """The operation's fill rate as the board shows it, from dispatch's fill-rate view, with the open cases around its posts."""
    answer, cases = await asyncio.gather(
        call(ctx, user, "fill-rate", "GET", operation_id), call(ctx, user, "cases", "GET", params=[("limit", "200")]),
    )
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
        posts=data["posts"], map=operation_map(data["posts"], cases.data if cases.ok else []),  # cases only for those who may read them
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
CASE_HISTORY = {
    "claimed": "认领", "released": "释放", "triaged": "分拣", "verified": "核实", "rejected": "驳回", "forwarded": "移交公安",
    "closed": "结案", "merged": "并入其他案件", "merged_into": "并入本案", "split": "拆出新案件", "split_from": "由其他案件拆出",
    "disposition_confirmed": "确认公安反馈", "escalated": "升级派人", "escalation_skipped": "未升级", "urgent_alert": "紧急提醒",
    "suggestion_note": "相似案件备注", "suggestion_rejected": "标记非同一事件",
}
COUNTY_TIME = ZoneInfo("Asia/Shanghai")


def local_time(value: str | None) -> str:
    """An ISO timestamp from a service as the county reads it: Beijing time, to the minute ('' for none)."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return (moment.astimezone(COUNTY_TIME) if moment.tzinfo else moment).strftime("%Y-%m-%d %H:%M")


REASON_TEXT = {  # intel's reason codes (clustering and priority) as an analyst reads them; {v} is the code's value
    "same_category": "同类：{v}", "near_in_time": "时间相隔 {v}", "near_place": "相距 {v}", "place_unknown": "地点不详",
    "same_identifier": "同一号码或账号：{v}", "same_town": "同一镇村：{v}", "similar_text": "文字相似度 {v}", "shared_words": "共同词语：{v}",
    "contradicting_details": "细节矛盾：{v}", "score": "综合分 {v}", "same_attachment": "同一附件", "category": "类别：{v}",
    "word": "关键词：{v}", "sensitive_place": "敏感场所", "corroborated_by": "多条线索印证：{v} 条",
}


def reason_text(code: str) -> str:
    """One reason code (`near_place:0.03km`, `word:孩子+20`) in words, with its points when it has some."""
    head, _, points = code.rpartition("+") if "+" in code and code.rsplit("+", 1)[1].isdigit() else (code, "", "")
    key, _, value = head.partition(":")
    if key == "near_place":
        value = value.removesuffix("km") + " 公里"
    elif key == "near_in_time":
        value = value.removesuffix("h") + " 小时"
    elif key in ("same_category", "category"):
        value = CATEGORY.get(value, value)
    template = REASON_TEXT.get(key)
    text = template.format(v=value) if template else code
    return f"{text}（+{points}）" if points and template else text


CASE_ACTIONS = ("claim", "release", "verify", "reject", "forward", "merge", "not-same", "split", "confirm")
DISPOSITION = {"acknowledged": "已接收", "investigating": "调查中", "arrest": "已抓获", "case_solved": "已破案", "unfounded": "查无实据"}


TRIAGE_FILTERS = ("category", "priority", "status")
TRIAGE_QUEUE_MAX = 500  # intel's longest queue page
TRIAGE_BULK = ("claim", "release", "reject", "priority")


async def triage_queue(ctx: GatewayContext, user: ConsoleUser, filters: dict[str, str]) -> ServiceAnswer:
    """Open cases of the person's scope by priority, then age, narrowed by `filters` (TRIAGE_FILTERS; intel's queue has none)."""
    queue = await call(ctx, user, "triage", "GET", "queue", params=[("limit", str(TRIAGE_QUEUE_MAX))])
    if queue.ok:
        queue.data = [c for c in queue.data if all(not v or c.get(k) == v for k, v in filters.items())]
    return queue


async def _each(ids: list[str], one: Callable[[str], Awaitable[ServiceAnswer]], *, counted_in: str) -> ServiceAnswer:
    """`one(id)` for every id at once, each its own call: done when all were, else how many were (counted in `counted_in`,
    件 or 条) with each refusal's message once."""
    answers = await asyncio.gather(*(one(item) for item in ids))
    refused = [a for a in answers if not a.ok]
    if not refused:
        return ServiceAnswer(200, data={"done": len(ids)})
    reasons = "；".join(dict.fromkeys(a.message or "操作失败" for a in refused))
    return ServiceAnswer(refused[0].status, message=f"已处理 {len(ids) - len(refused)} {counted_in}，{len(refused)} {counted_in}未处理：{reasons}",
                         field=refused[0].field)


async def bulk_cases(ctx: GatewayContext, user: ConsoleUser, action: str, form: dict[str, list[str]]) -> ServiceAnswer:
    """Claim, release, reject (with one reason) or triage at one priority every ticked case, each through intel's own route.

    Intel has no bulk route: each case is its own call and transaction, so one refused case (locked by another analyst,
    already triaged) leaves the others done; the answer counts both and gives each refusal's message.
    """
    ids = list(dict.fromkeys(form.get("case_ids", [])))
    first = {k: v[0].strip() if v else "" for k, v in form.items()}
    if not ids:
        return ServiceAnswer(422, message="请先勾选要处理的案件", field="case_ids")
    if action == "reject" and first.get("reason") not in REJECTION:
        return ServiceAnswer(422, message="请选择驳回原因", field="reason")
    if action == "priority" and first.get("priority") not in PRIORITY:
        return ServiceAnswer(422, message="请选择优先级", field="priority")

    async def one(case_id: str) -> ServiceAnswer:
        if action == "claim":
            return await call(ctx, user, "cases", "POST", f"{case_id}/claim")
        if action == "release":
            return await call(ctx, user, "cases", "DELETE", f"{case_id}/claim")
        if action == "reject":
            return await call(ctx, user, "cases", "POST", f"{case_id}/reject", json={"reason": first["reason"]})
        return await call(ctx, user, "cases", "POST", f"{case_id}/triage", json={"priority": first["priority"]})

    return await _each(ids, one, counted_in="件")


async def case_detail(ctx: GatewayContext, user: ConsoleUser, case_id: str) -> ServiceAnswer:
    """A case with its tips (reporters as pseudonyms), reasons and history."""
    return await call(ctx, user, "cases", "GET", case_id)


async def police_draft(ctx: GatewayContext, user: ConsoleUser, case_id: str) -> ServiceAnswer:
    """The summary drafted for the police, with what was taken out and why."""
    return await call(ctx, user, "cases", "GET", f"{case_id}/police-draft")


async def similar_cases(ctx: GatewayContext, user: ConsoleUser, case_id: str) -> ServiceAnswer:
    """Open cases that may report the same incident, best first, with the clustering's reasons."""
    return await call(ctx, user, "cases", "GET", f"{case_id}/similar")


async def case_action(ctx: GatewayContext, user: ConsoleUser, case_id: str, action: str, form: dict[str, list[str]]) -> ServiceAnswer:
    """One analyst action on a case: the edit lock, verify, reject, forward, merge a suggestion, split tips off, confirm a police answer."""
    first = {k: v[0] if v else "" for k, v in form.items()}
    if action == "claim":
        return await call(ctx, user, "cases", "POST", f"{case_id}/claim")
    if action == "release":
        return await call(ctx, user, "cases", "DELETE", f"{case_id}/claim")
    if action == "verify":
        return await call(ctx, user, "cases", "POST", f"{case_id}/verify")
    if action == "reject":
        return await call(ctx, user, "cases", "POST", f"{case_id}/reject", json={"reason": first.get("reason", "")})
    if action == "merge":  # the suggested case's tips join this one
        return await call(ctx, user, "cases", "POST", "merge", json={"target_case_id": case_id, "case_ids": [first.get("other_case_id", "")]})
    if action == "not-same":
        return await call(ctx, user, "cases", "POST", f"{case_id}/similar/{first.get('other_case_id', '')}/reject")
    if action == "split":
        if not form.get("tip_ids"):
            return ServiceAnswer(422, message="请勾选要拆出的线索", field="tip_ids")
        return await call(ctx, user, "cases", "POST", f"{case_id}/split", json={"tip_ids": form["tip_ids"]})
    if action == "confirm":
        return await call(ctx, user, "cases", "POST", f"{case_id}/dispositions/{first.get('disposition_id', '')}/confirm")
    summary = first.get("summary", "").strip()
    return await call(ctx, user, "cases", "POST", f"{case_id}/forward", json={"summary": summary} if summary else {})


VOLUNTEER_STATUS = {"applicant": "待审核", "active": "在册", "suspended": "暂停", "retired": "退出"}
UNIT_KIND = {"county": "县联盟", "town": "镇街联盟", "branch": "行业分会", "station": "村社站点"}
REVEAL_FIELDS = {"national_id": "身份证号", "phone": "手机号", "birth_date": "出生日期"}
ROSTER_PAGE = 50


def home_unit(user: ConsoleUser) -> str | None:
    """The org unit the person's scope starts at (the last id of their scope path)."""
    return user.principal.scope_path.rstrip("/").rsplit("/", 1)[-1] or None


ROSTER_FILTERS = ("unit", "status", "team", "skill", "training", "star")
TRAINING = {"compliant": "培训达标", "behind": "待补训"}


async def roster(ctx: GatewayContext, user: ConsoleUser, filters: dict[str, str], offset: int) -> tuple[ServiceAnswer, ServiceAnswer]:
    """One page of the volunteers in scope (identity numbers masked) narrowed by `filters` (ROSTER_FILTERS), and the teams to pick from."""
    params = [("limit", str(ROSTER_PAGE)), ("offset", str(offset)), *roster_params(filters)]
    return await asyncio.gather(call(ctx, user, "volunteers", "GET", params=params), call(ctx, user, "teams", "GET"))


def roster_params(filters: dict[str, str]) -> list[tuple[str, str]]:
    """The roster page's filters as registry's list takes them (`unit` is its `org_unit_id`)."""
    return [("org_unit_id" if key == "unit" else key, value) for key, value in filters.items() if value]


async def volunteer_profile(ctx: GatewayContext, user: ConsoleUser, volunteer_id: str) -> tuple[ServiceAnswer, ...]:
    """A volunteer (masked), their status history, and their service record from rewards (points, hours, star and why)."""
    return await asyncio.gather(
        call(ctx, user, "volunteers", "GET", volunteer_id), call(ctx, user, "volunteers", "GET", f"{volunteer_id}/status-history"),
        call(ctx, user, "balances", "GET", volunteer_id), call(ctx, user, "stars", "GET", volunteer_id),
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


NEED_STATUS = {"open": "待办", "in_progress": "处理中", "done": "已办结", "declined": "不予受理"}
NEED_CATEGORY = {
    "safety_patrol": "治安巡防", "legal_aid": "法律援助", "mediation": "矛盾调解", "elder_care": "关爱老人", "child_care": "关爱儿童",
    "traffic": "交通", "psychological": "心理疏导", "other": "其他",
}
DISPUTE_STATUS = {"open": "待调解", "mediating": "调解中", "closed": "已结案"}
DISPUTE_CATEGORY = {"neighbourhood": "邻里", "land": "土地宅基地", "labour": "劳资", "family": "婚姻家庭", "consumer": "消费", "other": "其他"}
DISPUTE_OUTCOME = {"settled": "调解成功", "referred_to_court": "转诉讼", "withdrawn": "撤回"}
PARTY_ROLE = {"applicant": "申请人", "respondent": "被申请人", "other": "其他"}


async def community(ctx: GatewayContext, user: ConsoleUser, *, need_status: str | None) -> dict[str, ServiceAnswer]:
    """The people's side of the scope: public needs, mediation cases, and safety bulletins (drafts and published)."""
    needs, disputes, drafts, published = await asyncio.gather(
        call(ctx, user, "needs", "GET", params=[("status", need_status)] if need_status else None),
        call(ctx, user, "disputes", "GET"),
        call(ctx, user, "bulletins", "GET", "drafts"),
        published_bulletins(ctx, user),
    )
    return {"needs": needs, "disputes": disputes, "drafts": drafts, "published": published}


async def published_bulletins(ctx: GatewayContext, user: ConsoleUser) -> ServiceAnswer:
    """The published bulletins that reached the scope's people: those for areas inside the scope, or above it."""
    published = await call(ctx, user, "bulletins", "GET", params=[("limit", "200")])
    if published.ok:
        scope = user.principal.scope_path.rstrip("/")
        published.data = [b for b in published.data if any(
            user.principal.covers(p) or scope == p.rstrip("/") or scope.startswith(p.rstrip("/") + "/") for p in b["audience_org_paths"])]
    return published


async def community_action(ctx: GatewayContext, user: ConsoleUser, action: str, target: str, form: dict[str, str]) -> ServiceAnswer:
    """Move a need along, publish a draft, or draft bulletins from the rising trends of the scope."""
    if action == "need-status":
        return await call(ctx, user, "needs", "POST", f"{target}/status", json={"status": form.get("status", "")})
    if action == "publish":
        return await call(ctx, user, "bulletins", "POST", f"{target}/publish")
    return await call(ctx, user, "bulletins", "POST", "drafts", json={})


async def dispute(ctx: GatewayContext, user: ConsoleUser, dispute_id: str) -> ServiceAnswer:
    """A mediation case: parties (phones masked), mediator, sessions and outcome."""
    return await call(ctx, user, "disputes", "GET", dispute_id)


async def dispute_action(ctx: GatewayContext, user: ConsoleUser, dispute_id: str, action: str, form: dict[str, str]) -> ServiceAnswer:
    """Assign the mediator, record a session (held at the local time typed, Beijing), or close with the outcome."""
    if action == "mediator":
        return await call(ctx, user, "disputes", "POST", f"{dispute_id}/mediator", json={"volunteer_id": form.get("volunteer_id", "").strip()})
    if action == "sessions":
        held = form.get("held_at", "").strip()
        if not held:
            return ServiceAnswer(422, message="请填写调解时间", field="held_at")
        return await call(ctx, user, "disputes", "POST", f"{dispute_id}/sessions", json={
            "held_at": held if held.endswith(("Z", "+08:00")) else f"{held}+08:00", "place": form.get("place") or None,
            "notes": form.get("notes", ""),
        })
    return await call(ctx, user, "disputes", "POST", f"{dispute_id}/outcome",
                      json={"outcome": form.get("outcome", ""), "note": form.get("note") or None})


TRAINING_LEVEL = {"county": "县级", "town": "镇级", "village": "村级"}
TRAINING_TOPIC = {"ethics": "职业道德", "skills": "业务技能", "discipline": "纪律作风"}


async def training(ctx: GatewayContext, user: ConsoleUser, unit: str) -> tuple[ServiceAnswer, ServiceAnswer, list[dict]]:
    """Training sessions held in scope (with attendance), who under `unit` is behind the yearly rule, and how many below each unit under it."""
    held, behind, below = await asyncio.gather(
        call(ctx, user, "training", "GET", "sessions"), call(ctx, user, "training", "GET", "behind", params=[("org_unit_id", unit)]),
        call(ctx, user, "org-units", "GET", f"{unit}/subtree", params=[("depth", "1")]) if unit else _no_units(),
    )
    return held, behind, behind_by_unit(behind.data["items"] if behind.ok else [], [u for u in below.data if u["id"] != unit] if below.ok else [])


async def _no_units() -> ServiceAnswer:
    """No unit to look under."""
    return ServiceAnswer(200, data=[])


def behind_by_unit(behind: list[dict], units: list[dict]) -> list[dict]:
    """Each unit with how many of the volunteers behind the rule serve in it or below it (a unit's id is a segment of their org path)."""
    return [{**u, "behind": sum(1 for v in behind if u["id"] in v["org_path"].strip("/").split("/"))} for u in units]


async def training_session(ctx: GatewayContext, user: ConsoleUser, session_id: str) -> tuple[ServiceAnswer, ServiceAnswer]:
    """A training session in scope (registry lists them; there is no single-session route) and the active volunteers of its unit."""
    held = await call(ctx, user, "training", "GET", "sessions", params=[("limit", "500")])
    if not held.ok:
        return held, held
    found = next((t for t in held.data if t["id"] == session_id), None)
    if found is None:
        missing = ServiceAnswer(404, message="没有这场培训，或不在您的管辖范围内", field="session_id")
        return missing, missing
    people = await call(ctx, user, "volunteers", "GET", params=[("org_unit_id", found["org_unit_id"]), ("status", "active"), ("limit", "500")])
    return ServiceAnswer(200, data=found), people


async def record_attendance(ctx: GatewayContext, user: ConsoleUser, session_id: str, form: dict[str, list[str]]) -> ServiceAnswer:
    """Mark the ticked volunteers as having attended a session (registry keeps it idempotent: one already marked stays once)."""
    ids = form.get("volunteer_ids", [])
    if not ids:
        return ServiceAnswer(422, message="请先勾选参加培训的志愿者", field="volunteer_ids")
    return await call(ctx, user, "training", "POST", f"sessions/{session_id}/attendance", json={"volunteer_ids": ids})


async def create_training(ctx: GatewayContext, user: ConsoleUser, form: dict[str, str]) -> ServiceAnswer:
    """Register a training session held by a unit in scope."""
    return await call(ctx, user, "training", "POST", "sessions", json={
        "title": form.get("title", "").strip(), "level": form.get("level", ""), "topic": form.get("topic", ""),
        "org_unit_id": form.get("org_unit_id", "").strip(), "held_on": form.get("held_on", ""),
    })


COMMENDATION_KIND = {"model_volunteer": "月度模范志愿者", "service_brand": "服务品牌", "organisation": "先进组织", "individual": "先进个人"}
LEADER_UNIT = {"points": "积分", "hours": "服务时长"}


def this_month() -> str:
    """The current month in the county (YYYY-MM)."""
    return datetime.now(COUNTY_TIME).strftime("%Y-%m")


async def rewards_overview(ctx: GatewayContext, user: ConsoleUser, *, period: str, unit: str) -> dict[str, ServiceAnswer]:
    """The scope's leaderboard for a period, its commendations, and the benefit catalogue."""
    scope = [("org_path", user.principal.scope_path)] if user.principal.scope_path else []
    board, commended, benefits = await asyncio.gather(
        call(ctx, user, "leaderboards", "GET", params=[("period", period), ("unit", unit), ("limit", "50"), *scope]),
        call(ctx, user, "commendations", "GET", params=[("period", period), *scope]),
        call(ctx, user, "benefits", "GET"),
    )
    return {"board": board, "commended": commended, "benefits": benefits}


REDEMPTION_STATUS = {"requested": "待发放", "handed_over": "已发放", "declined": "已拒绝（积分已退回）"}
PENDING_STATUS = {"pending": "待核实", "released": "已核实转为可用", "revoked": "未采信已冲销"}
DESK_FILTERS = ("org_path", "desk_period", "redemption_status", "pending_status")  # the rewards desk's lists, in the page's address
DESK_LIMIT = 1000  # rewards lists 1000 at most
REDEMPTION_ACTIONS = ("handover", "decline")


def _desk_params(filters: dict[str, str], status_key: str) -> list[tuple[str, str]]:
    """Rewards' query for a desk list: org path (default: the caller's scope), period and status when set."""
    chosen = (("org_path", filters.get("org_path", "")), ("period", filters.get("desk_period", "")), ("status", filters.get(status_key, "")))
    return [(k, v) for k, v in chosen if v] + [("limit", str(DESK_LIMIT))]


async def scope_redemptions(ctx: GatewayContext, user: ConsoleUser, filters: dict[str, str]) -> ServiceAnswer:
    """Redemptions of volunteers in the caller's scope, by org unit, period and status (newest first)."""
    return await call(ctx, user, "redemptions", "GET", params=_desk_params(filters, "redemption_status"))


async def pending_tip_points(ctx: GatewayContext, user: ConsoleUser, filters: dict[str, str]) -> ServiceAnswer:
    """Volunteers' tip points in scope with their review status (read-only: intel's tip review settles them)."""
    return await call(ctx, user, "ledger", "GET", "pending", params=_desk_params(filters, "pending_status"))


async def decide_redemptions(ctx: GatewayContext, user: ConsoleUser, action: str, form: dict[str, list[str]]) -> ServiceAnswer:
    """Hand over, or decline with one reason, every ticked redemption, each through rewards' own route (its own transaction).

    A repeated decision answers the first one, so a double click changes nothing; one refused redemption (handed over
    meanwhile, outside the scope) leaves the others done, and the answer counts both with each refusal's message.
    """
    ids = list(dict.fromkeys(form.get("redemption_ids", [])))
    reason = (form.get("reason") or [""])[0].strip()
    if not ids:
        return ServiceAnswer(422, message="请先勾选要处理的兑换", field="redemption_ids")
    if action == "decline" and len(reason) < 2:
        return ServiceAnswer(422, message="请填写拒绝原因（至少2个字）", field="reason")

    async def one(redemption_id: str) -> ServiceAnswer:
        if action == "handover":
            return await call(ctx, user, "redemptions", "POST", f"{redemption_id}/handover")
        return await call(ctx, user, "redemptions", "POST", f"{redemption_id}/decline", json={"reason": reason})

    return await _each(ids, one, counted_in="条")


REVIEW_REASON = {
    "late_sync": "离线签到，事后同步", "device_clock_ahead": "手机时间超前", "stale_qr": "二维码已过期", "far_from_post": "签到位置离岗位较远",
    "auto_checkout": "未签退，系统自动签退",
}
HOURS_VERDICTS = {"approve": "approved", "decline": "declined"}


async def pending_hours(ctx: GatewayContext, user: ConsoleUser) -> ServiceAnswer:
    """Service hours in scope waiting for approval (every check-out's, or only flagged ones: dispatch's HOURS_APPROVAL), oldest first."""
    return await call(ctx, user, "hours", "GET", "pending", params=[("limit", "500")])


async def decide_hours(ctx: GatewayContext, user: ConsoleUser, verdict: str, form: dict[str, list[str]]) -> ServiceAnswer:
    """Approve or decline the ticked hours in one go (a decline keeps its reason)."""
    reason = (form.get("reason") or [""])[0].strip() or None
    ids = form.get("assignment_ids", [])
    if not ids:
        return ServiceAnswer(422, message="请先勾选要处理的服务时长", field="assignment_ids")
    return await call(ctx, user, "hours", "POST", verdict, json={"assignment_ids": ids, "reason": reason})


ASSIGNMENT_STATUS = {"offered": "待答复", "accepted": "已接受", "declined": "已拒绝", "expired": "已过期", "cancelled": "已取消",
                     "checked_in": "已签到", "checked_out": "已签退", "no_show": "未到岗"}
OFFER_ACTIONS = ("cancel", "reoffer")
OFFER_FILTERS = ("operation_id", "offer_status")


OFFERS_ANSWERED_AT_ONCE = 1000  # the most offers dispatch answers in one call


async def operation_offers(ctx: GatewayContext, user: ConsoleUser, operation_id: str, status: str | None, *, offset: int = 0,
                           limit: int = OFFERS_ANSWERED_AT_ONCE) -> ServiceAnswer:
    """`limit` of an operation's offers from `offset`, at posts in the caller's scope, of one status or all, in offer order."""
    if not operation_id:
        return ServiceAnswer(422, message="请指定行动", field="operation_id")
    params = [("limit", str(limit)), ("offset", str(offset))] + ([("status", status)] if status else [])
    return await call(ctx, user, "operations", "GET", f"{operation_id}/offers", params=params)


async def offers_page(ctx: GatewayContext, user: ConsoleUser, operation_id: str, status: str | None, offset: int) -> ServiceAnswer:
    """A page (`console_offers_page`) of offers from `offset`: data `items`, `offset`, `size`, `more` (one past the page asked)."""
    size = ctx.settings.console_offers_page
    answer = await operation_offers(ctx, user, operation_id, status, offset=offset, limit=size + 1)
    if not answer.ok:
        return answer
    return ServiceAnswer(answer.status, {"items": answer.data[:size], "offset": offset, "size": size, "more": len(answer.data) > size})


async def act_on_offers(ctx: GatewayContext, user: ConsoleUser, operation_id: str, action: str, form: dict[str, list[str]]) -> ServiceAnswer:
    """Cancel the ticked offers (with the reason the volunteers are told) or have their lost slots offered again."""
    ids = form.get("assignment_ids", [])
    if not ids:
        return ServiceAnswer(422, message="请先勾选要处理的任务", field="assignment_ids")
    body: dict[str, object] = {"assignment_ids": ids}
    if action == "cancel":
        reason = (form.get("reason") or [""])[0].strip()
        if not reason:
            return ServiceAnswer(422, message="取消任务须填写原因（志愿者会收到）", field="reason")
        body["reason"] = reason
    return await call(ctx, user, "operations", "POST", f"{operation_id}/offers/{action}", json=body)


def reoffer_summary(answer: ServiceAnswer) -> str | None:
    """What a re-offer could not do, in words (None when every slot was offered again)."""
    left = answer.data.get("not_refilled", []) if answer.ok and answer.data else []
    if not left:
        return None
    return (f"已重新派发 {len(answer.data['reoffered'])} 个空缺，发出 {answer.data['offers_sent']} 个邀请；"
            f"{len(left)} 个空缺暂时无人可派（岗位已满或附近没有空闲的志愿者），可稍后再试")


REPORT_LEVEL = {"core": "骨干", "ordinary": "一般", "unknown": "未登记"}
RECRUITMENT_MODE = {"long_term": "长期", "emergency": "应急", "reserve": "储备"}
TIP_OUTCOME = {"pending": "待核实", "verified": "属实", "rejected": "不予采信"}
CASE_OUTCOME = {"awaiting": "待警方答复", "acknowledged": "已接收", "investigating": "侦查中", "arrest": "已抓获", "case_solved": "已破案",
                "unfounded": "查无实据"}


def report_params(unit: str | None, first: str | None, last: str | None) -> list[tuple[str, str]]:
    """The reports service's query for an org unit (default: the caller's scope) and a period (default: this year so far)."""
    return [(name, value) for name, value in (("org_unit_id", unit), ("from", first), ("to", last)) if value]


async def county_report(ctx: GatewayContext, user: ConsoleUser, params: list[tuple[str, str]]) -> ServiceAnswer:
    """Every figure of the county's report for an org unit and a period."""
    return await call(ctx, user, "reports", "GET", "figures", params=params)


async def operation_report(ctx: GatewayContext, user: ConsoleUser, operation_id: str) -> ServiceAnswer:
    """One operation's summary: people, attendance, hours and what came in during it."""
    return await call(ctx, user, "reports", "GET", f"operations/{operation_id}")


async def report_csv(ctx: GatewayContext, user: ConsoleUser, params: list[tuple[str, str]]) -> tuple[ServiceAnswer, bytes]:
    """The report as the reports service writes it in CSV (one row per figure)."""
    try:
        response = await _send(ctx, user, "reports", "GET", "figures", params=[*params, ("format", "csv")])
    except AppError as exc:
        return ServiceAnswer(exc.status_code, message=exc.message, field=exc.field), b""
    if response.status_code >= 400:
        return await county_report(ctx, user, params), b""  # the same refusal, in words
    return ServiceAnswer(200), response.content


PROJECT_KIND = {"school_patrol": "护学岗", "care": "关爱帮扶", "legal_outreach": "普法调解", "custom": "其他项目"}
SIGNUP_STATUS = {"applied": "待确认", "confirmed": "已确认", "waitlisted": "候补", "cancelled": "已取消"}


async def list_projects(ctx: GatewayContext, user: ConsoleUser, kind: str | None) -> ServiceAnswer:
    """The service projects of the person's scope, newest first."""
    return await call(ctx, user, "projects", "GET", params=[("kind", kind)] if kind else None)


async def project_detail(
    ctx: GatewayContext, user: ConsoleUser, project_id: str
) -> tuple[ServiceAnswer, ServiceAnswer, ServiceAnswer, ServiceAnswer]:
    """A project, its coming shifts with how full each is, its coming sign-ups, and its beneficiaries (masked; dispatch
    shows them to the project's staff only)."""
    return await asyncio.gather(
        call(ctx, user, "projects", "GET", project_id), call(ctx, user, "projects", "GET", f"{project_id}/shifts", params=[("limit", "200")]),
        call(ctx, user, "projects", "GET", f"{project_id}/signups"), call(ctx, user, "projects", "GET", f"{project_id}/beneficiaries"),
    )


async def add_beneficiary(ctx: GatewayContext, user: ConsoleUser, project_id: str, form: dict[str, str]) -> ServiceAnswer:
    """Register a person the project serves (sealed at rest by dispatch, shown masked)."""
    body = {"name": form.get("name", "").strip(), "guardian_phone": form.get("guardian_phone", "").strip(),
            "note": form.get("note", "").strip()}
    return await call(ctx, user, "projects", "POST", f"{project_id}/beneficiaries", json=body)


async def remove_beneficiary(ctx: GatewayContext, user: ConsoleUser, project_id: str, beneficiary_id: str) -> ServiceAnswer:
    """Take a beneficiary off the project's register (dispatch keeps nothing of them)."""
    return await call(ctx, user, "projects", "DELETE", f"{project_id}/beneficiaries/{beneficiary_id}")


PROJECT_EDITS = ("edit", "generate")
PROJECT_INPUTS = {  # the create form's input, with its label, for each API field it fills: a refusal names the label
    "kind": ("project-kind", "类型"), "label": ("project-label", "其他项目的名称"), "name": ("project-name", "项目名称"),
    "org_path": ("project-org", "所属组织"), "places": ("place-name", "地点"), "places.0.name": ("place-name", "地点名称"),
    "places.0.lat": ("place-lat", "纬度"), "places.0.lon": ("place-lon", "经度"), "capacity": ("project-capacity", "每班人数"),
    "shift_minutes": ("project-minutes", "每班时长"), "schedule.rrule": ("project-rrule", "重复规则"),
    "schedule.starts_on": ("project-starts-on", "开始日期"), "schedule.start_time": ("project-start-time", "每班开始时间"),
    "schedule.ends_before": ("project-ends-before", "结束日期"), "description": ("project-description", "说明"),
}


OPERATION_INPUTS = {  # the operations page's create form, as PROJECT_INPUTS
    "name": ("name", "行动名称"), "kind": ("kind", "类型"), "org_path": ("org_path", "所属组织"),
    "respond_within_minutes": ("respond_within_minutes", "响应时限"), "description": ("description", "说明"),
}


def form_refusal(answer: ServiceAnswer, inputs: dict[str, tuple[str, str]]) -> tuple[str, str | None]:
    """A refused form's message naming the input's label instead of the API's field path, and the input's id (None:
    a refusal of no input of the form, said as the service said it)."""
    found = inputs.get(answer.field or "")
    message = answer.message or ""
    if found is None:
        return message, None
    said = message[len(answer.field) + 2:] if message.startswith(f"{answer.field}: ") else message
    return f"{found[1]}：{said}", found[0]


async def create_project(ctx: GatewayContext, user: ConsoleUser, form: dict[str, str]) -> ServiceAnswer:
    """A service project from the create form: one place, a recurrence from a start date and time (its org defaults to
    the person's own scope); dispatch checks every value and names the field it refuses."""
    body = {
        "kind": form.get("kind") or "school_patrol", "label": form.get("label", "").strip() or None,
        "name": form.get("name", "").strip(), "description": form.get("description", "").strip(),
        "org_path": form.get("org_path", "").strip() or user.principal.scope_path,
        "places": [{"name": form.get("place_name", "").strip(), "lat": form.get("place_lat", "").strip(),
                    "lon": form.get("place_lon", "").strip()}],
        "capacity": form.get("capacity", "").strip(), "shift_minutes": form.get("shift_minutes", "").strip(),
        "needs_approval": form.get("needs_approval") == "on", "horizon_days": form.get("horizon_days", "").strip() or 28,
        "schedule": {"rrule": form.get("rrule", "").strip(), "starts_on": form.get("starts_on", "").strip(),
                     "start_time": form.get("start_time", "").strip(), "ends_before": form.get("ends_before", "").strip() or None},
    }
    return await call(ctx, user, "projects", "POST", json=body)


async def edit_project(ctx: GatewayContext, user: ConsoleUser, project_id: str, action: str, form: dict[str, str]) -> ServiceAnswer:
    """Change a project's name, description, capacity, approval, horizon or status (`edit`), or generate its shifts up
    to the horizon (`generate`); only the fields the form sends are changed."""
    if action == "generate":
        return await call(ctx, user, "projects", "POST", f"{project_id}/shifts/generate")
    body: dict[str, object] = {key: form[key].strip() for key in ("name", "capacity", "horizon_days", "status") if form.get(key, "").strip()}
    if "description" in form:  # may be emptied
        body["description"] = form["description"].strip()
    body["needs_approval"] = form.get("needs_approval") == "on"
    return await call(ctx, user, "projects", "PATCH", project_id, json=body)


async def shift_qr(ctx: GatewayContext, user: ConsoleUser, project_id: str, shift_id: str) -> tuple[ServiceAnswer, str, dict | None]:
    """The printed (per-shift) check-in QR of a shift's place as SVG from dispatch, with the project and the shift for its caption."""
    project, shifts = await asyncio.gather(
        call(ctx, user, "projects", "GET", project_id), call(ctx, user, "projects", "GET", f"{project_id}/shifts", params=[("limit", "200")]),
    )
    if not project.ok:
        return project, "", None
    try:
        response = await _send(ctx, user, "projects", "GET", f"{project_id}/shifts/{shift_id}/checkin-qr.svg", params=[("mode", "shift")])
    except AppError as exc:
        return ServiceAnswer(exc.status_code, message=exc.message, field=exc.field), "", None
    if response.status_code >= 400:  # the same refusal, in words
        return await call(ctx, user, "projects", "GET", f"{project_id}/shifts/{shift_id}/checkin-token", params=[("mode", "shift")]), "", None
    shift = next((x for x in shifts.data if x["id"] == shift_id), None) if shifts.ok else None
    svg = response.content.decode().split("?>", 1)[-1].strip()  # the XML declaration has no place inside HTML
    return project, svg, shift


LABELS = {  # what the templates call each code-to-name table
    "status_names": OPERATION_STATUS, "kind_names": OPERATION_KIND, "role_names": ROLE_NAMES, "case_status": CASE_STATUS,
    "priority_names": PRIORITY, "category_names": CATEGORY, "rejection_names": REJECTION, "removed_kind": REMOVED_KIND,
    "volunteer_status": VOLUNTEER_STATUS, "unit_kind": UNIT_KIND, "reveal_fields": REVEAL_FIELDS, "disposition_names": DISPOSITION,
    "history_names": CASE_HISTORY, "need_status": NEED_STATUS, "need_category": NEED_CATEGORY, "dispute_status": DISPUTE_STATUS,
    "dispute_category": DISPUTE_CATEGORY, "dispute_outcome": DISPUTE_OUTCOME, "party_role": PARTY_ROLE, "training_names": TRAINING,
    "training_level": TRAINING_LEVEL, "training_topic": TRAINING_TOPIC, "commendation_kind": COMMENDATION_KIND, "leader_unit": LEADER_UNIT,
    "review_reason": REVIEW_REASON, "assignment_status": ASSIGNMENT_STATUS, "project_kind": PROJECT_KIND, "signup_status": SIGNUP_STATUS,
    "report_level": REPORT_LEVEL, "recruitment_mode": RECRUITMENT_MODE, "tip_outcome": TIP_OUTCOME, "case_outcome": CASE_OUTCOME,
    "redemption_status": REDEMPTION_STATUS, "pending_status": PENDING_STATUS,
}
