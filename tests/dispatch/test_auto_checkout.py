"""Auto check-out: a volunteer still checked in two hours after the shift is checked out at its end, flagged for review."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shouwang_shared.contracts.dispatch import AssignmentAttendance, ServiceHoursRecorded
from shouwang_shared.testing import eventually

from dispatch.attendance import AUTO_CHECK_OUT_AFTER
from dispatch.checkin_qr import rotating_token
from dispatch.offers import auto_check_out
from tests.dispatch.service import TOWN_A, post, volunteer_state

LAT, LON = 25.7, 118.3


async def test_a_forgotten_check_out_is_done_at_the_shifts_end_flagged_and_its_hours_recorded(dispatch):
    await dispatch.add_volunteers([volunteer_state(LAT + i * 0.0005, LON) for i in range(3)])
    start = datetime.now(UTC) + timedelta(minutes=30)
    op = await dispatch.create_operation({"name": "关爱驿站值守", "org_path": TOWN_A,
                                          "posts": [post("四点半课堂", LAT, LON, start, hours=2, headcount=3)]})
    await dispatch.activate_and_wait(op["id"])
    rows = await dispatch.sql("SELECT a.id::text, a.volunteer_id, a.post_id::text, p.checkin_code FROM assignments a"
                              " JOIN posts p ON p.id = a.post_id WHERE a.operation_id = $1 ORDER BY a.volunteer_id", uuid.UUID(op["id"]))
    assert len(rows) == 3
    forgot, stale, left = rows
    for r in rows:
        me = dispatch.volunteer(r["volunteer_id"])
        assert (await dispatch.client.post(f"/v1/assignments/{r['id']}/accept", headers=me)).status_code == 200
        old = r is stale
        token = rotating_token(post_id=r["post_id"], secret=r["checkin_code"], at=datetime.now(UTC) - timedelta(hours=3 if old else 0)).token
        arrived = await dispatch.client.post(f"/v1/assignments/{r['id']}/check-in", json={"qr_token": token}, headers=me)
        assert arrived.status_code == 200 and arrived.json()["review_reason"] == ("stale_qr" if old else None)
    gone = await dispatch.client.post(f"/v1/assignments/{left['id']}/check-out", headers=dispatch.volunteer(left["volunteer_id"]))
    assert gone.status_code == 200

    sessions = dispatch.app.state.runtime.sessions
    shift_end = start + timedelta(hours=2)
    assert await auto_check_out(sessions=sessions, now=shift_end + AUTO_CHECK_OUT_AFTER - timedelta(seconds=1)) == 0
    assert await auto_check_out(sessions=sessions, now=shift_end + AUTO_CHECK_OUT_AFTER) == 2
    assert await auto_check_out(sessions=sessions, now=shift_end + AUTO_CHECK_OUT_AFTER) == 0  # nothing twice

    after = {r["id"]: r for r in await dispatch.sql(
        "SELECT id::text, status, checked_out_at, hours, review_reason FROM assignments WHERE operation_id = $1", uuid.UUID(op["id"]))}
    for r, reason in ((forgot, "auto_checkout"), (stale, "stale_qr,auto_checkout")):
        got = after[r["id"]]
        assert (got["status"], got["checked_out_at"], got["review_reason"]) == ("checked_out", shift_end, reason)
        assert got["hours"] == pytest.approx(2.0)  # checked in before the start: the whole shift, counted to its end
    assert after[left["id"]]["review_reason"] is None and after[left["id"]]["checked_out_at"] < shift_end

    async def recorded():
        hours = {e.data["assignment_id"]: e.data for e in await dispatch.topic(ServiceHoursRecorded.TOPIC) if e.data["operation_id"] == op["id"]}
        return hours if len(hours) == 3 else None

    hours = await eventually(recorded, message="three service-hour records")
    assert hours[forgot["id"]]["hours"] == pytest.approx(2.0)
    assert datetime.fromisoformat(hours[forgot["id"]]["ended_at"]) == shift_end
    attendance = [e for e in await dispatch.topic(AssignmentAttendance.TOPIC)
                  if e.type == AssignmentAttendance.TYPE and e.data["operation_id"] == op["id"] and e.data["action"] == "checked_out"]
    assert sorted(e.data["assignment_id"] for e in attendance) == sorted(r["id"] for r in rows)
