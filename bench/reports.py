"""Reports: a county year of events taken in and rebuilt from the journal; report queries for any org unit and period."""

from __future__ import annotations

import os
import random
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from shouwang_shared.contracts.dispatch import (
    AssignmentAnswered,
    AssignmentAttendance,
    AssignmentOffered,
    OperationActivated,
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
from shouwang_shared.contracts.registry import OrgUnitUpserted, TrainingAttended, VolunteerState
from shouwang_shared.contracts.rewards import LedgerEntryPosted
from shouwang_shared.db import make_engine, make_session_factory, raw_connection
from shouwang_shared.envelope import new_event
from shouwang_shared.migrations import migrate

from bench.stats import percentile
from reports import figures, journal
from reports.figures import Scope, county_figures
from reports.main import MIGRATIONS

VOLUNTEERS = int(os.environ.get("BENCH_REPORT_VOLUNTEERS", "12000"))
TOWNS, STATIONS = 20, 208
QUERIES = 300
YEAR = 2026
ZONE = ZoneInfo("Asia/Shanghai")
CATEGORIES = ["fugitive", "drugs", "fraud", "counterfeit", "public_order", "dispute", "missing_person", "other"]


def county_year(rng: random.Random):
    """A county's year of events, sized by the brief: 12,000 volunteers, 208 stations, a summit of 10,800 and 49 smaller
    operations, 1,256 intel items and more tips, 589 disputes, 71 bulletins, trainings, hours and points."""
    start = datetime(YEAR, 1, 1, tzinfo=ZONE)
    at = lambda: start + timedelta(seconds=rng.randrange(365 * 86400))  # noqa: E731
    yield OrgUnitUpserted(org_unit_id="c", name="县", kind="county", path="/c")
    stations = []
    for t in range(TOWNS):
        yield OrgUnitUpserted(org_unit_id=f"t{t}", name=f"镇{t}", kind="town", path=f"/c/t{t}", parent_id="c")
    for s in range(STATIONS):
        town = s % TOWNS
        stations.append((f"s{s}", f"/c/t{town}/s{s}"))
        yield OrgUnitUpserted(org_unit_id=f"s{s}", name=f"站{s}", kind="station", path=f"/c/t{town}/s{s}", parent_id=f"t{town}")
    homes = {}
    for v in range(VOLUNTEERS):
        unit, path = rng.choice(stations)
        homes[f"v{v}"] = path
        yield VolunteerState(volunteer_id=f"v{v}", version=1, display_name="张**", status=rng.choice(["active"] * 8 + ["suspended", "retired"]),
                             org_unit_id=unit, org_path=path, core=rng.random() < 0.2, star=rng.randint(1, 5),
                             teams=rng.sample(["patrol", "medical", "mediation", "traffic"], rng.randint(0, 2)), updated_at=at())
    volunteers = list(homes)
    for s in range(1500):
        unit, path = rng.choice(stations)
        when = at().date()
        for v in rng.sample(volunteers, 16):
            yield TrainingAttended(attendance_id=f"a{s}-{v}", volunteer_id=v, session_id=f"ts{s}", level="village", topic="skills",
                                   attended_on=when, org_unit_id=unit, org_path=path)
    reporter = Reporter(kind="anonymous", claim_ref="x")
    for i in range(5000):
        unit, _ = rng.choice(stations)
        category = rng.choice(CATEGORIES)
        yield TipSubmitted(tip_id=f"tip{i}", category=category, channel="app", reporter=reporter, submitted_at=at(), org_unit_id=unit)
        if i % 4 == 0:
            yield TipReviewed(tip_id=f"tip{i}", case_id=f"case{i}", verdict="verified", category=category, reporter=reporter)
            if i % 8 == 0:
                when = at()
                yield CaseForwarded(case_id=f"case{i}", reference=f"SW-{i}", category=category, priority="normal", summary="…",
                                    place=LiaisonPlace(), tip_count=1, informant_pseudonyms=[], forwarded_at=when, sla_due_at=when)
                yield CaseOutcomeRecorded(case_id=f"case{i}", outcome="arrest", category=category, first_tip_id=f"tip{i}",
                                          first_reporter=reporter, recorded_at=when)
    for i in range(2000):
        _, path = rng.choice(stations)
        when = at()
        yield NeedRecorded(need_id=f"n{i}", category="help", status=rng.choice(["open", "done"]), org_path=path, created_at=when, updated_at=when)
    for i in range(600):
        _, path = rng.choice(stations)
        when = at()
        yield DisputeRecorded(dispute_id=f"d{i}", category="neighbourhood", status="closed", outcome="settled", org_path=path,
                              sessions_held=2, created_at=when, closed_at=when + timedelta(days=3), updated_at=when + timedelta(days=3))
    for i in range(71):
        yield BulletinPublished(bulletin_id=f"b{i}", title="…", body="…", case_type="fraud", channels=["app"],
                                audience_org_paths=[rng.choice(stations)[1].rsplit("/", 1)[0]], published_at=at())
    entry = 0
    for o in range(50):
        size = 10_800 if o == 0 else 500
        op, town = f"op{o}", f"/c/t{o % TOWNS}"
        when = at()
        yield OperationActivated(operation_id=op, kind="planned", name=f"行动{o}", org_path=town, activated_by="x", headcount=size)
        for n, v in enumerate(rng.sample(volunteers, min(size, len(volunteers)))):
            aid = f"{op}-{n}"
            yield AssignmentOffered(assignment_id=aid, operation_id=op, operation_name="行动", post_id=f"{op}-p{n % 100}", volunteer_id=v,
                                    shift_start=when, shift_end=when + timedelta(hours=4), place=Place(name="岗", lat=30, lon=120), respond_by=when)
            accepted = rng.random() < 0.9
            yield AssignmentAnswered(assignment_id=aid, operation_id=op, post_id=f"{op}-p{n % 100}", volunteer_id=v,
                                     answer="accepted" if accepted else "declined", at=when)
            if accepted:
                yield AssignmentAttendance(assignment_id=aid, operation_id=op, post_id=f"{op}-p{n % 100}", volunteer_id=v, action="checked_in", at=when)
                yield ServiceHoursRecorded(record_id=f"h{aid}", assignment_id=aid, volunteer_id=v, operation_id=op, post_id="p", hours=4.0,
                                           started_at=when, ended_at=when + timedelta(hours=4), org_path=homes[v])
                for line, unit in (("hours.bank", "hours"), ("hours.points", "points")):
                    entry += 1
                    yield LedgerEntryPosted(entry_id=f"e{entry}", account=f"volunteer:{v}", volunteer_id=v, unit=unit, amount=4.0,
                                            balance_after=0, reason="…", rule_version="r", rule_line=line, source_event_id=aid, posted_at=when)


async def run(stack) -> dict[str, float]:
    rng = random.Random(2026)
    events = [new_event(source=p.SOURCE, type=p.TYPE, subject="s", data=p.model_dump(mode="json")) for p in county_year(rng)]
    url = await stack.create_database(f"bench_reports_{int(time.time())}")
    engine = make_engine(url)
    await migrate(engine, MIGRATIONS)
    sessions = make_session_factory(engine)
    try:
        started = time.perf_counter()
        for i in range(0, len(events), 2000):  # a consumer's fetch at a time, each in its transaction
            async with sessions() as session, session.begin():
                await journal.take_in(session, events[i:i + 2000])
        take_in_s = time.perf_counter() - started
        rebuilt = await journal.rebuild(sessions=sessions)
        units = ["/c"] + [f"/c/t{t}" for t in range(TOWNS)] + [f"/c/t{s % TOWNS}/s{s}" for s in range(STATIONS)]
        periods = [(date(YEAR, 1, 1), date(YEAR, 12, 31))] + [(date(YEAR, m, 1), date(YEAR, m, 28)) for m in range(1, 13)]
        timings = []
        async with sessions() as session:
            conn = await raw_connection(session)
            for q in range(QUERIES):
                first, last = periods[0] if q % 2 == 0 else rng.choice(periods)  # half of them the whole year
                scope = Scope(units[0] if q % 10 == 0 else rng.choice(units), first, last, ZONE)
                t0 = time.perf_counter()
                await county_figures(conn, scope)
                timings.append((time.perf_counter() - t0) * 1000)
            sections = {}
            year = Scope("/c", *periods[0], ZONE)
            for name in ("volunteer", "training", "tip", "case", "community", "reward", "bulletin", "operation"):
                section = getattr(figures, f"{name}_figures")
                runs = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    await section(conn, year)
                    runs.append((time.perf_counter() - t0) * 1000)
                sections[f"report_section_{name}_ms"] = percentile(runs, 0.5)
            county_year_ms = []
            for _ in range(20):
                t0 = time.perf_counter()
                await county_figures(conn, Scope("/c", *periods[0], ZONE))
                county_year_ms.append((time.perf_counter() - t0) * 1000)
    finally:
        await engine.dispose()
    return {
        "report_events": len(events),
        "report_take_in_events_per_s": len(events) / take_in_s,
        "report_rebuild_events_per_s": rebuilt["facts_replayed"] / rebuilt["seconds"],
        "report_query_p50_ms": percentile(timings, 0.5),
        "report_query_p99_ms": percentile(timings, 0.99),
        "report_county_year_p50_ms": percentile(county_year_ms, 0.5),
        **sections,
    }
