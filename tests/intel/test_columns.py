"""Information columns (信息栏目): public, read-only and cacheable; curated items by staff in scope; the violation lookup
through its adapter (a fake police system here, an unreachable one, and none connected)."""

from __future__ import annotations

import httpx
import pytest

from shouwang_shared.auth import Role

from intel.outreach import violations as violation_adapters
from intel_helpers import COUNTY, intel_instance

TOWN = f"{COUNTY}/t1"


@pytest.fixture(scope="module")
async def intel(stack):
    """An intel instance connected to the fake police traffic system."""
    async with intel_instance(stack, violation_lookup="fake", run_clustering="false") as service:
        yield service


async def test_the_four_columns_of_the_brief_are_public_and_cacheable(intel):
    listed = await intel.client.get("/v1/columns")
    assert listed.status_code == 200
    assert [c["column_id"] for c in listed.json()] == ["needs", "broadcasts", "police_services", "violations"]
    assert {c["title"] for c in listed.json()} >= {"群众需求采集", "平安法治播报", "警务服务", "违章查询"}
    assert all(c["org_path"] == COUNTY and c["publisher"] for c in listed.json())
    assert listed.headers["cache-control"] == "public, max-age=60"
    again = await intel.client.get("/v1/columns", headers={"If-None-Match": listed.headers["etag"]})
    assert again.status_code == 304 and again.content == b""

    needs = (await intel.client.get("/v1/columns/needs")).json()
    assert needs["form"]["submit"] == "POST /api/v1/needs" and needs["form"]["categories"]["elder_care"] == "关爱老人"
    assert (await intel.client.get("/v1/columns/violations")).json()["lookup"].startswith("GET /api/v1/violations")
    missing = await intel.client.get("/v1/columns/nothing")
    assert missing.status_code == 404 and missing.json()["detail"]["field"] == "column_id"


async def test_broadcasts_show_published_bulletins_with_their_issue_for_the_area(intel):
    admin = intel.auth(Role.COUNTY_ADMIN, scope=COUNTY)
    draft = await intel.client.post("/v1/bulletins", headers=admin, json={
        "title": "谨防冒充快递理赔诈骗", "body": "接到自称快递客服要求退款理赔的电话，请先挂断再核实。", "case_type": "fraud",
        "audience_org_paths": [TOWN]})
    assert draft.status_code == 201, draft.text
    before = await intel.client.get("/v1/columns/broadcasts", params={"org_path": f"{TOWN}/s1"})
    assert all(item["title"] != "谨防冒充快递理赔诈骗" for item in before.json()["items"])  # a draft is not broadcast
    published = await intel.client.post(f"/v1/bulletins/{draft.json()['bulletin_id']}/publish", headers=admin)
    assert published.status_code == 200, published.text
    shown = (await intel.client.get("/v1/columns/broadcasts", params={"org_path": f"{TOWN}/s1"})).json()["items"]
    [item] = [i for i in shown if i["title"] == "谨防冒充快递理赔诈骗"]
    assert item["serial_label"].endswith("第1期") and item["publisher"] == "平安法治志愿者联盟"
    elsewhere = (await intel.client.get("/v1/columns/broadcasts", params={"org_path": f"{COUNTY}/t2"})).json()["items"]
    assert all(i["title"] != "谨防冒充快递理赔诈骗" for i in elsewhere)
    assert before.headers["etag"] != (await intel.client.get("/v1/columns/broadcasts", params={"org_path": f"{TOWN}/s1"})).headers["etag"]


async def test_staff_publish_and_withdraw_curated_items_in_their_scope_only(intel):
    town_admin = intel.auth(Role.TOWN_ADMIN, sub="town-1-admin", scope=TOWN)
    item = {"title": "身份证补领办理指南", "body": "携带户口簿到镇派出所户籍窗口办理，工作日 9:00–17:00。", "org_path": TOWN,
            "link": "https://example.gov.cn/guide"}
    made = await intel.client.post("/v1/columns/police_services/items", headers=town_admin, json=item)
    assert made.status_code == 201, made.text
    other_town = await intel.client.post("/v1/columns/police_services/items", headers=town_admin, json={**item, "org_path": f"{COUNTY}/t2"})
    assert other_town.status_code == 404 and other_town.json()["detail"]["field"] == "org_path"
    generated = await intel.client.post("/v1/columns/broadcasts/items", headers=town_admin, json=item)
    assert generated.status_code == 409 and generated.json()["detail"]["code"] == "column_not_curated"
    bad_link = await intel.client.post("/v1/columns/police_services/items", headers=town_admin, json={**item, "link": "javascript:alert(1)"})
    assert bad_link.status_code == 422 and bad_link.json()["detail"]["field"] == "link"
    volunteer = await intel.client.post("/v1/columns/police_services/items", json=item,
                                       headers={"Authorization": f"Bearer {intel.stack.token(Role.VOLUNTEER, sub='v', volunteer_id='v-1')}"})
    assert volunteer.status_code == 403

    in_town = (await intel.client.get("/v1/columns/police_services", params={"org_path": f"{TOWN}/s9"})).json()["items"]
    assert [i["title"] for i in in_town] == ["身份证补领办理指南"] and in_town[0]["publisher"] == "县公安局"
    assert (await intel.client.get("/v1/columns/police_services", params={"org_path": f"{COUNTY}/t2"})).json()["items"] == []
    stranger = intel.auth(Role.TOWN_ADMIN, sub="town-2-admin", scope=f"{COUNTY}/t2")
    item_id = made.json()["item_id"]
    assert (await intel.client.delete(f"/v1/columns/police_services/items/{item_id}", headers=stranger)).status_code == 404
    assert (await intel.client.delete(f"/v1/columns/police_services/items/{item_id}", headers=town_admin)).status_code == 204
    assert (await intel.client.get("/v1/columns/police_services", params={"org_path": TOWN})).json()["items"] == []

    county_admin = intel.auth(Role.COUNTY_ADMIN, scope=COUNTY)
    column = {"column_id": "legal_aid", "title": "法律服务", "publisher": "县司法局", "description": "法律援助与公证指引。"}
    assert (await intel.client.post("/v1/columns", headers=town_admin, json=column)).status_code == 403
    assert (await intel.client.post("/v1/columns", headers=county_admin, json=column)).status_code == 201
    assert (await intel.client.post("/v1/columns", headers=county_admin, json=column)).status_code == 409
    assert "legal_aid" in [c["column_id"] for c in (await intel.client.get("/v1/columns")).json()]


async def test_violation_lookup_asks_the_police_system_with_plate_and_vin(intel):
    answer = await intel.client.get("/v1/violations", params={"plate": "浙a12345", "vin6": "123456"})
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    assert answer.json()["plate"] == "浙A12345"
    again = await intel.client.get("/v1/violations", params={"plate": "浙A12345", "vin6": "123456"})
    assert again.json() == answer.json()  # the same vehicle, the same record
    assert (await intel.client.get("/v1/violations", params={"plate": "京A00000", "vin6": "123456"})).json()["violations"] == []
    bad_plate = await intel.client.get("/v1/violations", params={"plate": "ABC123", "vin6": "123456"})
    assert bad_plate.status_code == 422 and bad_plate.json()["detail"]["field"] == "query.plate"
    bad_vin = await intel.client.get("/v1/violations", params={"plate": "浙A12345", "vin6": "12O45I"})
    assert bad_vin.status_code == 422 and bad_vin.json()["detail"]["field"] == "query.vin6"


async def test_a_police_system_that_is_away_or_absent_is_a_503_not_a_500(stack):
    unreachable = violation_adapters.HttpViolationSystem("http://127.0.0.1:9", timeout_s=1)
    with pytest.raises(violation_adapters.ViolationSystemUnavailable):
        await unreachable.lookup(plate="浙A12345", vin_last6="123456")

    def odd_answers(request: httpx.Request) -> httpx.Response:
        if request.url.params["plate"] == "浙A00001":
            return httpx.Response(200, json=[{"occurred_at": "2026-05-01T08:00:00+08:00", "place": "x" * 500}])  # out of bounds
        return httpx.Response(200, json=[{"occurred_at": "2026-05-01T08:00:00+08:00", "place": "人民路", "behaviour": "违停",
                                           "points": 0, "fine_yuan": 100, "handled": False, "officer": "ignored"}])

    system = violation_adapters.HttpViolationSystem("http://police.example")
    transport = httpx.MockTransport(odd_answers)
    original = httpx.AsyncClient

    class PatchedClient(original):
        def __init__(self, **kwargs):
            super().__init__(transport=transport, **kwargs)

    violation_adapters.httpx.AsyncClient = PatchedClient
    try:
        with pytest.raises(violation_adapters.ViolationSystemUnavailable):
            await system.lookup(plate="浙A00001", vin_last6="123456")
        [one] = await system.lookup(plate="浙A12345", vin_last6="123456")
        assert one.fine_yuan == 100 and not hasattr(one, "officer")
    finally:
        violation_adapters.httpx.AsyncClient = original

    async with intel_instance(stack, run_clustering="false") as unconnected:  # VIOLATION_LOOKUP unset
        answer = await unconnected.client.get("/v1/violations", params={"plate": "浙A12345", "vin6": "123456"})
        assert answer.status_code == 503 and answer.json()["detail"]["code"] == "violation_lookup_unavailable"
