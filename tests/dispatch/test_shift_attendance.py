"""Attendance at project shifts on the real database and broker: who may check in, the place's QR and geofence as for
posts, a check-out's hours pending until a station admin approves them (HOURS_APPROVAL=all), forgotten check-outs
closed by the sweep and waiting in the same queue as the operation hours, and what a shift's `ServiceHoursRecorded`
carries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shouwang_dev.testing import eventually
from shouwang_shared.contracts.dispatch import ServiceHoursRecorded

from dispatch.attendance import AUTO_CHECK_OUT_AFTER
from dispatch.checkin_qr import rotating_token
from dispatch.projects.attendance import auto_check_out, place_id
from tests.dispatch.service import TOWN_A, TOWN_B, volunteer_state

LAT, LON = 30.45, 120.45
SHANGHAI = ZoneInfo("Asia/Shanghai")


async def test_a_shifts_check_ins_follow_the_post_rules_and_forgotten_check_outs_wait_for_approval(dispatch):
    people = [volunteer_state(LAT + i * 0.0005, LON) for i in range(5)]
    await dispatch.add_volunteers(people)
    start = (datetime.now(SHANGHAI) + timedelta(minutes=30)).replace(second=0, microsecond=0)  # check-in opens an hour before
    body = {"kind": "care", "name": "四点半课堂", "org_path": TOWN_A + "/s1", "places": [{"name": "村文化礼堂", "lat": LAT, "lon": LON}],
            "capacity": 3, "shift_minutes": 90,
            "schedule": {"rrule": f"FREQ=WEEKLY;BYDAY={'MO TU WE TH FR SA SU'.split()[start.weekday()]}",
                         "starts_on": start.date().isoformat(), "start_time": start.strftime("%H:%M")}}
    created = await dispatch.client.post("/v1/projects", json=body, headers=dispatch.headers())
    assert created.status_code == 201, created.text
    project = created.json()
    shift = min((await dispatch.client.get(f"/v1/projects/{project['id']}/shifts", headers=dispatch.headers())).json(),
                key=lambda s: s["starts_at"])
    assert datetime.fromisoformat(shift["starts_at"]) == start
    by_geofence, stale, prompt, waiting, stranger = (dispatch.volunteer(p.volunteer_id) for p in people)
    for me in (by_geofence, stale, prompt, waiting):
        assert (await dispatch.client.post(f"/v1/shifts/{shift['id']}/signup", headers=me)).status_code == 201
    check_in, check_out = f"/v1/shifts/{shift['id']}/check-in", f"/v1/shifts/{shift['id']}/check-out"

    refused = {
        "stranger": await dispatch.client.post(check_in, json={"lat": LAT, "lon": LON}, headers=stranger),
        "waitlisted": await dispatch.client.post(check_in, json={"lat": LAT, "lon": LON}, headers=waiting),
        "far, no token": await dispatch.client.post(check_in, json={"lat": LAT + 0.03, "lon": LON}, headers=by_geofence),
        "garbled token": await dispatch.client.post(check_in, json={"qr_token": "SW1.nope"}, headers=by_geofence),
        "not checked in": await dispatch.client.post(check_out, headers=by_geofence),
    }
    assert {k: (r.status_code, r.json()["detail"]["field"]) for k, r in refused.items()} == {
        "stranger": (403, "shift_id"), "waitlisted": (409, "status"), "far, no token": (422, "lat"),
        "garbled token": (422, "qr_token"), "not checked in": (409, "status")}

    secret = (await dispatch.sql("SELECT checkin_code FROM projects WHERE id = $1", uuid.UUID(project["id"])))[0]["checkin_code"]
    place = place_id(project["id"], 0)
    proofs = {
        "by_geofence": ({"lat": LAT + 0.001, "lon": LON}, by_geofence, None),
        "stale": ({"qr_token": rotating_token(post_id=place, secret=secret, at=datetime.now(UTC) - timedelta(hours=3)).token}, stale, "stale_qr"),
        "prompt": ({"qr_token": rotating_token(post_id=place, secret=secret, at=datetime.now(UTC)).token}, prompt, None),
    }
    signups = {}
    for name, (proof, me, flag) in proofs.items():
        arrived = await dispatch.client.post(check_in, json=proof, headers=me)
        assert arrived.status_code == 200 and arrived.json()["review_reason"] == flag, arrived.text
        assert (await dispatch.client.post(check_in, json=proof, headers=me)).json() == arrived.json()  # a retry answers the same
        signups[name] = arrived.json()["id"]
    early = await dispatch.client.post(f"/v1/shifts/{shift['id']}/cancel", json={"reason": "改主意"}, headers=by_geofence)
    assert early.status_code == 409 and early.json()["detail"]["field"] == "status"  # checked in before the start: no cancelling
    left = await dispatch.client.post(check_out, headers=prompt)
    assert left.status_code == 200 and (left.json()["hours_status"], left.json()["hours"]) == ("pending", 0.0)  # left before the start
    assert (await dispatch.client.post(check_out, headers=prompt)).json() == left.json()

    sessions = dispatch.app.state.runtime.sessions
    end = start + timedelta(minutes=90)
    assert await auto_check_out(sessions=sessions, now=end + AUTO_CHECK_OUT_AFTER - timedelta(seconds=1)) == 0
    assert await auto_check_out(sessions=sessions, now=end + AUTO_CHECK_OUT_AFTER) == 2
    assert await auto_check_out(sessions=sessions, now=end + AUTO_CHECK_OUT_AFTER) == 0  # nothing twice
    rows = {str(r["id"]): r for r in await dispatch.sql(
        "SELECT id, status, checked_out_at, hours, review_reason, hours_status FROM shift_signups WHERE shift_id = $1", uuid.UUID(shift["id"]))}
    for name, reason in (("by_geofence", "auto_checkout"), ("stale", "stale_qr,auto_checkout")):
        got = rows[signups[name]]
        assert (got["status"], got["checked_out_at"], got["review_reason"], got["hours_status"]) == ("confirmed", end, reason, "pending")
        assert got["hours"] == pytest.approx(1.5)  # checked in before the start: the whole shift

    pending = await dispatch.client.get("/v1/hours/pending", params={"operation_id": project["id"]}, headers=dispatch.headers(scope_path=TOWN_A))
    assert sorted((h["kind"], h["assignment_id"], h["post_id"], h["post_name"]) for h in pending.json()) == sorted(
        ("shift", signups[n], shift["id"], "村文化礼堂") for n in ("by_geofence", "stale", "prompt"))
    assert not [e for e in await dispatch.topic(ServiceHoursRecorded.TOPIC) if e.data["operation_id"] == project["id"]], "nothing before approval"
    assert (await dispatch.client.get("/v1/hours/pending", headers=dispatch.headers("station_admin", scope_path=TOWN_B))).json() == []
    station = dispatch.headers("station_admin", scope_path=TOWN_A + "/s1")
    declined = await dispatch.client.post("/v1/hours/decline", json={"assignment_ids": [signups["stale"]], "reason": "旧二维码"}, headers=station)
    assert declined.json() == {"decided": [signups["stale"]], "already_decided": []}
    approved = await dispatch.client.post("/v1/hours/approve", json={"assignment_ids": [signups["by_geofence"], signups["prompt"]]}, headers=station)
    assert approved.json() == {"decided": sorted([signups["by_geofence"], signups["prompt"]]), "already_decided": []}
    again = await dispatch.client.post("/v1/hours/approve", json={"assignment_ids": [signups["stale"]]}, headers=station)
    assert again.status_code == 409 and again.json()["detail"]["field"] == "assignment_ids"

    async def recorded():
        hours = {e.data["assignment_id"]: e.data for e in await dispatch.topic(ServiceHoursRecorded.TOPIC) if e.data["operation_id"] == project["id"]}
        return hours if len(hours) >= 2 else None

    hours = await eventually(recorded, message="the approved shift hours published")
    assert set(hours) == {signups["prompt"], signups["by_geofence"]}  # never the declined ones
    published = hours[signups["by_geofence"]]
    assert (published["post_id"], published["hours"], published["record_id"]) == (
        shift["id"], pytest.approx(1.5), str(uuid.uuid5(uuid.NAMESPACE_URL, f"shouwang:dispatch:hours:{signups['by_geofence']}")))
