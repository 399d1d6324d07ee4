"""Police answers with outcome counts (v2) travel beside v1 on `police.dispositions.v1`; the counts reach CaseOutcomeRecorded."""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from shouwang_dev.testing import eventually, read_topic
from shouwang_shared.contracts.intel import CaseOutcomeRecorded
from shouwang_shared.contracts.police import DispositionRecorded, DispositionRecordedV2
from shouwang_shared.envelope import Envelope, new_event

from intel_helpers import case_of, events_on, produce, submit

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "police_consumer"))
import police_consumer  # noqa: E402

POLICE = "/police/county-bureau"


def _v2(**fields) -> dict:
    return {"case_id": "c1", "disposition": "arrest", "recorded_at": datetime.now(UTC), "counts": {}, **fields}


def test_counts_are_bounded_whole_numbers_and_seizures_one_line_per_kind_and_unit():
    ok = DispositionRecordedV2.model_validate(_v2(counts={
        "suspects_caught": 3, "fugitives_caught": 1, "dens_closed": 1,
        "seizures": [{"kind": "drugs", "quantity": 35.5, "unit": "g"}, {"kind": "drugs", "quantity": 2, "unit": "piece"}],
    }))
    assert ok.counts.suspects_caught == 3 and len(ok.counts.seizures) == 2
    bad = [
        ({"suspects_caught": -1}, "counts.suspects_caught"),
        ({"dens_closed": 1001}, "counts.dens_closed"),
        ({"fugitives_caught": 1.5}, "counts.fugitives_caught"),
        ({"seizures": [{"kind": "cash", "quantity": 0, "unit": "yuan"}]}, "counts.seizures.0.quantity"),
        ({"seizures": [{"kind": "gold", "quantity": 1, "unit": "g"}]}, "counts.seizures.0.kind"),
        ({"seizures": [{"kind": "cash", "quantity": 5, "unit": "yuan"}] * 2}, "seizures.1"),
        ({"seizures": [{"kind": "other", "quantity": 1, "unit": "kg", "description": f"x{i}"} for i in range(21)]}, "counts.seizures"),
    ]
    for counts, field in bad:
        with pytest.raises(ValidationError) as exc:
            DispositionRecordedV2.model_validate(_v2(counts=counts))
        assert field in str(exc.value), (counts, str(exc.value))


def test_an_answer_without_a_result_reports_no_counts_and_v2_needs_counts():
    with pytest.raises(ValidationError, match="unfounded"):
        DispositionRecordedV2.model_validate(_v2(disposition="unfounded", counts={"suspects_caught": 1}))
    assert DispositionRecordedV2.model_validate(_v2(disposition="acknowledged", counts={})).counts.is_empty()
    with pytest.raises(ValidationError, match="counts"):
        DispositionRecordedV2.model_validate({k: v for k, v in _v2().items() if k != "counts"})


async def _forwarded_case(intel, text_: str, *, lat: float, lon: float) -> str:
    tip = await submit(intel, {"category": "drugs", "text": f"{text_} {uuid.uuid4().hex[:8]}", "lat": lat, "lon": lon})
    case_id = await case_of(intel, tip["tip_id"])
    assert (await intel.client.post(f"/v1/cases/{case_id}/verify", headers=intel.analyst())).status_code == 200
    assert (await intel.client.post(f"/v1/cases/{case_id}/forward", headers=intel.analyst())).status_code == 200
    return case_id


async def _received(intel, case_id: str, count: int = 1) -> list[dict]:
    async def answers():
        detail = (await intel.client.get(f"/v1/cases/{case_id}", headers=intel.analyst())).json()
        return detail["dispositions"] if len(detail["dispositions"]) >= count else None

    return await eventually(answers, timeout_s=30, message=f"{count} answer(s) received on the case")


async def _outcome_event(intel, case_id: str) -> CaseOutcomeRecorded:
    async def announced():
        found = await events_on(intel, CaseOutcomeRecorded.TOPIC, subject=case_id, type_=CaseOutcomeRecorded.TYPE)
        return found or None

    found = await eventually(announced, timeout_s=20, message="CaseOutcomeRecorded on intel.cases.v1")
    assert len(found) == 1
    return CaseOutcomeRecorded.model_validate(found[0].data)


async def test_a_v2_answer_from_the_reference_consumer_carries_its_counts_to_the_case_outcome(intel):
    case_id = await _forwarded_case(intel, "城关镇河滨路出租屋有人聚众吸毒，夜里进出很多人", lat=29.96, lon=120.07)
    counts = police_consumer.outcome_counts(suspects=3, fugitives=1, dens=1, seizures=["drugs:35.5:g", "cash:52000:yuan"])

    async def answered():
        seen = await police_consumer.answer_forwarded_cases(
            intel.stack.bootstrap_servers, answer="arrest", prefix=intel.prefix, group_id="police-v2-test",
            officer_unit="城关派出所", note="抓获犯罪嫌疑人3名", counts=counts, once=True, idle_timeout_s=1.0,
        )
        return case_id in seen or None

    await eventually(answered, timeout_s=30, message="reference consumer answered the forwarded case")
    sent = await events_on(intel, DispositionRecorded.TOPIC, subject=case_id)
    assert [e.type for e in sent] == [DispositionRecordedV2.TYPE]

    answer = (await _received(intel, case_id))[0]
    assert answer["disposition"] == "arrest" and not answer["confirmed"]
    assert answer["counts"]["suspects_caught"] == 3 and answer["counts"]["fugitives_caught"] == 1 and answer["counts"]["dens_closed"] == 1
    assert {(s["kind"], s["quantity"], s["unit"]) for s in answer["counts"]["seizures"]} == {("drugs", 35.5, "g"), ("cash", 52000, "yuan")}

    confirmed = await intel.client.post(f"/v1/cases/{case_id}/dispositions/{answer['disposition_id']}/confirm", headers=intel.analyst())
    assert confirmed.status_code == 200 and confirmed.json()["outcome"] == "arrest"
    outcome = await _outcome_event(intel, case_id)
    assert outcome.outcome == "arrest" and outcome.counts is not None
    assert (outcome.counts.suspects_caught, outcome.counts.fugitives_caught, outcome.counts.dens_closed) == (3, 1, 1)
    assert {(s.kind, s.quantity, s.unit) for s in outcome.counts.seizures} == {("drugs", 35.5, "g"), ("cash", 52000.0, "yuan")}


async def test_a_v1_answer_still_works_and_announces_an_outcome_without_counts(intel):
    case_id = await _forwarded_case(intel, "白石镇加油站旁边小卖部在卖冰毒，老板姓陈", lat=29.86, lon=119.98)

    async def answered():
        seen = await police_consumer.answer_forwarded_cases(
            intel.stack.bootstrap_servers, answer="case_solved", prefix=intel.prefix, group_id="police-v1-test", once=True, idle_timeout_s=1.0,
        )
        return case_id in seen or None

    await eventually(answered, timeout_s=30, message="reference consumer answered the forwarded case")
    assert [e.type for e in await events_on(intel, DispositionRecorded.TOPIC, subject=case_id)] == [DispositionRecorded.TYPE]
    answer = (await _received(intel, case_id))[0]
    assert answer["counts"] is None
    assert (await intel.client.post(f"/v1/cases/{case_id}/dispositions/{answer['disposition_id']}/confirm", headers=intel.analyst())).status_code == 200
    outcome = await _outcome_event(intel, case_id)
    assert outcome.outcome == "case_solved" and outcome.counts is None


async def test_a_v2_answer_with_bad_counts_is_dead_lettered_naming_the_field_and_the_feed_goes_on(intel):
    case_id = await _forwarded_case(intel, "金桥社区菜场后面仓库有人制毒，味道很冲", lat=29.91, lon=120.11)
    now = datetime.now(UTC).isoformat()
    negative = new_event(source=POLICE, type=DispositionRecordedV2.TYPE, subject=case_id, data={
        "case_id": case_id, "disposition": "arrest", "recorded_at": now, "counts": {"suspects_caught": -2},
    })
    doubled = new_event(source=POLICE, type=DispositionRecordedV2.TYPE, subject=case_id, data={
        "case_id": case_id, "disposition": "arrest", "recorded_at": now,
        "counts": {"seizures": [{"kind": "drugs", "quantity": 1, "unit": "kg"}, {"kind": "drugs", "quantity": 2, "unit": "kg"}]},
    })
    genuine = new_event(source=POLICE, type=DispositionRecordedV2.TYPE, subject=case_id, data={
        "case_id": case_id, "disposition": "investigating", "recorded_at": now, "counts": {"dens_closed": 1},
    })
    await produce(intel, DispositionRecorded.TOPIC, [(case_id, e.to_bytes()) for e in (negative, doubled, genuine)])

    answers = await _received(intel, case_id)
    assert len(answers) == 1 and answers[0]["disposition"] == "investigating" and answers[0]["counts"]["dens_closed"] == 1
    wanted = {negative.id, doubled.id}

    async def dead_lettered():
        found = {
            env.id: headers["dlq_reason"].decode()
            for _, env, headers in await read_topic(intel.stack.bootstrap_servers, intel.topic("intel.dlq.v1"))
            if isinstance(env, Envelope) and env.id in wanted
        }
        return found if set(found) == wanted else None

    reasons = await eventually(dead_lettered, timeout_s=20, message="both bad answers in intel's dead-letter topic")
    assert "counts.suspects_caught" in reasons[negative.id], reasons[negative.id]
    assert "counts" in reasons[doubled.id] and "seizures.1" in reasons[doubled.id], reasons[doubled.id]
    async with intel.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM dispositions WHERE event_id = ANY(:ids)"), {"ids": list(wanted)}) == 0
