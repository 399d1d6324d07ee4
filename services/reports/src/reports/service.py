"""The reports service's use cases: each opens its own read transaction and checks the caller's scope."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal
from shouwang_shared.db import raw_connection
from shouwang_shared.errors import Forbidden, NotFound, Unprocessable

from reports import figures, national_export
from reports.figures import ROOT, Scope

Sessions = async_sessionmaker[AsyncSession]
LONGEST_PERIOD_DAYS = 3 * 366


async def _scope(
    conn: asyncpg.Connection, principal: Principal, *, org_path: str | None, org_unit_id: str | None,
    first: date | None, last: date | None, zone: ZoneInfo,
) -> Scope:
    """The org path and days a request asks for, checked against the caller's scope (default: their whole scope, this year)."""
    if org_unit_id is not None:
        org_path = await conn.fetchval("SELECT path FROM org_units WHERE org_unit_id = $1", org_unit_id)
        if org_path is None:
            raise NotFound("组织不存在 (no such org unit)", field="query.org_unit_id")
    elif org_path is None:
        org_path = principal.scope_path or await conn.fetchval(f"SELECT {ROOT}") or "/"
    if not principal.covers(org_path):
        raise Forbidden("该组织不在您的管辖范围内 (the org unit is outside your scope)", field="query.org_path")
    today = datetime.now(zone).date()
    last = last or today
    first = first or date(last.year, 1, 1)
    if first > last:
        raise Unprocessable("起始日期晚于截止日期 (`from` is after `to`)", field="query.from")
    if (last - first).days > LONGEST_PERIOD_DAYS:
        raise Unprocessable("统计区间最长三年 (a report covers at most three years)", field="query.from")
    return Scope(org_path, first, last, zone)


async def county_report(
    *, sessions: Sessions, principal: Principal, zone: ZoneInfo, org_path: str | None = None, org_unit_id: str | None = None,
    first: date | None = None, last: date | None = None,
) -> dict:
    """Every figure for a period and an org unit in the caller's scope."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        scope = await _scope(conn, principal, org_path=org_path, org_unit_id=org_unit_id, first=first, last=last, zone=zone)
        return await figures.county_figures(conn, scope)


async def operation_list(
    *, sessions: Sessions, principal: Principal, zone: ZoneInfo, org_path: str | None = None, org_unit_id: str | None = None,
    first: date | None = None, last: date | None = None,
) -> dict:
    """Operations activated in a period inside an org unit of the caller's scope, with fill rates and hours."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        scope = await _scope(conn, principal, org_path=org_path, org_unit_id=org_unit_id, first=first, last=last, zone=zone)
        return await figures.operation_figures(conn, scope)


async def service_record_export(
    *, sessions: Sessions, principal: Principal, zone: ZoneInfo, org_path: str | None = None, org_unit_id: str | None = None,
    first: date | None = None, last: date | None = None,
) -> dict:
    """Approved service entries of a period under an org unit of the caller's scope, as the record rules lay them out."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        scope = await _scope(conn, principal, org_path=org_path, org_unit_id=org_unit_id, first=first, last=last, zone=zone)
        return {"items": await national_export.service_records(conn, scope)}


async def operation_report(*, sessions: Sessions, principal: Principal, operation_id: str, zone: ZoneInfo) -> dict:
    """One operation's summary, if it lies in the caller's scope."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        summary = await figures.operation_summary(conn, operation_id, zone=zone)
    if summary is None or not principal.covers(summary["area"]):
        raise NotFound("行动不存在或尚未启动 (no such activated operation)", field="operation_id")
    return summary
