"""Offers on the real stack: only one's own, accept/decline, backfill waves, emergency mode, expiry, check-in/out and hours."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shouwang_dev.testing import eventually
from shouwang_shared.auth import Role
from shouwang_shared.contracts.dispatch import AssignmentAnswered, AssignmentAttendance, ServiceHoursRecorded
from shouwang_shared.contracts.intel import EscalationRaised

from dispatch.offers import expire_overdue_offers, mark_no_shows
from tests.dispatch.service import TOWN_A, TOWN_B, day, post, volunteer_state


async def _assignments(dispatch, operation_id):
    return await dispatch.sql(
        "SELECT id, volunteer_id, post_id, status, wave, distance_km FROM assignments WHERE operation_id = $1 ORDER BY distance_km",
        uuid.UUID(operation_id),
    )


async def test_a_volunteer_sees_and_answers_only_their_own_offers_and_a_decline_is_backfilled(dispatch):
    near = [volunteer_state(26.00 + i * 0.002, 118.00) for i in range(3)]
    reserve = [volunteer_state(26.01 + i * 0.002, 118.01, recruitment_mode="reserve") for i in range(4)]
    await dispatch.add_volunteers(near + reserve)
    op = await dispatch.create_operation({"name": "马拉松", "org_path": TOWN_A, "posts": [post("起点", 26.0, 118.0, day(8), headcount=3)]})
    await dispatch.activate_and_wait(op["id"])
    first = await _assignments(dispatch, op["id"])
    assert {a["volunteer_id"] for a in first} == {v.volunteer_id for v in near}
    mine, other = first[0], first[1]

    listed = (await dispatch.client.get("/v1/assignments/mine", headers=dispatch.volunteer(mine["volunteer_id"]))).json()
    assert [a["id"] for a in listed] == [str(mine["id"])] and listed[0]["post_name"] == "起点"
    as_other = dispatch.volunteer(other["volunteer_id"])
    assert (await dispatch.client.get(f"/v1/assignments/{mine['id']}", headers=as_other)).status_code == 404
    assert (await dispatch.client.post(f"/v1/assignments/{mine['id']}/accept", headers=as_other)).status_code == 404
    assert (await dispatch.client.get("/v1/assignments/mine", headers=dispatch.headers())).status_code == 403
    assert (await dispatch.client.get(f"/v1/assignments/{mine['id']}", headers=dispatch.headers(Role.TOWN_ADMIN, scope_path=TOWN_B))).status_code == 403

    accepted = await dispatch.client.post(f"/v1/assignments/{mine['id']}/accept", headers=dispatch.volunteer(mine["volunteer_id"]))
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    declined = await dispatch.client.post(f"/v1/assignments/{other['id']}/decline", json={"reason": "家中有事"}, headers=as_other)
    assert declined.status_code == 200 and declined.json()["decline_reason"] == "家中有事"
    again = await dispatch.client.post(f"/v1/assignments/{other['id']}/accept", headers=as_other)
    assert again.status_code == 409 and again.json()["detail"]["field"] == "status"

    after = await _assignments(dispatch, op["id"])
    wave = [a for a in after if a["wave"] == 1]
    assert wave, "the decline started a backfill wave"
    assert {a["volunteer_id"] for a in wave} <= {v.volunteer_id for v in reserve}
    for a in wave:  # the backfill wave accepts: the post is full again
        r = await dispatch.client.post(f"/v1/assignments/{a['id']}/accept", headers=dispatch.volunteer(a["volunteer_id"]))
        assert r.status_code == 200
    fill = (await dispatch.client.get(f"/v1/fill-rate/{op['id']}", headers=dispatch.headers())).json()
    assert fill["accepted"] >= 2 and fill["declined"] == 1 and fill["declined_by_reason"] == {"家中有事": 1}

    async def answered():
        events = [e for e in await dispatch.topic(AssignmentAnswered.TOPIC) if e.type == AssignmentAnswered.TYPE and e.data["operation_id"] == op["id"]]
        return events if len(events) >= 2 + len(wave) else None

    events = await eventually(answered, message="answers on the assignments topic")
    assert {e.data["answer"] for e in events} == {"accepted", "declined"}


async def test_the_hot_read_of_ones_assignments_answers_exactly_as_the_fastapi_route(dispatch):
    """`GET /v1/assignments/mine` with no query (or include_past=true/false) skips FastAPI's routing (`HotRoutes`);
    any other query goes the ordinary route. Both must give the same answers, errors included."""
    near = [volunteer_state(26.30 + i * 0.002, 118.30) for i in range(2)]
    await dispatch.add_volunteers(near)
    op = await dispatch.create_operation({"name": "夜巡", "org_path": TOWN_A, "posts": [post("桥头", 26.3, 118.3, day(9), headcount=2)]})
    await dispatch.activate_and_wait(op["id"])
    me = dispatch.volunteer(near[0].volunteer_id)

    hot = await dispatch.client.get("/v1/assignments/mine", headers={**me, "X-Correlation-ID": "hot-1"})
    slow = await dispatch.client.get("/v1/assignments/mine?include_past=0", headers=me)
    assert hot.status_code == slow.status_code == 200 and hot.content == slow.content and len(hot.json()) == 1
    assert hot.headers["x-correlation-id"] == "hot-1" and hot.headers["content-type"] == slow.headers["content-type"]
    hot_past = await dispatch.client.get("/v1/assignments/mine?include_past=true", headers=me)
    slow_past = await dispatch.client.get("/v1/assignments/mine?include_past=1", headers=me)
    assert hot_past.content == slow_past.content

    for headers, status in (({}, 401), ({"Authorization": "Bearer forged"}, 401), (dispatch.headers(), 403)):
        hot_refused = await dispatch.client.get("/v1/assignments/mine", headers=headers)
        slow_refused = await dispatch.client.get("/v1/assignments/mine?include_past=false&x=1", headers=headers)
        assert hot_refused.status_code == slow_refused.status_code == status
        assert hot_refused.json() == slow_refused.json()
    bad = await dispatch.client.get("/v1/assignments/mine?include_past=maybe", headers=me)
    assert bad.status_code == 422 and "include_past" in bad.text

    metrics = (await dispatch.client.get("/metrics")).text
    assert 'route="/v1/assignments/mine",service="dispatch",status="200"' in metrics


async def test_emergency_escalation_offers_the_nearest_and_moves_to_the_next_nearest_on_each_decline(dispatch):
    ranked = [volunteer_state(25.00 + i * 0.003, 117.00, skills=["first_aid"]) for i in range(4)]
    beyond_radius = volunteer_state(25.06, 117.00, skills=["first_aid"])  # 6.7 km away, radius 5 km
    await dispatch.add_volunteers(ranked + [beyond_radius])
    starts = datetime.now(UTC) + timedelta(days=9)
    escalation = EscalationRaised(
        escalation_id=str(uuid.uuid4()), case_id="case-1", kind="missing_person", name="寻找走失老人", lat=25.0, lon=117.0,
        headcount=2, starts_at=starts, ends_at=starts + timedelta(hours=3), org_path=TOWN_A,
    )
    await dispatch.publish(escalation, subject=escalation.escalation_id)

    async def offered():
        rows = await dispatch.sql(
            "SELECT a.id, a.volunteer_id, a.status, a.wave, o.kind FROM assignments a JOIN operations o ON o.id = a.operation_id"
            " WHERE o.escalation_id = $1 ORDER BY a.distance_km", escalation.escalation_id,
        )
        return rows if len(rows) >= 2 else None

    rows = await eventually(offered, timeout_s=30, message="emergency offers")
    assert rows[0]["kind"] == "emergency"
    assert [r["volunteer_id"] for r in rows] == [ranked[0].volunteer_id, ranked[1].volunteer_id]
    nearest = rows[0]
    r = await dispatch.client.post(f"/v1/assignments/{nearest['id']}/decline", json={"reason": "不在附近"}, headers=dispatch.volunteer(nearest["volunteer_id"]))
    assert r.status_code == 200
    rows = await offered()
    assert len(rows) == 3 and rows[2]["volunteer_id"] == ranked[2].volunteer_id and rows[2]["wave"] == 1
    r = await dispatch.client.post(f"/v1/assignments/{rows[2]['id']}/decline", json={"reason": "不在附近"}, headers=dispatch.volunteer(ranked[2].volunteer_id))
    rows = await offered()
    assert [r["volunteer_id"] for r in rows][-1] == ranked[3].volunteer_id
    r = await dispatch.client.post(f"/v1/assignments/{rows[-1]['id']}/decline", json={"reason": "不在附近"}, headers=dispatch.volunteer(ranked[3].volunteer_id))
    assert len(await offered()) == 4, "nobody within the escalation's radius is left to ask"
    await dispatch.publish(escalation, subject=escalation.escalation_id)  # the same escalation again opens nothing new
    ops = await dispatch.sql("SELECT count(*) AS n FROM operations WHERE escalation_id = $1", escalation.escalation_id)
    assert ops[0]["n"] == 1


async def test_an_offer_past_its_deadline_expires_and_is_backfilled(dispatch):
    pool = [volunteer_state(24.00 + i * 0.002, 116.00) for i in range(5)]
    await dispatch.add_volunteers(pool)
    op = await dispatch.create_operation({"name": "灯会", "org_path": TOWN_A, "respond_within_minutes": 30,
                                          "posts": [post("灯会入口", 24.0, 116.0, day(10), headcount=2)]})
    await dispatch.activate_and_wait(op["id"])
    first = await _assignments(dispatch, op["id"])
    accept = first[0]
    await dispatch.client.post(f"/v1/assignments/{accept['id']}/accept", headers=dispatch.volunteer(accept["volunteer_id"]))
    sessions = dispatch.app.state.runtime.sessions
    assert await expire_overdue_offers(sessions=sessions, now=datetime.now(UTC) + timedelta(minutes=31)) >= 1
    after = await _assignments(dispatch, op["id"])
    by_id = {a["id"]: a for a in after}
    assert by_id[first[1]["id"]]["status"] == "expired" and by_id[accept["id"]]["status"] == "accepted"
    assert any(a["wave"] == 1 and a["status"] == "offered" for a in after)
    late = await dispatch.client.post(f"/v1/assignments/{first[1]['id']}/accept", headers=dispatch.volunteer(first[1]["volunteer_id"]))
    assert late.status_code == 409


async def test_check_in_by_geofence_or_qr_then_check_out_records_service_hours(dispatch):
    pool = [volunteer_state(23.00 + i * 0.001, 115.00) for i in range(2)]
    await dispatch.add_volunteers(pool)
    start = datetime.now(UTC) + timedelta(minutes=20)
    op = await dispatch.create_operation({"name": "校园周边护学", "org_path": TOWN_A,
                                          "posts": [post("实验小学门口", 23.0, 115.0, start, hours=2, headcount=2, difficulty=2)]})
    await dispatch.activate_and_wait(op["id"])
    a, b = await _assignments(dispatch, op["id"])
    for x in (a, b):
        assert (await dispatch.client.post(f"/v1/assignments/{x['id']}/accept", headers=dispatch.volunteer(x["volunteer_id"]))).status_code == 200
    me = dispatch.volunteer(a["volunteer_id"])
    far = await dispatch.client.post(f"/v1/assignments/{a['id']}/check-in", json={"lat": 23.05, "lon": 115.0}, headers=me)
    assert far.status_code == 422 and far.json()["detail"]["field"] == "lat"
    nothing = await dispatch.client.post(f"/v1/assignments/{a['id']}/check-in", json={}, headers=me)
    assert nothing.status_code == 422
    wrong_qr = await dispatch.client.post(f"/v1/assignments/{a['id']}/check-in", json={"qr_token": "guess"}, headers=me)
    assert wrong_qr.status_code == 422 and wrong_qr.json()["detail"]["field"] == "qr_token"
    near = await dispatch.client.post(f"/v1/assignments/{a['id']}/check-in", json={"lat": 23.0005, "lon": 115.0}, headers=me)
    assert near.status_code == 200 and near.json()["status"] == "checked_in"
    code = (await dispatch.client.get(f"/v1/operations/{op['id']}/posts/{b['post_id']}/checkin-token", headers=dispatch.headers())).json()["token"]
    by_qr = await dispatch.client.post(f"/v1/assignments/{b['id']}/check-in", json={"qr_token": code}, headers=dispatch.volunteer(b["volunteer_id"]))
    assert by_qr.status_code == 200 and by_qr.json()["review_reason"] is None
    out = await dispatch.client.post(f"/v1/assignments/{a['id']}/check-out", headers=me)
    assert out.status_code == 200 and out.json()["status"] == "checked_out"
    assert (out.json()["hours_status"], out.json()["review_reason"]) == ("pending", None)  # HOURS_APPROVAL=all: nothing flagged, still pending
    fill = (await dispatch.client.get(f"/v1/fill-rate/{op['id']}", headers=dispatch.headers())).json()
    assert (fill["checked_in"], fill["on_post"]) == (2, 1)

    async def checked_out():
        return [e for e in await dispatch.topic(AssignmentAttendance.TOPIC)
                if e.type == AssignmentAttendance.TYPE and e.data["assignment_id"] == str(a["id"]) and e.data["action"] == "checked_out"] or None

    async def hours():
        events = [e for e in await dispatch.topic(ServiceHoursRecorded.TOPIC) if e.data["assignment_id"] == str(a["id"])]
        return events or None

    await eventually(checked_out, message="the check-out on dispatch.assignments.v1")  # written in the same transaction
    assert await hours() is None, "no hours published before a station admin approves them"
    queue = (await dispatch.client.get(f"/v1/hours/pending?operation_id={op['id']}", headers=dispatch.headers(Role.STATION_ADMIN, scope_path=TOWN_A))).json()
    assert [(h["assignment_id"], h["review_reason"]) for h in queue] == [(str(a["id"]), None)]
    approved = await dispatch.client.post("/v1/hours/approve", json={"assignment_ids": [str(a["id"])]},
                                          headers=dispatch.headers(Role.STATION_ADMIN, scope_path=TOWN_A))
    assert approved.json() == {"decided": [str(a["id"])], "already_decided": []}

    (recorded,) = await eventually(hours, message="service hours on dispatch.hours.v1")
    assert recorded.data["volunteer_id"] == a["volunteer_id"] and recorded.data["difficulty"] == 2
    assert recorded.data["org_path"] == TOWN_A + "/s1"
    attendance = [e for e in await dispatch.topic(AssignmentAttendance.TOPIC) if e.type == AssignmentAttendance.TYPE and e.data["operation_id"] == op["id"]]
    assert sorted(e.data["action"] for e in attendance) == ["checked_in", "checked_in", "checked_out"]
    metrics = (await dispatch.client.get("/metrics")).text
    assert f'shouwang_dispatch_fill{{measure="on_post",operation="{op["id"]}"}} 1.0' in metrics


async def test_an_accepted_volunteer_who_never_arrives_is_a_no_show_and_is_backfilled(dispatch):
    pool = [volunteer_state(22.00 + i * 0.002, 114.00) for i in range(4)]
    await dispatch.add_volunteers(pool)
    start = datetime.now(UTC) + timedelta(minutes=10)
    op = await dispatch.create_operation({"name": "夜市巡逻", "org_path": TOWN_A,
                                          "posts": [post("夜市", 22.0, 114.0, start, hours=3, headcount=1)]})
    await dispatch.activate_and_wait(op["id"])
    (a,) = await _assignments(dispatch, op["id"])
    await dispatch.client.post(f"/v1/assignments/{a['id']}/accept", headers=dispatch.volunteer(a["volunteer_id"]))
    sessions = dispatch.app.state.runtime.sessions
    assert await mark_no_shows(sessions=sessions, now=start + timedelta(minutes=45)) == 1
    after = await _assignments(dispatch, op["id"])
    assert {x["status"] for x in after if x["id"] == a["id"]} == {"no_show"}
    assert any(x["wave"] == 1 for x in after)
    stats = (await dispatch.sql("SELECT no_shows, accepted FROM volunteers WHERE volunteer_id = $1", a["volunteer_id"]))[0]
    assert (stats["no_shows"], stats["accepted"]) == (1, 1)


async def _shift_moved(dispatch, assignment_ids, start: datetime, end: datetime) -> None:
    """Time passes: these accepted shifts ran from `start` to `end` (the test cannot wait for a real shift to end)."""
    await dispatch.sql("UPDATE assignments SET shift_start = $2, shift_end = $3 WHERE id = ANY($1::uuid[])", list(assignment_ids), start, end)


async def test_a_check_in_captured_offline_counts_at_the_phones_time_by_the_late_sync_rule(dispatch):
    pool = [volunteer_state(21.00 + i * 0.001, 113.00) for i in range(3)]
    await dispatch.add_volunteers(pool)
    op = await dispatch.create_operation({"name": "山村夜巡", "org_path": TOWN_A,
                                          "posts": [post("村委会", 21.0, 113.0, datetime.now(UTC) + timedelta(minutes=20), hours=2, headcount=3)]})
    await dispatch.activate_and_wait(op["id"])
    late, early, fresh = await _assignments(dispatch, op["id"])
    for x in (late, early, fresh):
        assert (await dispatch.client.post(f"/v1/assignments/{x['id']}/accept", headers=dispatch.volunteer(x["volunteer_id"]))).status_code == 200
    now = datetime.now(UTC)
    two_days_ago = now - timedelta(hours=32)
    await _shift_moved(dispatch, [late["id"], early["id"]], two_days_ago, two_days_ago + timedelta(hours=2))
    await _shift_moved(dispatch, [fresh["id"]], now - timedelta(hours=3), now - timedelta(hours=1))
    assert await mark_no_shows(sessions=dispatch.app.state.runtime.sessions, now=now) == 3  # the phones were offline
    at_post = {"lat": 21.0, "lon": 113.0}

    me = dispatch.volunteer(late["volunteer_id"])  # synced 30 hours after the shift: kept at the phone's time, flagged
    arrived = two_days_ago + timedelta(minutes=5)
    checked_in = await dispatch.client.post(f"/v1/assignments/{late['id']}/check-in", json={**at_post, "at": arrived.isoformat()}, headers=me)
    assert checked_in.status_code == 200, checked_in.text
    body = checked_in.json()
    assert (body["status"], datetime.fromisoformat(body["checked_in_at"]), body["review_reason"]) == ("checked_in", arrived, "late_sync")
    left = await dispatch.client.post(f"/v1/assignments/{late['id']}/check-out", json={"at": (arrived + timedelta(minutes=85)).isoformat()}, headers=me)
    assert left.status_code == 200 and left.json()["hours"] == pytest.approx(1.42) and left.json()["review_reason"] == "late_sync"
    stats = (await dispatch.sql("SELECT shows, no_shows FROM volunteers WHERE volunteer_id = $1", late["volunteer_id"]))[0]
    assert (stats["shows"], stats["no_shows"]) == (1, 0), "the no-show recorded while the phone was offline is taken back"

    too_early = await dispatch.client.post(  # the phone's time is before the check-in window: refused, naming `at`
        f"/v1/assignments/{early['id']}/check-in", json={**at_post, "at": (two_days_ago - timedelta(hours=3)).isoformat()},
        headers=dispatch.volunteer(early["volunteer_id"]),
    )
    assert too_early.status_code == 422 and too_early.json()["detail"]["field"] == "at"
    online = await dispatch.client.post(f"/v1/assignments/{early['id']}/check-in", json=at_post, headers=dispatch.volunteer(early["volunteer_id"]))
    assert online.status_code == 409, "a no-show cannot be undone without the phone's time inside the shift"

    within = await dispatch.client.post(  # synced an hour after the shift ended: within the bound, nothing to review
        f"/v1/assignments/{fresh['id']}/check-in", json={**at_post, "at": (now - timedelta(hours=2, minutes=50)).isoformat()},
        headers=dispatch.volunteer(fresh["volunteer_id"]),
    )
    assert within.status_code == 200 and within.json()["review_reason"] is None
    naive = await dispatch.client.post(f"/v1/assignments/{fresh['id']}/check-out", json={"at": "2026-12-01T08:00:00"},
                                       headers=dispatch.volunteer(fresh["volunteer_id"]))
    assert naive.status_code == 422 and naive.json()["detail"]["field"].endswith("at")

    attendance = [e.data["action"] for e in await dispatch.topic(AssignmentAttendance.TOPIC)
                  if e.type == AssignmentAttendance.TYPE and e.data["assignment_id"] == str(late["id"])]
    assert attendance == ["no_show", "checked_in", "checked_out"]
