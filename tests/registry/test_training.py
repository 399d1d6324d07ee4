"""Training sessions, attendance events, the yearly rule applied to stored volunteers, and the behind report."""

from __future__ import annotations

from datetime import date, timedelta

from shouwang_dev.testing import eventually, read_topic
from shouwang_shared.contracts.registry import TrainingAttended, VolunteerState

TODAY = date.today()


async def test_attendance_emits_training_records_and_the_rule_flags_then_bars_the_volunteers_behind(registry):
    client, admin = registry.client, registry.admin
    town, station = await registry.town_with_station()
    core, _ = await registry.volunteer(station, core=True)
    ordinary, _ = await registry.volunteer(station)
    trained, _ = await registry.volunteer(station)
    ids = [core["id"], ordinary["id"], trained["id"]]
    # They joined two years ago: the full yearly rule applies to them.
    await registry.sql("UPDATE volunteers SET joined_on = CAST(:d AS date) WHERE id = ANY(CAST(:ids AS uuid[]))", d=TODAY - timedelta(days=730), ids=ids)

    session = await client.post("/v1/training/sessions", json={
        "title": "平安志愿者职业道德培训", "level": "town", "topic": "ethics", "org_unit_id": town["id"], "held_on": str(TODAY - timedelta(days=20)),
    }, headers=admin)
    assert session.status_code == 201, session.text
    attendance = await client.post(f"/v1/training/sessions/{session.json()['id']}/attendance", json={"volunteer_ids": [core["id"], trained["id"]]}, headers=admin)
    assert attendance.json() == {"session_id": session.json()["id"], "recorded": 2, "already_recorded": 0}
    replay = await client.post(f"/v1/training/sessions/{session.json()['id']}/attendance", json={"volunteer_ids": [core["id"]]}, headers=admin)
    assert replay.json()["recorded"] == 0 and replay.json()["already_recorded"] == 1
    town_admin = registry.auth("town_admin", scope=town["path"])
    listed = (await client.get("/v1/training/sessions", params={"since": str(TODAY - timedelta(days=30))}, headers=town_admin)).json()
    assert [(s["id"], s["attended"]) for s in listed] == [(session.json()["id"], 2)]
    assert (await client.get("/v1/training/sessions", params={"level": "village"}, headers=town_admin)).json() == []
    _, other_station = await registry.town_with_station()
    elsewhere = registry.auth("station_admin", scope=other_station["path"])
    assert (await client.get("/v1/training/sessions", headers=elsewhere)).json() == []

    report = (await client.get(f"/v1/training/behind?org_unit_id={town['id']}", headers=admin)).json()
    behind = {i["volunteer_id"]: i for i in report["items"]}
    assert set(behind) == {core["id"], ordinary["id"]} and report["volunteers"] == 3
    assert behind[core["id"]]["required"] == 4 and behind[core["id"]]["attended"] == 1
    assert behind[ordinary["id"]]["required"] == 1 and behind[ordinary["id"]]["attended"] == 0
    assert report["by_org_unit"] == {station["id"]: 2}

    review = await client.post(f"/v1/training/review?org_unit_id={town['id']}", headers=admin)
    # The core volunteer was re-assessed (and flagged) when their attendance was recorded; the review adds the other.
    assert review.status_code == 200 and review.json()["changed"] == 1
    assert (await client.get(f"/v1/volunteers/{core['id']}", headers=admin)).json()["training_compliant"] is False
    flagged = (await client.get(f"/v1/volunteers/{ordinary['id']}", headers=admin)).json()
    assert flagged["training_compliant"] is False and flagged["training_flagged_on"] == str(TODAY) and flagged["specialised_eligible"] is True

    later = TODAY + timedelta(days=31)
    await client.post(f"/v1/training/review?org_unit_id={town['id']}&as_of={later}", headers=admin)
    barred = (await client.get(f"/v1/volunteers/{ordinary['id']}", headers=admin)).json()
    assert barred["specialised_eligible"] is False
    assert (await client.get(f"/v1/volunteers/{trained['id']}", headers=admin)).json()["specialised_eligible"] is True

    # Catching up restores eligibility at once.
    catch_up = await client.post("/v1/training/sessions", json={
        "title": "纪律培训", "level": "village", "topic": "discipline", "org_unit_id": station["id"], "held_on": str(TODAY),
    }, headers=admin)
    await client.post(f"/v1/training/sessions/{catch_up.json()['id']}/attendance", json={"volunteer_ids": [ordinary["id"]]}, headers=admin)
    restored = (await client.get(f"/v1/volunteers/{ordinary['id']}", headers=admin)).json()
    assert restored["training_compliant"] is True and restored["specialised_eligible"] is True and restored["training_flagged_on"] is None

    mine = await client.get("/v1/training/me", headers=registry.auth("volunteer", vid=ordinary["id"]))
    assert mine.status_code == 200 and mine.json()["behind"] is False and mine.json()["attended"] == 1
    assert [s["topic"] for s in mine.json()["sessions"]] == ["discipline"]
    core_me = (await client.get("/v1/training/me", headers=registry.auth("volunteer", vid=core["id"]))).json()
    assert core_me["behind"] is True and core_me["required"] == 4 and core_me["attended"] == 1
    assert (await client.get("/v1/training/me", headers=admin)).status_code == 403

    prefix, servers = registry.stack.topic_prefix, registry.stack.bootstrap_servers

    async def records():
        messages = await read_topic(servers, f"{prefix}{TrainingAttended.TOPIC}")
        mine = [e for _, e, _ in messages if e.subject in ids]
        return mine if len(mine) >= 3 else None

    attended = await eventually(records, message="three TrainingAttended events")
    assert sorted((e.data["volunteer_id"], e.data["level"]) for e in attended) == sorted(
        [(core["id"], "town"), (trained["id"], "town"), (ordinary["id"], "village")])
    assert all(e.data["org_path"] == station["path"] for e in attended)

    async def barred_state():
        messages = await read_topic(servers, f"{prefix}{VolunteerState.TOPIC}")
        return [e for _, e, _ in messages if e.subject == ordinary["id"] and e.data["specialised_eligible"] is False]

    assert (await eventually(barred_state, message="a state that bars specialised dispatch"))[0].data["training_compliant"] is False


async def test_training_input_is_checked(registry):
    client, admin = registry.client, registry.admin
    town, station = await registry.town_with_station()

    def session_of(**fields) -> dict:
        return {"title": "培训", "level": "town", "topic": "skills", "org_unit_id": town["id"], "held_on": str(TODAY), **fields}

    wrong_level = await client.post("/v1/training/sessions", json=session_of(level="county", org_unit_id=station["id"]), headers=admin)
    assert wrong_level.status_code == 422 and wrong_level.json()["detail"]["field"] == "level"
    bad_date = await client.post("/v1/training/sessions", json=session_of(held_on="2026-02-30"), headers=admin)
    assert bad_date.status_code == 422 and bad_date.json()["detail"]["field"] == "held_on"
    bad_topic = await client.post("/v1/training/sessions", json=session_of(topic="cooking"), headers=admin)
    assert bad_topic.status_code == 422 and bad_topic.json()["detail"]["field"] == "topic"
    ok = (await client.post("/v1/training/sessions", json=session_of(), headers=admin)).json()
    unknown = await client.post(f"/v1/training/sessions/{ok['id']}/attendance", json={"volunteer_ids": ["00000000-0000-4000-8000-00000000000a"]}, headers=admin)
    assert unknown.status_code == 422 and unknown.json()["detail"]["field"] == "volunteer_ids"
    other_town, other_station = await registry.town_with_station()
    outsider, _ = await registry.volunteer(other_station)
    town_admin = registry.auth("town_admin", scope=town["path"])
    assert (await client.post(f"/v1/training/sessions/{ok['id']}/attendance", json={"volunteer_ids": [outsider["id"]]}, headers=town_admin)).status_code == 403
    assert (await client.get(f"/v1/training/behind?org_unit_id={other_town['id']}", headers=town_admin)).status_code == 403
