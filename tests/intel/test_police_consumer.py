"""The reference police consumer answers forwarded cases, and intel records the answer."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from shouwang_dev.testing import eventually

from intel_helpers import case_of, submit

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "police_consumer"))
import police_consumer  # noqa: E402


async def test_reference_consumer_answers_arrest_and_the_case_records_it_once_confirmed(intel):
    tip = await submit(intel, {"category": "fugitive", "text": f"石门镇金桥社区老街口看到通缉犯，光头，开黑色摩托车 {uuid.uuid4().hex[:8]}", "lat": 29.93, "lon": 120.08})
    case_id = await case_of(intel, tip["tip_id"])
    assert (await intel.client.post(f"/v1/cases/{case_id}/verify", headers=intel.analyst())).status_code == 200
    assert (await intel.client.post(f"/v1/cases/{case_id}/forward", headers=intel.analyst())).status_code == 200

    shown = []

    async def answered():
        seen = await police_consumer.answer_forwarded_cases(
            intel.stack.bootstrap_servers, answer="arrest", prefix=intel.prefix, group_id="police-test",
            officer_unit="石门派出所", once=True, idle_timeout_s=1.0, on_case=shown.append,
        )
        return case_id in seen or None

    await eventually(answered, timeout_s=30, message="reference consumer saw the forwarded case")
    assert all("volunteer_id" not in c and "claim_ref" not in c for c in shown)

    async def received():
        detail = (await intel.client.get(f"/v1/cases/{case_id}", headers=intel.analyst())).json()
        return detail if detail["dispositions"] else None

    detail = await eventually(received, message="the answer received on the case")
    answer = detail["dispositions"][0]
    assert answer["officer_unit"] == "石门派出所" and answer["disposition"] == "arrest" and not answer["confirmed"]
    confirmed = await intel.client.post(f"/v1/cases/{case_id}/dispositions/{answer['disposition_id']}/confirm", headers=intel.analyst())
    assert confirmed.status_code == 200 and confirmed.json()["outcome"] == "arrest"
