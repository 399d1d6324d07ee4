"""An urgent case reaches the analysts on duty for its scope, and goes one level up when nobody claims it within its SLA."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from shouwang_dev.testing import TestStack, eventually
from shouwang_shared.auth import Role
from shouwang_shared.contracts.intel import UrgentCaseAlert

from intel.cases import duty
from intel_helpers import case_of, events_on, intel_instance, org_unit, submit

SLA_S = 2.0


def test_scope_levels_go_up_to_the_county():
    assert duty.scope_levels("/c1/t2/s3") == ["/c1/t2/s3", "/c1/t2", "/c1"]
    assert duty.scope_levels("/c1/") == ["/c1"]
    assert duty.scope_levels("/") == []


def test_the_nearest_level_with_someone_on_duty_is_alerted():
    levels = duty.scope_levels("/c1/t2/s3")
    on_duty = {"/c1/t2": ["b", "a", "a"], "/c1": ["county"]}
    assert duty.first_staffed(levels, on_duty) == duty.AlertTarget("/c1/t2", 1, ("a", "b"))
    assert duty.first_staffed(levels, on_duty, from_level=2) == duty.AlertTarget("/c1", 2, ("county",))
    assert duty.first_staffed(levels, on_duty, from_level=3) is None
    assert duty.first_staffed(levels, {}) is None


@pytest.fixture(scope="module")
async def intel(stack: TestStack):
    """An intel instance with a 2 s claim SLA, swept every 0.2 s."""
    async with intel_instance(stack, urgent_claim_sla_s=str(SLA_S), sweep_interval_s="0.2") as instance:
        yield instance


async def _area(intel) -> tuple[str, str]:
    """A fresh town with one station, known to intel; returns (town path, station path)."""
    town_id = f"t{uuid.uuid4().hex[:8]}"
    town = f"/c1/{town_id}"
    await org_unit(intel, town_id, "柳营镇联盟", "town", town)
    await org_unit(intel, f"{town_id}s", "柳营村服务站", "station", f"{town}/{town_id}s")
    return town, f"{town}/{town_id}s"


async def _on_duty(intel, sub: str, path: str) -> dict:
    now = datetime.now(UTC)
    body = {"staff_sub": sub, "org_path": path, "starts_at": (now - timedelta(hours=1)).isoformat(), "ends_at": (now + timedelta(hours=8)).isoformat()}
    resp = await intel.client.post("/v1/duty-roster", json=body, headers=intel.auth(Role.COUNTY_ADMIN, sub="county-admin", scope="/c1"))
    assert resp.status_code == 201, resp.text
    return resp.json()


async def _alerts(intel, case_id: str, n: int) -> list[UrgentCaseAlert]:
    async def found():
        events = await events_on(intel, UrgentCaseAlert.TOPIC, subject=case_id, type_=UrgentCaseAlert.TYPE)
        return events if len(events) >= n else None

    events = await eventually(found, timeout_s=20, interval_s=0.1, message=f"{n} UrgentCaseAlert(s) for the case")
    return [UrgentCaseAlert.model_validate(e.data) for e in events]


async def test_the_roster_is_set_and_listed_within_scope(intel):
    town, station = await _area(intel)
    now = datetime.now(UTC)
    shift = {"staff_sub": "analyst-x", "org_path": station, "starts_at": now.isoformat(), "ends_at": (now + timedelta(hours=8)).isoformat()}
    town_admin = intel.auth(Role.TOWN_ADMIN, sub="town-admin", scope=town)
    created = await intel.client.post("/v1/duty-roster", json=shift, headers=town_admin)
    assert created.status_code == 201 and created.json()["created_by"] == "town-admin"
    elsewhere = intel.auth(Role.TOWN_ADMIN, sub="other-admin", scope="/c1/t-elsewhere")
    outside = await intel.client.post("/v1/duty-roster", json=shift, headers=elsewhere)
    assert outside.status_code == 404 and outside.json()["detail"]["field"] == "org_path"
    backwards = await intel.client.post("/v1/duty-roster", json={**shift, "ends_at": (now - timedelta(hours=1)).isoformat()}, headers=town_admin)
    assert backwards.status_code == 422 and backwards.json()["detail"]["field"] == "ends_at"
    naive = await intel.client.post("/v1/duty-roster", json={**shift, "starts_at": "2026-12-04T08:00:00"}, headers=town_admin)
    assert naive.status_code == 422 and "starts_at" in naive.text
    analyst = intel.auth(Role.ANALYST, sub="analyst-x", scope=station)
    assert (await intel.client.post("/v1/duty-roster", json=shift, headers=analyst)).status_code == 403
    listed = (await intel.client.get(f"/v1/duty-roster?at={(now + timedelta(minutes=1)).isoformat().replace('+', '%2B')}", headers=analyst)).json()
    assert [s["shift_id"] for s in listed] == [created.json()["shift_id"]]
    assert (await intel.client.get("/v1/duty-roster", headers=elsewhere)).json() == []
    assert (await intel.client.delete(f"/v1/duty-roster/{created.json()['shift_id']}", headers=elsewhere)).status_code == 404
    assert (await intel.client.delete(f"/v1/duty-roster/{created.json()['shift_id']}", headers=town_admin)).status_code == 204
    assert (await intel.client.get("/v1/duty-roster", headers=analyst)).json() == []


async def test_an_unclaimed_urgent_case_alerts_its_scope_then_the_level_above_on_time(intel):
    town, station = await _area(intel)
    await _on_duty(intel, "analyst-station", station)
    await _on_duty(intel, "analyst-town-1", town)
    await _on_duty(intel, "analyst-town-2", town)
    tip = await submit(intel, {"category": "missing_person", "text": f"七岁小孩在水库边走失，穿红色上衣 {uuid.uuid4().hex[:8]}",
                               "org_path": station, "lat": 29.70, "lon": 119.70})
    case_id = await case_of(intel, tip["tip_id"])

    first, = await _alerts(intel, case_id, 1)
    assert (first.alerted_org_path, first.level, first.recipients, first.escalated) == (station, 0, ["analyst-station"], False)
    assert first.case_org_path == station and first.category == "missing_person"
    assert abs((first.claim_due_at - first.raised_at).total_seconds() - SLA_S) < 0.01
    metrics = (await intel.client.get("/metrics")).text
    assert "shouwang_intel_urgent_cases_unclaimed" in metrics and "shouwang_intel_urgent_case_oldest_unclaimed_seconds" in metrics

    alerts = await _alerts(intel, case_id, 2)
    second = alerts[1]
    assert (second.alerted_org_path, second.level, second.recipients, second.escalated) == (town, 1, ["analyst-town-1", "analyst-town-2"], True)
    late_by = (second.raised_at - first.claim_due_at).total_seconds()
    assert 0 <= late_by < 1.0, f"escalated {late_by:.2f} s after the claim was due"
    assert "tip" not in first.model_dump_json() and "text" not in first.model_dump()  # pushed: no tip text, no informant

    claimed = await intel.client.post(f"/v1/cases/{case_id}/claim", headers=intel.auth(Role.ANALYST, sub="analyst-town-1", scope=town))
    assert claimed.status_code == 200

    async def marked():
        async with intel.engine.connect() as conn:
            return (await conn.execute(text("SELECT claimed_by FROM urgent_alerts WHERE case_id = :id"), {"id": case_id})).scalar_one()

    assert await eventually(marked, message="the alert marked claimed") == "analyst-town-1"
    async with intel.engine.connect() as conn:
        history = (await conn.execute(text("SELECT action FROM case_history WHERE case_id = :id AND actor = 'system' ORDER BY id"), {"id": case_id})).scalars().all()
    assert history[-2:] == ["urgent_alert_sent", "urgent_escalated"]


async def test_a_case_claimed_within_its_sla_is_not_escalated(intel):
    town, station = await _area(intel)
    await _on_duty(intel, "analyst-on-watch", station)
    await _on_duty(intel, "analyst-above", town)
    tip = await submit(intel, {"category": "missing_person", "text": f"有个小孩在学校门口走失了，正在找 {uuid.uuid4().hex[:8]}",
                               "org_path": station, "lat": 29.60, "lon": 119.60})
    case_id = await case_of(intel, tip["tip_id"])
    first, = await _alerts(intel, case_id, 1)
    assert first.recipients == ["analyst-on-watch"]
    claim = await intel.client.post(f"/v1/cases/{case_id}/claim", headers=intel.auth(Role.ANALYST, sub="analyst-on-watch", scope=station))
    assert claim.status_code == 200

    async def claimed_alert():
        async with intel.engine.connect() as conn:
            row = (await conn.execute(text("SELECT claimed_by, claimed_at, due_at FROM urgent_alerts WHERE case_id = :id"), {"id": case_id})).one()
        return row if row.claimed_by else None

    row = await eventually(claimed_alert, message="the alert marked claimed")
    assert row.claimed_by == "analyst-on-watch" and row.claimed_at <= row.due_at
    await eventually(lambda: _past(first.claim_due_at + timedelta(seconds=1)), message="past the SLA")
    assert len(await events_on(intel, UrgentCaseAlert.TOPIC, subject=case_id, type_=UrgentCaseAlert.TYPE)) == 1


async def test_an_urgent_case_with_nobody_on_duty_below_goes_to_the_nearest_level_that_has_someone(intel):
    town, station = await _area(intel)
    await _on_duty(intel, "analyst-town-only", town)
    tip = await submit(intel, {"category": "missing_person", "text": f"老人在河边走失，小孩说看到他往水库去了 {uuid.uuid4().hex[:8]}",
                               "org_path": station, "lat": 29.50, "lon": 119.50})
    case_id = await case_of(intel, tip["tip_id"])
    first, = await _alerts(intel, case_id, 1)
    assert (first.alerted_org_path, first.level, first.recipients, first.escalated) == (town, 1, ["analyst-town-only"], False)


async def test_a_case_an_analyst_marks_urgent_by_hand_alerts_the_staff_on_duty(intel):
    town, station = await _area(intel)
    await _on_duty(intel, "analyst-on-call", station)
    tip = await submit(intel, {"category": "fraud", "text": f"有人在菜场门口推销保健品，说能治百病，收了老人的钱 {uuid.uuid4().hex[:8]}",
                               "org_path": station, "lat": 29.40, "lon": 119.40})
    case_id = await case_of(intel, tip["tip_id"])
    analyst = intel.auth(Role.ANALYST, sub="analyst-triage", scope=town)
    assert (await intel.client.post(f"/v1/cases/{case_id}/claim", headers=analyst)).status_code == 200
    triaged = await intel.client.post(f"/v1/cases/{case_id}/triage", headers=analyst, json={"priority": "urgent", "note": "涉及多名老人"})
    assert triaged.status_code == 200 and triaged.json()["priority"] == "urgent"
    first, = await _alerts(intel, case_id, 1)
    assert (first.alerted_org_path, first.recipients) == (station, ["analyst-on-call"])


async def _past(moment: datetime) -> bool | None:
    return datetime.now(UTC) >= moment or None
