"""Staff's bulk work on an operation's offers on the real stack: list by status and page, cancel with a reason
(each volunteer told once), offer lost slots again through the backfill wave (nobody offered twice), scope and 4xx."""

from __future__ import annotations

import uuid

from shouwang_dev.testing import eventually
from shouwang_shared.auth import Role
from shouwang_shared.contracts.dispatch import AssignmentAnswered, AssignmentOffered

from tests.dispatch.service import TOWN_A, TOWN_B, day, post, volunteer_state

STATION = TOWN_A + "/s1"


async def _offers(dispatch, operation_id, query="", headers=None):
    response = await dispatch.client.get(f"/v1/operations/{operation_id}/offers{query}", headers=headers or dispatch.headers())
    assert response.status_code == 200, response.text
    return response.json()


async def test_staff_list_cancel_and_reoffer_an_operations_offers_exactly_once(dispatch):
    near = [volunteer_state(27.00 + i * 0.002, 119.00) for i in range(3)]
    reserve = [volunteer_state(27.01 + i * 0.002, 119.01, recruitment_mode="reserve") for i in range(4)]
    await dispatch.add_volunteers(near + reserve)
    op = await dispatch.create_operation({"name": "灯会", "org_path": TOWN_A, "posts": [post("广场", 27.0, 119.0, day(11), headcount=3)]})
    await dispatch.activate_and_wait(op["id"])
    offers_url = f"/v1/operations/{op['id']}/offers"

    listed = await _offers(dispatch, op["id"])
    assert len(listed) == 3 and {o["status"] for o in listed} == {"offered"} and all(o["reoffered_at"] is None for o in listed)
    assert {o["volunteer_id"] for o in listed} == {v.volunteer_id for v in near}
    page = await _offers(dispatch, op["id"], "?limit=2") + await _offers(dispatch, op["id"], "?limit=2&offset=2")
    assert [o["id"] for o in page] == [o["id"] for o in listed]
    assert await _offers(dispatch, op["id"], "?status=accepted") == []

    first, second, third = listed
    r = await dispatch.client.post(f"/v1/assignments/{first['id']}/accept", headers=dispatch.volunteer(first["volunteer_id"]))
    assert r.status_code == 200
    assert [o["id"] for o in await _offers(dispatch, op["id"], "?status=accepted")] == [first["id"]]

    cancel = {"assignment_ids": [first["id"], second["id"]], "reason": "岗位调整"}
    done = await dispatch.client.post(f"{offers_url}/cancel", json=cancel, headers=dispatch.headers())
    assert done.status_code == 200, done.text
    assert sorted(done.json()["cancelled"]) == sorted(cancel["assignment_ids"]) and done.json()["already_cancelled"] == []
    again = await dispatch.client.post(f"{offers_url}/cancel", json=cancel, headers=dispatch.headers())
    assert again.status_code == 200 and again.json()["cancelled"] == []
    assert sorted(again.json()["already_cancelled"]) == sorted(cancel["assignment_ids"])
    cancelled = await _offers(dispatch, op["id"], "?status=cancelled")
    assert {o["id"] for o in cancelled} == set(cancel["assignment_ids"]) and {o["decline_reason"] for o in cancelled} == {"岗位调整"}

    async def cancellations():
        events = [e for e in await dispatch.topic(AssignmentAnswered.TOPIC)
                  if e.type == AssignmentAnswered.TYPE and e.data["operation_id"] == op["id"] and e.data["answer"] == "cancelled"]
        return events or None

    told = await eventually(cancellations, message="cancellations on the assignments topic")
    assert sorted(e.data["assignment_id"] for e in told) == sorted(cancel["assignment_ids"]), "each volunteer told exactly once"
    assert {e.data["reason"] for e in told} == {"岗位调整"}

    still_offered = await dispatch.client.post(f"{offers_url}/reoffer", json={"assignment_ids": [third["id"]]}, headers=dispatch.headers())
    assert still_offered.status_code == 409 and still_offered.json()["detail"]["field"] == "assignment_ids"

    reoffer = {"assignment_ids": cancel["assignment_ids"]}
    refilled = await dispatch.client.post(f"{offers_url}/reoffer", json=reoffer, headers=dispatch.headers())
    assert refilled.status_code == 200, refilled.text
    body = refilled.json()
    assert sorted(body["reoffered"]) == sorted(reoffer["assignment_ids"]) and body["offers_sent"] >= 1 and body["not_refilled"] == []
    wave = [o for o in await _offers(dispatch, op["id"], "?status=offered") if o["wave"] >= 1]
    assert len(wave) == body["offers_sent"] and {o["volunteer_id"] for o in wave} <= {v.volunteer_id for v in reserve}
    repeated = await dispatch.client.post(f"{offers_url}/reoffer", json=reoffer, headers=dispatch.headers())
    assert repeated.status_code == 200 and repeated.json()["reoffered"] == [] and repeated.json()["offers_sent"] == 0
    assert sorted(repeated.json()["already_reoffered"]) == sorted(reoffer["assignment_ids"])
    assert len(await _offers(dispatch, op["id"])) == 3 + body["offers_sent"], "a repeated re-offer offers nobody twice"

    async def offered_events():
        events = [e for e in await dispatch.topic(AssignmentOffered.TOPIC)
                  if e.type == AssignmentOffered.TYPE and e.data["operation_id"] == op["id"] and e.data.get("wave", 0) >= 1]
        return events if len(events) >= body["offers_sent"] else None

    await eventually(offered_events, message="the re-offer wave's offers on the assignments topic")


async def test_offer_routes_check_scope_and_name_the_bad_field(dispatch):
    near = [volunteer_state(27.20 + i * 0.002, 119.20) for i in range(2)]
    await dispatch.add_volunteers(near)
    op = await dispatch.create_operation({"name": "庙会", "org_path": TOWN_A, "posts": [
        post("东门", 27.2, 119.2, day(12), headcount=1, org_path=STATION),
        post("西门", 27.201, 119.2, day(12), headcount=1),
    ]})
    await dispatch.activate_and_wait(op["id"])
    offers_url = f"/v1/operations/{op['id']}/offers"
    everything = await _offers(dispatch, op["id"])
    assert len(everything) == 2

    station = dispatch.headers(Role.STATION_ADMIN, scope_path=STATION)
    seen = await _offers(dispatch, op["id"], headers=station)
    assert [o["post_name"] for o in seen] == ["东门"], "a station admin sees only the offers at their posts"
    outside = next(o for o in everything if o["post_name"] == "西门")
    refused = await dispatch.client.post(f"{offers_url}/cancel", json={"assignment_ids": [outside["id"]], "reason": "x"}, headers=station)
    assert refused.status_code == 403 and refused.json()["detail"]["field"] == "assignment_ids"

    assert (await dispatch.client.get(offers_url, headers=dispatch.headers(Role.TOWN_ADMIN, scope_path=TOWN_B))).status_code == 403
    assert (await dispatch.client.get(offers_url, headers=dispatch.volunteer(near[0].volunteer_id))).status_code == 403
    assert (await dispatch.client.get(f"/v1/operations/{uuid.uuid4()}/offers", headers=dispatch.headers())).status_code == 404
    bad_status = await dispatch.client.get(f"{offers_url}?status=lost", headers=dispatch.headers())
    assert bad_status.status_code == 422 and "status" in bad_status.text

    no_reason = await dispatch.client.post(f"{offers_url}/cancel", json={"assignment_ids": [outside["id"]]}, headers=dispatch.headers())
    assert no_reason.status_code == 422 and "reason" in no_reason.text
    unknown = await dispatch.client.post(f"{offers_url}/cancel", json={"assignment_ids": [str(uuid.uuid4())], "reason": "x"},
                                         headers=dispatch.headers())
    assert unknown.status_code == 404 and unknown.json()["detail"]["field"] == "assignment_ids"
    garbage = await dispatch.client.post(f"{offers_url}/reoffer", json={"assignment_ids": ["nope"]}, headers=dispatch.headers())
    assert garbage.status_code == 404 and garbage.json()["detail"]["field"] == "assignment_ids"
    unchanged = await _offers(dispatch, op["id"])
    assert [o["status"] for o in unchanged] == [o["status"] for o in everything], "refused requests change nothing"

    closed = await dispatch.client.post(f"/v1/operations/{op['id']}/close", headers=dispatch.headers())
    assert closed.status_code == 200
    lost = await _offers(dispatch, op["id"], "?status=cancelled")
    late = await dispatch.client.post(f"{offers_url}/reoffer", json={"assignment_ids": [lost[0]["id"]]}, headers=dispatch.headers())
    assert late.status_code == 409 and late.json()["detail"]["field"] == "status"
