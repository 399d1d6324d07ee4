"""Roles and org scope checked in the service; staff accounts (argon2id); the gateway's internal look-ups; a volunteer's own profile."""

from __future__ import annotations

import json
import uuid

from tests.registry.people import new_person


async def test_a_town_admin_sees_and_changes_only_their_subtree(registry):
    client = registry.client
    town_a, station_a = await registry.town_with_station()
    town_b, station_b = await registry.town_with_station()
    mine, _ = await registry.volunteer(station_a)
    theirs, _ = await registry.volunteer(station_b)
    town_admin = registry.auth("town_admin", scope=town_a["path"])

    assert (await client.get(f"/v1/volunteers/{mine['id']}", headers=town_admin)).status_code == 200
    outside = await client.get(f"/v1/volunteers/{theirs['id']}", headers=town_admin)
    assert outside.status_code == 403 and outside.json()["detail"]["code"] == "out_of_scope"
    listed = (await client.get("/v1/volunteers", headers=town_admin)).json()
    assert {v["id"] for v in listed["items"]} == {mine["id"]} and listed["total"] == 1
    assert (await client.get(f"/v1/volunteers?org_unit_id={station_b['id']}", headers=town_admin)).status_code == 403

    assert (await client.patch(f"/v1/volunteers/{theirs['id']}", json={"core": True}, headers=town_admin)).status_code == 403
    assert (await client.post(f"/v1/volunteers/{theirs['id']}/activate", headers=town_admin)).status_code == 403
    moved_out = await client.patch(f"/v1/volunteers/{mine['id']}", json={"org_unit_id": station_b["id"]}, headers=town_admin)
    assert moved_out.status_code == 403 and moved_out.json()["detail"]["field"] == "org_unit_id"
    assert (await client.post(f"/v1/volunteers/{mine['id']}/activate", headers=town_admin)).json()["status"] == "active"

    register_outside = await client.post("/v1/volunteers", json={**new_person(), "org_unit_id": station_b["id"]}, headers=town_admin)
    assert register_outside.status_code == 403
    unit_outside = await client.post("/v1/org-units", json={"name": "越权村", "kind": "station", "parent_id": town_b["id"]}, headers=town_admin)
    assert unit_outside.status_code == 403
    unit_inside = await client.post("/v1/org-units", json={"name": "新设村", "kind": "station", "parent_id": town_a["id"]}, headers=town_admin)
    assert unit_inside.status_code == 201
    assert (await client.get(f"/v1/org-units/{town_b['id']}/subtree", headers=town_admin)).status_code == 403
    assert (await client.get(f"/v1/org-units/{station_a['id']}/path", headers=town_admin)).status_code == 200
    move = await client.post(f"/v1/org-units/{station_a['id']}/move", json={"new_parent_id": town_b["id"]}, headers=town_admin)
    assert move.status_code == 403 and move.json()["detail"]["field"] == "new_parent_id"


async def test_roles_without_volunteer_access_are_refused(registry):
    _, station = await registry.town_with_station()
    volunteer, _ = await registry.volunteer(station)
    for role in ("analyst", "police_liaison"):
        response = await registry.client.get(f"/v1/volunteers/{volunteer['id']}", headers=registry.auth(role))
        assert response.status_code == 403, role
        assert (await registry.client.get("/v1/volunteers", headers=registry.auth(role))).status_code == 403
    grid_worker = registry.auth("grid_worker", scope=station["path"])
    assert (await registry.client.post("/v1/volunteers", json={**new_person(), "org_unit_id": station["id"]}, headers=grid_worker)).status_code == 403
    assert (await registry.client.get(f"/v1/volunteers/{volunteer['id']}", headers=grid_worker)).status_code == 200
    other = registry.auth("volunteer", vid="00000000-0000-4000-8000-000000000000")
    assert (await registry.client.get(f"/v1/volunteers/{volunteer['id']}", headers=other)).status_code == 403
    assert (await registry.client.get(f"/v1/volunteers/{volunteer['id']}")).status_code == 401


async def test_staff_accounts_are_created_within_scope_and_logged_in_by_the_gateway(registry):
    client = registry.client
    town, station = await registry.town_with_station()
    other_town, _ = await registry.town_with_station()
    town_admin = registry.auth("town_admin", scope=town["path"])
    body = {"username": f"gw_{station['id'][:8]}", "password": "网格员密码-2026", "role": "grid_worker", "display_name": "王网格", "org_unit_id": station["id"]}
    created = await client.post("/v1/staff", json=body, headers=town_admin)
    assert created.status_code == 201, created.text
    assert created.json()["scope_path"] == station["path"] and "password" not in created.text
    assert (await client.post("/v1/staff", json=body, headers=town_admin)).json()["detail"]["field"] == "username"
    escalate = await client.post("/v1/staff", json={**body, "username": "boss1", "role": "county_admin"}, headers=town_admin)
    assert escalate.status_code == 403 and escalate.json()["detail"]["field"] == "role"
    outside = await client.post("/v1/staff", json={**body, "username": "elsewhere", "org_unit_id": other_town["id"]}, headers=town_admin)
    assert outside.status_code == 403
    weak = await client.post("/v1/staff", json={**body, "username": "weak1", "password": "short"}, headers=town_admin)
    assert weak.status_code == 422 and weak.json()["detail"]["field"] == "password"
    stored = await registry.sql("SELECT password_hash FROM staff WHERE username = :u", u=body["username"])
    assert stored[0][0].startswith("$argon2id$")

    service = registry.auth("service")
    verified = await client.post("/internal/v1/staff/verify-password", json={"username": body["username"], "password": body["password"]}, headers=service)
    assert verified.status_code == 200
    assert verified.json() == {"staff_id": created.json()["id"], "role": "grid_worker", "scope_path": station["path"], "display_name": "王网格"}
    wrong = await client.post("/internal/v1/staff/verify-password", json={"username": body["username"], "password": "guess-guess"}, headers=service)
    assert wrong.status_code == 401
    nobody = await client.post("/internal/v1/staff/verify-password", json={"username": "nobody", "password": "guess-guess"}, headers=service)
    assert nobody.status_code == 401
    as_admin = await client.post("/internal/v1/staff/verify-password", json={"username": body["username"], "password": body["password"]}, headers=registry.admin)
    assert as_admin.status_code == 403
    listed = (await client.get("/v1/staff", headers=town_admin)).json()
    assert body["username"] in {s["username"] for s in listed}
    me = await client.get("/v1/staff/me", headers=registry.auth("grid_worker", scope=station["path"], sub=verified.json()["staff_id"]))
    assert me.status_code == 200 and me.json()["username"] == body["username"] and me.json()["role"] == "grid_worker"
    assert (await client.get("/v1/staff/me", headers=registry.auth("county_admin", sub="not-an-account"))).status_code == 404


async def test_a_deactivated_staff_account_cannot_log_in_and_its_state_is_announced(registry):
    client = registry.client
    town, station = await registry.town_with_station()
    other_town, _ = await registry.town_with_station()
    town_admin = registry.auth("town_admin", scope=town["path"])
    body = {"username": f"gw_off_{station['id'][:8]}", "password": "网格员密码-2026", "role": "grid_worker",
            "display_name": "陈网格", "org_unit_id": station["id"]}
    staff_id = (await client.post("/v1/staff", json=body, headers=town_admin)).json()["id"]
    outsider = await client.post(f"/v1/staff/{staff_id}/deactivate", headers=registry.auth("town_admin", scope=other_town["path"]))
    assert outsider.status_code == 403 and outsider.json()["detail"]["code"] == "out_of_scope"
    peer = await client.post("/v1/staff", headers=town_admin, json={**body, "username": f"sa_{station['id'][:8]}", "role": "station_admin"})
    assert peer.status_code == 201, peer.text
    refused = await client.post(f"/v1/staff/{peer.json()['id']}/deactivate", headers=registry.auth("station_admin", scope=station["path"]))
    assert refused.status_code == 403 and refused.json()["detail"]["code"] == "role_forbidden"
    assert (await client.post(f"/v1/staff/{uuid.uuid4()}/deactivate", headers=town_admin)).status_code == 404

    deactivated = await client.post(f"/v1/staff/{staff_id}/deactivate", headers=town_admin)
    assert deactivated.status_code == 200 and deactivated.json()["active"] is False
    login = await client.post("/internal/v1/staff/verify-password", json={"username": body["username"], "password": body["password"]},
                              headers=registry.auth("service"))
    assert login.status_code == 401
    states = await registry.sql("SELECT payload FROM outbox WHERE topic = 'registry.staff.v1' AND key = :k ORDER BY id", k=staff_id)
    announced = [json.loads(bytes(row[0]))["data"] for row in states]
    assert [(s["active"], s["role"], s["scope_path"]) for s in announced] == [(True, "grid_worker", station["path"]),
                                                                             (False, "grid_worker", station["path"])]
    assert all("password" not in json.dumps(s) for s in announced)
    assert (await client.post(f"/v1/staff/{staff_id}/activate", headers=town_admin)).json()["active"] is True


async def test_the_gateway_finds_a_volunteer_by_phone_and_the_volunteer_sees_their_own_profile(registry):
    _, station = await registry.town_with_station()
    volunteer, person = await registry.volunteer(station)
    service = registry.auth("service")
    found = await registry.client.post("/internal/v1/volunteers/by-phone", json={"phone": person["phone"]}, headers=service)
    assert found.status_code == 200
    assert found.json() == {"volunteer_id": volunteer["id"], "status": "applicant", "display_name": volunteer["display_name"], "org_path": station["path"]}
    missing = await registry.client.post("/internal/v1/volunteers/by-phone", json={"phone": "13999999999"}, headers=service)
    assert missing.status_code == 404
    invalid = await registry.client.post("/internal/v1/volunteers/by-phone", json={"phone": "12345"}, headers=service)
    assert invalid.status_code == 422 and invalid.json()["detail"]["field"] == "phone"

    me = await registry.client.get("/v1/volunteers/me", headers=registry.auth("volunteer", vid=volunteer["id"]))
    assert me.status_code == 200 and me.json()["id"] == volunteer["id"] and me.json()["star"] == 1
    assert person["national_id"] not in me.text and person["phone"] not in me.text
    assert (await registry.client.get("/v1/volunteers/me", headers=registry.admin)).status_code == 403


async def test_the_sixteen_specialised_teams_are_seeded(registry):
    teams = (await registry.client.get("/v1/teams", headers=registry.auth("volunteer", vid="00000000-0000-4000-8000-000000000000"))).json()
    names = {t["code"]: t["name"] for t in teams}
    assert len(teams) == 16
    for code in ("psychological_counselling", "traffic_civility", "dispute_mediation", "legal_publicity", "voluntary_patrol"):
        assert code in names
    assert names["voluntary_patrol"] == "义务巡防队"
