"""Operations end to end on the real broker and database: activation plans once, bad input is refused clearly."""

from __future__ import annotations

import uuid

from shouwang_dev.testing import eventually, read_topic
from shouwang_shared.auth import Role
from shouwang_shared.contracts.dispatch import AssignmentOffered, OperationActivated

from dispatch.read_model import rebuild_volunteers
from tests.dispatch.service import COUNTY, TOWN_A, TOWN_B, day, post, volunteer_state


async def test_activation_assigns_every_post_once_and_a_replayed_activation_assigns_nothing_more(dispatch):
    volunteers = [volunteer_state(29.10 + i * 0.001, 119.60, skills=["first_aid"] if i % 3 == 0 else []) for i in range(40)]
    await dispatch.add_volunteers(volunteers)
    start = day(3)
    operation = await dispatch.create_operation({
        "name": "峰会安保", "org_path": TOWN_A, "posts": [
            post("西湖断桥路口", 29.10, 119.60, start, headcount=6),
            post("武林广场地铁站口", 29.11, 119.601, start, headcount=5, required_skills=["first_aid"], priority=1),
            post("湖滨公交站", 29.12, 119.602, start, headcount=4),
        ],
    })
    planned = await dispatch.activate_and_wait(operation["id"])
    assert planned["status"] == "running"
    assert planned["plan_summary"]["offered"] == 15 and planned["plan_summary"]["unfilled"] == 0
    planner = planned["plan_summary"]["planner"]  # how the plan was found, stored and logged with it
    assert planner["method"] == "optimal" and planner["rounds"] >= 1 and planner["heads_bound"] == 15 and planner["edges"] >= 15
    assert 0 <= planner["travel_gap_pct"] <= 0.75  # proven within the planner's tolerance of the least travel

    rows = await dispatch.sql("SELECT volunteer_id, post_id FROM assignments WHERE operation_id = $1", uuid.UUID(operation["id"]))
    assert len(rows) == 15 and len({r["volunteer_id"] for r in rows}) == 15
    skilled = {v.volunteer_id for v in volunteers if "first_aid" in v.skills}
    first_aid_post = (await dispatch.sql("SELECT id FROM posts WHERE name = '武林广场地铁站口'"))[0]["id"]
    assert all(r["volunteer_id"] in skilled for r in rows if r["post_id"] == first_aid_post)

    offers = await eventually(
        lambda: _offers_of(dispatch, operation["id"], 15), message="15 offers on dispatch.assignments.v1"
    )
    assert {o.data["volunteer_id"] for o in offers} == {r["volunteer_id"] for r in rows}
    assert offers[0].data["operation_name"] == "峰会安保"
    parsed = [AssignmentOffered.model_validate(o.data) for o in offers]  # bulk-serialized offers keep the contract
    assert all(o.place.name and o.respond_by > o.shift_start.replace(year=2000) for o in parsed)
    assert all(o.subject == p.assignment_id for o, p in zip(offers, parsed, strict=True))

    activations = [e for e in await dispatch.topic(OperationActivated.TOPIC) if e.subject == operation["id"]]
    assert len(activations) == 1
    assert {o.causationid for o in offers} == {activations[0].id}
    await dispatch.publish(OperationActivated.model_validate(activations[0].data), subject=operation["id"], event=activations[0])
    again = OperationActivated.model_validate(activations[0].data)
    await dispatch.publish(again, subject=operation["id"])  # a second, distinct activation event for the same operation
    await eventually(lambda: _inbox_has(dispatch, 2, OperationActivated.TYPE, operation["id"]), message="both replays consumed")
    rows = await dispatch.sql("SELECT count(*) AS n FROM assignments WHERE operation_id = $1", uuid.UUID(operation["id"]))
    assert rows[0]["n"] == 15
    assert len(await _offers_of(dispatch, operation["id"], 0)) == 15


async def _offers_of(dispatch, operation_id, at_least):
    offers = [e for e in await dispatch.topic(AssignmentOffered.TOPIC)
              if e.type == AssignmentOffered.TYPE and e.data["operation_id"] == operation_id]
    return offers if len(offers) >= at_least else None


async def _inbox_has(dispatch, count, event_type, operation_id):
    # a consumed event leaves its inbox row; the activations of this operation are all on one partition, in order
    rows = await dispatch.sql("SELECT count(*) AS n FROM inbox")
    events = [e for e in await dispatch.topic(OperationActivated.TOPIC) if e.subject == operation_id]
    ids = [e.id for e in events]
    seen = await dispatch.sql("SELECT count(*) AS n FROM inbox WHERE event_id = ANY($1::text[])", ids)
    return rows and seen[0]["n"] >= count


async def test_activation_of_an_unknown_operation_is_dead_lettered_with_the_reason(dispatch):
    ghost = str(uuid.uuid4())
    payload = OperationActivated(operation_id=ghost, kind="planned", name="不存在的行动", activated_by="tester")
    await dispatch.publish(payload, subject=ghost)

    async def dead_letter():
        for _, value, headers in await read_topic(dispatch.stack.bootstrap_servers, f"{dispatch.prefix}dispatch.dlq.v1"):
            if value.subject == ghost:
                return headers
        return None

    headers = await eventually(dead_letter, timeout_s=30, message="the activation in the dead-letter topic")
    assert f"unknown operation {ghost}".encode() in headers["dlq_reason"]


async def test_headcount_above_the_eligible_pool_gives_a_shortfall_report_not_an_error(dispatch):
    volunteers = [volunteer_state(28.50 + i * 0.001, 119.90, core=i < 2) for i in range(6)]
    await dispatch.add_volunteers(volunteers)
    operation = await dispatch.create_operation({
        "name": "乡镇集市", "org_path": TOWN_A,
        "posts": [post("集市东口", 28.50, 119.90, day(4), headcount=5, core_only=True)],
    })
    planned = await dispatch.activate_and_wait(operation["id"])
    summary = planned["plan_summary"]
    assert summary["offered"] == 2 and summary["unfilled"] == 3 and summary["planner"]["heads_bound"] == 2  # no plan fills more
    assert summary["shortfall"][0]["eligible_pool"] == 2 and summary["shortfall"][0]["post_name"] == "集市东口"
    assert summary["shortfall"][0]["reason"] == "no_one_qualified_within_reach"
    assert summary["shortfall"][0]["qualified_within_reach"] == summary["shortfall"][0]["serving_here"] == 2
    fill = (await dispatch.client.get(f"/v1/fill-rate/{operation['id']}", headers=dispatch.headers())).json()
    assert fill["required"] == 5 and fill["offered"] == 2 and fill["posts"][0]["eligible_pool"] == 2
    assert fill["shortfall"] > 3


async def test_bad_posts_are_refused_naming_the_field(dispatch):
    await dispatch.add_volunteers([volunteer_state(28.0, 119.0, skills=["first_aid"])])
    start = day(5)
    backwards = post("倒置班次", 28.0, 119.0, start, hours=-2)
    r = await dispatch.client.post("/v1/operations", json={"name": "坏岗位", "org_path": TOWN_A, "posts": [backwards]}, headers=dispatch.headers())
    assert r.status_code == 422 and r.json()["detail"]["field"].startswith("posts.0")
    unknown = post("未知技能", 28.0, 119.0, start, required_skills=["飞行驾驶"])
    r = await dispatch.client.post("/v1/operations", json={"name": "坏岗位", "org_path": TOWN_A, "posts": [post("好", 28.0, 119.0, start), unknown]}, headers=dispatch.headers())
    assert r.status_code == 422 and r.json()["detail"]["field"] == "posts[1].required_skills"
    past = post("过去", 28.0, 119.0, day(-2))
    r = await dispatch.client.post("/v1/operations", json={"name": "坏岗位", "org_path": TOWN_A, "posts": [past]}, headers=dispatch.headers())
    assert r.status_code == 422 and r.json()["detail"]["field"] == "posts[0].shift_end"
    op = await dispatch.create_operation({"name": "空行动", "org_path": TOWN_A})
    r = await dispatch.client.post(f"/v1/operations/{op['id']}/activate", headers=dispatch.headers())
    assert r.status_code == 422 and r.json()["detail"]["field"] == "posts"
    csv_bad = f"name,lat,lon,shift_start,shift_end,headcount\n东门,28.0,119.0,{start.isoformat()},{start.isoformat()},abc\n"
    r = await dispatch.client.post(f"/v1/operations/{op['id']}/posts", content=csv_bad.encode(), headers={**dispatch.headers(), "Content-Type": "text/csv"})
    assert r.status_code == 422 and r.json()["detail"]["field"].startswith("posts[0]")


async def test_posts_load_in_bulk_from_csv_and_json(dispatch):
    start, end = day(6), day(6, 12)
    op = await dispatch.create_operation({"name": "国庆游园", "org_path": TOWN_A})
    csv_text = (
        "name,lat,lon,zone,shift_start,shift_end,headcount,required_skills,priority,core_only\n"
        f"南门广场,28.1,119.1,片区一,{start.isoformat()},{end.isoformat()},3,,1,否\n"
        f"北门,28.11,119.1,片区二,{start.isoformat()},{end.isoformat()},2,,5,\n"
    )
    r = await dispatch.client.post(f"/v1/operations/{op['id']}/posts", content=csv_text.encode(), headers={**dispatch.headers(), "Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    assert r.json()["loaded"] == 2
    r = await dispatch.client.post(f"/v1/operations/{op['id']}/posts", json=[post("西门", 28.12, 119.1, start)], headers=dispatch.headers())
    assert r.status_code == 201 and r.json()["loaded"] == 1
    got = (await dispatch.client.get(f"/v1/operations/{op['id']}", headers=dispatch.headers())).json()
    assert got["post_count"] == 3 and got["headcount"] == 7
    names = {r["name"] for r in await dispatch.sql("SELECT name FROM posts WHERE operation_id = $1", uuid.UUID(op["id"]))}
    assert names == {"南门广场", "北门", "西门"}


async def test_staff_outside_the_operations_org_cannot_see_or_activate_it(dispatch):
    op = await dispatch.create_operation({"name": "甲镇行动", "org_path": TOWN_A, "posts": [post("甲镇路口", 28.2, 119.2, day(7))]})
    other_town = dispatch.headers(Role.TOWN_ADMIN, scope_path=TOWN_B)
    assert (await dispatch.client.post(f"/v1/operations/{op['id']}/activate", headers=other_town)).status_code == 403
    assert (await dispatch.client.get(f"/v1/operations/{op['id']}", headers=other_town)).status_code == 403
    assert (await dispatch.client.get(f"/v1/fill-rate/{op['id']}", headers=other_town)).status_code == 403
    volunteer = dispatch.volunteer(str(uuid.uuid4()))
    assert (await dispatch.client.post("/v1/operations", json={"name": "x", "org_path": TOWN_A}, headers=volunteer)).status_code == 403
    r = await dispatch.client.post("/v1/operations", json={"name": "x", "org_path": TOWN_B}, headers=dispatch.headers(Role.TOWN_ADMIN, scope_path=TOWN_A))
    assert r.status_code == 403
    own_town = dispatch.headers(Role.TOWN_ADMIN, scope_path=TOWN_A)
    assert (await dispatch.client.get(f"/v1/operations/{op['id']}", headers=own_town)).status_code == 200


async def test_read_model_keeps_the_newest_version_and_rebuilds_from_the_compacted_topic(dispatch):
    v = volunteer_state(27.0, 118.0, version=5, star=4)
    await dispatch.add_volunteers([v])
    older = v.model_copy(update={"version": 3, "star": 1})
    await dispatch.publish(older, subject=v.volunteer_id)
    newer = v.model_copy(update={"version": 6, "star": 5, "status": "suspended"})
    await dispatch.add_volunteers([newer])
    row = (await dispatch.sql("SELECT version, star, status FROM volunteers WHERE volunteer_id = $1", v.volunteer_id))[0]
    assert (row["version"], row["star"], row["status"]) == (6, 5, "suspended")

    await dispatch.sql("DELETE FROM volunteers")
    runtime = dispatch.app.state.runtime
    replayed = await rebuild_volunteers(sessions=runtime.sessions, bootstrap_servers=dispatch.stack.bootstrap_servers, topic_prefix=dispatch.prefix)
    assert replayed >= 3
    row = (await dispatch.sql("SELECT version, star, status FROM volunteers WHERE volunteer_id = $1", v.volunteer_id))[0]
    assert (row["version"], row["star"], row["status"]) == (6, 5, "suspended")


async def test_hierarchical_fan_out_splits_accepts_and_rolls_up(dispatch):
    await dispatch.add_volunteers([volunteer_state(27.50 + i * 0.001, 118.50) for i in range(5)])
    op = await dispatch.create_operation({"name": "全县护航", "org_path": COUNTY, "posts": [post("县城广场", 27.5, 118.5, day(11), headcount=10)]})
    county = dispatch.headers()
    town_a = dispatch.headers(Role.TOWN_ADMIN, scope_path=TOWN_A)
    town_b = dispatch.headers(Role.TOWN_ADMIN, scope_path=TOWN_B)
    split = lambda parent, shares, who: dispatch.client.post(  # noqa: E731
        f"/v1/operations/{op['id']}/quotas/split", json={"parent_org_path": parent, "shares": shares}, headers=who)

    r = await split(COUNTY, [{"org_path": TOWN_A, "headcount": 6}, {"org_path": TOWN_B, "headcount": 4}], county)
    assert r.status_code == 200, r.text
    too_many = await split(COUNTY, [{"org_path": TOWN_A, "headcount": 7}], county)
    assert too_many.status_code == 422 and too_many.json()["detail"]["field"] == "shares"
    assert (await split(TOWN_A, [{"org_path": TOWN_A + "/s1", "headcount": 4}], town_a)).status_code == 409  # not accepted yet
    assert (await split(TOWN_A, [{"org_path": TOWN_A + "/s1", "headcount": 4}], town_b)).status_code == 403
    r = await dispatch.client.post(f"/v1/operations/{op['id']}/quotas/accept", json={"org_path": TOWN_A}, headers=town_a)
    assert r.status_code == 200
    outside = await split(TOWN_A, [{"org_path": TOWN_B + "/s9", "headcount": 1}], town_a)
    assert outside.status_code in (403, 422)
    over = await split(TOWN_A, [{"org_path": TOWN_A + "/s1", "headcount": 4}, {"org_path": TOWN_A + "/s2", "headcount": 3}], town_a)
    assert over.status_code == 422
    assert (await split(TOWN_A, [{"org_path": TOWN_A + "/s1", "headcount": 4}, {"org_path": TOWN_A + "/s2", "headcount": 2}], town_a)).status_code == 200

    planned = await dispatch.activate_and_wait(op["id"])
    tree = {q["org_path"]: q for q in (await dispatch.client.get(f"/v1/operations/{op['id']}/quotas", headers=county)).json()["quotas"]}
    assert tree[COUNTY]["quota"] == 10 and tree[COUNTY]["split_out"] == 10
    assert (tree[TOWN_A]["status"], tree[TOWN_A]["split_out"], tree[TOWN_A]["unsplit"]) == ("accepted", 6, 0)
    assert tree[TOWN_B]["status"] == "proposed"
    offered = planned["plan_summary"]["offered"]  # every test volunteer lives in tA/s1
    assert offered >= 5 and tree[TOWN_A + "/s1"]["offered"] == tree[TOWN_A]["offered"] == tree[COUNTY]["offered"] == offered
    assert tree[TOWN_B]["offered"] == 0
    seen_by_a = {q["org_path"] for q in (await dispatch.client.get(f"/v1/operations/{op['id']}/quotas", headers=town_a)).json()["quotas"]}
    assert seen_by_a == {TOWN_A, TOWN_A + "/s1", TOWN_A + "/s2"}


async def test_nobody_is_double_booked_across_operations_with_overlapping_shifts(dispatch):
    pool = [volunteer_state(21.00 + i * 0.001, 113.00) for i in range(3)]
    await dispatch.add_volunteers(pool)
    start = day(12)
    first = await dispatch.create_operation({"name": "上午行动", "org_path": TOWN_A, "posts": [post("东站", 21.0, 113.0, start, hours=4, headcount=3)]})
    assert (await dispatch.activate_and_wait(first["id"]))["plan_summary"]["offered"] == 3
    overlapping = await dispatch.create_operation({"name": "重叠行动", "org_path": TOWN_A,
                                                   "posts": [post("西站", 21.0, 113.001, start.replace(hour=start.hour + 2), hours=4, headcount=2)]})
    summary = (await dispatch.activate_and_wait(overlapping["id"]))["plan_summary"]
    ours = {v.volunteer_id for v in pool}
    second = await dispatch.sql("SELECT volunteer_id FROM assignments WHERE operation_id = $1", uuid.UUID(overlapping["id"]))
    assert not ours & {r["volunteer_id"] for r in second}, "a volunteer holding an overlapping shift was offered another"
    assert summary["offered"] + summary["unfilled"] == 2


async def test_plan_preview_says_before_activation_why_posts_would_stay_short_and_stores_nothing(dispatch):
    medics = [volunteer_state(27.30 + i * 0.001, 118.40, skills=["first_aid"]) for i in range(2)]
    await dispatch.add_volunteers(medics)
    start = day(6)
    operation = await dispatch.create_operation({
        "name": "山区马拉松保障", "org_path": TOWN_A, "posts": [
            post("起点医疗点", 27.30, 118.40, start, headcount=2, required_skills=["first_aid"], priority=1, max_distance_km=5),
            post("补给站医疗点", 27.31, 118.40, start, headcount=2, required_skills=["first_aid"], priority=5, max_distance_km=5),
            post("山顶折返点", 27.60, 118.40, start, headcount=3, max_distance_km=3),
        ],
    })
    response = await dispatch.client.get(f"/v1/operations/{operation['id']}/plan-preview", headers=dispatch.headers())
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["required"] == 7 and preview["fillable"] == 2 and preview["unfilled"] == 5
    why = {s["post_name"]: s for s in preview["shortfall"]}
    assert why["补给站医疗点"]["reason"] == "qualified_all_taken" and why["补给站医疗点"]["taken_by_other_posts"] == 2
    assert why["山顶折返点"]["reason"] == "no_one_qualified_within_reach" and why["山顶折返点"]["qualified_within_reach"] == 0
    assert "起点医疗点" not in why
    stored = await dispatch.sql("SELECT count(*) AS n FROM assignments WHERE operation_id = $1", uuid.UUID(operation["id"]))
    assert stored[0]["n"] == 0
    again = await dispatch.client.get(f"/v1/operations/{operation['id']}", headers=dispatch.headers())
    assert again.json()["status"] == "draft" and again.json()["plan_summary"] is None
    outsider = dispatch.headers(Role.TOWN_ADMIN, scope_path=TOWN_B)
    assert (await dispatch.client.get(f"/v1/operations/{operation['id']}/plan-preview", headers=outsider)).status_code == 403


async def test_the_operations_list_shows_what_the_callers_scope_covers_newest_first(dispatch):
    mine = await dispatch.create_operation({"name": "甲镇清单行动", "org_path": TOWN_A, "posts": [post("甲镇桥头", 28.2, 119.2, day(7), headcount=3)]})
    theirs = await dispatch.create_operation({"name": "乙镇清单行动", "org_path": TOWN_B})
    town_a = dispatch.headers(Role.TOWN_ADMIN, scope_path=TOWN_A)
    listed = (await dispatch.client.get("/v1/operations", headers=town_a)).json()
    ids = [o["id"] for o in listed]
    assert mine["id"] in ids and theirs["id"] not in ids
    shown = next(o for o in listed if o["id"] == mine["id"])
    assert shown["post_count"] == 1 and shown["headcount"] == 3 and shown["status"] == "draft"
    county = (await dispatch.client.get("/v1/operations", headers=dispatch.headers(Role.COUNTY_ADMIN), params={"status": "draft"})).json()
    assert [o["id"] for o in county].index(theirs["id"]) < [o["id"] for o in county].index(mine["id"])  # newest first
    operator = (await dispatch.client.get("/v1/operations", headers=dispatch.headers(Role.OPERATOR, scope_path=""))).json()
    assert {mine["id"], theirs["id"]} <= {o["id"] for o in operator}
    bad = await dispatch.client.get("/v1/operations", headers=town_a, params={"status": "finished"})
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "query.status", bad.text
    assert (await dispatch.client.get("/v1/operations", headers=dispatch.volunteer(str(uuid.uuid4())))).status_code == 403
