"""Cases end to end: clustering by the worker, queue, locks, review, liaison forwarding, dispositions, merge/split, escalation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
from sqlalchemy import text

from shouwang_dev.testing import eventually, read_topic
from shouwang_shared.auth import Role
from shouwang_shared.contracts.police import DispositionRecorded
from shouwang_shared.envelope import new_event

from intel_helpers import COUNTY, OTHER_TOWN, case_of, events_on, org_unit, produce, submit


def _plate() -> str:
    return "浙A" + uuid.uuid4().hex[:5].upper().replace("0", "7")


async def test_reports_of_one_incident_join_one_case_with_reasons(intel):
    plate = _plate()
    a = await submit(intel, {"category": "drugs", "text": f"白石镇上塘村卫生院后面那间房子经常半夜有人进出，门口停一辆黑色桑塔纳，车牌{plate}", "lat": 29.8231, "lon": 120.0012})
    b = await submit(intel, {"category": "drugs", "text": f"举报上塘村卫生院后面有人贩毒，一个左脸有疤的男子，开黑色桑塔纳，牌照{plate}", "lat": 29.8219, "lon": 120.0001})
    c = await submit(intel, {"category": "drugs", "text": "城关镇红星社区网吧楼上有人卖冰毒，车牌浙AK1111", "lat": 29.8710, "lon": 119.9410})
    case_a, case_b, case_c = await case_of(intel, a["tip_id"]), await case_of(intel, b["tip_id"]), await case_of(intel, c["tip_id"])
    assert case_a == case_b != case_c
    detail = (await intel.client.get(f"/v1/cases/{case_a}", headers=intel.analyst())).json()
    assert detail["tip_count"] == 2 and detail["first_tip_id"] == a["tip_id"]
    reasons = detail["tips"][1]["cluster_reasons"]
    assert any(r.startswith("same_identifier:") for r in reasons) and any(r.startswith("near_place:") for r in reasons)
    assert all(t["reporter"].startswith("匿名-") for t in detail["tips"])


async def test_queue_orders_by_priority_then_age_and_urgent_cases_alert(intel):
    normal = await submit(intel, {"category": "counterfeit", "text": f"金桥社区小超市在卖假烟，价格很便宜 {uuid.uuid4().hex[:6]}", "lat": 29.70, "lon": 119.70})
    urgent = await submit(intel, {"category": "missing_person", "text": "七岁小孩在柳营镇小学门口走失，穿红色上衣，家人很着急", "lat": 29.845, "lon": 119.855})
    urgent_case, normal_case = await case_of(intel, urgent["tip_id"]), await case_of(intel, normal["tip_id"])
    queue = (await intel.client.get("/v1/triage/queue?limit=500", headers=intel.analyst())).json()
    ids = [c["case_id"] for c in queue]
    assert ids.index(urgent_case) < ids.index(normal_case)
    ranks = [{"urgent": 0, "high": 1, "normal": 2, "low": 3}[c["priority"]] for c in queue]
    assert ranks == sorted(ranks)
    detail = (await intel.client.get(f"/v1/cases/{urgent_case}", headers=intel.analyst())).json()
    assert detail["priority"] == "urgent"
    assert any(h["action"] == "urgent_alert" for h in detail["history"])
    metrics = (await intel.client.get("/metrics")).text
    assert 'shouwang_intel_urgent_cases_total{category="missing_person"}' in metrics


async def test_edit_lock_gives_a_second_analyst_409(intel):
    tip = await submit(intel, {"category": "public_order", "text": f"龙潭村桥头有人聚众赌博 {uuid.uuid4().hex[:6]}", "lat": 29.60, "lon": 119.60})
    case_id = await case_of(intel, tip["tip_id"])
    first = await intel.client.post(f"/v1/cases/{case_id}/claim", json={"minutes": 10}, headers=intel.analyst("alice"))
    assert first.status_code == 200 and first.json()["locked_by"] == "alice"
    second = await intel.client.post(f"/v1/cases/{case_id}/claim", headers=intel.analyst("bob"))
    assert second.status_code == 409 and second.json()["detail"]["field"] == "lock"
    blocked = await intel.client.post(f"/v1/cases/{case_id}/verify", headers=intel.analyst("bob"))
    assert blocked.status_code == 409
    assert (await intel.client.post(f"/v1/cases/{case_id}/triage", headers=intel.analyst("alice"))).status_code == 200
    assert (await intel.client.delete(f"/v1/cases/{case_id}/claim", headers=intel.analyst("alice"))).status_code == 200
    assert (await intel.client.post(f"/v1/cases/{case_id}/claim", headers=intel.analyst("bob"))).status_code == 200


async def test_scope_and_roles_are_checked_in_the_service(intel):
    await org_unit(intel, "s1", "金桥社区志愿服务站", "station", "/c1/t1/s1")
    tip = await submit(intel, {"category": "other", "text": f"路边井盖丢失 {uuid.uuid4().hex[:6]}", "org_path": "/c1/t1/s1"})
    case_id = await case_of(intel, tip["tip_id"])
    assert (await intel.client.get(f"/v1/cases/{case_id}", headers=intel.analyst(scope="/c1/t1"))).status_code == 200
    assert (await intel.client.get(f"/v1/cases/{case_id}", headers=intel.analyst(scope=OTHER_TOWN))).status_code == 404
    police = intel.auth(Role.POLICE_LIAISON, sub="police-1", scope=COUNTY)
    assert (await intel.client.get("/v1/cases", headers=police)).status_code == 403
    assert (await intel.client.get(f"/v1/liaison/cases/{case_id}", headers=police)).status_code == 404  # not forwarded
    assert (await intel.client.get("/v1/triage/queue", headers=intel.volunteer("v1"))).status_code == 403
    assert (await intel.client.get("/v1/triage/queue")).status_code == 401


async def test_verify_and_reject_emit_tip_reviewed_for_every_tip(intel):
    plate = _plate()
    vid = f"vol-{uuid.uuid4().hex[:6]}"
    a = await submit(intel, {"category": "fugitive", "text": f"新桥镇枫林村出租屋来了个光头男的，很像通缉犯，开{plate}", "lat": 29.98, "lon": 119.91}, intel.volunteer(vid))
    b = await submit(intel, {"category": "fugitive", "text": f"枫林村出租屋那个光头，车牌{plate}，像网上通缉的人", "lat": 29.981, "lon": 119.911})
    case_id = await case_of(intel, a["tip_id"])
    assert case_id == await case_of(intel, b["tip_id"])
    resp = await intel.client.post(f"/v1/cases/{case_id}/verify", json={"quality": 3}, headers=intel.analyst())
    assert resp.status_code == 200 and resp.json()["status"] == "verified"
    reviewed = await eventually(
        lambda: _reviewed(intel, {a["tip_id"], b["tip_id"]}), message="TipReviewed for both tips"
    )
    by_tip = {e.subject: e.data for e in reviewed}
    assert by_tip[a["tip_id"]]["reporter"] == {"kind": "volunteer", "volunteer_id": vid, "claim_ref": None}
    assert by_tip[b["tip_id"]]["reporter"]["claim_ref"] == b["claim_ref"]
    assert {d["verdict"] for d in by_tip.values()} == {"verified"} and {d["quality"] for d in by_tip.values()} == {3}
    assert {d["first_tip_id"] for d in by_tip.values()} == {a["tip_id"]}  # rewards pays the case's bonus to the first reporter only

    prank = await submit(intel, {"category": "other", "text": f"外星人降落在广场上了哈哈 {uuid.uuid4().hex[:6]}"})
    prank_case = await case_of(intel, prank["tip_id"])
    bad = await intel.client.post(f"/v1/cases/{prank_case}/reject", json={"reason": "joke"}, headers=intel.analyst())
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "reason"
    assert (await intel.client.post(f"/v1/cases/{prank_case}/reject", json={"reason": "prank"}, headers=intel.analyst())).status_code == 200
    rejected = await eventually(lambda: _reviewed(intel, {prank["tip_id"]}), message="TipReviewed rejected")
    assert rejected[0].data["verdict"] == "rejected" and rejected[0].data["reason"] == "prank"
    again = await intel.client.post(f"/v1/cases/{prank_case}/forward", headers=intel.analyst())
    assert again.status_code == 409 and again.json()["detail"]["field"] == "status"


async def _reviewed(intel, tip_ids: set[str]):
    found = [e for e in await events_on(intel, "intel.tips.v1", type_="shouwang.intel.tip_reviewed.v1") if e.subject in tip_ids]
    return found if {e.subject for e in found} == tip_ids else None


async def _forwarded_case(intel, *, texts: list[tuple[str, dict]], category: str = "fraud", lat: float = 29.91, lon: float = 119.88) -> tuple[str, list[dict]]:
    answers = [await submit(intel, {"category": category, "text": t, "lat": lat, "lon": lon}, h) for t, h in texts]
    placed = {await case_of(intel, answer["tip_id"]) for answer in answers}  # every tip in, not only the first
    assert len(placed) == 1, f"the tips were placed in {len(placed)} cases"
    case_id = placed.pop()
    assert (await intel.client.post(f"/v1/cases/{case_id}/verify", headers=intel.analyst())).status_code == 200
    resp = await intel.client.post(f"/v1/cases/{case_id}/forward", headers=intel.analyst())
    assert resp.status_code == 200, resp.text
    return case_id, answers


async def test_liaison_feed_never_carries_an_informant_identity(intel):
    number = "170" + str(uuid.uuid4().int)[:8]
    vid = f"vol-{uuid.uuid4().hex[:6]}"
    texts = [
        (f"我叫王小明，我的电话13812345678，身份证330102199001011234。骗子用{number}冒充公安局，说我涉嫌洗钱", intel.volunteer(vid)),
        (f"{number}打电话冒充公安局民警，说涉嫌洗钱要转到安全账户", {}),
        (f"又接到{number}的电话，冒充公安局民警，涉嫌洗钱", intel.volunteer(vid)),
    ]
    case_id, answers = await _forwarded_case(intel, texts=texts)
    forwarded = await eventually(lambda: events_on(intel, "intel.liaison.v1", subject=case_id), message="CaseForwarded")
    event = forwarded[0]
    assert event.type == "shouwang.intel.case_forwarded.v1"
    raw = event.model_dump_json()
    for identity in (vid, "王小明", "13812345678", "330102199001011234", answers[1]["receipt_code"], answers[1]["claim_ref"], answers[1]["receipt_secret"]):
        assert identity not in raw, f"{identity} leaked to the police feed"
    assert number in event.data["summary"]  # the fraudster's number is evidence and stays
    pseudonyms = event.data["informant_pseudonyms"]
    assert len(pseudonyms) == 2 and all(p.startswith("线人-") for p in pseudonyms)  # the volunteer twice + one anonymous
    assert event.data["tip_count"] == 3 and event.data["sla_due_at"] > event.data["forwarded_at"]

    police = intel.auth(Role.POLICE_LIAISON, sub="police-1", scope=COUNTY)
    seen = (await intel.client.get(f"/v1/liaison/cases/{case_id}", headers=police)).json()
    assert seen["informant_pseudonyms"] == pseudonyms
    assert vid not in orjson.dumps(seen).decode()
    # the same volunteer in another case gets a different pseudonym: the police cannot link informants across cases
    other_text = f"另一起：南塘镇下徐村有人卖假酒 {uuid.uuid4().hex[:6]}"
    other_case, _ = await _forwarded_case(intel, texts=[(other_text, intel.volunteer(vid))], category="counterfeit", lat=29.79, lon=119.92)
    other = (await intel.client.get(f"/v1/liaison/cases/{other_case}", headers=police)).json()
    assert not set(other["informant_pseudonyms"]) & set(pseudonyms)


async def test_confirmed_dispositions_update_the_case_and_a_malformed_one_is_dead_lettered(intel):
    vid = f"vol-{uuid.uuid4().hex[:6]}"
    number = "171" + str(uuid.uuid4().int)[:8]
    case_id, answers = await _forwarded_case(
        intel, texts=[(f"{number}冒充银行客服，说贷款要先交保证金", intel.volunteer(vid)), (f"骗子{number}冒充银行客服要保证金", {})],
        lat=29.95, lon=120.08,
    )
    now = datetime.now(UTC)
    good = new_event(source="/police/county-bureau", type=DispositionRecorded.TYPE, subject=case_id,
                     data=DispositionRecorded(case_id=case_id, disposition="arrest", officer_unit="城关派出所", recorded_at=now))
    malformed = new_event(source="/police/county-bureau", type=DispositionRecorded.TYPE, subject=case_id,
                          data={"case_id": case_id, "disposition": "shot_on_sight", "recorded_at": now.isoformat()})
    unknown = new_event(source="/police/county-bureau", type=DispositionRecorded.TYPE, subject="x",
                        data={"case_id": str(uuid.uuid4()), "disposition": "arrest", "recorded_at": now.isoformat()})
    await produce(intel, "police.dispositions.v1", [
        (case_id, b"{not json"), (case_id, malformed.to_bytes()), ("x", unknown.to_bytes()), (case_id, good.to_bytes()), (case_id, good.to_bytes()),
    ])

    async def received():
        detail = (await intel.client.get(f"/v1/cases/{case_id}", headers=intel.analyst())).json()
        return detail if detail["dispositions"] else None

    detail = await eventually(received, message="disposition attached")
    assert [d["disposition"] for d in detail["dispositions"]] == ["arrest"]  # the replayed copy changed nothing
    confirmed = await intel.client.post(f"/v1/cases/{case_id}/dispositions/{detail['dispositions'][0]['disposition_id']}/confirm", headers=intel.analyst())
    assert confirmed.status_code == 200 and confirmed.json()["outcome"] == "arrest"
    recorded = await eventually(lambda: events_on(intel, "intel.cases.v1", subject=case_id, type_="shouwang.intel.case_outcome_recorded.v1"), message="CaseOutcomeRecorded")
    assert len(recorded) == 1
    data = recorded[0].data
    assert data["outcome"] == "arrest" and data["first_tip_id"] == answers[0]["tip_id"]
    assert data["first_reporter"] == {"kind": "volunteer", "volunteer_id": vid, "claim_ref": None}
    assert {"kind": "anonymous", "volunteer_id": None, "claim_ref": answers[1]["claim_ref"]} in data["reporters"]

    async def dead_letters():
        msgs = await read_topic(intel.stack.bootstrap_servers, intel.topic("intel.dlq.v1"))
        return msgs if len(msgs) >= 3 else None

    reasons = sorted(h["dlq_reason"].decode() for _, _, h in await eventually(dead_letters, message="three dead letters"))
    assert any("malformed envelope" in r for r in reasons)
    assert any("disposition" in r for r in reasons)
    assert any("unknown case" in r for r in reasons)

    police = intel.auth(Role.POLICE_LIAISON, sub="police-1", scope=COUNTY)
    seen = (await intel.client.get(f"/v1/liaison/cases/{case_id}", headers=police)).json()
    assert seen["outcome"] == "arrest"


async def test_merge_keeps_the_first_tip_and_split_moves_tips_out(intel):
    first = await submit(intel, {"category": "dispute", "text": f"杨家村高家和何家为宅基地吵架 {uuid.uuid4().hex[:8]}", "place_text": "柳营镇杨家村"}, intel.volunteer("vol-first"))
    later = await submit(intel, {"category": "public_order", "text": f"杨家村有人打架砸东西 {uuid.uuid4().hex[:8]}", "place_text": "南塘镇沙湾村"})
    case_first, case_later = await case_of(intel, first["tip_id"]), await case_of(intel, later["tip_id"])
    assert case_first != case_later
    merged = await intel.client.post("/v1/cases/merge", json={"target_case_id": case_later, "case_ids": [case_first]}, headers=intel.analyst())
    assert merged.status_code == 200, merged.text
    assert merged.json()["tip_count"] == 2 and merged.json()["first_tip_id"] == first["tip_id"]
    event = (await eventually(lambda: events_on(intel, "intel.cases.v1", subject=case_later, type_="shouwang.intel.cases_merged.v1"), message="CasesMerged"))[0]
    assert event.data["merged_case_ids"] == [case_first] and event.data["first_reporter"]["volunteer_id"] == "vol-first"
    assert (await intel.client.get(f"/v1/cases/{case_first}", headers=intel.analyst())).json()["tip_count"] == 0

    split = await intel.client.post(f"/v1/cases/{case_later}/split", json={"tip_ids": [later["tip_id"]]}, headers=intel.analyst())
    assert split.status_code == 201 and split.json()["first_tip_id"] == later["tip_id"]
    left = (await intel.client.get(f"/v1/cases/{case_later}", headers=intel.analyst())).json()
    assert left["tip_count"] == 1 and left["first_tip_id"] == first["tip_id"]
    everything = await intel.client.post(f"/v1/cases/{case_later}/split", json={"tip_ids": [first["tip_id"]]}, headers=intel.analyst())
    assert everything.status_code == 422 and everything.json()["detail"]["field"] == "tip_ids"


async def test_a_merge_that_makes_a_case_urgent_alerts_once(intel):
    marker = uuid.uuid4().hex[:8]
    near_river = await submit(intel, {"category": "drugs", "text": f"河边仓库有人交易冰毒 {marker}", "lat": 29.35, "lon": 119.35})
    near_station = await submit(intel, {"category": "drugs", "text": f"车站附近有人卖冰毒 {marker}", "lat": 30.35, "lon": 120.35})
    target, other = await case_of(intel, near_river["tip_id"]), await case_of(intel, near_station["tip_id"])
    assert target != other
    assert (await intel.client.get(f"/v1/cases/{target}", headers=intel.analyst())).json()["priority"] == "high"
    merged = await intel.client.post("/v1/cases/merge", json={"target_case_id": target, "case_ids": [other]}, headers=intel.analyst())
    assert merged.status_code == 200, merged.text
    assert merged.json()["priority"] == "urgent"  # 40 drugs + 25 words + 10 station + 5 for the second reporter
    detail = (await intel.client.get(f"/v1/cases/{target}", headers=intel.analyst())).json()
    assert [h["action"] for h in detail["history"]].count("urgent_alert") == 1
    async with intel.engine.connect() as conn:
        queued = (await conn.execute(text("SELECT level, case_org_path FROM urgent_alerts WHERE case_id = :id"), {"id": target})).all()
    assert len(queued) == 1 and queued[0].level in (-1, 0)  # queued by the merge; the sweep may already have sent it


async def test_verified_missing_person_raises_an_escalation(intel):
    tip = await submit(intel, {"category": "missing_person", "text": f"五岁孩子在青山乡水库边走失 {uuid.uuid4().hex[:8]}", "lat": 29.958, "lon": 119.99})
    case_id = await case_of(intel, tip["tip_id"])
    assert (await intel.client.post(f"/v1/cases/{case_id}/verify", headers=intel.analyst())).status_code == 200
    raised = await eventually(lambda: events_on(intel, "intel.escalations.v1", subject=case_id), message="EscalationRaised")
    data = raised[0].data
    assert data["kind"] == "missing_person" and data["headcount"] == 30 and (data["lat"], data["lon"]) == (29.958, 119.99)
    async with intel.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM escalations WHERE case_id = :id"), {"id": case_id}) == 1
