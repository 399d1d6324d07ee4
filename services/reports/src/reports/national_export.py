"""Service records in the shape China's volunteer-service record rules ask for (MCA Order No. 67, 《志愿服务记录与证明
出具办法》), one per approved service entry, and their push to the provincial or national volunteer system."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.db import raw_connection

from reports.figures import ROOT, Scope, under

log = logging.getLogger(__name__)

KIND_CONTENT = {  # an operation's kind, or a service project's
    "planned": "大型活动安保值守", "emergency": "应急处置与巡防", "school_patrol": "护学岗值守",
    "care": "关爱帮扶（留守儿童与随迁子女）", "legal_outreach": "普法宣传与诉前调解", "custom": "志愿服务",
}
RECORDER = "守望平台（到岗签到、签退记录）"
# Column headings of the CSV, in the order of the record rules' fields.
CSV_FIELDS = (
    ("record_id", "记录编号"), ("volunteer_number", "志愿者编号"), ("volunteer_name", "姓名"), ("id_type", "证件类型"),
    ("id_number", "证件号码"), ("project", "志愿服务项目"), ("organiser", "组织单位"), ("service_date", "服务日期"),
    ("start_time", "开始时间"), ("end_time", "结束时间"), ("hours", "服务时长（小时，不含往返）"), ("service_content", "服务内容"),
    ("place", "服务地点"), ("recorder", "记录人"), ("confirmer", "确认人"), ("volunteer_id", "平台志愿者标识"),
)

SERVICE_ROWS = (
    "SELECT h.record_id, h.volunteer_id, v.volunteer_number, v.display_name, h.hours, h.started_at, h.ended_at,"
    " coalesce(o.name, h.activity_name) AS project, coalesce(o.kind, h.activity_kind) AS kind, unit.name AS organiser,"
    " coalesce(a.place_name, h.place_name) AS place_name FROM hours h"
    " LEFT JOIN operations o USING (operation_id) LEFT JOIN volunteers v USING (volunteer_id)"
    " LEFT JOIN assignments a ON a.assignment_id = h.assignment_id"
    f" LEFT JOIN org_units unit ON unit.path = coalesce(o.org_path, h.organiser_path, {ROOT})"
)


def service_record(row, zone: ZoneInfo) -> dict:
    """One approved service entry as a record of the rules' fields. The volunteer number stands for the identity
    document (an identity number never leaves registry); the platform's volunteer id where no number was published."""
    started, ended = row["started_at"].astimezone(zone), row["ended_at"].astimezone(zone)
    hours, number = row["hours"], row["volunteer_number"]
    return {
        "record_id": row["record_id"],
        "volunteer_id": row["volunteer_id"],
        "volunteer_number": number or "",
        "volunteer_name": row["display_name"] or "",
        "id_type": "volunteer_number" if number else "platform_volunteer_id",
        "id_number": number or row["volunteer_id"],
        "project": row["project"] or "",
        "organiser": row["organiser"] or "",
        "service_date": started.date().isoformat(),
        "start_time": started.strftime("%H:%M"),
        "end_time": ended.strftime("%H:%M"),
        "hours": float(hours) if isinstance(hours, Decimal) else hours,
        "service_content": f"{KIND_CONTENT.get(row['kind'], '志愿服务')}：{row['project'] or ''}",
        "place": row["place_name"] or "",
        "recorder": RECORDER,
        "confirmer": row["organiser"] or "",
    }


async def service_records(conn: asyncpg.Connection, scope: Scope) -> list[dict]:
    """Approved service entries that started in the period, under the scope (where the volunteer served)."""
    rows = await conn.fetch(
        f"{SERVICE_ROWS} WHERE h.started_at >= $3 AND h.started_at < $4 AND {under(f'coalesce(h.org_path, o.org_path, {ROOT})')}"
        " ORDER BY h.started_at, h.record_id",
        *scope.path_args, scope.start, scope.end,
    )
    return [service_record(r, scope.zone) for r in rows]


class ServiceRecordReceiver(Protocol):
    """The provincial or national volunteer system's intake; it too keeps records by `record_id` (a resend after a lost
    acknowledgement must not count twice)."""

    name: str

    async def send(self, records: Sequence[dict]) -> None:
        """Deliver records; raise when the receiver did not take them."""


class LoggingReceiver:
    """Stands in for the national system until its interface is agreed: logs what would be sent."""

    name = "log"

    async def send(self, records: Sequence[dict]) -> None:
        """Log the records' ids."""
        log.info("national volunteer system: %d service records (%s…)", len(records), records[0]["record_id"] if records else "")


async def push_service_records(
    *, sessions: async_sessionmaker[AsyncSession], receiver: ServiceRecordReceiver, zone: ZoneInfo, limit: int = 500,
) -> int:
    """Send the service records not sent before (oldest first, at most `limit`) and remember them, in one transaction:
    a failed send is retried at the next push, a sent record is never sent again."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        rows = await conn.fetch(
            f"{SERVICE_ROWS} WHERE NOT EXISTS (SELECT 1 FROM national_pushes p WHERE p.record_id = h.record_id)"
            " ORDER BY h.started_at, h.record_id LIMIT $1 FOR UPDATE OF h SKIP LOCKED", limit,
        )
        if not rows:
            return 0
        records = [service_record(r, zone) for r in rows]
        await receiver.send(records)
        await conn.execute("INSERT INTO national_pushes (record_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
                           [r["record_id"] for r in records])
    return len(records)



async def run_national_push(
    *, sessions: async_sessionmaker[AsyncSession], receiver: ServiceRecordReceiver, zone: ZoneInfo, interval_s: float,
) -> None:
    """Push new service records every `interval_s`; a failing receiver is logged and tried again next round."""
    while True:
        try:
            while await push_service_records(sessions=sessions, receiver=receiver, zone=zone) > 0:
                pass
        except Exception:  # noqa: BLE001 - the receiver is outside the platform: keep going, the records wait
            log.exception("national push to %s failed; retrying in %.0f s", receiver.name, interval_s)
        await asyncio.sleep(interval_s)
