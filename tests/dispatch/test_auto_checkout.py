"""Auto check-out and hours approval: a volunteer still checked in two hours after the shift is checked out at its end,
flagged; hours wait for a station admin (every check-out's under HOURS_APPROVAL=all, only flagged ones under
`flagged`), who approves or declines them in bulk; only approved hours are published."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shouwang_dev.testing import eventually
from shouwang_shared.contracts.dispatch import AssignmentAttendance, ServiceHoursRecorded

from dispatch.attendance import AUTO_CHECK_OUT_AFTER
from dispatch.checkin_qr import rotating_token
from dispatch.offers import auto_check_out
from tests.dispatch.service import TOWN_A, TOWN_B, dispatch_service, post, volunteer_state

LAT, LON = 25.7, 118.3


@pytest.fixture(scope="module", params=["all", "flagged"])
async def approving(stack, request):
    """(HOURS_APPROVAL, a dispatch under it): `all`, the default, and `flagged` (a county that trusts unflagged check-outs)."""
    async with dispatch_service(stack, f"hours_{request.param}", hours_approval=request.param) as service:
        yield request.param, service


async def test_a_forgotten_check_out_is_done_at_the_shifts_end_flagged_and_its_hours_recorded(approving):
    approval, dispatch = approving
    trusted = approval == "flagged"  # an unflagged check-out is approved by rule at once
    await dispatch.add_volunteers([volunteer_state(LAT + i * 0.0005, LON) for i in range(3)])
    start = datetime.now(UTC) + timedelta(minutes=30)
    op = await dispatch.create_operation({"name": "关爱驿站值守", "org_path": TOWN_A,
                                          "posts": [post("四点半课堂", LAT, LON, start, hours=2, headcount=3, org_path=TOWN_A + "/s1")]})
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
        "SELECT id::text, status, checked_out_at, hours, review_reason, hours_status FROM assignments WHERE operation_id = $1",
        uuid.UUID(op["id"]))}
    for r, reason in ((forgot, "auto_checkout"), (stale, "stale_qr,auto_checkout")):
        got = after[r["id"]]
        assert (got["status"], got["checked_out_at"], got["review_reason"], got["hours_status"]) == ("checked_out", shift_end, reason, "pending")
        assert got["hours"] == pytest.approx(2.0)  # checked in before the start: the whole shift, counted to its end
    assert after[left["id"]]["review_reason"] is None and after[left["id"]]["checked_out_at"] < shift_end
    assert after[left["id"]]["hours_status"] == ("approved" if trusted else "pending")  # nothing flagged

    async def recorded(count: int):
        hours = {e.data["assignment_id"]: e.data for e in await dispatch.topic(ServiceHoursRecorded.TOPIC) if e.data["operation_id"] == op["id"]}
        return hours if len(hours) >= count else None

    async def checked_out():
        attendance = [e for e in await dispatch.topic(AssignmentAttendance.TOPIC)
                      if e.type == AssignmentAttendance.TYPE and e.data["operation_id"] == op["id"] and e.data["action"] == "checked_out"]
        return attendance if len(attendance) == len(rows) else None

    attendance = await eventually(checked_out, message="the three check-outs published")
    assert sorted(e.data["assignment_id"] for e in attendance) == sorted(r["id"] for r in rows)
    if trusted:
        assert set(await eventually(lambda: recorded(1), message="the unflagged hours published")) == {left["id"]}
    else:  # the check-out's outbox row was written with the hours' row, had there been one
        assert await recorded(1) is None, "no hours published before a station admin approves them"

    # The station admin reviews: the forgotten check-out is approved, the stale QR declined with the reason.
    station = dispatch.headers("station_admin", scope_path=TOWN_A + "/s1")
    pending = await dispatch.client.get("/v1/hours/pending", params={"operation_id": op["id"]}, headers=dispatch.headers(scope_path=TOWN_A))
    assert sorted((h["assignment_id"], h["review_reason"] or "") for h in pending.json()) == sorted(
        [(forgot["id"], "auto_checkout"), (stale["id"], "stale_qr,auto_checkout")] + ([] if trusted else [(left["id"], "")]))
    assert (await dispatch.client.get("/v1/hours/pending", headers=dispatch.headers("station_admin", scope_path=TOWN_B))).json() == []
    outsider = await dispatch.client.post("/v1/hours/approve", json={"assignment_ids": [forgot["id"]]},
                                          headers=dispatch.headers("station_admin", scope_path=TOWN_B))
    assert outsider.status_code == 403 and outsider.json()["detail"]["field"] == "assignment_ids"
    assert (await dispatch.client.post("/v1/hours/decline", json={"assignment_ids": [stale["id"]]}, headers=station)).json()["detail"]["field"] == "reason"
    declined = await dispatch.client.post("/v1/hours/decline", json={"assignment_ids": [stale["id"]], "reason": "二维码为旧照片"}, headers=station)
    assert declined.status_code == 200 and declined.json() == {"decided": [stale["id"]], "already_decided": []}
    approved = await dispatch.client.post("/v1/hours/approve", json={"assignment_ids": [forgot["id"], left["id"]]}, headers=station)
    assert approved.status_code == 200 and approved.json() == (
        {"decided": [forgot["id"]], "already_decided": [left["id"]]} if trusted else {"decided": sorted([forgot["id"], left["id"]]), "already_decided": []})
    again = await dispatch.client.post("/v1/hours/approve", json={"assignment_ids": [forgot["id"]]}, headers=station)
    assert again.json() == {"decided": [], "already_decided": [forgot["id"]]}
    flip = await dispatch.client.post("/v1/hours/approve", json={"assignment_ids": [stale["id"]]}, headers=station)
    assert flip.status_code == 409 and flip.json()["detail"]["field"] == "assignment_ids"

    hours = await eventually(lambda: recorded(2), message="the approved hours published")
    assert set(hours) == {left["id"], forgot["id"]}  # the declined hours never reach rewards
    assert hours[forgot["id"]]["hours"] == pytest.approx(2.0)
    assert datetime.fromisoformat(hours[forgot["id"]]["ended_at"]) == shift_end
    mine = (await dispatch.client.get(f"/v1/assignments/{stale['id']}", headers=dispatch.volunteer(stale["volunteer_id"]))).json()
    assert (mine["hours_status"], mine["hours_decline_reason"], mine["hours"]) == ("declined", "二维码为旧照片", pytest.approx(2.0))
    assert (await dispatch.client.get("/v1/hours/pending", headers=station)).json() == []
