"""The county's report against the services it is built from: after a small operation and a day of community work
through the gateway, the report's figures (volunteers by status, tips by category, cases forwarded, needs, disputes
taken in and mediated, bulletins, each operation's headcount and accepted offers, case rewards, points and hours
banked) equal the counts taken from the owning services' own tables; a rebuild from the journal gives the same
report, and so does the store wiped and the topics read again. (Every figure against its events, section by
section and for a quarter: tests/reports/test_figures.py.)"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from shouwang_dev.testing import eventually, fetch_rows
from shouwang_shared.auth import Role

from reports.config import ReportsSettings
from reports.replay import replay
from tests.e2e.journey import (
    activated_operation,
    bearer,
    build_county,
    case_of_tip,
    confirm_police_answers,
    expect,
    forward_case,
    police_answer,
    police_answers,
    register_volunteer,
    wait_until_known_to_dispatch,
)

POST_LAT, POST_LON = 30.3100, 120.2100


async def _source_figures(platform) -> dict:
    """The figures as the owning services count them in their own tables (the whole county: one county per platform)."""
    db = platform.database_urls

    async def one(service: str, sql: str) -> list[dict]:
        return [dict(r) for r in await fetch_rows(db[service], sql)]

    statuses = {r["status"]: r["n"] for r in await one("registry", "SELECT status, count(*) AS n FROM volunteers GROUP BY 1")}
    tips = {r["category"]: r["n"] for r in await one("intel", "SELECT category, count(*) AS n FROM tips GROUP BY 1")}
    intel = (await one("intel", (
        "SELECT (SELECT count(*) FROM cases WHERE forwarded_at IS NOT NULL) AS forwarded,"
        " (SELECT count(*) FROM needs) AS needs, (SELECT count(*) FROM disputes) AS disputes,"
        " (SELECT count(*) FROM disputes WHERE status = 'closed') AS mediated,"
        " (SELECT count(*) FROM bulletins WHERE status = 'published') AS bulletins")))[0]
    operations = {r["operation_id"]: {"headcount": r["headcount"], "accepted": r["accepted"]} for r in await one("dispatch", (
        "SELECT o.id::text AS operation_id, (SELECT sum(headcount) FROM posts p WHERE p.operation_id = o.id) AS headcount,"
        " (SELECT count(*) FROM assignments a WHERE a.operation_id = o.id AND a.status IN ('accepted', 'checked_in',"
        " 'checked_out', 'no_show')) AS accepted FROM operations o WHERE o.activated_at IS NOT NULL"))}
    rewards = (await one("rewards", (
        "SELECT count(*) FILTER (WHERE rule_line = 'case.reward' AND credit_account LIKE 'volunteer:%') AS case_rewards,"
        " coalesce(sum(amount) FILTER (WHERE unit = 'hours' AND credit_account LIKE 'volunteer:%'), 0) AS hours,"
        " coalesce(sum(amount) FILTER (WHERE unit = 'points' AND rule_line <> 'redemption' AND credit_account LIKE 'volunteer:%'), 0)"
        " - coalesce(sum(amount) FILTER (WHERE unit = 'points' AND rule_line <> 'redemption' AND debit_account LIKE 'volunteer:%'), 0)"
        " AS points FROM ledger_entries")))[0]
    return {"statuses": statuses, "tips": tips, **intel, "operations": operations,
            "case_rewards": rewards["case_rewards"], "hours": float(rewards["hours"]), "points": round(float(rewards["points"]), 2)}


def _report_figures(report: dict, operations: list[dict]) -> dict:
    """The same figures as the report gives them."""
    return {
        "statuses": report["volunteers"]["by_status"], "tips": report["tips"]["by_category"],
        "forwarded": report["cases"]["forwarded"], "needs": report["needs"]["taken_in"],
        "disputes": report["disputes"]["taken_in"], "mediated": report["disputes"]["mediated"],
        "bulletins": report["bulletins"]["issued"],
        "operations": {o["operation_id"]: {"headcount": o["headcount"], "accepted": o["accepted"]} for o in operations},
        "case_rewards": report["rewards"]["case_rewards"], "hours": float(report["rewards"]["hours_banked"]),
        "points": round(float(report["rewards"]["points_banked"]), 2),
    }


async def test_the_report_agrees_with_the_services_and_a_rebuild_changes_nothing(platform):
    async with platform.client() as client:
        county = await build_county(platform, client)
        crew = [await register_volunteer(client, county, lat=POST_LAT, lon=POST_LON + 0.001 * i) for i in range(3)]
        await wait_until_known_to_dispatch(platform, [v.volunteer_id for v in crew])
        op = await activated_operation(client, county, name="对账演练安保", post="广场北口", lat=POST_LAT, lon=POST_LON, headcount=2)

        async def offers():
            found = []
            for v in crew:
                body = expect(await client.get("/api/v1/assignments/mine", headers=bearer(v.token)), 200)
                found += [(v, o) for o in (body["items"] if isinstance(body, dict) else body) if o["operation_id"] == op["id"]]
            return found if len(found) >= 2 else None

        for volunteer, offer in (await eventually(offers, timeout_s=30, message="two offers"))[:2]:
            expect(await client.post(f"/api/v1/assignments/{offer['id']}/accept", headers=bearer(volunteer.token)), 200)

        tip = expect(await client.post("/api/v1/tips", headers=bearer(crew[0].token), json={
            "category": "drugs", "text": "广场北口公厕旁最近天天有人交换小包裹，放下就走，很可疑",
            "lat": POST_LAT, "lon": POST_LON, "idempotency_key": f"phone-{uuid.uuid4()}"}), 202)
        expect(await client.post("/api/v1/tips", json={
            "category": "public_order", "text": "晚上十点后广场舞音响太响，老人睡不着", "lat": POST_LAT, "lon": POST_LON,
            "channel": "web", "idempotency_key": f"web-{uuid.uuid4()}"}), 202)
        case_id = await eventually(lambda: case_of_tip(client, county.analyst_token, tip["tip_id"]), timeout_s=30, message="the tip's case")
        await forward_case(client, county.analyst_token, case_id, summary="广场北口疑似毒品交易")
        await police_answer(platform, "arrest", group=f"police-{uuid.uuid4().hex[:6]}")
        await confirm_police_answers(client, county.analyst_token, case_id, await police_answers(client, county.analyst_token, case_id))

        station = bearer(county.station_admin_token)
        need = expect(await client.post("/api/v1/needs", json={"category": "elder_care", "description": "独居老人需要有人帮忙买药",
                                                             "lat": POST_LAT, "lon": POST_LON}), 201)
        ops = bearer(platform.stack.token(Role.OPERATOR, sub="need-desk"))  # the need goes to the nearest station: any test's
        expect(await client.post(f"/api/v1/needs/{need['need_id']}/status", headers=ops, json={"status": "in_progress"}), 200)
        dispute = expect(await client.post("/api/v1/disputes", headers=station, json={
            "summary": "楼上漏水殃及楼下", "category": "neighbourhood", "org_path": county.station["path"],
            "parties": [{"name": "周大妈", "role": "applicant"}, {"name": "吴先生", "role": "respondent"}]}), 201)
        expect(await client.post(f"/api/v1/disputes/{dispute['dispute_id']}/sessions", headers=station,
                                 json={"held_at": datetime.now(UTC).isoformat(), "place": "社区调解室"}), 201)
        expect(await client.post(f"/api/v1/disputes/{dispute['dispute_id']}/outcome", headers=station, json={"outcome": "settled"}), 200)
        expect(await client.post("/api/v1/bulletins", headers=bearer(county.analyst_token), json={
            "title": "警惕广场周边毒品交易", "body": "发现可疑交易请通过平安守望举报。", "case_type": "drugs",
            "audience_org_paths": [county.town["path"]]}), 201)

        today = datetime.now(UTC)
        period = {"from": (today - timedelta(days=2)).date().isoformat(), "to": (today + timedelta(days=2)).date().isoformat()}
        operator = bearer(platform.stack.token(Role.OPERATOR, sub="report-reader"))

        async def report() -> tuple[dict, list[dict]]:
            figures = expect(await client.get("/api/v1/reports/figures", headers=operator, params=period), 200)
            listed = expect(await client.get("/api/v1/reports/operations", headers=operator, params=period), 200)
            return figures, listed["items"]

        async def agreeing():
            figures, operations = await report()
            return (figures, operations) if _report_figures(figures, operations) == await _source_figures(platform) else None

        try:
            agreed, agreed_operations = await eventually(agreeing, timeout_s=60, message="the report agreeing with the services")
        except TimeoutError:
            figures, operations = await report()
            assert _report_figures(figures, operations) == await _source_figures(platform)
            raise
        assert op["id"] in {o["operation_id"] for o in agreed_operations}
        assert agreed["cases"]["suspects_caught"] >= 0 and agreed["cases"]["by_outcome"].get("arrest", 0) >= 1

        town = bearer(county.town_admin_token)  # the town admin reads their town's report; the county's is refused
        own = expect(await client.get("/api/v1/reports/figures", headers=town, params=period), 200)
        assert own["scope"]["org_path"] == county.town["path"] and own["disputes"]["taken_in"] == 1
        refused = await client.get("/api/v1/reports/figures", headers=town, params={**period, "org_path": county.county["path"]})
        assert refused.status_code == 403

        rebuilt = expect(await client.post("/api/v1/reports/rebuild", headers=operator), 200)
        assert rebuilt["facts_replayed"] > 0
        assert await report() == (agreed, agreed_operations)

        # the whole store lost: wiped, the consumer group rewound, the service reads the topics again
        service = platform.services["reports"]
        service.stop()
        settings = ReportsSettings(**{k.lower(): v for k, v in service.env.items()})
        assert await replay(settings) > 0
        assert (await fetch_rows(platform.database_urls["reports"], "SELECT count(*) AS n FROM facts"))[0]["n"] == 0
        service.start()
        await asyncio.to_thread(service.wait_healthy, 60, ready=True)

        async def replayed():
            return await report() == (agreed, agreed_operations) or None

        try:
            await eventually(replayed, timeout_s=90, message="the report read again from the topics")
        except TimeoutError:
            assert await report() == (agreed, agreed_operations)
            raise
