"""QR registration invites: issued for a grid, signed, expiring, single- or multi-use; then staff activate the applicant."""

from __future__ import annotations

from datetime import date

from shouwang_dev.testing import eventually, read_topic
from shouwang_shared.contracts.registry import VolunteerState

from registry.national_id import make_national_id
from tests.registry.people import new_person


async def grid_with_worker(registry):
    """A station with a grid worker account and a grid they run; returns (station, worker, grid, worker auth)."""
    _, station = await registry.town_with_station()
    worker = (await registry.client.post("/v1/staff", json={
        "username": f"gw-{station['id'][:8]}", "password": "long-enough-password", "role": "grid_worker",
        "display_name": "李网格", "org_unit_id": station["id"],
    }, headers=registry.admin)).json()
    grid = await registry.client.post("/v1/grids", json={"name": "第一网格", "station_id": station["id"], "grid_worker_id": worker["id"]}, headers=registry.admin)
    assert grid.status_code == 201, grid.text
    return station, worker, grid.json(), registry.auth("grid_worker", scope=station["path"], sub=worker["id"])


async def test_a_grid_worker_invites_people_who_register_as_applicants_of_that_grid(registry):
    client = registry.client
    station, worker, grid, worker_auth = await grid_with_worker(registry)
    invite = await client.post("/v1/invites", json={"grid_id": grid["id"], "max_uses": 2, "ttl_hours": 24}, headers=worker_auth)
    assert invite.status_code == 201, invite.text
    invite = invite.json()
    assert invite["registration_url"].endswith(invite["token"].replace(":", "%3A")) and invite["max_uses"] == 2

    png = await client.get(f"/v1/invites/{invite['id']}/qr.png", headers=worker_auth)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    svg = await client.get(f"/v1/invites/{invite['id']}/qr.svg", headers=worker_auth)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content
    assert (await client.get(f"/v1/invites/{invite['id']}/qr.gif", headers=worker_auth)).status_code == 422

    person = new_person(name="周志愿")
    registered = await client.post("/v1/registrations", json={**person, "invite_token": invite["token"], "skills": ["摄影"]})
    assert registered.status_code == 201, registered.text
    body = registered.json()
    assert body["status"] == "applicant" and body["grid_id"] == grid["id"] and person["phone"] not in registered.text

    recruits = (await client.get(f"/v1/staff/{worker['id']}/recruits", headers=worker_auth)).json()
    assert [v["id"] for v in recruits["items"]] == [body["volunteer_id"]] and recruits["items"][0]["org_path"] == station["path"]
    by_grid = (await client.get(f"/v1/volunteers?grid_id={grid['id']}", headers=worker_auth)).json()
    assert by_grid["total"] == 1

    activated = await client.post(f"/v1/volunteers/{body['volunteer_id']}/activate", json={"reason": "网格员核实"}, headers=registry.auth("station_admin", scope=station["path"]))
    assert activated.status_code == 200 and activated.json()["status"] == "active"


async def test_single_use_invites_are_used_up_and_expired_or_forged_ones_refused(registry):
    client = registry.client
    _, _, grid, worker_auth = await grid_with_worker(registry)
    single = (await client.post("/v1/invites", json={"grid_id": grid["id"]}, headers=worker_auth)).json()
    assert single["max_uses"] == 1
    assert (await client.post("/v1/registrations", json={**new_person(), "invite_token": single["token"]})).status_code == 201
    reused = await client.post("/v1/registrations", json={**new_person(), "invite_token": single["token"]})
    assert reused.status_code == 410 and reused.json()["detail"]["code"] == "invite_used_up" and reused.json()["detail"]["field"] == "invite_token"

    expiring = (await client.post("/v1/invites", json={"grid_id": grid["id"], "max_uses": 50}, headers=worker_auth)).json()
    await registry.sql("UPDATE invites SET expires_at = now() - interval '1 minute' WHERE id = CAST(:id AS uuid)", id=expiring["id"])
    expired = await client.post("/v1/registrations", json={**new_person(), "invite_token": expiring["token"]})
    assert expired.status_code == 410 and expired.json()["detail"]["code"] == "invite_expired"

    multi = (await client.post("/v1/invites", json={"grid_id": grid["id"], "max_uses": 3}, headers=worker_auth)).json()
    forged = multi["token"][:-3] + ("AAA" if not multi["token"].endswith("AAA") else "BBB")
    bad = await client.post("/v1/registrations", json={**new_person(), "invite_token": forged})
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "invite_token"

    duplicate = new_person()
    assert (await client.post("/v1/registrations", json={**duplicate, "invite_token": multi["token"]})).status_code == 201
    again = await client.post("/v1/registrations", json={**duplicate, "invite_token": multi["token"]})
    assert again.status_code == 201  # answered like anyone (no oracle), and counted like anyone
    malformed = await client.post("/v1/registrations", json={**new_person(), "national_id": "33010219900230123X", "invite_token": multi["token"]})
    assert malformed.status_code == 422 and malformed.json()["detail"]["field"] == "national_id"
    uses = await registry.sql("SELECT uses FROM invites WHERE id = CAST(:id AS uuid)", id=multi["id"])
    assert uses[0][0] == 2  # a refused (malformed) registration did not use the invite up

    revoked = await client.post(f"/v1/invites/{multi['id']}/revoke", headers=registry.admin)
    assert revoked.json()["revoked"] is True
    assert (await client.post("/v1/registrations", json={**new_person(), "invite_token": multi["token"]})).status_code == 410


async def test_invites_are_issued_only_for_grids_in_reach(registry):
    client = registry.client
    _, _, grid, worker_auth = await grid_with_worker(registry)
    _, _, other_grid, _ = await grid_with_worker(registry)
    assert (await client.post("/v1/invites", json={"grid_id": other_grid["id"]}, headers=worker_auth)).status_code == 403
    assert (await client.post("/v1/invites", json={"grid_id": grid["id"]}, headers=registry.auth("analyst"))).status_code == 403
    unknown = await client.post("/v1/invites", json={"grid_id": "00000000-0000-4000-8000-000000000009"}, headers=registry.admin)
    assert unknown.status_code == 422 and unknown.json()["detail"]["field"] == "grid_id"
    too_long = await client.post("/v1/invites", json={"grid_id": grid["id"], "ttl_hours": 100000}, headers=registry.admin)
    assert too_long.status_code == 422 and too_long.json()["detail"]["field"] == "ttl_hours"


async def test_concurrent_registrations_never_exceed_the_invite_limit(registry):
    import asyncio

    _, _, grid, worker_auth = await grid_with_worker(registry)
    invite = (await registry.client.post("/v1/invites", json={"grid_id": grid["id"], "max_uses": 3}, headers=worker_auth)).json()
    responses = await asyncio.gather(*[
        registry.client.post("/v1/registrations", json={**new_person(), "invite_token": invite["token"]}) for _ in range(8)
    ])
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 3 + [410] * 5, [r.text for r in responses]
    uses = await registry.sql("SELECT uses FROM invites WHERE id = CAST(:id AS uuid)", id=invite["id"])
    registered = await registry.sql("SELECT count(*) FROM volunteers WHERE grid_id = CAST(:g AS uuid)", g=grid["id"])
    assert uses[0][0] == 3 and registered[0][0] == 3


async def test_a_registration_writes_its_state_event_and_follows_a_moved_station_despite_the_cache(registry):
    client = registry.client
    station, worker, grid, worker_auth = await grid_with_worker(registry)
    invite = (await client.post("/v1/invites", json={"grid_id": grid["id"], "max_uses": 5, "ttl_hours": 24}, headers=worker_auth)).json()
    person = new_person()
    first = await client.post("/v1/registrations", json={**person, "invite_token": invite["token"], "teams": ["anti_fraud"],
                                                          "availability": [{"weekday": 1, "start": "08:00", "end": "12:00"}]})
    assert first.status_code == 201, first.text
    unknown_team = await client.post("/v1/registrations", json={**new_person(), "invite_token": invite["token"], "teams": ["宇航队"]})
    assert unknown_team.status_code == 422 and unknown_team.json()["detail"]["field"] == "teams"

    new_town = await registry.unit("town", registry.county)
    moved = await client.post(f"/v1/org-units/{station['id']}/move", json={"new_parent_id": new_town["id"]}, headers=registry.admin)
    assert moved.status_code == 200, moved.text
    second = await client.post("/v1/registrations", json={**new_person(), "invite_token": invite["token"]})
    assert second.status_code == 201, second.text
    stored = (await client.get(f"/v1/volunteers/{second.json()['volunteer_id']}", headers=registry.admin)).json()
    assert stored["org_path"] == moved.json()["path"] == f"{new_town['path']}/{station['id']}"
    assert (await client.get(f"/v1/invites/{invite['id']}", headers=registry.admin)).json()["uses"] == 2

    async def states():
        messages = await read_topic(registry.stack.bootstrap_servers, f"{registry.stack.topic_prefix}{VolunteerState.TOPIC}")
        return [e for _, e, _ in messages if e.subject == first.json()["volunteer_id"]] or None

    event = (await eventually(states, message="the registration's state event"))[0]  # the move re-emits it later
    state = VolunteerState.model_validate(event.data)
    assert (state.version, state.status, state.teams, state.grid_id, state.org_path) == (1, "applicant", ["anti_fraud"], grid["id"], station["path"])
    registered = (await client.get(f"/v1/volunteers/{first.json()['volunteer_id']}", headers=registry.admin)).json()
    assert state.volunteer_number == registered["volunteer_number"] and len(state.volunteer_number) == 8
    assert person["phone"] not in event.to_bytes().decode() and person["national_id"] not in event.to_bytes().decode()


async def test_a_public_registration_answers_alike_whether_or_not_the_person_or_phone_is_registered(registry):
    """Whoever holds an invite cannot learn who is a volunteer: a new person, an identity number already registered and
    a phone already registered get the same status and body shape, each counts a use of the invite, nobody is stored twice."""
    client = registry.client
    _, _, grid, worker_auth = await grid_with_worker(registry)
    registered = {"real_name": "吴建华", "national_id": make_national_id("330110", date(1979, 11, 2), 381), "phone": "13867403125"}
    first_invite = (await client.post("/v1/invites", json={"grid_id": grid["id"]}, headers=worker_auth)).json()
    assert (await client.post("/v1/registrations", json={**registered, "invite_token": first_invite["token"]})).status_code == 201

    invite = (await client.post("/v1/invites", json={"grid_id": grid["id"], "max_uses": 5}, headers=worker_auth)).json()
    attempts = {
        "new": {"real_name": "沈佳怡", "national_id": make_national_id("330122", date(1995, 6, 21), 46), "phone": "15158021937"},
        "same_id": {"real_name": "吴建华", "national_id": registered["national_id"], "phone": "18969125504"},
        "same_phone": {"real_name": "吴建", "national_id": make_national_id("330102", date(1982, 2, 8), 775),
                       "phone": registered["phone"]},
    }
    answers = {k: await client.post("/v1/registrations", json={**p, "invite_token": invite["token"]}) for k, p in attempts.items()}

    def shape(response) -> tuple:
        """What the answer says apart from echoing the sender's own input: status, fields, and how each field looks."""
        body = response.json()
        return (response.status_code, sorted(body), body.get("status"), body.get("grid_id"),
                len(body.get("volunteer_id") or ""), response.headers.get("content-type"))

    assert shape(answers["new"]) == shape(answers["same_id"]) == shape(answers["same_phone"]), {k: a.text for k, a in answers.items()}
    assert answers["new"].status_code == 201
    for key, answer in answers.items():  # the rest only echoes what was sent
        body, sent = answer.json(), attempts[key]
        assert body["display_name"] == sent["real_name"][0] + "*" * (len(sent["real_name"]) - 1)
        assert body["phone_masked"][-4:] == sent["phone"][-4:] and body["national_id_masked"][-1] == sent["national_id"][-1]

    [(same_ids, on_grid)] = await registry.sql(
        "SELECT count(*) FILTER (WHERE real_name = '吴建华'), count(*) FROM volunteers WHERE grid_id = CAST(:g AS uuid)", g=grid["id"])
    [(uses,)] = await registry.sql("SELECT uses FROM invites WHERE id = CAST(:id AS uuid)", id=invite["id"])
    assert (same_ids, on_grid, uses) == (1, 2, 3)  # the earlier person and the new one; every attempt used the invite
    assert not await registry.sql("SELECT 1 FROM volunteers WHERE id = ANY(CAST(:ids AS uuid[]))",
                                  ids=[answers["same_id"].json()["volunteer_id"], answers["same_phone"].json()["volunteer_id"]])
