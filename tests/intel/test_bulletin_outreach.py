"""Bulletins are numbered per county and year (gap-free and unique under concurrent publishes) and delivered once per channel."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from shouwang_dev.testing import TestStack, eventually
from shouwang_shared.auth import Principal, Role
from shouwang_shared.db import make_session_factory

from intel.outreach import bulletins
from intel.outreach.channels import BulletinMessage
from intel_helpers import events_on, intel_instance


class RecordingChannel:
    """A channel that records what it was given and refuses the first `failures` sends."""

    def __init__(self, name: str, failures: int = 0) -> None:
        self.name = name
        self.failures = failures
        self.sent: list[BulletinMessage] = []
        self.refused = 0

    async def send(self, message: BulletinMessage) -> None:
        """Accept the message, unless a failure is still due."""
        if self.refused < self.failures:
            self.refused += 1
            raise ConnectionError(f"{self.name} gateway away")
        self.sent.append(message)


@pytest.fixture(scope="module")
async def outreach(stack: TestStack):
    """An intel instance whose channels are recording fakes (SMS refuses its first two sends), swept every 0.1 s."""
    channels = {"public_account": RecordingChannel("public_account"), "sms": RecordingChannel("sms", failures=2),
                "radio": RecordingChannel("radio")}

    def configure(app) -> None:
        app.state.intel.channels = channels

    async with intel_instance(stack, configure=configure, sweep_interval_s="0.1", bulletin_retry_s="0.1", run_clustering="false") as intel:
        intel.channels = channels
        yield intel


def _delivered(channel: str) -> float:
    return REGISTRY.get_sample_value("shouwang_intel_bulletin_deliveries_total", {"channel": channel, "outcome": "delivered"}) or 0.0


async def _draft(intel, headers: dict, county: str, *, channels: list[str], title: str = "防诈骗提示") -> str:
    body = {"title": title, "body": "近期冒充客服退款的诈骗电话增多，请勿转账。", "case_type": "fraud", "audience_org_paths": [f"{county}/t1"],
            "channels": channels}
    resp = await intel.client.post("/v1/bulletins", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()["bulletin_id"]


async def test_concurrent_publishes_get_distinct_gap_free_serials_per_county(outreach):
    intel = outreach
    county, other = f"/k{uuid.uuid4().hex[:8]}", f"/k{uuid.uuid4().hex[:8]}"
    admin = intel.auth(Role.COUNTY_ADMIN, sub="county-admin", scope=county)
    ids = [await _draft(intel, admin, county, channels=["public_account"], title=f"防诈骗提示{i}") for i in range(8)]

    answers = await asyncio.gather(*(intel.client.post(f"/v1/bulletins/{bid}/publish", headers=admin) for bid in ids))

    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    year = datetime.now(UTC).astimezone(bulletins.BEIJING).year
    serials = sorted(a.json()["serial"] for a in answers)
    assert serials == list(range(1, 9))
    assert {a.json()["serial_label"] for a in answers} == {f"{year}年第{n}期" for n in range(1, 9)}
    other_admin = intel.auth(Role.COUNTY_ADMIN, sub="other-admin", scope=other)
    first_elsewhere = await intel.client.post(f"/v1/bulletins/{await _draft(intel, other_admin, other, channels=['radio'])}/publish", headers=other_admin)
    assert first_elsewhere.json()["serial"] == 1  # each county counts its own issues

    public = (await intel.client.get(f"/v1/bulletins?org_path={county}/t1/s1&limit=20")).json()
    assert sorted(b["serial"] for b in public) == serials and all(b["serial_label"].startswith(f"{year}年第") for b in public)
    events = {e.subject: e for e in await eventually(
        lambda: _all_published(intel, ids), timeout_s=20, message="BulletinPublished for each bulletin")}
    assert sorted(e.data["serial"] for e in events.values()) == serials
    assert all(e.data["serial_year"] == year for e in events.values())


async def _all_published(intel, ids: list[str]):
    found = [e for e in await events_on(intel, "intel.bulletins.v1") if e.subject in ids]
    return found if len(found) == len(ids) else None


async def test_a_publish_that_rolls_back_gives_its_serial_back(outreach):
    intel = outreach
    county = f"/k{uuid.uuid4().hex[:8]}"
    admin = intel.auth(Role.COUNTY_ADMIN, sub="county-admin", scope=county)
    first = await _draft(intel, admin, county, channels=["radio"])
    assert (await intel.client.post(f"/v1/bulletins/{first}/publish", headers=admin)).json()["serial"] == 1
    assert (await intel.client.post(f"/v1/bulletins/{first}/publish", headers=admin)).status_code == 409
    sessions = make_session_factory(intel.engine)

    class Failed(Exception):
        pass

    with pytest.raises(Failed):  # a publishing transaction took a number and then failed
        async with sessions() as session, session.begin():
            assert await bulletins._next_serial(session, county=county, year=datetime.now(UTC).astimezone(bulletins.BEIJING).year) == 2
            raise Failed
    second = await _draft(intel, admin, county, channels=["radio"])
    published = await bulletins.publish_bulletin(
        sessions=sessions, principal=Principal(sub="county-admin", role=Role.COUNTY_ADMIN, scope_path=county), bulletin_id=second,
    )
    assert published["serial"] == 2


async def test_each_channel_gets_the_bulletin_once_and_the_counts_say_so(outreach):
    intel, channels = outreach, outreach.channels
    county = f"/k{uuid.uuid4().hex[:8]}"
    admin = intel.auth(Role.COUNTY_ADMIN, sub="county-admin", scope=county)
    async def nothing_pending():
        async with intel.engine.connect() as conn:
            return await conn.scalar(text("SELECT count(*) FROM bulletin_deliveries WHERE status = 'pending'")) == 0 or None

    await eventually(nothing_pending, timeout_s=20, message="earlier tests' bulletins delivered")  # the counter is per process
    before = {ch: _delivered(ch) for ch in channels}
    bid = await _draft(intel, admin, county, channels=["public_account", "sms", "radio", "sms"])
    published = await intel.client.post(f"/v1/bulletins/{bid}/publish", headers=admin)
    assert published.status_code == 200

    async def all_delivered():
        view = (await intel.client.get(f"/v1/bulletins/{bid}/deliveries", headers=admin)).json()
        return view if view["deliveries"] and all(d["status"] == "delivered" for d in view["deliveries"]) else None

    view = await eventually(all_delivered, timeout_s=20, message="every channel delivered")
    assert {d["channel"]: d["attempts"] for d in view["deliveries"]} == {"public_account": 1, "radio": 1, "sms": 3}
    sessions = make_session_factory(intel.engine)
    assert await bulletins.deliver_due_bulletins(sessions=sessions, channels=channels, retry_s=0.1) == 0  # a further sweep sends nothing
    await asyncio.sleep(0.5)  # and so do the app's own sweeps meanwhile
    sent = Counter(m.channel for ch in channels.values() for m in ch.sent if m.bulletin_id == bid)
    assert sent == {"public_account": 1, "sms": 1, "radio": 1}
    message = next(m for m in channels["sms"].sent if m.bulletin_id == bid)
    assert message.serial_label == published.json()["serial_label"] and message.delivery_id == f"{bid}:sms"
    assert {ch: _delivered(ch) - before[ch] for ch in channels} == {"public_account": 1, "sms": 1, "radio": 1}

    per_channel = {r["channel"]: r for r in (await intel.client.get("/v1/bulletins/deliveries", headers=admin)).json()}
    assert per_channel == {ch: {"channel": ch, "delivered": 1, "pending": 0, "failed": 0} for ch in ("public_account", "radio", "sms")}
    year = published.json()["serial_year"]
    assert (await intel.client.get(f"/v1/bulletins/deliveries?year={year + 1}", headers=admin)).json() == []
    metrics = (await intel.client.get("/metrics")).text
    assert 'shouwang_intel_bulletin_deliveries_total{channel="sms",outcome="delivered"}' in metrics
    outsider = intel.auth(Role.COUNTY_ADMIN, sub="elsewhere", scope="/elsewhere")
    assert (await intel.client.get(f"/v1/bulletins/{bid}/deliveries", headers=outsider)).status_code == 404
    assert (await intel.client.get("/v1/bulletins/deliveries", headers=outsider)).json() == []
    async with intel.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM bulletin_deliveries WHERE bulletin_id = :id"), {"id": bid}) == 3


async def test_an_area_sees_its_bulletins_however_many_were_published_elsewhere_since(outreach):
    intel = outreach
    county = f"/k{uuid.uuid4().hex[:8]}"
    admin = intel.auth(Role.COUNTY_ADMIN, sub="county-admin", scope=county)
    mine = await _draft(intel, admin, county, channels=["radio"], title="本镇防溺水提示")  # for {county}/t1
    assert (await intel.client.post(f"/v1/bulletins/{mine}/publish", headers=admin)).status_code == 200
    for i in range(4):  # newer, for another area ({county}/x/t1)
        other = await _draft(intel, admin, f"{county}/x", channels=["radio"], title=f"他镇提示{i}")
        assert (await intel.client.post(f"/v1/bulletins/{other}/publish", headers=admin)).status_code == 200
    public = (await intel.client.get(f"/v1/bulletins?org_path={county}/t1/s1&limit=2")).json()
    assert [b["bulletin_id"] for b in public] == [mine]
    assert len((await intel.client.get(f"/v1/bulletins?org_path={county}/x/t1&limit=2")).json()) == 2
