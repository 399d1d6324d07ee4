"""The training rule across services on real Kafka: registry bars a volunteer behind on training from specialised duties,
and dispatch's planner still gives them an ordinary post but not one that requires a skill."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from shouwang_dev.testing import eventually, running_app

from registry.main import create_app as create_registry
from tests.dispatch.service import day, dispatch_service, post
from tests.registry.conftest import Registry, registry_settings
from tests.registry.people import new_person

TODAY = date.today()
LAT, LON = 29.61, 119.42


async def test_a_volunteer_behind_on_training_past_the_notice_gets_an_ordinary_post_but_no_specialised_one(stack, topics):
    url = await stack.create_database(f"registry_rule_{uuid.uuid4().hex[:6]}")
    async with running_app(create_registry(registry_settings(stack, url))) as registry, \
            dispatch_service(stack, "rule", prefix=topics) as dispatch:
        operator = {"Authorization": f"Bearer {stack.token('operator', sub='ops')}"}
        county = (await registry.post("/v1/org-units", headers=operator, json={"name": "平安县志愿者联盟", "kind": "county"})).json()
        admin = {"Authorization": f"Bearer {stack.token('county_admin', scope_path=county['path'])}"}
        town = (await registry.post("/v1/org-units", headers=admin, json={"name": "培训镇", "kind": "town", "parent_id": county["id"]})).json()
        station = (await registry.post("/v1/org-units", headers=admin, json={"name": "培训村", "kind": "station", "parent_id": town["id"]})).json()
        people = {}
        for who, lat in (("behind", LAT), ("trained", LAT + 0.002)):
            made = await registry.post("/v1/volunteers", headers=admin, json={
                **new_person(), "org_unit_id": station["id"], "lat": lat, "lon": LON, "skills": ["first_aid"]})
            assert made.status_code == 201, made.text
            people[who] = made.json()["id"]
            activated = await registry.post(f"/v1/volunteers/{people[who]}/activate", headers=admin, json={"reason": "审核通过"})
            assert activated.status_code == 200, activated.text
        # Both joined two years ago; only `trained` attended this year's training.
        helper = Registry(  # the registry tests' SQL helper, for what HTTP cannot set
            client=registry, database_url=url, stack=stack, county=county)
        await helper.sql("UPDATE volunteers SET joined_on = CAST(:d AS date) WHERE id = ANY(CAST(:ids AS uuid[]))",
                         d=TODAY - timedelta(days=730), ids=list(people.values()))
        session = await registry.post("/v1/training/sessions", headers=admin, json={
            "title": "急救复训", "level": "town", "topic": "skills", "org_unit_id": town["id"], "held_on": str(TODAY - timedelta(days=10))})
        assert session.status_code == 201, session.text
        await registry.post(f"/v1/training/sessions/{session.json()['id']}/attendance", headers=admin, json={"volunteer_ids": [people["trained"]]})
        flagged = await registry.post(f"/v1/training/review?org_unit_id={town['id']}", headers=admin)
        assert flagged.status_code == 200 and flagged.json()["changed"] == 1
        past_notice = await registry.post(f"/v1/training/review?org_unit_id={town['id']}&as_of={TODAY + timedelta(days=31)}", headers=admin)
        assert past_notice.json()["changed"] == 1
        assert (await registry.get(f"/v1/volunteers/{people['behind']}", headers=admin)).json()["specialised_eligible"] is False

        async def known():
            rows = await dispatch.sql("SELECT volunteer_id, status, training_compliant, specialised_eligible FROM volunteers"
                                      " WHERE volunteer_id = ANY($1::text[])", list(people.values()))
            states = {r["volunteer_id"]: (r["status"], r["training_compliant"], r["specialised_eligible"]) for r in rows}
            return states if len(states) == 2 and states[people["behind"]][2] is False else None

        states = await eventually(known, timeout_s=30, message="registry's training standing in dispatch's read model")
        assert states == {people["behind"]: ("active", False, False), people["trained"]: ("active", True, True)}

        # Two shifts that do not overlap: a patrol for one that anyone may take, and first aid for two that needs the skill
        # (a patrol for two would leave the planner a tie: both on patrol fills as many places as the answer below).
        staff = dispatch.headers(scope_path=county["path"])
        op = await dispatch.create_operation({"name": "庙会安保", "org_path": town["path"], "posts": [
            post("庙会巡逻", LAT, LON, day(9, 8), hours=3, headcount=1),
            post("急救点", LAT, LON, day(9, 13), hours=3, headcount=2, required_skills=["first_aid"]),
        ]}, headers=staff)
        planned = await dispatch.activate_and_wait(op["id"], headers=staff)

        async def offers():
            rows = await dispatch.sql("SELECT a.volunteer_id, p.name FROM assignments a JOIN posts p ON p.id = a.post_id"
                                      " WHERE a.operation_id = $1", uuid.UUID(op["id"]))
            return rows if len(rows) >= planned["plan_summary"]["offered"] else None

        got = sorted((r["name"], r["volunteer_id"]) for r in await eventually(offers, message="the plan's offers stored"))
        # One post per volunteer in an operation: the skilled, trained volunteer is the only one first aid may have.
        assert got == sorted([("庙会巡逻", people["behind"]), ("急救点", people["trained"])])
        shortfall = {s["post_name"]: s for s in planned["plan_summary"]["shortfall"]}
        assert shortfall["急救点"]["qualified_within_reach"] == 1  # the volunteer behind on training does not count
