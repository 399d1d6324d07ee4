"""Public needs routed to the covering org unit, mediation cases, and safety bulletins drafted from tip trends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
from sqlalchemy import text

from shouwang_dev.testing import eventually
from shouwang_shared.auth import Role
from shouwang_shared.contracts.registry import OrgUnitUpserted
from shouwang_shared.envelope import new_event

from intel_helpers import COUNTY, events_on, org_unit, produce, submit

TOWN = "/c1/t9"
STATION = "/c1/t9/s91"


async def _org_units(intel):
    units = [
        OrgUnitUpserted(org_unit_id="t9", name="白石镇联盟", kind="town", parent_id="c1", path=TOWN, lat=29.82, lon=120.01),
        OrgUnitUpserted(org_unit_id="s91", name="上塘村志愿服务站", kind="station", parent_id="t9", path=STATION, lat=29.823, lon=120.001),
        OrgUnitUpserted(org_unit_id="s92", name="枫林村志愿服务站", kind="station", parent_id="t9", path="/c1/t9/s92", lat=29.80, lon=120.05),
    ]
    await produce(intel, OrgUnitUpserted.TOPIC, [
        (u.org_unit_id, new_event(source=OrgUnitUpserted.SOURCE, type=OrgUnitUpserted.TYPE, subject=u.org_unit_id, data=u).to_bytes()) for u in units
    ])

    async def known():
        async with intel.engine.connect() as conn:
            return await conn.scalar(text("SELECT count(*) FROM org_units WHERE id IN ('t9', 's91', 's92')")) == 3

    await eventually(known, message="org units consumed from the registry")


async def test_need_is_routed_to_the_nearest_station_and_seen_only_in_its_scope(intel):
    await _org_units(intel)
    resp = await intel.client.post("/v1/needs", json={"category": "legal_aid", "description": "想咨询土地承包合同纠纷怎么处理", "lat": 29.8235, "lon": 120.0005})
    assert resp.status_code == 201, resp.text
    need = resp.json()
    assert need["org_unit_id"] == "s91" and need["org_path"] == STATION and need["routed_by"] == "nearest_unit"
    town_admin = intel.auth(Role.TOWN_ADMIN, sub="town-admin", scope=TOWN)
    assert need["need_id"] in [n["need_id"] for n in (await intel.client.get("/v1/needs", headers=town_admin)).json()]
    other = intel.auth(Role.TOWN_ADMIN, sub="other-admin", scope="/c1/t1")
    assert need["need_id"] not in [n["need_id"] for n in (await intel.client.get("/v1/needs", headers=other)).json()]
    moved = await intel.client.post(f"/v1/needs/{need['need_id']}/status", json={"status": "in_progress"}, headers=town_admin)
    assert moved.json()["status"] == "in_progress"
    bad = await intel.client.post("/v1/needs", json={"category": "legal_aid", "description": "坐标错误", "lat": -91, "lon": 120})
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "lat"
    unrouted = (await intel.client.post("/v1/needs", json={"category": "other", "description": "没有位置的需求"})).json()
    assert unrouted["org_path"] == COUNTY and unrouted["routed_by"] == "fallback"


async def test_a_tip_filed_under_an_org_path_no_unit_has_is_refused(intel):
    await _org_units(intel)
    nowhere = await intel.client.post("/v1/tips", json={"category": "drugs", "text": "村里小卖部后门晚上有人交易白色粉末", "org_path": "/c1/t9/nobody-sees-this"})
    assert nowhere.status_code == 422 and nowhere.json()["detail"]["field"] == "org_path"
    town = await submit(intel, {"category": "drugs", "text": f"白石镇上塘村小卖部后门晚上有人交易白色粉末 {uuid.uuid4().hex[:8]}", "org_path": STATION})
    async with intel.engine.connect() as conn:
        assert await conn.scalar(text("SELECT org_path FROM tips WHERE id = :id"), {"id": town["tip_id"]}) == STATION
        assert await conn.scalar(text("SELECT count(*) FROM tips WHERE org_path = '/c1/t9/nobody-sees-this'")) == 0


async def test_tip_with_coordinates_is_routed_to_the_covering_station(intel):
    await _org_units(intel)
    tip = await submit(intel, {"category": "public_order", "text": f"上塘村村口有人私拉电线 {uuid.uuid4().hex[:8]}", "lat": 29.8232, "lon": 120.0011})
    async with intel.engine.connect() as conn:
        assert await conn.scalar(text("SELECT org_path FROM tips WHERE id = :id"), {"id": tip["tip_id"]}) == STATION
    events = await eventually(lambda: events_on(intel, "intel.tips.v1", subject=tip["tip_id"]), message="TipSubmitted")
    assert events[0].data["org_unit_id"] == "s91"


async def test_mediation_case_with_a_mediator_sessions_and_an_outcome(intel):
    admin = intel.auth(Role.STATION_ADMIN, sub="station-admin", scope=STATION)
    body = {
        "summary": "两户因宅基地边界发生纠纷", "category": "land", "org_path": STATION,
        "parties": [{"name": "张三丰", "role": "applicant", "phone": "13812345678"}, {"name": "李四光", "role": "respondent"}],
    }
    created = await intel.client.post("/v1/disputes", json=body, headers=admin)
    assert created.status_code == 201, created.text
    dispute = created.json()
    phones = {p["name"]: p["phone"] for p in dispute["parties"]}
    assert phones == {"张三丰": "138****5678", "李四光": None}
    # the answer is built from what was written, without reading it back: it must be what the detail page reads
    assert dispute == (await intel.client.get(f"/v1/disputes/{dispute['dispute_id']}", headers=admin)).json()
    async with intel.engine.connect() as conn:
        stored = (await conn.execute(text("SELECT phone_cipher FROM dispute_parties WHERE dispute_id = :id AND role = 'applicant'"), {"id": dispute["dispute_id"]})).scalar()
    assert b"13812345678" not in bytes(stored)
    did = dispute["dispute_id"]
    assert (await intel.client.post(f"/v1/disputes/{did}/mediator", json={"volunteer_id": "retired-judge-7"}, headers=admin)).json()["status"] == "mediating"
    held = {"held_at": datetime.now(UTC).isoformat(), "place": "村调解室", "notes": "双方同意重新丈量"}
    session = await intel.client.post(f"/v1/disputes/{did}/sessions", json=held, headers=admin)
    assert session.status_code == 201 and len(session.json()["sessions"]) == 1
    closed = await intel.client.post(f"/v1/disputes/{did}/outcome", json={"outcome": "settled", "note": "达成调解协议"}, headers=admin)
    assert closed.json()["outcome"] == "settled" and closed.json()["mediator_volunteer_id"] == "retired-judge-7"
    listed = (await intel.client.get("/v1/disputes", params={"status": "closed"}, headers=admin)).json()
    mine = next(d for d in listed if d["dispute_id"] == did)
    assert (mine["sessions_held"], mine["outcome"]) == (1, "settled") and "parties" not in mine  # phones stay on the detail page
    elsewhere = (await intel.client.get("/v1/disputes", headers=intel.auth(Role.TOWN_ADMIN, sub="other-admin", scope="/c1/t1"))).json()
    assert did not in [d["dispute_id"] for d in elsewhere]
    assert (await intel.client.get("/v1/disputes", params={"status": "lost"}, headers=admin)).status_code == 422
    again = await intel.client.post(f"/v1/disputes/{did}/sessions", json={"held_at": datetime.now(UTC).isoformat()}, headers=admin)
    assert again.status_code == 409
    wrong = await intel.client.post(f"/v1/disputes/{did}/outcome", json={"outcome": "executed"}, headers=admin)
    assert wrong.status_code in (409, 422)
    bad_phone = await intel.client.post("/v1/disputes", json={**body, "parties": [{"name": "王五", "phone": "12345"}, {"name": "赵六"}]}, headers=admin)
    assert bad_phone.status_code == 422 and bad_phone.json()["detail"]["field"] == "parties.0.phone"
    outside = await intel.client.post("/v1/disputes", json={**body, "org_path": "/c1/t1"}, headers=admin)
    assert outside.status_code == 404 and outside.json()["detail"]["field"] == "org_path"


async def test_rising_fraud_in_a_town_drafts_a_bulletin_that_is_published(intel):
    area = f"/c1/t{uuid.uuid4().hex[:8]}"
    await org_unit(intel, area.rsplit("/", 1)[1], "新桥镇联盟", "town", area)
    for i in range(4):
        await submit(intel, {"category": "fraud", "text": f"接到冒充客服的诈骗电话，号码1701111{i:04d}，要求转账", "org_path": area})
    analyst = intel.auth(Role.ANALYST, sub="analyst-b", scope=area)
    drafts = await intel.client.post("/v1/bulletins/drafts", json={"days": 7, "min_recent": 3}, headers=analyst)
    assert drafts.status_code == 201, drafts.text
    mine = [d for d in drafts.json() if d["audience_org_paths"] == [area]]
    assert len(mine) == 1 and mine[0]["case_type"] == "fraud" and "诈骗" in mine[0]["title"] + mine[0]["body"]
    assert mine[0]["basis"]["recent"] == 4
    assert (await intel.client.get(f"/v1/bulletins?org_path={area}")).json() == []  # drafts are not public
    waiting = (await intel.client.get("/v1/bulletins/drafts", headers=analyst)).json()
    assert mine[0]["bulletin_id"] in [d["bulletin_id"] for d in waiting]
    other_area = intel.auth(Role.ANALYST, sub="analyst-c", scope="/c1/t-elsewhere")
    assert mine[0]["bulletin_id"] not in [d["bulletin_id"] for d in (await intel.client.get("/v1/bulletins/drafts", headers=other_area)).json()]
    published = await intel.client.post(f"/v1/bulletins/{mine[0]['bulletin_id']}/publish", headers=analyst)
    assert published.status_code == 200 and published.json()["status"] == "published"
    assert mine[0]["bulletin_id"] not in [d["bulletin_id"] for d in (await intel.client.get("/v1/bulletins/drafts", headers=analyst)).json()]
    public = (await intel.client.get(f"/v1/bulletins?case_type=fraud&org_path={area}/s1")).json()
    assert [b["bulletin_id"] for b in public] == [mine[0]["bulletin_id"]] and "basis" not in public[0]
    event = (await eventually(lambda: events_on(intel, "intel.bulletins.v1", subject=mine[0]["bulletin_id"]), message="BulletinPublished"))[0]
    assert event.data["case_type"] == "fraud" and event.data["audience_org_paths"] == [area]
    assert (await intel.client.post(f"/v1/bulletins/{mine[0]['bulletin_id']}/publish", headers=analyst)).status_code == 409
    flood = {"title": "防汛提示", "body": "近期降雨较多，请远离河道。", "case_type": "other", "audience_org_paths": [area], "channels": ["radio", "public_account"]}
    manual = await intel.client.post("/v1/bulletins", json=flood, headers=analyst)
    assert manual.status_code == 201 and manual.json()["status"] == "draft"
    bad = await intel.client.post("/v1/bulletins", json={"title": "x提示", "body": "正文内容", "case_type": "weather", "audience_org_paths": [area]}, headers=analyst)
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "case_type"
    assert orjson.loads(orjson.dumps(public))  # UTF-8 Chinese round-trips


async def test_without_a_configured_default_unplaced_tips_go_to_the_county(stack):
    from shouwang_dev.testing import running_app
    from shouwang_shared.db import make_engine

    from intel.main import create_app
    from tests.intel.conftest import intel_settings

    prefix = stack.new_prefix()
    await stack.ensure_topics(prefix)
    url = await stack.create_database(f"intel_root_{uuid.uuid4().hex[:6]}")
    settings = intel_settings(stack, url, prefix, default_org_path="")
    engine = make_engine(url, pool_size=1)
    async with running_app(create_app(settings)) as client:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO org_units (id, name, kind, path) VALUES ('root', '安澜县联盟', 'county', '/root')"))
        tip = await client.post("/v1/tips", json={"category": "other", "text": "没有位置的线索，请县里看看"})
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT org_path FROM tips WHERE id = :id"), {"id": tip.json()["tip_id"]}) == "/root"
        analyst = {"Authorization": f"Bearer {stack.token(Role.ANALYST, sub='a', scope_path='/root')}"}

        async def queued():
            return len((await client.get("/v1/triage/queue", headers=analyst)).json()) == 1

        await eventually(queued, message="the clustered tip's case in the county queue")
    await engine.dispose()


async def test_a_resent_need_or_dispute_report_answers_the_first_and_a_reused_key_is_refused(intel):
    need = {"category": "elder_care", "description": "独居老人家里的灯坏了，想请志愿者帮忙看看", "place_text": "上塘村"}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await intel.client.post("/v1/needs", json=need, headers=key)
    again = await intel.client.post("/v1/needs", json=need, headers=key)  # the phone did not hear the answer and resent it
    assert first.status_code == again.status_code == 201 and again.json() == first.json()
    async with intel.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM needs WHERE description = :d"), {"d": need["description"]}) == 1
    reused = await intel.client.post("/v1/needs", json={**need, "description": "另一件事"}, headers=key)
    assert reused.status_code == 409 and reused.json()["detail"]["field"] == "Idempotency-Key"
    short = await intel.client.post("/v1/needs", json=need, headers={"Idempotency-Key": "abc12345"})  # guessable for a citizen
    assert short.status_code == 422 and short.json()["detail"]["field"] == "Idempotency-Key"

    grid_worker = intel.auth(Role.GRID_WORKER, sub="grid-worker-3", scope=STATION)
    report = {"summary": f"邻里因楼道堆物争吵 {uuid.uuid4().hex[:8]}", "category": "neighbourhood", "org_path": STATION,
              "parties": [{"name": "周大妈", "role": "applicant", "phone": "13900001111"}, {"name": "吴先生", "role": "respondent"}]}
    sent = {**grid_worker, "Idempotency-Key": str(uuid.uuid4())}
    opened = await intel.client.post("/v1/disputes", json=report, headers=sent)
    resent = await intel.client.post("/v1/disputes", json=report, headers=sent)
    assert opened.status_code == resent.status_code == 201, resent.text
    assert resent.json() == opened.json() and len(resent.json()["parties"]) == 2
    other = await intel.client.post("/v1/disputes", json={**report, "summary": "另一起纠纷"}, headers=sent)
    assert other.status_code == 409 and other.json()["detail"]["code"] == "idempotency_key_reused"
