"""HTTP routes of the reports service: thin edges that call one use case each; `format=csv` answers the same figures as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from shouwang_shared.app import Sessions
from shouwang_shared.auth import Principal, Role, require_roles

from reports import journal, service
from reports.figures import csv_rows
from reports.national_export import CSV_FIELDS
from reports.schemas import CountyReportPublic, OperationList, OperationSummaryPublic, RebuildPublic, ServiceRecordList
from reports.service import ReportQuery

router = APIRouter(prefix="/v1/reports", tags=["reports"])

READERS = (Role.STATION_ADMIN, Role.TOWN_ADMIN, Role.COUNTY_ADMIN, Role.ANALYST, Role.OPERATOR)
Reader = Annotated[Principal, require_roles(*READERS)]
Rebuilder = Annotated[Principal, require_roles(Role.OPERATOR)]
OrgPath = Annotated[str | None, Query(max_length=500, pattern=r"^/[A-Za-z0-9_./-]*$", description="materialized org path; default: your scope")]
OrgUnitId = Annotated[str | None, Query(max_length=64, description="an org unit id instead of a path")]
First = Annotated[date | None, Query(alias="from", description="first day (the county's calendar), default 1 January of `to`'s year")]
Last = Annotated[date | None, Query(alias="to", description="last day, included; default today")]
Format = Annotated[Literal["json", "csv"], Query(description="csv: one row per figure (section, measure, key, value)")]
CSV_RESPONSE = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "the figures, as JSON or CSV"}}


def _zone(request: Request) -> ZoneInfo:
    return ZoneInfo(request.app.state.settings.report_time_zone)


def _query(org_path: OrgPath = None, org_unit_id: OrgUnitId = None, first: First = None, last: Last = None) -> ReportQuery:
    return ReportQuery(org_path=org_path, org_unit_id=org_unit_id, first=first, last=last)


Query_ = Annotated[ReportQuery, Depends(_query)]


def _csv(header: Sequence[str], rows: Iterable[Sequence], filename: str) -> Response:
    """A CSV download (UTF-8 with a BOM, so spreadsheet programs read the Chinese right)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return Response(out.getvalue().encode("utf-8-sig"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _figures_csv(figures: dict, filename: str) -> Response:
    return _csv(("section", "measure", "key", "value"), csv_rows(figures), filename)


@router.get("/figures", response_model=CountyReportPublic, responses=CSV_RESPONSE)
async def county_figures(request: Request, principal: Reader, sessions: Sessions, query: Query_, format: Format = "json"):  # noqa: A002
    """Every figure the county reports, for a period and an org unit in your scope."""
    figures = await service.county_report(sessions=sessions, principal=principal, zone=_zone(request), query=query)
    return _figures_csv(figures, "report.csv") if format == "csv" else figures


@router.get("/operations", response_model=OperationList, responses=CSV_RESPONSE)
async def operations(request: Request, principal: Reader, sessions: Sessions, query: Query_, format: Format = "json"):  # noqa: A002
    """Operations activated in a period, with fill rate and hours."""
    figures = await service.operation_list(sessions=sessions, principal=principal, zone=_zone(request), query=query)
    return _figures_csv(figures, "operations.csv") if format == "csv" else figures


@router.get("/operations/{operation_id}", response_model=OperationSummaryPublic, responses=CSV_RESPONSE)
async def operation_summary(
    operation_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{1,64}$")], request: Request, principal: Reader, sessions: Sessions,
    format: Format = "json",  # noqa: A002
):
    """One operation's summary: people, attendance, hours, and the tips, needs and disputes taken in during it inside its area."""
    summary = await service.operation_report(sessions=sessions, principal=principal, operation_id=operation_id, zone=_zone(request))
    return _figures_csv(summary, f"operation-{operation_id}.csv") if format == "csv" else summary


@router.get("/service-records", response_model=ServiceRecordList, responses=CSV_RESPONSE)
async def service_records(request: Request, principal: Reader, sessions: Sessions, query: Query_, format: Format = "json"):  # noqa: A002
    """Approved service entries of a period, one record each in the shape of the volunteer-service record rules (CSV: Chinese headings)."""
    records = await service.service_record_export(sessions=sessions, principal=principal, zone=_zone(request), query=query)
    if format != "csv":
        return records
    rows = ([record[name] for name, _ in CSV_FIELDS] for record in records["items"])
    return _csv([heading for _, heading in CSV_FIELDS], rows, "service-records.csv")


@router.post("/rebuild", response_model=RebuildPublic)
async def rebuild(principal: Rebuilder, sessions: Sessions) -> dict:
    """Wipe the projections and replay the journal of facts into them (the figures come back identical)."""
    return await journal.rebuild(sessions=sessions)
