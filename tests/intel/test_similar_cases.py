"""Similar-case suggestions through the running service: the route, its roles and org scope, reject and accept recorded."""

from __future__ import annotations

from sqlalchemy import text

from shouwang_shared.auth import Role

from intel_helpers import OTHER_TOWN, case_of, submit

# Two reports of one incident that clustering keeps apart (little text in common, two days apart), and another
# incident nearby: the first two must suggest each other first.
FIGHT = {"category": "public_order", "text": "夜市烧烤摊有人喝多了打架 酒瓶子都砸了", "lat": 29.7441, "lon": 119.8912,
         "seen_at": "2026-10-14T15:40:00Z"}
KNIFE = {"category": "public_order", "text": "夜市卖烤串的老板拿刀追人 客人说肉不新鲜不肯付钱 吓死人", "lat": 29.7443, "lon": 119.8920,
         "seen_at": "2026-10-16T15:20:00Z"}
SPEEDING = {"category": "public_order", "text": "环湖路半夜有人飙摩托车 改装的 轰得睡不着", "lat": 29.7480, "lon": 119.8950,
            "seen_at": "2026-10-15T16:00:00Z"}
_runs = iter(range(100))  # each test's incidents lie 6 km further north (the module shares one service)


async def _cases(intel) -> tuple[str, str, str]:
    shift = next(_runs) * 0.055
    ids = []
    for body in (FIGHT, KNIFE, SPEEDING):
        ids.append(await case_of(intel, (await submit(intel, {**body, "lat": body["lat"] + shift}))["tip_id"]))
    assert len(set(ids)) == 3, "clustering joined reports it should only suggest"
    return ids[0], ids[1], ids[2]


async def _decisions(intel, a: str, b: str) -> list:
    async with intel.engine.connect() as conn:
        return (await conn.execute(
            text("SELECT decision, score, decided_by, reasons FROM case_pair_decisions WHERE case_low = least(CAST(:a AS uuid), CAST(:b AS uuid))"
                 " AND case_high = greatest(CAST(:a AS uuid), CAST(:b AS uuid))"), {"a": a, "b": b})).all()


async def test_similar_cases_best_first_with_reasons_and_rejecting_one_records_it_and_hides_it(intel):
    fight, knife, speeding = await _cases(intel)
    resp = await intel.client.get(f"/v1/cases/{fight}/similar", headers=intel.analyst())
    assert resp.status_code == 200, resp.text
    similar = resp.json()
    assert similar[0]["case_id"] == knife and len(similar) <= 10
    assert [s["score"] for s in similar] == sorted((s["score"] for s in similar), reverse=True)
    assert any(r.startswith("shared_words:") for r in similar[0]["reasons"]) and similar[0]["reference"].startswith("SW-")

    rejected = await intel.client.post(f"/v1/cases/{fight}/similar/{knife}/reject", json={"note": "两起不同的事"}, headers=intel.analyst("analyst-2"))
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["decision"] == "rejected"
    [row] = await _decisions(intel, fight, knife)
    assert row.decision == "rejected" and row.decided_by == "analyst-2" and row.score is not None and row.reasons
    again = (await intel.client.get(f"/v1/cases/{fight}/similar", headers=intel.analyst())).json()
    assert knife not in [s["case_id"] for s in again]


async def test_merging_a_suggested_pair_records_it_as_accepted(intel):
    fight, knife, _ = await _cases(intel)
    assert knife in [s["case_id"] for s in (await intel.client.get(f"/v1/cases/{fight}/similar", headers=intel.analyst())).json()]
    merged = await intel.client.post("/v1/cases/merge", json={"target_case_id": fight, "case_ids": [knife]}, headers=intel.analyst())
    assert merged.status_code == 200, merged.text
    [row] = await _decisions(intel, fight, knife)
    assert row.decision == "accepted" and row.decided_by == "analyst-1" and row.score > 0


async def test_similar_needs_a_case_role_and_the_case_in_scope(intel):
    fight, knife, _ = await _cases(intel)
    assert (await intel.client.get(f"/v1/cases/{fight}/similar")).status_code == 401
    volunteer = await intel.client.get(f"/v1/cases/{fight}/similar", headers=intel.volunteer("v-1"))
    assert volunteer.status_code == 403
    elsewhere = intel.analyst("analyst-9", scope=OTHER_TOWN)
    assert (await intel.client.get(f"/v1/cases/{fight}/similar", headers=elsewhere)).status_code == 404
    assert (await intel.client.post(f"/v1/cases/{fight}/similar/{knife}/reject", headers=elsewhere)).status_code == 404
    assert (await intel.client.get("/v1/cases/not-a-uuid/similar", headers=intel.analyst())).status_code == 404
    missing = await intel.client.post(f"/v1/cases/{fight}/similar/00000000-0000-0000-0000-000000000000/reject", headers=intel.analyst())
    assert missing.status_code == 404 and missing.json()["detail"]["field"] == "other_case_id"
    operator = intel.auth(Role.OPERATOR, sub="op-1")
    assert (await intel.client.get(f"/v1/cases/{fight}/similar", headers=operator)).status_code == 200
