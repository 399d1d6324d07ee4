"""The reports service on a real broker and database: a quarter of county events in, every figure checked against
counts taken from the events themselves, duplicates ignored, and the projections rebuilt from the journal identical."""

from __future__ import annotations

import csv
import io
import random
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shouwang_shared.auth import Role
from shouwang_shared.contracts.dispatch import (
    AssignmentAnswered,
    AssignmentAttendance,
    AssignmentOffered,
    OperationActivated,
    OperationClosed,
    Place,
    ServiceHoursRecorded,
)
from shouwang_shared.contracts.intel import (
    BulletinPublished,
    CaseForwarded,
    CaseOutcomeRecorded,
    DisputeRecorded,
    LiaisonPlace,
    NeedRecorded,
    Reporter,
    TipReviewed,
    TipSubmitted,
)
from shouwang_shared.contracts.police import OutcomeCounts, Seizure
from shouwang_shared.contracts.registry import OrgUnitUpserted, TrainingAttended, VolunteerState
from shouwang_shared.contracts.rewards import LedgerEntryPosted
from shouwang_shared.envelope import Envelope, new_event

pytestmark = pytest.mark.asyncio(loop_scope="session")

BEIJING_OFFSET = timedelta(hours=8)
QUARTER_START = datetime(2026, 7, 1, tzinfo=UTC) - BEIJING_OFFSET  # 1 July, 00:00 in the county
UNITS = {  # id: (kind, path)
    "c": ("county", "/c"), "t1": ("town", "/c/t1"), "t2": ("town", "/c/t2"),
    "s1": ("station", "/c/t1/s1"), "s2": ("station", "/c/t1/s2"), "s3": ("station", "/c/t2/s3"),
}
STATIONS = ["s1", "s2", "s3"]
CATEGORIES = ["drugs", "fraud", "public_order", "missing_person"]


def _in_town1(path: str) -> bool:
    return path == "/c/t1" or path.startswith("/c/t1/")


class County:
    """A quarter of one county's events, and the figures expected of them, counted straight from the events."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.events: list[tuple[object, str]] = []  # (payload, subject)
        self.at = lambda day, hour=10: QUARTER_START + timedelta(days=day, hours=hour)
        self.expected_t1: Counter = Counter()
        self.expected_all: Counter = Counter()
        self.tips_during_operation = 0  # taken in inside town 1 between the operation's activation (day 29) and close (day 31)

    def add(self, payload, subject: str) -> None:
        self.events.append((payload, subject))

    def count(self, key: str, path: str, n: float = 1) -> None:
        self.expected_all[key] += n
        if _in_town1(path):
            self.expected_t1[key] += n

    def build(self) -> County:
        rng = self.rng
        for unit_id, (kind, path) in UNITS.items():
            self.add(OrgUnitUpserted(org_unit_id=unit_id, name=f"单位{unit_id}", kind=kind, path=path,
                                     parent_id=None if unit_id == "c" else path.split("/")[-2]), unit_id)
        volunteers = {}
        for i in range(60):
            vid, station = f"v{i}", rng.choice(STATIONS)
            path = UNITS[station][1]
            status = rng.choice(["active", "active", "active", "suspended", "retired"])
            core, star = rng.random() < 0.3, rng.randint(1, 5)
            teams = rng.sample(["patrol", "medical", "mediation"], rng.randint(0, 2))
            for version in (1, 2):  # the second state stands
                self.add(VolunteerState(volunteer_id=vid, version=version, volunteer_number=f"{i + 1:08d}", display_name="张**", status=status if version == 2 else "active",
                                        org_unit_id=station, org_path=path, core=core, star=star, teams=teams,
                                        updated_at=self.at(0)), vid)
            volunteers[vid] = path
            self.count(f"status:{status}", path)
            if status == "active":
                self.count(f"level:{'core' if core else 'ordinary'}", path)
                self.count(f"star:{star}", path)
                for team in teams:
                    self.count(f"team:{team}", path)
        for s in range(6):
            station = STATIONS[s % 3]
            attendees = rng.sample(sorted(volunteers), 5)
            self.count("sessions", UNITS[station][1])
            for vid in attendees:
                self.add(TrainingAttended(attendance_id=f"a{s}-{vid}", volunteer_id=vid, session_id=f"ts{s}", level="town",
                                          topic="skills", attended_on=date(2026, 7, 10 + s), org_unit_id=station,
                                          org_path=UNITS[station][1]), vid)
                self.count("attendances", UNITS[station][1])
        reporter = Reporter(kind="anonymous", claim_ref="x")
        cases = []
        for i in range(80):
            tip, station, category = f"tip{i}", rng.choice(STATIONS), rng.choice(CATEGORIES)
            day = rng.randint(0, 91)
            path = UNITS[station][1]
            self.add(TipSubmitted(tip_id=tip, category=category, channel="app", reporter=reporter, submitted_at=self.at(day),
                                  org_unit_id=station), tip)
            self.count("tips", path)
            self.count(f"tip:{category}", path)
            if _in_town1(path) and 29 <= day <= 31:
                self.tips_during_operation += 1
            verdict = rng.choice([None, "verified", "rejected"])
            if verdict:
                case = f"case{i}" if verdict == "verified" else None
                self.add(TipReviewed(tip_id=tip, case_id=case, verdict=verdict, category=category, reporter=reporter), tip)
                if case and len(cases) < 8:
                    cases.append((case, tip, category, path, day))
            self.count(f"outcome:{verdict or 'pending'}", path)
        for n, (case, tip, category, path, day) in enumerate(cases):
            self.add(CaseForwarded(case_id=case, reference=f"SW-{n}", category=category, priority="normal", summary="…",
                                   place=LiaisonPlace(), tip_count=1, informant_pseudonyms=[], forwarded_at=self.at(day, 12),
                                   sla_due_at=self.at(day + 2)), case)
            self.count("forwarded", path)
            counts = OutcomeCounts(suspects_caught=2, dens_closed=1, seizures=[Seizure(kind="drugs", quantity=12.5, unit="g")])
            self.add(CaseOutcomeRecorded(case_id=case, outcome="acknowledged", category=category, first_tip_id=tip,
                                         first_reporter=reporter, recorded_at=self.at(day)), case)  # a v1 answer: no counts
            self.add(CaseOutcomeRecorded(case_id=case, outcome="arrest", category=category, first_tip_id=tip, first_reporter=reporter,
                                         recorded_at=self.at(day + 1), counts=counts), case)  # a confirmed v2 answer
            self.add(CaseOutcomeRecorded(case_id=case, outcome="arrest", category=category, first_tip_id=tip,
                                         first_reporter=reporter, recorded_at=self.at(day + 2)), case)  # v1 again: counts stand
            self.count("suspects", path, 2)
            self.count("dens", path, 1)
            self.count("seizures", path, 1)
        for i in range(12):
            station = rng.choice(STATIONS)
            path, day = UNITS[station][1], rng.randint(0, 80)
            self.add(NeedRecorded(need_id=f"n{i}", category="help", status="open", org_path=path, created_at=self.at(day),
                                  updated_at=self.at(day)), f"n{i}")
            final = rng.choice(["open", "in_progress", "resolved"])
            self.add(NeedRecorded(need_id=f"n{i}", category="help", status=final, org_path=path, created_at=self.at(day),
                                  updated_at=self.at(day + 1)), f"n{i}")
            self.count("needs", path)
            self.count(f"need:{final}", path)
        for i in range(9):
            station = rng.choice(STATIONS)
            path, day = UNITS[station][1], rng.randint(0, 60)
            self.add(DisputeRecorded(dispute_id=f"d{i}", category="neighbour", status="open", org_path=path,
                                     created_at=self.at(day), updated_at=self.at(day)), f"d{i}")
            self.count("disputes", path)
            if i % 3:
                self.add(DisputeRecorded(dispute_id=f"d{i}", category="neighbour", status="closed", outcome="settled", org_path=path,
                                         sessions_held=2, created_at=self.at(day), closed_at=self.at(day + 5),
                                         updated_at=self.at(day + 5)), f"d{i}")
                self.count("mediated", path)
                self.count("sessions", path, 0)
                self.count("mediation_sessions", path, 2)
        for i in range(70):
            vid = rng.choice(sorted(volunteers))
            unit, line = rng.choice([("points", "tip.verified"), ("hours", "hours.bank"), ("points", "case.reward"),
                                     ("points", "redemption")])
            amount = -20.0 if line == "redemption" else float(rng.randint(1, 9))
            self.add(LedgerEntryPosted(entry_id=f"e{i}", account=f"volunteer:{vid}", volunteer_id=vid, unit=unit, amount=amount,
                                       balance_after=0, reason="…", rule_version="r1", rule_line=line, source_event_id=f"s{i}",
                                       posted_at=self.at(rng.randint(0, 91))), f"volunteer:{vid}")
            path = volunteers[vid]
            if line == "redemption":
                self.count("redemptions", path)
                self.count("redeemed_points", path, 20)
            elif unit == "hours":
                self.count("hours_banked", path, amount)
            else:
                self.count("points_banked", path, amount)
                if line == "case.reward":
                    self.count("case_rewards", path)
        released = sorted(volunteers)[0]  # a reviewed tip's points move from pending to spendable: one entry, both accounts
        for account, amount in ((f"pending:volunteer:{released}", -5.0), (f"volunteer:{released}", 5.0)):
            self.add(LedgerEntryPosted(entry_id="e-release", account=account, volunteer_id=released, unit="points", amount=amount,
                                       balance_after=0, reason="…", rule_version="r1", rule_line="tip.report.released",
                                       source_event_id="s-release", posted_at=self.at(3)), account)
        self.count("points_banked", volunteers[released], 5.0)
        for i, audience in enumerate((["/c"], ["/c/t1/s1"], ["/c/t2"])):
            self.add(BulletinPublished(bulletin_id=f"b{i}", title="…", body="…", case_type="fraud", channels=["app"],
                                       audience_org_paths=audience, published_at=self.at(20 + i), serial=i + 1), f"b{i}")
        self.operation = "op1"
        self.add(OperationActivated(operation_id="op1", kind="planned", name="夏季峰会", org_path="/c/t1", activated_by="x",
                                    headcount=10), "op1")
        for i in range(12):
            aid, vid = f"as{i}", f"v{i}"
            self.add(AssignmentOffered(assignment_id=aid, operation_id="op1", operation_name="夏季峰会", post_id=f"p{i % 3}",
                                       volunteer_id=vid, shift_start=self.at(30, 8), shift_end=self.at(30, 12),
                                       place=Place(name="岗", lat=30.0, lon=120.0), respond_by=self.at(29)), aid)
            answer = "accepted" if i < 8 else "declined"
            self.add(AssignmentAnswered(assignment_id=aid, operation_id="op1", post_id=f"p{i % 3}", volunteer_id=vid, answer=answer,
                                        at=self.at(29)), aid)
            if i < 6:
                self.add(AssignmentAttendance(assignment_id=aid, operation_id="op1", post_id=f"p{i % 3}", volunteer_id=vid,
                                              action="checked_in", at=self.at(30, 8)), aid)
                self.add(ServiceHoursRecorded(record_id=f"h{i}", assignment_id=aid, volunteer_id=vid, operation_id="op1",
                                              post_id=f"p{i % 3}", hours=4.0, started_at=self.at(30, 8), ended_at=self.at(30, 12),
                                              org_path="/c/t1/s1"), aid)
        # a 护学 shift's hours: a project, not an operation, named by the event itself
        self.add(ServiceHoursRecorded(record_id="hp1", assignment_id="signup1", volunteer_id="v7", operation_id="project1",
                                      post_id="shift1", hours=1.0, started_at=self.at(31, 7), ended_at=self.at(31, 8),
                                      org_path="/c/t1/s2", activity="project", activity_name="城关小学护学岗",
                                      activity_kind="school_patrol", place_name="城关小学东门", organiser_path="/c/t1/s2"), "signup1")
        return self


@pytest.fixture(scope="module")
async def county(reports) -> County:
    """A quarter of events published, with the bulletins' serials and the operation's close, and all of it taken in."""
    built = County(seed=20260704).build()
    published = []
    for payload, subject in built.events:
        if isinstance(payload, OperationActivated):  # activated on day 29 of the quarter
            event = Envelope(source=payload.SOURCE, type=payload.TYPE, subject=subject, data=payload.model_dump(mode="json"),
                             time=built.at(29, 0))
            published.append(await reports.publish(payload, subject=subject, event=event))
        else:
            published.append(await reports.publish(payload, subject=subject))
    close = OperationClosed(operation_id="op1", closed_by="x")
    closed = await reports.publish(close, subject="op1", event=Envelope(
        source=close.SOURCE, type=close.TYPE, subject="op1", data=close.model_dump(mode="json"), time=built.at(31, 23)))
    built.published = [*published, closed]
    await reports.settle(len(built.published))
    return built


async def _figures(reports, **params) -> dict:
    answer = await reports.client.get("/v1/reports/figures", params={"from": "2026-07-01", "to": "2026-09-30", **params},
                                      headers=reports.headers())
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("org_path", ["/c", "/c/t1"])
async def test_every_figure_agrees_with_the_events(reports, county, org_path):
    expected = county.expected_all if org_path == "/c" else county.expected_t1
    got = await _figures(reports, org_path=org_path)
    e = lambda key: expected.get(key, 0)  # noqa: E731
    assert got["volunteers"]["by_status"] == {s: e(f"status:{s}") for s in ("active", "suspended", "retired") if e(f"status:{s}")}
    assert got["volunteers"]["active_by_level"] == {lv: e(f"level:{lv}") for lv in ("core", "ordinary") if e(f"level:{lv}")}
    assert sum(got["volunteers"]["active_by_star"].values()) == e("status:active")
    assert got["volunteers"]["active_by_team"] == {t: e(f"team:{t}") for t in ("patrol", "medical", "mediation") if e(f"team:{t}")}
    assert got["training"]["sessions_held"] == e("sessions")
    assert got["training"]["attendances"] == e("attendances")
    assert got["tips"]["taken_in"] == e("tips")
    assert got["tips"]["by_category"] == {c: e(f"tip:{c}") for c in CATEGORIES if e(f"tip:{c}")}
    assert got["tips"]["by_outcome"] == {o: e(f"outcome:{o}") for o in ("pending", "verified", "rejected") if e(f"outcome:{o}")}
    assert got["cases"]["forwarded"] == e("forwarded")
    assert got["cases"]["by_outcome"] == ({"arrest": e("forwarded")} if e("forwarded") else {})
    assert (got["cases"]["suspects_caught"], got["cases"]["dens_closed"], got["cases"]["seizures"]) == (e("suspects"), e("dens"), e("seizures"))
    assert got["needs"]["taken_in"] == e("needs")
    assert got["needs"]["by_status"] == {s: e(f"need:{s}") for s in ("open", "in_progress", "resolved") if e(f"need:{s}")}
    assert got["disputes"]["taken_in"] == e("disputes")
    assert got["disputes"]["mediated"] == e("mediated")
    assert got["disputes"]["mediation_sessions"] == e("mediation_sessions")
    rewards = got["rewards"]
    assert rewards["case_rewards"] == e("case_rewards")
    assert rewards["points_banked"] == pytest.approx(e("points_banked"))
    assert rewards["hours_banked"] == pytest.approx(e("hours_banked"))
    assert (rewards["redemptions"], rewards["redeemed_points"]) == (e("redemptions"), e("redeemed_points"))
    # the county-wide bulletin and the one for station s1 reach town 1; all three are the county's
    assert got["bulletins"]["issued"] == (3 if org_path == "/c" else 2)
    assert got["bulletins"]["last_serial"] == (3 if org_path == "/c" else 2)
    [operation] = got["operations"]["items"]
    assert (operation["headcount"], operation["accepted"], operation["fill_rate"], operation["hours"]) == (10, 8, 0.8, 24)


async def test_operation_summary_counts_what_came_in_during_it(reports, county):
    answer = await reports.client.get(f"/v1/reports/operations/{county.operation}", headers=reports.headers())
    assert answer.status_code == 200, answer.text
    summary = answer.json()
    assert (summary["offers"], summary["volunteers_dispatched"], summary["declined"], summary["attended"]) == (12, 8, 4, 6)
    assert (summary["volunteers_served"], summary["hours"], summary["posts"]) == (6, 24, 3)
    assert summary["area"] == "/c/t1"
    assert summary["tips"]["taken_in"] == county.tips_during_operation > 0


async def test_scope_and_bad_input(reports, county):
    town2 = reports.headers(Role.TOWN_ADMIN, scope_path="/c/t2")
    refused = await reports.client.get("/v1/reports/figures", params={"org_path": "/c/t1"}, headers=town2)
    assert refused.status_code == 403 and refused.json()["detail"]["field"] == "query.org_path"
    own = await reports.client.get("/v1/reports/figures", params={"from": "2026-07-01", "to": "2026-09-30"}, headers=town2)
    assert own.status_code == 200 and own.json()["scope"]["org_path"] == "/c/t2"
    hidden = await reports.client.get(f"/v1/reports/operations/{county.operation}", headers=town2)
    assert hidden.status_code == 404
    backwards = await reports.client.get("/v1/reports/figures", params={"from": "2026-09-30", "to": "2026-07-01"}, headers=reports.headers())
    assert backwards.status_code == 422 and backwards.json()["detail"]["field"] == "query.from"
    unknown = await reports.client.get("/v1/reports/figures", params={"org_unit_id": "nowhere"}, headers=reports.headers())
    assert unknown.status_code == 404 and unknown.json()["detail"]["field"] == "query.org_unit_id"
    volunteer = await reports.client.get("/v1/reports/figures", headers=reports.headers(Role.VOLUNTEER, volunteer_id="v1"))
    assert volunteer.status_code == 403


async def test_csv_carries_the_same_figures(reports, county):
    answer = await reports.client.get("/v1/reports/figures", params={"org_unit_id": "t1", "from": "2026-07-01", "to": "2026-09-30",
                                                                  "format": "csv"}, headers=reports.headers())
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    figures = await _figures(reports, org_unit_id="t1")
    by_key = {(r["section"], r["measure"], r["key"]): r["value"] for r in rows}
    assert by_key[("tips", "taken_in", "")] == str(figures["tips"]["taken_in"])
    assert by_key[("volunteers", "by_status", "active")] == str(figures["volunteers"]["by_status"]["active"])
    assert by_key[("operations", "items", "op1/fill_rate")] == "0.8"


async def test_duplicates_change_nothing_and_a_rebuild_gives_the_same_figures(reports, county):
    before = {path: await _figures(reports, org_path=path) for path in ("/c", "/c/t1", "/c/t2/s3")}
    facts = (await reports.sql("SELECT count(*) AS n FROM facts"))[0]["n"]
    for event in county.published[:: 7]:  # the broker delivers some events again
        payload_type = type("P", (), {"TOPIC": _topic_of(event.type)})
        await reports.publish(payload_type, subject=event.subject, event=event)
    marker = await reports.publish(OperationClosed(operation_id="op-marker", closed_by="x"), subject="op-marker")
    await reports.settle(len(county.published) + 1)
    assert (await reports.sql("SELECT count(*) AS n FROM facts WHERE event_id = $1", marker.id))[0]["n"] == 1
    assert (await reports.sql("SELECT count(*) AS n FROM facts"))[0]["n"] == facts + 1
    assert {path: await _figures(reports, org_path=path) for path in before} == before

    rebuilt = await reports.client.post("/v1/reports/rebuild", headers=reports.headers(Role.OPERATOR))
    assert rebuilt.status_code == 200 and rebuilt.json()["facts_replayed"] == facts + 1
    assert {path: await _figures(reports, org_path=path) for path in before} == before
    county_admin = await reports.client.post("/v1/reports/rebuild", headers=reports.headers(Role.COUNTY_ADMIN, scope_path="/c"))
    assert county_admin.status_code == 403


async def test_a_bad_payload_is_set_aside_and_the_rest_goes_on(reports, county):
    bad = new_event(source=TipSubmitted.SOURCE, type=TipSubmitted.TYPE, subject="tip-bad", data={"tip_id": "tip-bad", "category": 7})
    await reports.publish(TipSubmitted, subject="tip-bad", event=bad)
    good = await reports.publish(NeedRecorded(need_id=f"n-{uuid.uuid4()}", category="help", status="open", org_path="/c/t2",
                                              created_at=county.at(1), updated_at=county.at(1)), subject="n-late")

    async def taken():
        return (await reports.sql("SELECT count(*) AS n FROM facts WHERE event_id = $1", good.id))[0]["n"] == 1
    from shouwang_dev.testing import eventually
    await eventually(taken, timeout_s=30, message="the good event taken in")
    assert (await reports.sql("SELECT count(*) AS n FROM facts WHERE event_id = $1", bad.id))[0]["n"] == 0


def _topic_of(event_type: str) -> str:
    from reports.facts import READ_CONTRACTS
    return READ_CONTRACTS[event_type].TOPIC


class FakeNationalSystem:
    """A receiver standing in for the national volunteer system: keeps what it was sent, can be made to fail once."""

    name = "fake"

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.fail_next = False

    async def send(self, records) -> None:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("national system unavailable")
        self.received.extend(records)


async def test_service_records_follow_the_record_rules_and_each_is_pushed_once(reports, county):
    import json
    from pathlib import Path

    import jsonschema

    from shouwang_shared.db import make_engine, make_session_factory

    from reports.national_export import push_service_records

    schema = json.loads((Path(__file__).resolve().parents[2] / "docs" / "schemas" / "service-record.schema.json").read_text())
    answer = await reports.client.get("/v1/reports/service-records", params={"from": "2026-07-01", "to": "2026-09-30"},
                                      headers=reports.headers())
    assert answer.status_code == 200, answer.text
    records = answer.json()["items"]
    assert len(records) == 7 and {r["record_id"] for r in records} == {f"h{i}" for i in range(6)} | {"hp1"}
    for record in records:
        jsonschema.validate(record, schema, format_checker=jsonschema.FormatChecker())
    first = records[0]
    assert (first["project"], first["place"], first["hours"], first["start_time"], first["end_time"]) == ("夏季峰会", "岗", 4.0, "08:00", "12:00")
    assert first["organiser"] == "单位t1" and first["volunteer_name"] == "张**"
    assert first["id_type"] == "volunteer_number" and first["id_number"] == first["volunteer_number"] == f"{int(first['volunteer_id'][1:]) + 1:08d}"
    patrol = next(r for r in records if r["record_id"] == "hp1")
    assert (patrol["project"], patrol["place"], patrol["organiser"], patrol["service_content"], patrol["hours"]) == (
        "城关小学护学岗", "城关小学东门", "单位s2", "护学岗值守：城关小学护学岗", 1.0)
    csv_answer = await reports.client.get("/v1/reports/service-records", params={"from": "2026-07-01", "to": "2026-09-30", "format": "csv"},
                                          headers=reports.headers())
    rows = list(csv.reader(io.StringIO(csv_answer.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["记录编号", "志愿者编号", "姓名"] and len(rows) == 8

    engine = make_engine(reports.database_url)
    sessions = make_session_factory(engine)
    system = FakeNationalSystem()
    zone = ZoneInfo("Asia/Shanghai")
    try:
        system.fail_next = True
        with pytest.raises(ConnectionError):
            await push_service_records(sessions=sessions, receiver=system, zone=zone, limit=4)
        assert system.received == []  # nothing remembered as sent
        assert await push_service_records(sessions=sessions, receiver=system, zone=zone, limit=4) == 4
        assert await push_service_records(sessions=sessions, receiver=system, zone=zone, limit=4) == 3
        assert await push_service_records(sessions=sessions, receiver=system, zone=zone) == 0
        rebuilt = await reports.client.post("/v1/reports/rebuild", headers=reports.headers(Role.OPERATOR))
        assert rebuilt.status_code == 200
        assert await push_service_records(sessions=sessions, receiver=system, zone=zone) == 0  # a rebuild resends nothing
    finally:
        await engine.dispose()
    assert sorted(r["record_id"] for r in system.received) == sorted(r["record_id"] for r in records)
    assert system.received == sorted(records, key=lambda r: (r["service_date"], r["start_time"], r["record_id"]))
