"""The reviewed police summary through the service: the draft route, forwarding it or an edited text, and the feed."""

from __future__ import annotations

import json
import re
import uuid

from aiokafka import AIOKafkaConsumer

from shouwang_dev.testing import eventually

from bench.liaison import leaked, load_corpora
from intel_helpers import case_of, events_on, submit


async def _verified_case(intel, text: str, *, category: str = "fraud", lat: float = 29.912345, lon: float = 119.887654, **extra) -> str:
    tip = await submit(intel, {"category": category, "text": text, "lat": lat, "lon": lon, **extra})
    case_id = await case_of(intel, tip["tip_id"])
    assert (await intel.client.post(f"/v1/cases/{case_id}/verify", headers=intel.analyst())).status_code == 200
    return case_id


async def _forwarded(intel, case_id: str) -> dict:
    found = await eventually(lambda: events_on(intel, "intel.liaison.v1", subject=case_id), message="CaseForwarded")
    return found[0].data


async def test_the_draft_shows_the_summary_and_each_removal_with_its_reason_and_forwarding_sends_it(intel):
    suspect = "170" + str(uuid.uuid4().int)[:8]
    case_id = await _verified_case(
        intel, f"我叫***，手机 139 1234 5678，住在城南镇幸福小区3栋502。今天上午{suspect}打来电话冒充京东客服，要我转账。本人王某某，我的微信是wangmm88",
        place_text="城南镇人民路",
    )
    resp = await intel.client.get(f"/v1/cases/{case_id}/police-draft", headers=intel.analyst())
    assert resp.status_code == 200, resp.text
    view = resp.json()
    assert suspect in view["summary"]
    for identity in ("13912345678", "1234 5678", "幸福小区3栋502", "王某某", "wangmm88"):
        assert identity not in view["summary"] and identity not in json.dumps(view, ensure_ascii=False)
    assert {r["kind"] for r in view["removals"]} >= {"phone", "address", "name", "wechat"}
    assert all(r["reason"] for r in view["removals"])
    assert view["place"] == {"lat": 29.912, "lon": 119.888, "text": "城南镇人民路"}

    assert (await intel.client.post(f"/v1/cases/{case_id}/forward", headers=intel.analyst())).status_code == 200
    sent = await _forwarded(intel, case_id)
    assert sent["summary"] == view["summary"]
    assert sent["place"] == {"lat": 29.912, "lon": 119.888, "text": "城南镇人民路"}  # ~100 m, never the exact point


async def test_an_edited_summary_that_would_name_the_informant_is_refused_naming_what_leaks(intel):
    case_id = await _verified_case(intel, f"我叫吴小芳，电话15968001234。对方17012345678冒充客服让我退款 {uuid.uuid4().hex[:6]}")
    leaking = "举报人吴小芳（159-6800-1234）反映：17012345678冒充客服诈骗。"
    resp = await intel.client.post(f"/v1/cases/{case_id}/forward", json={"summary": leaking}, headers=intel.analyst())
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert detail["field"] == "summary" and "phone" in detail["message"] and "name" in detail["message"]
    assert "15968001234" not in detail["message"]
    detail_after = (await intel.client.get(f"/v1/cases/{case_id}", headers=intel.analyst())).json()
    assert detail_after["status"] == "verified"  # nothing was forwarded
    assert not await events_on(intel, "intel.liaison.v1", subject=case_id)


async def test_a_clean_edited_summary_is_sent_exactly(intel):
    case_id = await _verified_case(intel, f"我叫吴小芳，电话15968001234。对方17012345678冒充客服让我退款 {uuid.uuid4().hex[:6]}", lat=28.5)
    edited = "17012345678冒充电商客服，以退款为名诱导受害人转账，请核查该号码。"
    resp = await intel.client.post(f"/v1/cases/{case_id}/forward", json={"summary": edited}, headers=intel.analyst())
    assert resp.status_code == 200, resp.text
    assert (await _forwarded(intel, case_id))["summary"] == edited


async def test_the_reporters_home_given_as_the_place_sends_no_position(intel):
    case_id = await _verified_case(
        intel, f"我家住在南塘镇老街18号，楼下那户半夜老有人来，怀疑吸毒 {uuid.uuid4().hex[:6]}", category="drugs",
        place_text="南塘镇老街18号", lat=29.7,
    )
    sent = await _forwarded_after_forward(intel, case_id)
    assert sent["place"] == {"lat": None, "lon": None, "text": None} and "老街18号" not in sent["summary"]


async def _forwarded_after_forward(intel, case_id: str) -> dict:
    assert (await intel.client.post(f"/v1/cases/{case_id}/forward", headers=intel.analyst())).status_code == 200
    return await _forwarded(intel, case_id)


async def _plain_read(bootstrap: str, topic: str) -> list[str]:
    """Every message on the topic as a plain Kafka client reads it: JSON text, non-ASCII as written."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out: list[str] = []
    try:
        await consumer.seek_to_beginning()
        ends = await consumer.end_offsets(list(consumer.assignment()))
        while any([await consumer.position(tp) < end for tp, end in ends.items()]):
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(json.dumps(json.loads(m.value), ensure_ascii=False) for m in msgs)
    finally:
        await consumer.stop()
    return out


async def test_contract_the_liaison_topic_never_carries_an_informant_identifier_of_the_corpus(intel):
    tips = load_corpora()["tune"]
    case_ids = {}
    for i, tip in enumerate(tips):  # far apart so that each tip is a case of its own
        answer = await submit(intel, {"category": tip["category"], "text": tip["text"], "lat": 10.0 + (i % 150) * 0.4, "lon": 80.0 + (i // 150) * 2.0})
        case_ids[tip["id"]] = answer["tip_id"]
    for tid, tip_id in case_ids.items():
        case_ids[tid] = case_id = await case_of(intel, tip_id)
        assert (await intel.client.post(f"/v1/cases/{case_id}/verify", headers=intel.analyst())).status_code == 200
        assert (await intel.client.post(f"/v1/cases/{case_id}/forward", headers=intel.analyst())).status_code == 200

    async def every_case_on_the_topic():
        messages = await _plain_read(intel.stack.bootstrap_servers, intel.topic("intel.liaison.v1"))
        by_case = {json.loads(m)["subject"]: m for m in messages}
        return by_case if set(case_ids.values()) <= by_case.keys() else None

    by_case = await eventually(every_case_on_the_topic, timeout_s=60, message="every corpus case on intel.liaison.v1")
    leaks = [f"{t['id']}: {item}" for t in tips for item in t["must_remove"]
             if leaked(item, _without_generated(by_case[case_ids[t["id"]]]))]
    assert leaks == [], leaks


# What the platform makes itself (event and case ids, timestamps such as the police's due date) holds no informant's
# words, but its digits can spell one of the corpus's numbers by chance: on 5 Dec a due date of 2026-12-08 "leaked" 1208.
_GENERATED = re.compile(r"\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:\d{2})?|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _without_generated(message: str) -> str:
    """The message with the ids and timestamps the platform generated blanked out."""
    return _GENERATED.sub("…", message)
