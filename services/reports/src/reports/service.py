"""The reports service's use cases: each opens its own read transaction and checks the caller's scope."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar
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
T = TypeVar("T")


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


@dataclass(frozen=True)
class ReportQuery:
    """What a report request asks for: an org unit (by path or id; default the caller's scope) and the days (default this year)."""

    org_path: str | None = None
    org_unit_id: str | None = None
    first: date | None = None
    last: date | None = None


async def _read_in_scope(
    read: Callable[[asyncpg.Connection, Scope], Awaitable[T]], *, sessions: Sessions, principal: Principal, zone: ZoneInfo,
    query: ReportQuery,
) -> T:
    """Check the request against the caller's scope, then read the figures, in one read transaction."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        scope = await _scope(conn, principal, org_path=query.org_path, org_unit_id=query.org_unit_id, first=query.first,
                             last=query.last, zone=zone)
        return await read(conn, scope)


async def county_report(*, sessions: Sessions, principal: Principal, zone: ZoneInfo, query: ReportQuery) -> dict:
    """Every figure for a period and an org unit in the caller's scope."""
    return await _read_in_scope(figures.county_figures, sessions=sessions, principal=principal, zone=zone, query=query)


async def operation_list(*, sessions: Sessions, principal: Principal, zone: ZoneInfo, query: ReportQuery) -> dict:
    """Operations activated in a period inside an org unit of the caller's scope, with fill rates and hours."""
    return await _read_in_scope(figures.operation_figures, sessions=sessions, principal=principal, zone=zone, query=query)


async def service_record_export(*, sessions: Sessions, principal: Principal, zone: ZoneInfo, query: ReportQuery) -> dict:
    """Approved service entries of a period under an org unit of the caller's scope, as the record rules lay them out."""
    records = await _read_in_scope(national_export.service_records, sessions=sessions, principal=principal, zone=zone, query=query)
    return {"items": records}


async def operation_report(*, sessions: Sessions, principal: Principal, operation_id: str, zone: ZoneInfo) -> dict:
    """One operation's summary, if it lies in the caller's scope."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        summary = await figures.operation_summary(conn, operation_id, zone=zone)
    if summary is None or not principal.covers(summary["area"]):
        raise NotFound("行动不存在或尚未启动 (no such activated operation)", field="operation_id")
    return summary
