"""Events are trusted by (topic, type, source), police answers are bounded, and an answer pays only once an analyst confirms it.

Each forged event is written to the topic as the party that could write there would write it (the police systems may
write only `police.dispositions.v1`); then a genuine answer with the same key follows it through the same partition,
so once the genuine one is recorded the forged one has been handled: dead-lettered with its reason, and nothing changed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from shouwang_dev.testing import eventually, read_topic
from shouwang_shared.auth import Role
from shouwang_shared.contracts.intel import CaseOutcomeRecorded
from shouwang_shared.contracts.police import DispositionRecorded
from shouwang_shared.contracts.registry import OrgUnitUpserted
from shouwang_shared.envelope import Envelope, new_event

from intel_helpers import COUNTY, OTHER_TOWN, case_of, events_on, produce, submit

POLICE = "/police/county-bureau"


async def _forwarded_case(intel, text_: str, *, lat: float, lon: float) -> str:
    tip = await submit(intel, {"category": "fugitive", "text": f"{text_} {uuid.uuid4().hex[:8]}", "lat": lat, "lon": lon})
    case_id = await case_of(intel, tip["tip_id"])
    assert (await intel.client.post(f"/v1/cases/{case_id}/verify", headers=intel.analyst())).status_code == 200
    assert (await intel.client.post(f"/v1/cases/{case_id}/forward", headers=intel.analyst())).status_code == 200
    return case_id


def _answer(case_id: str, *, source: str = POLICE, **fields) -> Envelope:
    data = {"case_id": case_id, "disposition": "investigating", "officer_unit": "城关派出所", "recorded_at": datetime.now(UTC), **fields}
    data["recorded_at"] = data["recorded_at"].isoformat()
    return new_event(source=source, type=DispositionRecorded.TYPE, subject=case_id, data=data)


async def _refused_before_a_genuine_answer(intel, case_id: str, forged: list[Envelope], *, topic: str = DispositionRecorded.TOPIC) -> dict[str, str]:
    """Publish `forged` then a genuine answer on the case's partition; returns the dead-letter reason of each forged event."""
    genuine = _answer(case_id, note="已派民警核查")
    await produce(intel, topic, [(case_id, e.to_bytes()) for e in forged])
    await produce(intel, DispositionRecorded.TOPIC, [(case_id, genuine.to_bytes())])

    async def recorded():
        async with intel.engine.connect() as conn:
            return await conn.scalar(text("SELECT count(*) FROM dispositions WHERE event_id = :id"), {"id": genuine.id}) == 1 or None

    await eventually(recorded, timeout_s=30, message="the genuine answer behind the forged ones was recorded")
    wanted = {e.id for e in forged}

    async def dead_lettered():
        found = {
            env.id: headers["dlq_reason"].decode()
            for _, env, headers in await read_topic(intel.stack.bootstrap_servers, intel.topic("intel.dlq.v1"))
            if isinstance(env, Envelope) and env.id in wanted
        }
        return found if set(found) == wanted else None

    return await eventually(dead_lettered, timeout_s=20, message="every forged event in intel's dead-letter topic")


async def _dispositions_of(intel, case_id: str) -> list[dict]:
    return (await intel.client.get(f"/v1/cases/{case_id}", headers=intel.analyst())).json()["dispositions"]


async def test_an_org_unit_published_on_the_police_topic_is_dead_lettered_and_routes_nothing(intel):
    case_id = await _forwarded_case(intel, "城关镇东门菜市场看到网上通缉的人，穿灰色夹克", lat=29.95, lon=120.08)
    hijack = OrgUnitUpserted(org_unit_id=f"fake-{uuid.uuid4().hex[:6]}", name="城关派出所辖区", kind="town", parent_id="c1",
                             path="/c1/police-made", lat=29.95, lon=120.08)
    forged = new_event(source=OrgUnitUpserted.SOURCE, type=OrgUnitUpserted.TYPE, subject=hijack.org_unit_id, data=hijack)

    reasons = await _refused_before_a_genuine_answer(intel, case_id, [forged])

    assert "police.dispositions.v1" in reasons[forged.id]
    assert OrgUnitUpserted.TYPE in reasons[forged.id]
    async with intel.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM org_units WHERE id = :id OR path = '/c1/police-made'"), {"id": hijack.org_unit_id}) == 0


async def test_a_disposition_from_a_source_other_than_the_police_is_dead_lettered(intel):
    case_id = await _forwarded_case(intel, "石门镇加油站旁边小旅馆住着一个像通缉令上的人", lat=29.93, lon=120.09)
    from_rewards = _answer(case_id, source="/services/rewards", disposition="arrest")
    nameless = _answer(case_id, source="/police/", disposition="case_solved")

    reasons = await _refused_before_a_genuine_answer(intel, case_id, [from_rewards, nameless])

    assert "/services/rewards" in reasons[from_rewards.id] and "source" in reasons[from_rewards.id]
    assert "source" in reasons[nameless.id]
    assert [d["disposition"] for d in await _dispositions_of(intel, case_id)] == ["investigating"]


async def test_a_disposition_dated_in_the_future_is_refused_and_a_small_skew_is_clamped(intel):
    case_id = await _forwarded_case(intel, "南塘镇车站广场有个男的长得很像悬赏通告上的逃犯", lat=29.80, lon=119.95)
    far_ahead = _answer(case_id, disposition="case_solved", recorded_at=datetime.now(UTC) + timedelta(days=365))
    before_forwarding = _answer(case_id, disposition="unfounded", recorded_at=datetime.now(UTC) - timedelta(days=3))

    reasons = await _refused_before_a_genuine_answer(intel, case_id, [far_ahead, before_forwarding])

    assert "future" in reasons[far_ahead.id]
    assert "forwarded" in reasons[before_forwarding.id]
    shown = await _dispositions_of(intel, case_id)
    assert [d["disposition"] for d in shown] == ["investigating"]
    detail = (await intel.client.get(f"/v1/cases/{case_id}", headers=intel.analyst())).json()
    assert detail["outcome"] is None and detail["status"] == "forwarded"

    slightly_ahead = _answer(case_id, disposition="acknowledged", recorded_at=datetime.now(UTC) + timedelta(seconds=90))
    await produce(intel, DispositionRecorded.TOPIC, [(case_id, slightly_ahead.to_bytes())])

    async def clamped():
        async with intel.engine.connect() as conn:
            return (await conn.execute(text("SELECT recorded_at, received_at FROM dispositions WHERE event_id = :id"), {"id": slightly_ahead.id})).first()

    row = await eventually(clamped, message="the answer a police clock dated 90 s ahead is kept")
    assert row.recorded_at <= row.received_at  # clamped to when it arrived


async def test_an_oversized_police_note_is_dead_lettered(intel):
    case_id = await _forwarded_case(intel, "柳营镇杨家村祠堂后面有人藏着，说是外地逃过来的", lat=29.87, lon=120.02)
    long_note = _answer(case_id, disposition="arrest", note="经查，" + "嫌疑人已于当日到案。" * 2000)
    long_unit = _answer(case_id, disposition="arrest", officer_unit="城关派出所" * 200)

    reasons = await _refused_before_a_genuine_answer(intel, case_id, [long_note, long_unit])

    assert "note" in reasons[long_note.id] and "officer_unit" in reasons[long_unit.id]
    assert [d["disposition"] for d in await _dispositions_of(intel, case_id)] == ["investigating"]


async def test_a_paying_answer_is_announced_only_after_an_analyst_confirms_it_and_only_once(intel):
    case_id = await _forwarded_case(intel, "白石镇水库边的出租屋住着网上追逃的人，晚上才出门", lat=29.82, lon=120.01)
    arrest = _answer(case_id, disposition="arrest", note="嫌疑人已抓获")
    await produce(intel, DispositionRecorded.TOPIC, [(case_id, arrest.to_bytes())])

    async def received():
        shown = await _dispositions_of(intel, case_id)
        return shown if shown else None

    shown = await eventually(received, message="the police answer is shown as received")
    detail = (await intel.client.get(f"/v1/cases/{case_id}", headers=intel.analyst())).json()
    assert detail["outcome"] is None and detail["status"] == "forwarded"
    assert shown[0]["disposition"] == "arrest" and shown[0]["confirmed"] is False
    assert await events_on(intel, CaseOutcomeRecorded.TOPIC, subject=case_id, type_=CaseOutcomeRecorded.TYPE) == []

    confirm = f"/v1/cases/{case_id}/dispositions/{shown[0]['disposition_id']}/confirm"
    assert (await intel.client.post(confirm, headers=intel.volunteer("vol-1"))).status_code == 403
    assert (await intel.client.post(confirm, headers=intel.auth(Role.POLICE_LIAISON, sub="police-1", scope=COUNTY))).status_code == 403
    outside = await intel.client.post(confirm, headers=intel.analyst("analyst-2", scope=OTHER_TOWN))
    assert outside.status_code == 404
    unknown = await intel.client.post(f"/v1/cases/{case_id}/dispositions/{uuid.uuid4()}/confirm", headers=intel.analyst())
    assert unknown.status_code == 404 and unknown.json()["detail"]["field"] == "disposition_id"

    done = await intel.client.post(confirm, headers=intel.analyst())
    assert done.status_code == 200, done.text
    assert done.json()["outcome"] == "arrest"
    again = await intel.client.post(confirm, headers=intel.analyst())
    assert again.status_code == 409 and again.json()["detail"]["field"] == "disposition_id"

    announced = await eventually(
        lambda: events_on(intel, CaseOutcomeRecorded.TOPIC, subject=case_id, type_=CaseOutcomeRecorded.TYPE), message="CaseOutcomeRecorded"
    )
    assert len(announced) == 1 and announced[0].data["outcome"] == "arrest"
    shown = await _dispositions_of(intel, case_id)
    assert shown[0]["confirmed"] is True
