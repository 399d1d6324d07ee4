"""The "1+x" org hierarchy against the real database and broker: subtree, path to root, counts, moves with history."""

from __future__ import annotations

from shouwang_dev.testing import eventually, read_topic
from shouwang_shared.contracts.registry import OrgUnitUpserted


async def test_subtree_path_to_root_and_counts_per_level(registry):
    client = registry.client
    town = await registry.unit("town", registry.county, name="城关镇联盟")
    stations = [await registry.unit("station", town, name=f"城关{i}村站") for i in range(3)]
    branch = await registry.unit("branch", registry.county, name="环卫行业分会")
    await registry.unit("station", branch, name="环卫一站")
    await registry.volunteer(stations[0])
    await registry.volunteer(stations[1])

    subtree = (await client.get(f"/v1/org-units/{town['id']}/subtree", headers=registry.admin)).json()
    assert [u["id"] for u in subtree][0] == town["id"]
    assert {u["id"] for u in subtree[1:]} == {s["id"] for s in stations}
    assert all(u["path"].startswith(town["path"]) for u in subtree)

    only_stations = (await client.get(f"/v1/org-units/{registry.county['id']}/subtree?kind=station", headers=registry.admin)).json()
    assert {s["id"] for s in stations} <= {u["id"] for u in only_stations} and all(u["kind"] == "station" for u in only_stations)
    one_level = (await client.get(f"/v1/org-units/{registry.county['id']}/subtree?depth=1", headers=registry.admin)).json()
    assert all(u["kind"] in ("county", "town", "branch") for u in one_level)

    path = (await client.get(f"/v1/org-units/{stations[2]['id']}/path", headers=registry.admin)).json()
    assert [u["id"] for u in path] == [registry.county["id"], town["id"], stations[2]["id"]]
    assert stations[2]["path"] == f"/{registry.county['id']}/{town['id']}/{stations[2]['id']}"

    counts = (await client.get(f"/v1/org-units/{town['id']}/counts", headers=registry.admin)).json()
    assert counts["units_by_kind"] == {"county": 0, "town": 1, "branch": 0, "station": 3}
    assert counts["volunteers"] == 2 and counts["volunteers_by_status"] == {"applicant": 2}


async def test_moving_a_station_repaths_its_people_and_keeps_history(registry):
    client = registry.client
    town_a, station = await registry.town_with_station()
    town_b = await registry.unit("town", registry.county, name="新区联盟")
    volunteer, _ = await registry.volunteer(station)
    grid = (await client.post("/v1/grids", json={"name": "一网格", "station_id": station["id"]}, headers=registry.admin)).json()

    moved = await client.post(f"/v1/org-units/{station['id']}/move", json={"new_parent_id": town_b["id"], "reason": "区划调整"}, headers=registry.admin)
    assert moved.status_code == 200, moved.text
    new_path = f"{town_b['path']}/{station['id']}"
    assert moved.json()["path"] == new_path and moved.json()["parent_id"] == town_b["id"]

    history = (await client.get(f"/v1/org-units/{station['id']}/moves", headers=registry.admin)).json()
    assert len(history) == 1 and history[0]["old_path"] == station["path"] and history[0]["new_path"] == new_path
    assert history[0]["reason"] == "区划调整"
    assert (await client.get(f"/v1/volunteers/{volunteer['id']}", headers=registry.admin)).json()["org_path"] == new_path
    grids = (await client.get(f"/v1/grids?station_id={station['id']}", headers=registry.admin)).json()
    assert grids[0]["id"] == grid["id"] and grids[0]["org_path"] == new_path
    old_town = (await client.get(f"/v1/org-units/{town_a['id']}/counts", headers=registry.admin)).json()
    assert old_town["units_by_kind"]["station"] == 0 and old_town["volunteers"] == 0

    async def moved_event():
        messages = await read_topic(registry.stack.bootstrap_servers, f"{registry.stack.topic_prefix}{OrgUnitUpserted.TOPIC}")
        return [e for k, e, _ in messages if e.subject == station["id"] and e.data["path"] == new_path]

    events = await eventually(moved_event, message="OrgUnitUpserted for the move")
    assert events[0].type == OrgUnitUpserted.TYPE and events[0].data["parent_id"] == town_b["id"]


async def test_a_unit_cannot_move_under_itself_or_break_the_shape(registry):
    town, station = await registry.town_with_station()
    response = await registry.client.post(f"/v1/org-units/{town['id']}/move", json={"new_parent_id": station["id"]}, headers=registry.admin)
    assert response.status_code == 422 and response.json()["detail"]["field"] == "new_parent_id"
    response = await registry.client.post(f"/v1/org-units/{station['id']}/move", json={"new_parent_id": registry.county["id"]}, headers=registry.admin)
    assert response.status_code == 422 and response.json()["detail"]["code"] == "invalid_parent"


async def test_bad_org_unit_input_names_the_field(registry):
    client, admin = registry.client, registry.admin
    unknown = await client.post("/v1/org-units", json={"name": "某村", "kind": "station", "parent_id": "00000000-0000-4000-8000-000000000000"}, headers=admin)
    assert unknown.status_code == 422 and unknown.json()["detail"]["field"] == "parent_id"
    oversize = await client.post("/v1/org-units", json={"name": "长" * 65, "kind": "town", "parent_id": registry.county["id"]}, headers=admin)
    assert oversize.status_code == 422 and oversize.json()["detail"]["field"] == "name"
    bad_kind = await client.post("/v1/org-units", json={"name": "某地", "kind": "province", "parent_id": registry.county["id"]}, headers=admin)
    assert bad_kind.status_code == 422 and bad_kind.json()["detail"]["field"] == "kind"
    second_root = await client.post("/v1/org-units", json={"name": "另一个县", "kind": "county"}, headers=registry.auth("operator"))
    assert second_root.status_code == 409
    town = await registry.unit("town", registry.county, name="重名镇")
    again = await client.post("/v1/org-units", json={"name": "重名镇", "kind": "town", "parent_id": registry.county["id"]}, headers=admin)
    assert again.status_code == 409 and again.json()["detail"]["field"] == "name"
    missing = await client.get("/v1/org-units/not-a-uuid", headers=admin)
    assert missing.status_code == 404
    assert town["depth"] == 1


async def test_renaming_a_unit_is_announced_and_checked(registry):
    client, admin = registry.client, registry.admin
    town, station = await registry.town_with_station()
    sibling = await registry.unit("station", town, name="已有村")
    renamed = await client.patch(f"/v1/org-units/{station['id']}", json={"name": "更名后村", "lat": 30.3}, headers=admin)
    assert renamed.status_code == 200 and renamed.json()["name"] == "更名后村" and renamed.json()["lat"] == 30.3
    clash = await client.patch(f"/v1/org-units/{station['id']}", json={"name": sibling["name"]}, headers=admin)
    assert clash.status_code == 409 and clash.json()["detail"]["field"] == "name"
    assert (await client.patch(f"/v1/org-units/{station['id']}", json={"name": None}, headers=admin)).json()["detail"]["field"] == "name"
    assert (await client.patch(f"/v1/org-units/{station['id']}", json={"lon": 200}, headers=admin)).json()["detail"]["field"] == "lon"
    other_town, _ = await registry.town_with_station()
    outsider = registry.auth("town_admin", scope=other_town["path"])
    assert (await client.patch(f"/v1/org-units/{station['id']}", json={"name": "越权"}, headers=outsider)).status_code == 403

    async def renamed_event():
        messages = await read_topic(registry.stack.bootstrap_servers, f"{registry.stack.topic_prefix}{OrgUnitUpserted.TOPIC}")
        return [e for _, e, _ in messages if e.subject == station["id"] and e.data["name"] == "更名后村"]

    assert (await eventually(renamed_event, message="OrgUnitUpserted for the rename"))[0].data["lat"] == 30.3
