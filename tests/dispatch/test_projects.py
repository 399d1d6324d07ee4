"""Service projects on the real database and broker: schedules become shifts a horizon ahead (idempotently, also
with two replicas at once), sign-ups fill a shift then a waitlist, a cancellation promotes and tells the promoted
volunteer, and the database refuses a volunteer two overlapping commitments even when both arrive together."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from shouwang_dev.testing import eventually
from shouwang_shared.auth import Role
from shouwang_shared.contracts.dispatch import ShiftSignupChanged

from dispatch.projects import service as projects
from tests.dispatch.service import TOWN_A, TOWN_B, day, post, volunteer_state

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _today() -> date:
    return datetime.now(SHANGHAI).date()


def project(name: str, lat: float, lon: float, **fields) -> dict:
    """A 护学 project at one school gate as staff would send it: weekdays 07:20 for an hour, from tomorrow."""
    body = {
        "kind": "school_patrol", "name": name, "org_path": TOWN_A + "/s1",
        "places": [{"name": f"{name}校门", "lat": lat, "lon": lon}], "capacity": 2, "shift_minutes": 60,
        "schedule": {"rrule": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "starts_on": (_today() + timedelta(days=1)).isoformat(), "start_time": "07:20"},
        "horizon_days": 28,
    }
    body.update(fields)
    return body


async def _create(dispatch, body: dict) -> dict:
    response = await dispatch.client.post("/v1/projects", json=body, headers=dispatch.headers())
    assert response.status_code == 201, response.text
    return response.json()


async def _shifts(dispatch, project_id: str) -> list[dict]:
    response = await dispatch.client.get(f"/v1/projects/{project_id}/shifts?limit=5000", headers=dispatch.headers())
    assert response.status_code == 200, response.text
    return response.json()


def _local_dates(shifts: list[dict]) -> list[date]:
    return [datetime.fromisoformat(s["starts_at"]).astimezone(SHANGHAI).date() for s in shifts]


async def test_a_weekly_school_patrol_over_a_term_generates_its_shifts_once_without_the_holidays(dispatch):
    first = _today() + timedelta(days=1)
    term_end = first + timedelta(days=56)
    mwf = [first + timedelta(days=d) for d in range(56) if (first + timedelta(days=d)).weekday() in (0, 2, 4)]
    holidays = [mwf[3], mwf[10]]
    body = project("实验小学", 30.10, 120.10, horizon_days=70, exdates=[d.isoformat() for d in holidays], schedule={
        "rrule": "FREQ=WEEKLY;BYDAY=MO,WE,FR", "starts_on": first.isoformat(), "start_time": "07:20", "ends_before": term_end.isoformat(),
    })
    created = await _create(dispatch, body)
    assert created["kind"] == "school_patrol" and created["schedule"][0]["rrule"] == "FREQ=WEEKLY;BYDAY=MO,WE,FR"

    shifts = await _shifts(dispatch, created["id"])
    assert _local_dates(shifts) == [d for d in mwf if d not in holidays]
    assert {datetime.fromisoformat(s["starts_at"]).astimezone(SHANGHAI).strftime("%H:%M") for s in shifts} == {"07:20"}
    assert all(datetime.fromisoformat(s["ends_at"]) - datetime.fromisoformat(s["starts_at"]) == timedelta(hours=1) for s in shifts)
    assert {s["capacity"] for s in shifts} == {2} and {s["place"]["name"] for s in shifts} == {"实验小学校门"}

    again = await dispatch.client.post(f"/v1/projects/{created['id']}/shifts/generate", headers=dispatch.headers())
    assert again.status_code == 200 and again.json()["created"] == 0
    assert len(await _shifts(dispatch, created["id"])) == len(shifts)

    # A holiday announced later: the shift already generated on it is cancelled.
    late_holiday = mwf[5]
    response = await dispatch.client.post(f"/v1/projects/{created['id']}/exceptions", json={"dates": [late_holiday.isoformat()], "reason": "运动会"},
                                          headers=dispatch.headers())
    assert response.status_code == 200 and late_holiday.isoformat() in response.json()["exdates"]
    open_dates = _local_dates([s for s in await _shifts(dispatch, created["id"]) if s["status"] == "open"])
    assert late_holiday not in open_dates and len(open_dates) == len(shifts) - 1


async def test_two_replicas_generating_at_once_create_each_shift_exactly_once(dispatch):
    created = await _create(dispatch, project("二中", 30.20, 120.20, horizon_days=3, places=[
        {"name": "东门", "lat": 30.20, "lon": 120.20}, {"name": "西门", "lat": 30.201, "lon": 120.199}]))
    before = len(await _shifts(dispatch, created["id"]))
    await dispatch.sql("UPDATE projects SET horizon_days = 60 WHERE id = $1", uuid.UUID(created["id"]))
    engines = [create_async_engine(dispatch.database_url) for _ in range(2)]  # two replicas: their own pools
    try:
        staff = dispatch.app.state.runtime  # only for the principal type; each replica has its own sessions
        del staff
        from shouwang_shared.auth import Principal

        principal = Principal(sub="county", role=Role.COUNTY_ADMIN, scope_path="/c1")
        results = await asyncio.gather(*[
            projects.generate_project_shifts(sessions=async_sessionmaker(engine, expire_on_commit=False), principal=principal, project_id=created["id"])
            for engine in engines
        ])
    finally:
        for engine in engines:
            await engine.dispose()
    rows = await dispatch.sql(
        "SELECT place_no, starts_at, count(*) AS n FROM project_shifts WHERE project_id = $1 GROUP BY place_no, starts_at", uuid.UUID(created["id"])
    )
    first = _today() + timedelta(days=1)
    weekdays = [first + timedelta(days=d) for d in range(58) if (first + timedelta(days=d)).weekday() < 5]
    assert all(r["n"] == 1 for r in rows)
    in_horizon = {r["starts_at"].astimezone(SHANGHAI).date() for r in rows}
    assert set(weekdays) <= in_horizon and len(rows) == 2 * len(in_horizon)
    assert sum(r.created for r in results) == len(rows) - before  # what one replica made the other did not


async def test_bad_projects_are_refused_naming_the_field(dispatch):
    async def refused(body: dict, status: int = 422, headers: dict | None = None) -> dict:
        response = await dispatch.client.post("/v1/projects", json=body, headers=headers or dispatch.headers())
        assert response.status_code == status, response.text
        return response.json()["detail"]

    bad_rule = project("三小", 30.3, 120.3)
    bad_rule["schedule"]["rrule"] = "FREQ=HOURLY"
    assert (await refused(bad_rule))["field"] == "schedule.rrule"
    assert "label" in str(await refused(project("四小", 30.3, 120.3, kind="custom")))
    assert (await refused(project("五小", 30.3, 120.3, required_skills=["no_such_skill"])))["field"] == "required_skills"
    assert (await refused(project("六小", 30.3, 120.3), 403, dispatch.headers(Role.TOWN_ADMIN, scope_path=TOWN_B)))["field"] == "org_path"
    assert (await refused(project("七小", 30.3, 120.3), 403, dispatch.volunteer(str(uuid.uuid4()))))["code"] == "role_forbidden"

    custom = await _create(dispatch, project("普法进社区", 30.3, 120.3, kind="custom", label="普法宣传"))
    assert custom["label"] == "普法宣传"
    response = await dispatch.client.get(f"/v1/projects/{custom['id']}", headers=dispatch.headers(Role.TOWN_ADMIN, scope_path=TOWN_B))
    assert response.status_code == 403
    listed = await dispatch.client.get("/v1/projects?kind=custom", headers=dispatch.headers(Role.TOWN_ADMIN, scope_path=TOWN_A))
    assert custom["id"] in [p["id"] for p in listed.json()]
    assert (await dispatch.client.get("/v1/projects/not-a-uuid", headers=dispatch.headers())).json()["detail"]["field"] == "project_id"


async def test_sign_ups_fill_a_shift_then_the_waitlist_and_a_cancellation_promotes_the_first_waiting(dispatch):
    people = [volunteer_state(30.40 + i * 0.001, 120.40) for i in range(4)]
    await dispatch.add_volunteers(people)
    created = await _create(dispatch, project("四中", 30.40, 120.40))
    shift = (await _shifts(dispatch, created["id"]))[0]

    answers = []
    for person in people:
        response = await dispatch.client.post(f"/v1/shifts/{shift['id']}/signup", headers=dispatch.volunteer(person.volunteer_id))
        assert response.status_code == 201, response.text
        answers.append(response.json())
    assert [a["status"] for a in answers] == ["confirmed", "confirmed", "waitlisted", "waitlisted"]
    assert answers[0]["confirmed_at"] and answers[2]["waitlisted_at"] and answers[2]["confirmed_at"] is None
    retry = await dispatch.client.post(f"/v1/shifts/{shift['id']}/signup", headers=dispatch.volunteer(people[0].volunteer_id))
    assert retry.json()["id"] == answers[0]["id"] and retry.json()["status"] == "confirmed"  # a phone's retry changes nothing

    cancelled = await dispatch.client.post(f"/v1/shifts/{shift['id']}/cancel", json={"reason": "孩子生病"}, headers=dispatch.volunteer(people[1].volunteer_id))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled" and cancelled.json()["cancel_reason"] == "孩子生病"
    mine = (await dispatch.client.get("/v1/shifts/mine", headers=dispatch.volunteer(people[2].volunteer_id))).json()
    assert [m["status"] for m in mine] == ["confirmed"] and mine[0]["promoted_at"] is not None
    still_waiting = (await dispatch.client.get("/v1/shifts/mine", headers=dispatch.volunteer(people[3].volunteer_id))).json()
    assert [m["status"] for m in still_waiting] == ["waitlisted"]
    counts = next(s for s in await _shifts(dispatch, created["id"]) if s["id"] == shift["id"])
    assert (counts["confirmed"], counts["waitlisted"]) == (2, 1)

    async def promoted():
        events = [e for e in await dispatch.topic(ShiftSignupChanged.TOPIC)
                  if e.type == ShiftSignupChanged.TYPE and e.data["shift_id"] == shift["id"] and e.data["reason"] == "promoted"]
        return events or None

    events = await eventually(promoted, message="the promotion on dispatch.assignments.v1")
    assert len(events) == 1 and events[0].data["volunteer_id"] == people[2].volunteer_id and events[0].data["status"] == "confirmed"
    assert events[0].data["project_name"] == "四中" and events[0].data["place"]["name"] == "四中校门"

    staff_view = await dispatch.client.get(f"/v1/projects/{created['id']}/signups?shift_id={shift['id']}", headers=dispatch.headers())
    assert sorted(s["status"] for s in staff_view.json()) == ["cancelled", "confirmed", "confirmed", "waitlisted"]
    assert (await dispatch.client.get(f"/v1/projects/{created['id']}/signups", headers=dispatch.volunteer(people[0].volunteer_id))).status_code == 403


async def test_two_overlapping_sign_ups_sent_together_the_database_lets_exactly_one_through(dispatch):
    person = volunteer_state(30.50, 120.50)
    await dispatch.add_volunteers([person])
    gate = await _create(dispatch, project("五中", 30.50, 120.50))
    care = await _create(dispatch, project("四点半课堂", 30.501, 120.501, kind="care", schedule={
        "rrule": "FREQ=DAILY", "starts_on": (_today() + timedelta(days=1)).isoformat(), "start_time": "07:50"}))  # 07:50 overlaps 07:20–08:20
    a = (await _shifts(dispatch, gate["id"]))[0]
    b = next(s for s in await _shifts(dispatch, care["id"]) if s["starts_at"][:10] == a["starts_at"][:10])
    me = dispatch.volunteer(person.volunteer_id)

    responses = await asyncio.gather(*[dispatch.client.post(f"/v1/shifts/{s['id']}/signup", headers=me) for s in (a, b)])
    assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
    refused = next(r for r in responses if r.status_code == 409).json()["detail"]
    winner = next(r for r in responses if r.status_code == 201).json()
    assert refused["code"] == "double_booked" and refused["field"] == "shift_id" and winner["id"] in refused["message"]
    commitments = await dispatch.sql("SELECT kind FROM volunteer_commitments WHERE volunteer_id = $1", person.volunteer_id)
    assert [c["kind"] for c in commitments] == ["shift"]

    # Cancelling frees the window: the other shift can be taken now.
    loser = b if winner["shift_id"] == a["id"] else a
    await dispatch.client.post(f"/v1/shifts/{winner['shift_id']}/cancel", headers=me)
    again = await dispatch.client.post(f"/v1/shifts/{loser['id']}/signup", headers=me)
    assert again.status_code == 201 and again.json()["status"] == "confirmed"


async def test_an_operation_offer_and_a_project_shift_cannot_both_hold_one_volunteer(dispatch):
    person = volunteer_state(30.60, 120.60)
    await dispatch.add_volunteers([person])
    start = day(2, hour=7)  # 07:00 Beijing, two days ahead, for four hours
    op = await dispatch.create_operation({"name": "庙会安保", "org_path": TOWN_A, "posts": [post("庙门", 30.60, 120.60, start, headcount=1)]})
    await dispatch.activate_and_wait(op["id"])
    offer = (await dispatch.sql("SELECT id FROM assignments WHERE operation_id = $1", uuid.UUID(op["id"])))[0]
    starts_on = start.astimezone(SHANGHAI).date()
    gate = await _create(dispatch, project("六中", 30.601, 120.601, schedule={"rrule": "FREQ=DAILY", "starts_on": starts_on.isoformat(), "start_time": "08:00"}))
    shift = next(s for s in await _shifts(dispatch, gate["id"]) if _local_dates([s]) == [starts_on])
    me = dispatch.volunteer(person.volunteer_id)

    accept, signup = await asyncio.gather(
        dispatch.client.post(f"/v1/assignments/{offer['id']}/accept", headers=me),
        dispatch.client.post(f"/v1/shifts/{shift['id']}/signup", headers=me),
    )
    outcomes = {(accept.status_code, signup.status_code)}
    assert outcomes <= {(200, 409), (409, 201)}, (accept.text, signup.text)  # exactly one of the two holds the window
    loser = accept if accept.status_code == 409 else signup
    assert loser.json()["detail"]["code"] == "double_booked"
    kinds = [c["kind"] for c in await dispatch.sql("SELECT kind FROM volunteer_commitments WHERE volunteer_id = $1", person.volunteer_id)]
    assert kinds == (["assignment"] if accept.status_code == 200 else ["shift"])


async def test_a_this_and_future_edit_moves_later_shifts_and_tells_their_volunteers(dispatch):
    person = volunteer_state(30.70, 120.70)
    await dispatch.add_volunteers([person])
    created = await _create(dispatch, project("七中", 30.70, 120.70, schedule={
        "rrule": "FREQ=DAILY", "starts_on": (_today() + timedelta(days=1)).isoformat(), "start_time": "07:20"}, horizon_days=14))
    shifts = await _shifts(dispatch, created["id"])
    split = _local_dates(shifts)[4]
    doomed = next(s for s in shifts if _local_dates([s]) == [split + timedelta(days=1)])
    assert (await dispatch.client.post(f"/v1/shifts/{doomed['id']}/signup", headers=dispatch.volunteer(person.volunteer_id))).status_code == 201

    edit = {"from_date": split.isoformat(), "rrule": "FREQ=WEEKLY;BYDAY=SA", "start_time": "09:00"}
    response = await dispatch.client.post(f"/v1/projects/{created['id']}/schedule", json=edit, headers=dispatch.headers())
    assert response.status_code == 200, response.text
    segments = response.json()["schedule"]
    assert [(s["rrule"], s["ends_before"]) for s in segments] == [("FREQ=DAILY", split.isoformat()), ("FREQ=WEEKLY;BYDAY=SA", None)]

    after = [s for s in await _shifts(dispatch, created["id"]) if s["status"] == "open"]
    kept = [s for s in after if _local_dates([s])[0] < split]
    moved = [s for s in after if _local_dates([s])[0] >= split]
    assert [s["id"] for s in kept] == [s["id"] for s in shifts if _local_dates([s])[0] < split]
    assert moved and all(datetime.fromisoformat(s["starts_at"]).astimezone(SHANGHAI).strftime("%a %H:%M") == "Sat 09:00" for s in moved)
    mine = (await dispatch.client.get("/v1/shifts/mine", headers=dispatch.volunteer(person.volunteer_id))).json()
    assert mine[0]["status"] == "cancelled" and mine[0]["cancel_reason"].startswith("排班调整")

    async def told():
        events = [e for e in await dispatch.topic(ShiftSignupChanged.TOPIC)
                  if e.type == ShiftSignupChanged.TYPE and e.data["shift_id"] == doomed["id"] and e.data["reason"] == "shift_cancelled"]
        return events or None

    await eventually(told, message="the cancelled shift's volunteer is told")
    bad = await dispatch.client.post(f"/v1/projects/{created['id']}/schedule", json={**edit, "rrule": "FREQ=SOMETIMES"}, headers=dispatch.headers())
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "rrule"


async def test_a_series_sign_up_takes_every_later_shift_and_the_ones_generated_later(dispatch):
    person = volunteer_state(30.80, 120.80, skills=["mediation"])
    await dispatch.add_volunteers([person])
    created = await _create(dispatch, project("调解室", 30.80, 120.80, kind="legal_outreach", required_skills=["mediation"], horizon_days=10,
                                              schedule={"rrule": "FREQ=WEEKLY;BYDAY=TU,TH", "starts_on": (_today() + timedelta(days=1)).isoformat(), "start_time": "14:00"}))
    shifts = await _shifts(dispatch, created["id"])
    response = await dispatch.client.post(f"/v1/shifts/{shifts[0]['id']}/signup-series", headers=dispatch.volunteer(person.volunteer_id))
    assert response.status_code == 201, response.text
    assert [s["shift_id"] for s in response.json()["signups"]] == [s["id"] for s in shifts] and response.json()["skipped"] == []

    patched = await dispatch.client.patch(f"/v1/projects/{created['id']}", json={"horizon_days": 40}, headers=dispatch.headers())
    assert patched.status_code == 200
    later = await _shifts(dispatch, created["id"])
    assert len(later) > len(shifts)
    mine = (await dispatch.client.get("/v1/shifts/mine", headers=dispatch.volunteer(person.volunteer_id))).json()
    assert {m["shift_id"] for m in mine} == {s["id"] for s in later} and {m["status"] for m in mine} == {"confirmed"}

    unskilled = volunteer_state(30.80, 120.80)
    await dispatch.add_volunteers([unskilled])
    refused = await dispatch.client.post(f"/v1/shifts/{shifts[0]['id']}/signup", headers=dispatch.volunteer(unskilled.volunteer_id))
    assert refused.status_code == 403 and refused.json()["detail"]["field"] == "required_skills"


async def test_open_shifts_near_me_are_the_ones_i_qualify_for_nearest_first(dispatch):
    person = volunteer_state(31.00, 121.00)
    await dispatch.add_volunteers([person, volunteer_state(31.0, 121.0, skills=["first_aid"])])
    near = await _create(dispatch, project("近校", 31.001, 121.001))
    far = await _create(dispatch, project("远校", 31.30, 121.30))
    skilled = await _create(dispatch, project("医务", 31.002, 121.002, required_skills=["first_aid"]))
    response = await dispatch.client.get("/v1/shifts/open?radius_km=5&days=7", headers=dispatch.volunteer(person.volunteer_id))
    assert response.status_code == 200, response.text
    projects_seen = {s["project_id"] for s in response.json()}
    assert near["id"] in projects_seen and far["id"] not in projects_seen and skilled["id"] not in projects_seen
    assert all(s["distance_km"] <= 5 for s in response.json())
    assert (await dispatch.client.get("/v1/shifts/open", headers=dispatch.headers())).status_code == 403


async def test_the_sweep_tops_up_a_project_whose_horizon_moved_and_then_leaves_it_alone(dispatch):
    created = await _create(dispatch, project("八中", 30.90, 120.90, horizon_days=3))
    before = len(await _shifts(dispatch, created["id"]))
    await dispatch.sql("UPDATE projects SET horizon_days = 21 WHERE id = $1", uuid.UUID(created["id"]))
    sessions = dispatch.app.state.runtime.sessions
    assert await projects.generate_due_shifts(sessions=sessions) >= 1
    after = await _shifts(dispatch, created["id"])
    first = _today() + timedelta(days=1)
    weekdays = {first + timedelta(days=d) for d in range(19) if (first + timedelta(days=d)).weekday() < 5}
    assert len(after) > before and weekdays <= set(_local_dates(after))
    await projects.generate_due_shifts(sessions=sessions)  # nothing due any more: the same shifts
    assert [s["id"] for s in await _shifts(dispatch, created["id"])] == [s["id"] for s in after]


async def test_a_care_projects_beneficiaries_are_sealed_masked_and_only_for_its_staff(dispatch):
    created = await _create(dispatch, project("留守儿童之家", 30.95, 120.95, kind="care"))
    url = f"/v1/projects/{created['id']}/beneficiaries"
    added = await dispatch.client.post(url, json={"name": "李小明", "guardian_phone": "13912345678", "note": "周三由奶奶接"}, headers=dispatch.headers())
    assert added.status_code == 201, added.text
    assert (added.json()["name_masked"], added.json()["guardian_phone_masked"], added.json()["note"]) == ("李**", "139****5678", "周三由奶奶接")

    stored = (await dispatch.sql("SELECT * FROM project_beneficiaries WHERE id = $1", uuid.UUID(added.json()["id"])))[0]
    sealed = b"".join(bytes(stored[c]) for c in ("name_sealed", "guardian_phone_sealed", "note_sealed"))
    assert "李小明".encode() not in sealed and b"13912345678" not in sealed and "奶奶".encode() not in sealed

    listed = await dispatch.client.get(url, headers=dispatch.headers(Role.STATION_ADMIN, scope_path=TOWN_A + "/s1"))
    assert [b["guardian_phone_masked"] for b in listed.json()] == ["139****5678"]
    assert (await dispatch.client.get(url, headers=dispatch.headers(Role.TOWN_ADMIN, scope_path=TOWN_B))).status_code == 403
    assert (await dispatch.client.get(url, headers=dispatch.volunteer(str(uuid.uuid4())))).status_code == 403
    bad = await dispatch.client.post(url, json={"name": "王小红", "guardian_phone": "12345"}, headers=dispatch.headers())
    assert bad.status_code == 422 and "guardian_phone" in bad.text

    assert (await dispatch.client.delete(f"{url}/{added.json()['id']}", headers=dispatch.headers())).status_code == 204
    assert (await dispatch.client.get(url, headers=dispatch.headers())).json() == []
    assert await dispatch.sql("SELECT 1 FROM project_beneficiaries WHERE id = $1", uuid.UUID(added.json()["id"])) == []
    again = await dispatch.client.delete(f"{url}/{added.json()['id']}", headers=dispatch.headers())
    assert again.status_code == 404 and again.json()["detail"]["field"] == "beneficiary_id"


async def test_the_planner_does_not_offer_a_post_to_someone_on_an_overlapping_project_shift(dispatch):
    busy, free = volunteer_state(31.20, 121.20), volunteer_state(31.205, 121.205)
    await dispatch.add_volunteers([busy, free])
    start = day(3, hour=7)
    starts_on = start.astimezone(SHANGHAI).date()
    gate = await _create(dispatch, project("九中", 31.20, 121.20, schedule={"rrule": "FREQ=DAILY", "starts_on": starts_on.isoformat(), "start_time": "08:00"}))
    shift = next(s for s in await _shifts(dispatch, gate["id"]) if _local_dates([s]) == [starts_on])
    assert (await dispatch.client.post(f"/v1/shifts/{shift['id']}/signup", headers=dispatch.volunteer(busy.volunteer_id))).json()["status"] == "confirmed"

    op = await dispatch.create_operation({"name": "集市安保", "org_path": TOWN_A, "posts": [post("集市口", 31.20, 121.20, start, headcount=2)]})
    await dispatch.activate_and_wait(op["id"])
    offered = {r["volunteer_id"] for r in await dispatch.sql("SELECT volunteer_id FROM assignments WHERE operation_id = $1", uuid.UUID(op["id"]))}
    assert busy.volunteer_id not in offered and free.volunteer_id in offered


async def test_two_overlapping_offers_accepted_at_once_only_one_holds(dispatch):
    person = volunteer_state(31.40, 121.40)
    await dispatch.add_volunteers([person])
    start = day(4, hour=9)
    first = await dispatch.create_operation({"name": "灯会", "org_path": TOWN_A, "posts": [post("灯会入口", 31.40, 121.40, start, headcount=1)]})
    second = await dispatch.create_operation({"name": "夜市", "org_path": TOWN_A, "posts": [post("夜市口", 31.40, 121.40, start + timedelta(hours=1), headcount=1)]})
    await dispatch.activate_and_wait(first["id"])
    await dispatch.activate_and_wait(second["id"])  # the planner leaves her out: she holds an overlapping offer
    offer = (await dispatch.sql("SELECT * FROM assignments WHERE operation_id = $1", uuid.UUID(first["id"])))[0]
    other_post = (await dispatch.sql("SELECT * FROM posts WHERE operation_id = $1", uuid.UUID(second["id"])))[0]
    other_id = uuid.uuid4()  # an overlapping offer made anyway (a backfill racing the plan): the database still decides
    await dispatch.sql(
        "INSERT INTO assignments (id, operation_id, post_id, volunteer_id, status, distance_km, shift_start, shift_end, offered_at, respond_by)"
        " VALUES ($1, $2, $3, $4, 'offered', 0, $5, $6, now(), now() + interval '1 hour') RETURNING id",
        other_id, other_post["operation_id"], other_post["id"], person.volunteer_id, other_post["shift_start"], other_post["shift_end"],
    )
    me = dispatch.volunteer(person.volunteer_id)
    answers = await asyncio.gather(*[dispatch.client.post(f"/v1/assignments/{a}/accept", headers=me) for a in (offer["id"], other_id)])
    assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
    assert next(r for r in answers if r.status_code == 409).json()["detail"]["code"] in ("double_booked", "conflict")
    held = await dispatch.sql("SELECT count(*) AS n FROM volunteer_commitments WHERE volunteer_id = $1", person.volunteer_id)
    assert held[0]["n"] == 1


async def test_leaving_a_series_cancels_the_later_shifts_promotes_their_waitlists_and_stops_new_sign_ups(dispatch):
    member, waiting = volunteer_state(31.60, 121.60), volunteer_state(31.601, 121.601)
    await dispatch.add_volunteers([member, waiting])
    created = await _create(dispatch, project("十中", 31.60, 121.60, capacity=1, horizon_days=10, schedule={
        "rrule": "FREQ=DAILY", "starts_on": (_today() + timedelta(days=1)).isoformat(), "start_time": "07:20"}))
    shifts = await _shifts(dispatch, created["id"])
    as_member = dispatch.volunteer(member.volunteer_id)
    assert (await dispatch.client.post(f"/v1/shifts/{shifts[0]['id']}/signup-series", headers=as_member)).status_code == 201
    assert (await dispatch.client.post(f"/v1/shifts/{shifts[3]['id']}/signup", headers=dispatch.volunteer(waiting.volunteer_id))).json()["status"] == "waitlisted"

    left = await dispatch.client.post(f"/v1/shifts/{shifts[2]['id']}/cancel-series", json={"reason": "搬家"}, headers=as_member)
    assert left.status_code == 200, left.text
    assert [s["shift_id"] for s in left.json()] == [s["id"] for s in shifts[2:]] and {s["status"] for s in left.json()} == {"cancelled"}
    mine = {m["shift_id"]: m["status"] for m in (await dispatch.client.get("/v1/shifts/mine", headers=as_member)).json()}
    assert [mine[s["id"]] for s in shifts[:2]] == ["confirmed", "confirmed"]
    promoted = (await dispatch.client.get("/v1/shifts/mine", headers=dispatch.volunteer(waiting.volunteer_id))).json()
    assert [(p["shift_id"], p["status"]) for p in promoted] == [(shifts[3]["id"], "confirmed")]

    await dispatch.client.patch(f"/v1/projects/{created['id']}", json={"horizon_days": 20}, headers=dispatch.headers())
    later = {m["shift_id"] for m in (await dispatch.client.get("/v1/shifts/mine", headers=as_member)).json()}
    assert later == {s["id"] for s in shifts}, "shifts generated after leaving are not signed up for"
    none = await dispatch.client.post(f"/v1/shifts/{shifts[0]['id']}/cancel-series", headers=dispatch.volunteer(waiting.volunteer_id))
    assert none.status_code == 404 and none.json()["detail"]["field"] == "shift_id"


async def test_a_project_that_needs_approval_keeps_sign_ups_applied_until_staff_confirm_them(dispatch):
    people = [volunteer_state(31.80 + i * 0.001, 121.80) for i in range(2)]
    await dispatch.add_volunteers(people)
    created = await _create(dispatch, project("调解进村", 31.80, 121.80, kind="legal_outreach", capacity=1, needs_approval=True))
    shift = (await _shifts(dispatch, created["id"]))[0]
    applied = [(await dispatch.client.post(f"/v1/shifts/{shift['id']}/signup", headers=dispatch.volunteer(p.volunteer_id))).json() for p in people]
    assert [a["status"] for a in applied] == ["applied", "applied"] and applied[0]["confirmed_at"] is None
    assert await dispatch.sql("SELECT 1 FROM volunteer_commitments WHERE source_id = $1", uuid.UUID(applied[0]["id"])) == []

    url = f"/v1/projects/{created['id']}/signups"
    assert (await dispatch.client.post(f"{url}/{applied[0]['id']}/confirm", headers=dispatch.headers(Role.TOWN_ADMIN, scope_path=TOWN_B))).status_code == 403
    first = await dispatch.client.post(f"{url}/{applied[0]['id']}/confirm", headers=dispatch.headers())
    second = await dispatch.client.post(f"{url}/{applied[1]['id']}/confirm", headers=dispatch.headers())
    assert (first.json()["status"], second.json()["status"]) == ("confirmed", "waitlisted")  # capacity 1
    again = await dispatch.client.post(f"{url}/{applied[0]['id']}/confirm", headers=dispatch.headers())
    assert again.status_code == 200 and again.json()["confirmed_at"] == first.json()["confirmed_at"]

    async def confirmed():
        events = [e for e in await dispatch.topic(ShiftSignupChanged.TOPIC)
                  if e.type == ShiftSignupChanged.TYPE and e.data["signup_id"] == applied[0]["id"] and e.data["reason"] == "confirmed"]
        return events or None

    events = await eventually(confirmed, message="the staff confirmation on the topic")
    assert events[0].data["previous_status"] == "applied" and events[0].data["status"] == "confirmed"
