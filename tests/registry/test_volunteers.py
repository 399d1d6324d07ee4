"""Volunteers: real-name registration, duplicate rejection, masking, reveal with audit, status, events without PII."""

from __future__ import annotations

from shouwang_dev.testing import eventually, read_topic
from shouwang_shared.contracts.registry import VolunteerState

from tests.registry.people import new_person


async def test_registration_masks_identity_and_stores_it_encrypted(registry):
    _, station = await registry.town_with_station()
    person = new_person(name="欧阳明月")
    response = await registry.client.post(
        "/v1/volunteers",
        json={**person, "org_unit_id": station["id"], "core": True, "recruitment_mode": "reserve", "lat": 30.21, "lon": 120.19,
              "service_types": ["governance"], "teams": ["voluntary_patrol", "dispute_mediation"], "skills": ["急救", "驾驶"],
              "certificates": [{"code": "first_aid", "expires_on": "2027-06-30"}],
              "availability": [{"weekday": 5, "start": "08:00", "end": "12:00"}]},
        headers=registry.admin,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["national_id_masked"] == person["national_id"][0] + "*" * 16 + person["national_id"][-1]
    assert "birth_date" not in body and body["age_band"].endswith("9")
    assert body["phone_masked"] == person["phone"][:3] + "****" + person["phone"][-4:]
    assert body["display_name"] == "欧***" and body["real_name"] == "欧阳明月"
    assert body["status"] == "applicant" and body["teams"] == ["voluntary_patrol", "dispute_mediation"]
    assert person["national_id"] not in response.text and person["phone"] not in response.text
    listed = (await registry.client.get(f"/v1/volunteers?org_unit_id={station['id']}", headers=registry.admin)).text
    assert person["national_id"] not in listed and person["phone"] not in listed

    rows = await registry.sql("SELECT national_id_enc, phone_enc, national_id_index FROM volunteers WHERE id = CAST(:id AS uuid)", id=body["id"])
    blob_id, blob_phone, index = rows[0]
    assert person["national_id"].encode() not in bytes(blob_id) and person["phone"].encode() not in bytes(blob_phone)
    assert len(index) == 32 and person["national_id"].encode() not in bytes(index)  # a keyed digest, stored as bytes


async def test_a_second_registration_of_the_same_person_is_a_409(registry):
    _, station = await registry.town_with_station()
    first, person = await registry.volunteer(station)
    same_id = {**new_person(), "national_id": person["national_id"].lower(), "org_unit_id": station["id"]}
    response = await registry.client.post("/v1/volunteers", json=same_id, headers=registry.admin)
    assert response.status_code == 409 and response.json()["detail"]["field"] == "national_id"
    same_phone = {**new_person(), "phone": "+86 " + person["phone"], "org_unit_id": station["id"]}
    response = await registry.client.post("/v1/volunteers", json=same_phone, headers=registry.admin)
    assert response.status_code == 409 and response.json()["detail"]["field"] == "phone"
    count = await registry.sql("SELECT count(*) FROM volunteers WHERE org_unit_id = CAST(:s AS uuid)", s=station["id"])
    assert count[0][0] == 1


async def test_bad_input_gets_a_4xx_naming_the_field(registry):
    _, station = await registry.town_with_station()
    good = {**new_person(), "org_unit_id": station["id"]}
    cases = [
        ({"national_id": "33010219900101123"}, 422, "national_id"),
        ({"national_id": "330102199002301234"}, 422, "national_id"),  # 30 February
        ({"national_id": good["national_id"][:17] + ("1" if good["national_id"][17] != "1" else "2")}, 422, "national_id"),
        ({"phone": "0571-8888888"}, 422, "phone"),
        ({"org_unit_id": "00000000-0000-4000-8000-000000000001"}, 422, "org_unit_id"),
        ({"org_unit_id": "nope"}, 422, "org_unit_id"),
        ({"real_name": "名" * 65}, 422, "real_name"),
        ({"real_name": ""}, 422, "real_name"),
        ({"skills": ["x" * 65]}, 422, "skills.0"),
        ({"teams": ["astronauts"]}, 422, "teams"),
        ({"certificates": [{"code": "first_aid", "expires_on": "2027-02-30"}]}, 422, "certificates.0.expires_on"),
        ({"availability": [{"weekday": 7, "start": "08:00", "end": "09:00"}]}, 422, "availability.0.weekday"),
        ({"availability": [{"weekday": 1, "start": "10:00", "end": "09:00"}]}, 422, "availability.0.end"),
        ({"lat": 91}, 422, "lat"),
        ({"recruitment_mode": "forever"}, 422, "recruitment_mode"),
        ({"unexpected": 1}, 422, "unexpected"),
    ]
    for change, status, field in cases:
        response = await registry.client.post("/v1/volunteers", json={**good, **change}, headers=registry.admin)
        assert response.status_code == status, (change, response.text)
        assert response.json()["detail"]["field"] == field, (change, response.json())
    assert (await registry.client.post("/v1/volunteers", json=good, headers=registry.admin)).status_code == 201


async def test_status_moves_with_reasons_and_refuses_impossible_transitions(registry):
    _, station = await registry.town_with_station()
    volunteer, _ = await registry.volunteer(station)
    vid, client, admin = volunteer["id"], registry.client, registry.admin
    assert (await client.post(f"/v1/volunteers/{vid}/suspend", json={"reason": "违纪"}, headers=admin)).status_code == 409
    assert (await client.post(f"/v1/volunteers/{vid}/activate", headers=admin)).json()["status"] == "active"
    suspended = await client.post(f"/v1/volunteers/{vid}/suspend", json={"reason": "多次无故缺勤"}, headers=admin)
    assert suspended.json()["status"] == "suspended" and suspended.json()["status_reason"] == "多次无故缺勤"
    assert (await client.post(f"/v1/volunteers/{vid}/suspend", json={}, headers=admin)).json()["detail"]["field"] == "reason"
    assert (await client.post(f"/v1/volunteers/{vid}/retire", json={"reason": "迁出本县"}, headers=admin)).json()["status"] == "retired"
    assert (await client.post(f"/v1/volunteers/{vid}/activate", headers=admin)).status_code == 409
    history = (await client.get(f"/v1/volunteers/{vid}/status-history", headers=admin)).json()
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        (None, "applicant"), ("applicant", "active"), ("active", "suspended"), ("suspended", "retired")
    ]


async def test_every_status_history_row_has_its_volunteer(registry):
    """The history's reference to volunteers is declared but not checked row by row (migration 0004): each path that
    writes history (registration, status change, roster import, and whatever ran before on this database) keeps it whole."""
    _, station = await registry.town_with_station()
    volunteer, _ = await registry.volunteer(station)
    assert (await registry.client.post(f"/v1/volunteers/{volunteer['id']}/activate", headers=registry.admin)).status_code == 200
    header = "姓名,身份证号,手机号,所属组织\n"
    people = [new_person() for _ in range(3)]
    body = header + "".join(f"{p['real_name']},{p['national_id']},{p['phone']},{station['name']}\n" for p in people)
    imported = await registry.upload_roster(body.encode())
    assert imported.status_code == 200 and imported.json()["imported"] == 3, imported.text
    [(declared, enforced)] = await registry.sql(
        "SELECT count(*), bool_or(conenforced) FROM pg_constraint WHERE conname = 'volunteer_status_changes_volunteer_id_fkey'")
    assert (declared, enforced) == (1, False)
    [(histories, orphans)] = await registry.sql(
        "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM volunteers v WHERE v.id = h.volunteer_id)) "
        "FROM volunteer_status_changes h")
    assert histories >= 5 and orphans == 0


async def test_reveal_is_for_county_admins_and_operators_only_and_is_audited(registry):
    town, station = await registry.town_with_station()
    volunteer, person = await registry.volunteer(station)
    url = f"/v1/volunteers/{volunteer['id']}/reveal"
    town_admin = registry.auth("town_admin", scope=town["path"])
    assert (await registry.client.post(url, json={"reason": "核实身份"}, headers=town_admin)).status_code == 403
    assert (await registry.client.post(url, json={}, headers=registry.admin)).json()["detail"]["field"] == "reason"
    revealed = await registry.client.post(url, json={"reason": "公安协查核实身份"}, headers=registry.auth("county_admin", sub="admin-1"))
    assert revealed.status_code == 200
    assert revealed.json() == {"volunteer_id": volunteer["id"], "national_id": person["national_id"], "phone": person["phone"],
                               "birth_date": None}
    audit = await registry.sql("SELECT revealed_by, role, reason, fields FROM pii_reveals WHERE volunteer_id = CAST(:v AS uuid)", v=volunteer["id"])
    assert audit == [("admin-1", "county_admin", "公安协查核实身份", ["national_id", "phone"])]


async def test_state_events_carry_no_plain_identity_and_a_growing_version(registry):
    _, station = await registry.town_with_station()
    person = new_person(name="司马相如")
    created = (await registry.client.post("/v1/volunteers", json={**person, "org_unit_id": station["id"]}, headers=registry.admin)).json()
    await registry.client.post(f"/v1/volunteers/{created['id']}/activate", headers=registry.admin)
    await registry.client.patch(f"/v1/volunteers/{created['id']}", json={"skills": ["心理疏导"], "core": True}, headers=registry.admin)
    topic = f"{registry.stack.topic_prefix}{VolunteerState.TOPIC}"

    async def states():
        messages = await read_topic(registry.stack.bootstrap_servers, topic)
        mine = [(k, e) for k, e, _ in messages if e.subject == created["id"]]
        return mine if len(mine) >= 3 else None

    mine = await eventually(states, message="three VolunteerState events")
    assert [e.data["version"] for _, e in mine] == [1, 2, 3]
    assert {e.data["volunteer_number"] for _, e in mine} == {created["volunteer_number"]} and len(created["volunteer_number"]) == 8
    assert all(k == created["id"].encode() for k, _ in mine)
    last = mine[-1][1].data
    assert last["status"] == "active" and last["core"] is True and last["skills"] == ["心理疏导"] and last["display_name"] == "司***"
    for _, event in mine:
        raw = event.to_bytes().decode()
        assert person["national_id"] not in raw and person["phone"] not in raw and "司马相如" not in raw
        assert person["national_id"][-6:] not in raw  # not even a fragment beyond the mask
        VolunteerState.model_validate(event.data)


async def test_profile_updates_refuse_nulls_for_required_fields_and_check_references(registry):
    _, station = await registry.town_with_station()
    volunteer, _ = await registry.volunteer(station)
    url, admin = f"/v1/volunteers/{volunteer['id']}", registry.admin
    for body, field in (({"core": None}, "core"), ({"recruitment_mode": None}, "recruitment_mode"), ({"org_unit_id": None}, "org_unit_id"),
                        ({"grid_id": "00000000-0000-4000-8000-0000000000aa"}, "grid_id"), ({"teams": ["nobody"]}, "teams")):
        response = await registry.client.patch(url, json=body, headers=admin)
        assert response.status_code == 422 and response.json()["detail"]["field"] == field, (body, response.text)
    cleared = await registry.client.patch(url, json={"skills": None, "availability": [{"weekday": 0, "start": "19:00", "end": "21:00"}]}, headers=admin)
    assert cleared.status_code == 200 and cleared.json()["skills"] == [] and cleared.json()["availability"][0]["start"] == "19:00"


async def test_the_roster_narrows_by_team_skill_training_star_and_core(registry):
    _, station = await registry.town_with_station()
    medic, _ = await registry.volunteer(station, teams=["medical_aid"], skills=["first_aid"], core=True)
    driver, _ = await registry.volunteer(station, skills=["driving"])
    await registry.sql("UPDATE volunteers SET training_compliant = false, star = 3 WHERE id = CAST(:id AS uuid)", id=driver["id"])

    async def listed(**params) -> list[str]:
        response = await registry.client.get("/v1/volunteers", params={"org_unit_id": station["id"], **params}, headers=registry.admin)
        assert response.status_code == 200, response.text
        return [v["id"] for v in response.json()["items"]]

    assert set(await listed()) == {medic["id"], driver["id"]}
    assert await listed(team="medical_aid") == [medic["id"]]
    assert await listed(skill="driving") == [driver["id"]]
    assert await listed(training="behind") == [driver["id"]] and await listed(training="compliant") == [medic["id"]]
    assert await listed(star=3) == [driver["id"]] and await listed(core="true") == [medic["id"]]
    assert await listed(team="medical_aid", skill="driving") == []
    bad = await registry.client.get("/v1/volunteers", params={"star": 9}, headers=registry.admin)
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "query.star"
