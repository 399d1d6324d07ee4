"""The fill-rate gauges the dashboard and the fill alert read: kept by the sweep for every operation under way."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY

from dispatch.fill_rate import refresh_fill_gauges
from tests.dispatch.service import TOWN_A, day, post, volunteer_state


def _gauge(name: str, operation_id: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"operation_id": operation_id})


async def test_fill_ratio_and_next_shift_follow_accepts_and_leave_with_a_closed_operation(dispatch):
    crew = [volunteer_state(27.00 + i * 0.002, 119.00) for i in range(4)]
    await dispatch.add_volunteers(crew)
    early, late = day(9, hour=7), day(9, hour=13)
    op = await dispatch.create_operation({"name": "灯会", "org_path": TOWN_A, "posts": [
        post("东门", 27.0, 119.0, early, headcount=2), post("西门", 27.0, 119.0, late, headcount=2)]})
    await dispatch.activate_and_wait(op["id"])
    sessions = dispatch.app.state.runtime.sessions

    assert await refresh_fill_gauges(sessions=sessions) >= 1
    assert _gauge("shouwang_dispatch_fill_ratio", op["id"]) == 0.0
    assert _gauge("shouwang_dispatch_next_shift_start_timestamp_seconds", op["id"]) == early.timestamp()

    offers = await dispatch.sql("SELECT id, volunteer_id FROM assignments WHERE operation_id = $1", uuid.UUID(op["id"]))
    for offer in offers[:3]:
        r = await dispatch.client.post(f"/v1/assignments/{offer['id']}/accept", headers=dispatch.volunteer(offer["volunteer_id"]))
        assert r.status_code == 200, r.text
    await refresh_fill_gauges(sessions=sessions)
    assert _gauge("shouwang_dispatch_fill_ratio", op["id"]) == 0.75

    closed = await dispatch.client.post(f"/v1/operations/{op['id']}/close", headers=dispatch.headers())
    assert closed.status_code == 200, closed.text
    await refresh_fill_gauges(sessions=sessions)
    assert _gauge("shouwang_dispatch_fill_ratio", op["id"]) is None
    assert _gauge("shouwang_dispatch_next_shift_start_timestamp_seconds", op["id"]) is None
