"""The console's list pages as CSV files: each page's columns, its codes in words and PII masked as on screen."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway.console.orgs import org_choices, org_name, unit_names
from gateway.console.session import ConsoleUser
from gateway.console.views import (
    ASSIGNMENT_STATUS,
    CASE_STATUS,
    CATEGORY,
    COMMENDATION_KIND,
    DESK_FILTERS,
    DISPUTE_CATEGORY,
    DISPUTE_OUTCOME,
    DISPUTE_STATUS,
    LEADER_UNIT,
    NEED_CATEGORY,
    NEED_STATUS,
    OFFER_FILTERS,
    OFFERS_ANSWERED_AT_ONCE,
    OPERATION_KIND,
    OPERATION_STATUS,
    PENDING_STATUS,
    PRIORITY,
    PROJECT_KIND,
    REDEMPTION_STATUS,
    REVIEW_REASON,
    ROSTER_FILTERS,
    TRAINING_LEVEL,
    TRAINING_TOPIC,
    TRIAGE_FILTERS,
    VOLUNTEER_STATUS,
    ServiceAnswer,
    call,
    home_unit,
    list_operations,
    list_projects,
    local_time,
    operation_offers,
    pending_hours,
    pending_tip_points,
    published_bulletins,
    roster_params,
    scope_redemptions,
    this_month,
    triage_queue,
)
from gateway.context import GatewayContext

ROSTER_EXPORT_MAX = 20_000


async def all_volunteers(ctx: GatewayContext, user: ConsoleUser, filters: dict[str, str]) -> ServiceAnswer:
    """Every volunteer a filtered roster holds (masked by registry, up to ROSTER_EXPORT_MAX), page by page."""
    found: list[dict] = []
    base = roster_params(filters)
    while len(found) < ROSTER_EXPORT_MAX:
        page = await call(ctx, user, "volunteers", "GET", params=[("limit", "500"), ("offset", str(len(found))), *base])
        if not page.ok:
            return page
        found.extend(page.data["items"])
        if len(found) >= page.data["total"] or not page.data["items"]:
            break
    return ServiceAnswer(200, data=found)


async def all_operation_offers(ctx: GatewayContext, user: ConsoleUser, operation_id: str, status: str | None) -> ServiceAnswer:
    """Every offer of an operation in the caller's scope, of one status or all, a thousand a call (dispatch's most)."""
    items: list[dict] = []
    while True:
        answer = await operation_offers(ctx, user, operation_id, status, offset=len(items))
        if not answer.ok:
            return answer
        items += answer.data
        if len(answer.data) < OFFERS_ANSWERED_AT_ONCE:
            return ServiceAnswer(answer.status, items)


Column = tuple[str, str, Callable[[Any], str] | None]  # the row's key, the column's title, how its value reads (None: as it is)
Fetch = Callable[[GatewayContext, ConsoleUser, dict[str, str]], Awaitable[ServiceAnswer]]


def with_org_names(fetch: Fetch) -> Fetch:
    """`fetch`, each row with `org_name` too: its org path as the names of its units, as the page shows it."""
    async def named(ctx: GatewayContext, user: ConsoleUser, filters: dict[str, str]) -> ServiceAnswer:
        answer, choices = await asyncio.gather(fetch(ctx, user, filters), org_choices(ctx, user))
        if not answer.ok:
            return answer
        names = unit_names(choices)
        return ServiceAnswer(answer.status, [{**row, "org_name": org_name(row.get("org_path"), names)} for row in answer.data])

    return named


@dataclass(frozen=True)
class Export:
    """A list page as a CSV file: its file name, the filters its address takes, how to fetch its rows, and its columns."""

    filename: str
    filters: tuple[str, ...]
    fetch: Fetch
    columns: tuple[Column, ...]


def _named(table: dict[str, str]) -> Callable[[Any], str]:
    """A code as the page names it (the code itself when the table has no name for it)."""
    return lambda code: table.get(code, "" if code is None else str(code))


def _reasons(codes: str | None) -> str:
    """The hours page's review reasons in words."""
    return "；".join(REVIEW_REASON.get(code, code) for code in (codes or "").split(",") if code)


async def _items(answer: Awaitable[ServiceAnswer], key: str) -> ServiceAnswer:
    """A service's list that comes under `key` of its answer."""
    found = await answer
    if found.ok:
        found.data = found.data[key]
    return found


async def _leaderboard(ctx: GatewayContext, user: ConsoleUser, filters: dict[str, str]) -> ServiceAnswer:
    """The scope's leaderboard for the rewards page's period and basis."""
    scope = [("org_path", user.principal.scope_path)] if user.principal.scope_path else []
    unit = filters["unit"] if filters["unit"] in LEADER_UNIT else "points"
    return await _items(call(ctx, user, "leaderboards", "GET", params=[
        ("period", filters["period"] or this_month()), ("unit", unit), ("limit", "200"), *scope]), "ranking")  # rewards lists 200 at most


async def _commendations(ctx: GatewayContext, user: ConsoleUser, filters: dict[str, str]) -> ServiceAnswer:
    """The scope's commendations of the rewards page's period."""
    scope = [("org_path", user.principal.scope_path)] if user.principal.scope_path else []
    return await call(ctx, user, "commendations", "GET", params=[("period", filters["period"] or this_month()), *scope])


EXPORTS: dict[str, Export] = {  # every list page's CSV: the columns it shows, codes in words, PII masked as on screen
    "roster": Export("志愿者名册.csv", ROSTER_FILTERS, all_volunteers, (
        ("real_name", "姓名", None), ("phone_masked", "手机（脱敏）", None), ("national_id_masked", "身份证号（脱敏）", None),
        ("age_band", "年龄段", None), ("star", "星级", None), ("core", "骨干", None), ("status", "状态", _named(VOLUNTEER_STATUS)),
        ("training_compliant", "培训达标", None), ("teams", "专业队伍", None), ("skills", "技能", None), ("org_path", "组织", None),
        ("id", "志愿者编号", None))),
    "operations": Export("行动.csv", ("status",), lambda ctx, user, f: list_operations(ctx, user, f["status"] or None), (
        ("name", "名称", None), ("kind", "类型", _named(OPERATION_KIND)), ("status", "状态", _named(OPERATION_STATUS)),
        ("post_count", "岗位", None), ("headcount", "所需人数", None), ("created_at", "创建时间", local_time))),
    "triage": Export("研判队列.csv", TRIAGE_FILTERS, triage_queue, (
        ("reference", "编号", None), ("priority", "优先级", _named(PRIORITY)), ("category", "类别", _named(CATEGORY)),
        ("status", "状态", _named(CASE_STATUS)), ("tip_count", "线索数", None), ("place_text", "地点", None),
        ("locked_by", "正在处理", None), ("created_at", "时间", local_time))),
    "needs": Export("群众需求.csv", ("need_status",), lambda ctx, user, f: call(
        ctx, user, "needs", "GET", params=[("status", f["need_status"])] if f["need_status"] else None), (
        ("category", "类别", _named(NEED_CATEGORY)), ("description", "内容", None), ("place_text", "地点", None),
        ("status", "状态", _named(NEED_STATUS)), ("created_at", "提交时间", local_time))),
    "disputes": Export("矛盾调解.csv", (), lambda ctx, user, f: call(ctx, user, "disputes", "GET"), (
        ("summary", "事由", None), ("category", "类别", _named(DISPUTE_CATEGORY)), ("status", "状态", _named(DISPUTE_STATUS)),
        ("sessions_held", "调解次数", None), ("outcome", "结果", _named(DISPUTE_OUTCOME)), ("created_at", "登记时间", local_time))),
    "bulletins": Export("安全提示.csv", (), lambda ctx, user, f: published_bulletins(ctx, user), (
        ("serial_label", "期号", None), ("title", "标题", None), ("case_type", "类别", _named(CATEGORY)), ("body", "内容", None),
        ("published_at", "发布时间", local_time))),
    "leaderboard": Export("积分排行.csv", ("period", "unit"), _leaderboard, (
        ("rank", "名次", None), ("display_name", "志愿者", None), ("star", "星级", None), ("total", "合计", None))),
    "commendations": Export("表彰.csv", ("period",), _commendations, (
        ("kind", "类别", _named(COMMENDATION_KIND)), ("subject_name", "对象", None), ("citation", "事迹", None), ("period", "时段", None))),
    "redemptions": Export("积分兑换.csv", DESK_FILTERS, with_org_names(scope_redemptions), (
        ("created_at", "申请时间", local_time), ("display_name", "志愿者", None), ("org_name", "组织", None),
        ("benefit_name", "权益", None), ("quantity", "数量", None), ("points", "积分", None),
        ("status", "状态", _named(REDEMPTION_STATUS)), ("decided_at", "处理时间", local_time), ("decline_reason", "拒绝原因", None))),
    "pending-rewards": Export("待核实线索积分.csv", DESK_FILTERS, with_org_names(pending_tip_points), (
        ("posted_at", "记入时间", local_time), ("display_name", "志愿者", None), ("org_name", "组织", None), ("amount", "积分", None),
        ("reason", "来由", None), ("status", "状态", _named(PENDING_STATUS)), ("settled_at", "核实时间", local_time))),
    "projects": Export("服务项目.csv", ("kind",), lambda ctx, user, f: list_projects(ctx, user, f["kind"] or None), (
        ("name", "名称", None), ("kind", "类型", _named(PROJECT_KIND)), ("org_path", "组织", None), ("capacity", "每班人数", None),
        ("shift_minutes", "每班分钟", None))),
    "training": Export("培训记录.csv", (), lambda ctx, user, f: call(ctx, user, "training", "GET", "sessions"), (
        ("held_on", "日期", None), ("title", "名称", None), ("level", "级别", _named(TRAINING_LEVEL)), ("topic", "内容", _named(TRAINING_TOPIC)),
        ("attended", "参加人数", None))),
    "training-behind": Export("待补训.csv", ("unit",), lambda ctx, user, f: _items(call(
        ctx, user, "training", "GET", "behind", params=[("org_unit_id", f["unit"] or home_unit(user) or "")]), "items"), (
        ("display_name", "姓名", None), ("core", "骨干", None), ("required", "应参加", None), ("attended", "已参加", None),
        ("flagged_on", "提醒日期", None), ("specialised_eligible", "专项勤务", lambda ok: "可" if ok else "暂停"))),
    "offers": Export("任务邀请.csv", OFFER_FILTERS, lambda ctx, user, f: all_operation_offers(ctx, user, f["operation_id"], f["offer_status"] or None), (
        ("post_name", "岗位", None), ("volunteer_id", "志愿者编号", None), ("status", "状态", _named(ASSIGNMENT_STATUS)),
        ("wave", "批次", None), ("distance_km", "距离（公里）", None), ("offered_at", "邀请时间", local_time),
        ("respond_by", "答复期限", local_time), ("answered_at", "答复时间", local_time), ("decline_reason", "原因", None),
        ("reoffered_at", "重新派发时间", local_time))),
    "hours": Export("待审核服务时长.csv", (), lambda ctx, user, f: pending_hours(ctx, user), (
        ("operation_name", "行动", None), ("post_name", "岗位", None), ("volunteer_id", "志愿者编号", None),
        ("shift_start", "班次开始", local_time), ("shift_end", "班次结束", local_time), ("checked_in_at", "签到", local_time),
        ("checked_out_at", "签退", local_time), ("hours", "时长（小时）", lambda h: "" if h is None else f"{h:.2f}"),
        ("review_reason", "疑点", _reasons))),
}


def export_rows(export: Export, items: list[dict]) -> list[list[str]]:
    """A list's rows as CSV rows under its header, each value read as the page shows it."""
    return [[title for _, title, _ in export.columns]] + [
        [fmt(item.get(key)) if fmt else _cell(item.get(key)) for key, _, fmt in export.columns] for item in items]


def _cell(value: Any) -> str:
    """One CSV cell: lists joined with ';', booleans as 是/否."""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return "" if value is None else str(value)
