"""Chaos: faults during a tip storm and an activation, then the history is checked from the stored data.

`make chaos` runs ≥30 faults and writes `bench/results/chaos.json`; `tests/e2e/test_chaos.py` runs a short
version inside `make test`. Each fault is one of: kill -9 of a service (then restart), a stop and restart of
the Kafka broker, a freeze (SIGSTOP) of PostgreSQL. Phones retry a tip that got no answer with the same
idempotency key, as a real client does; only a 202 counts as acknowledged. Meanwhile an analyst merges and
forwards cases through the gateway, and two police systems (the reference consumer of `examples/`) answer every
forwarded case, one with an arrest and one with "case solved", so each case gets two paying answers and, after a
broker restart, replays of them; the analyst confirms the answers (only a confirmed answer pays): one case must
still pay one reward, to its first reporter.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import itertools
import json
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from shouwang_dev.stack.platform import ONE_ADDRESS_GATEWAY_ENV, Platform, start_platform
from shouwang_dev.testing import TestStack, fetch_rows, start_test_stack, stop_test_stack

from bench.faults import FaultInjector
from tests.e2e.journey import Volunteer, bearer, build_county, expect, register_volunteer

TIP_TEXTS = [
    "{place}附近有人兜售假烟假酒，价格明显偏低，疑似假冒伪劣窝点",
    "{place}出租屋夜间人员进出频繁，怀疑有人吸毒贩毒",
    "{place}有人冒充公检法打电话要求老人转账，疑似电信诈骗",
    "{place}两户村民因宅基地边界争执，情绪激动，可能激化",
    "{place}发现一名走失老人，穿灰色外套，说不清家庭住址",
]
PLACES = ["东门菜市场", "城南汽车站", "滨江公园", "工业园三号路", "老街文化广场", "高铁站北广场", "人民医院门口"]
PAYING_OUTCOMES = ("arrest", "case_solved")
POLICE_CONSUMER = Path(__file__).resolve().parents[1] / "examples" / "police_consumer" / "police_consumer.py"


@dataclass
class Storm:
    """Tips sent by phones during the faults: what was acknowledged, and how many attempts it took."""

    acknowledged: dict[str, str] = field(default_factory=dict)  # tip_id -> volunteer_id
    attempts: int = 0
    failures: int = 0
    stop: bool = False


async def tip_storm(platform: Platform, volunteers: list[Volunteer], storm: Storm, *, rate_per_s: float) -> None:
    """Send tips at `rate_per_s`; a tip without an answer is retried with the same idempotency key."""
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=10) as client:
        pending: set[asyncio.Task] = set()
        for n in itertools.count():
            if storm.stop:
                break
            volunteer = volunteers[n % len(volunteers)]
            body = {
                "category": random.choice(["counterfeit", "drugs", "fraud", "dispute", "missing_person"]),
                "text": random.choice(TIP_TEXTS).format(place=random.choice(PLACES)) + f"（编号{n}）",
                "lat": 30.25 + random.uniform(-0.05, 0.05), "lon": 120.17 + random.uniform(-0.05, 0.05),
                "idempotency_key": f"chaos-{uuid.uuid4()}",
            }
            task = asyncio.create_task(_send_until_acknowledged(client, volunteer, body, storm))
            pending.add(task)
            task.add_done_callback(pending.discard)
            await asyncio.sleep(1 / rate_per_s)
        if pending:
            await asyncio.wait(pending, timeout=120)
        for task in list(pending):  # still unacknowledged after two minutes: counted as failures, never left running
            task.cancel()
            storm.failures += 1


async def _send_until_acknowledged(client: httpx.AsyncClient, volunteer: Volunteer, body: dict, storm: Storm) -> None:
    for attempt in range(60):
        storm.attempts += 1
        try:
            resp = await client.post("/api/v1/tips", headers=bearer(volunteer.token), json=body)
            if resp.status_code == 202:
                storm.acknowledged[resp.json()["tip_id"]] = volunteer.volunteer_id
                return
            if resp.status_code < 500 and resp.status_code != 429:
                storm.failures += 1
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(min(0.5 * (attempt + 1), 3))
    storm.failures += 1


@dataclass
class CaseDesk:
    """The analysts' side of the storm: cases merged and forwarded, and the police systems answering them."""

    forwarded: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)  # cases whose two police answers are both confirmed
    confirmed: int = 0
    merged: int = 0
    police_restarts: int = 0
    stop: bool = False


async def case_desk(platform: Platform, analyst_token: str, desk: CaseDesk, *, merge_every: int = 3) -> None:
    """An analyst works the queue through the gateway: now and then merges two new cases of one kind, takes
    every open case through claim → triage → verify → forward, and confirms the police answers waiting on
    forwarded cases; a failed step is taken up again next round."""
    analyst = bearer(analyst_token)
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=10) as client:
        for round_no in itertools.count(1):
            if desk.stop:
                return
            try:
                await _work_open_cases(client, analyst, desk, merge=round_no % merge_every == 0)
            except (httpx.HTTPError, ValueError, KeyError):
                pass  # the gateway or intel is down for a moment: the next round carries on
            await asyncio.sleep(1.0)


STEPS_FROM = {"new": ("claim", "triage", "verify", "forward"), "triaged": ("claim", "verify", "forward"), "verified": ("claim", "forward")}


async def _work_open_cases(client: httpx.AsyncClient, analyst: dict, desk: CaseDesk, *, merge: bool) -> None:
    open_cases: list[dict] = []
    for status in STEPS_FROM:
        resp = await client.get("/api/v1/cases", headers=analyst, params={"status": status, "limit": 50})
        if resp.status_code != 200:
            return
        open_cases += resp.json()
    if merge:
        fresh = [c for c in open_cases if c["status"] == "new"]
        pair = next(((a, b) for a, b in itertools.combinations(fresh, 2) if a["category"] == b["category"]), None)
        if pair:
            resp = await client.post("/api/v1/cases/merge", headers=analyst,
                                     json={"target_case_id": pair[0]["case_id"], "case_ids": [pair[1]["case_id"]]})
            if resp.status_code == 200:
                desk.merged += 1
                open_cases = [c for c in open_cases if c["case_id"] != pair[1]["case_id"]]
    for case in open_cases:
        for step in STEPS_FROM[case["status"]]:
            body = {"quality": 2} if step == "verify" else {"summary": "群众举报线索，已核实"} if step == "forward" else {}
            resp = await client.post(f"/api/v1/cases/{case['case_id']}/{step}", headers=analyst, json=body)
            if resp.status_code != 200:
                break
        else:
            desk.forwarded.add(case["case_id"])
    await _confirm_police_answers(client, analyst, desk)


async def _confirm_police_answers(client: httpx.AsyncClient, analyst: dict, desk: CaseDesk) -> None:
    """Confirm each police answer received on a forwarded case (only a confirmed answer sets the outcome and pays)."""
    resp = await client.get("/api/v1/cases", headers=analyst, params={"status": "forwarded", "limit": 50})
    if resp.status_code != 200:
        return
    for case in resp.json():
        if case["case_id"] in desk.answered:
            continue
        detail = await client.get(f"/api/v1/cases/{case['case_id']}", headers=analyst)
        if detail.status_code != 200:
            continue
        answers = detail.json()["dispositions"]
        settled = len(answers) >= 2
        for answer in answers:
            if not answer["confirmed"]:
                confirm = f"/api/v1/cases/{case['case_id']}/dispositions/{answer['disposition_id']}/confirm"
                status = (await client.post(confirm, headers=analyst)).status_code
                desk.confirmed += status == 200
                settled = settled and status in (200, 409)  # 409: confirmed by an earlier try whose answer was lost
        if settled:
            desk.answered.add(case["case_id"])


def police_consumer_module():
    """The reference police consumer of `examples/`, loaded from its file as a police team would run it."""
    spec = importlib.util.spec_from_file_location("police_consumer", POLICE_CONSUMER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def police_system(platform: Platform, desk: CaseDesk, *, group: str, answer: str) -> None:
    """A police system answering every forwarded case; restarted after a broker outage breaks it, as its operators would."""
    police = police_consumer_module()
    while True:
        try:
            await police.answer_forwarded_cases(
                platform.stack.bootstrap_servers, answer=answer, prefix=platform.prefix, group_id=group,
                source=f"/police/{group}", officer_unit="城关派出所", once=False)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - broker away: start again, from the group's committed offsets
            desk.police_restarts += 1
            await asyncio.sleep(1.0)


async def check_cases(platform: Platform) -> dict[str, int]:
    """One case, one reward, checked per surviving case (merged cases followed to the case they joined)."""
    cases = await fetch_rows(platform.database_urls["intel"],
                             "SELECT id::text AS id, merged_into::text AS merged_into, forwarded_at IS NOT NULL AS forwarded FROM cases")
    merged_into = {r["id"]: r["merged_into"] for r in cases}

    def root(case_id: str) -> str:
        while merged_into.get(case_id):
            case_id = merged_into[case_id]
        return case_id

    answers = await fetch_rows(platform.database_urls["intel"],
                               "SELECT case_id::text AS case_id, disposition, confirmed_at IS NOT NULL AS confirmed FROM dispositions")
    paying_roots = {root(a["case_id"]) for a in answers if a["disposition"] in PAYING_OUTCOMES and a["confirmed"]}
    payments = await fetch_rows(platform.database_urls["rewards"], """
        SELECT DISTINCT split_part(effect_key, '|', 1) AS payment FROM ledger_entries
         WHERE rule_line LIKE 'case.reward%' AND corrects_entry_id IS NULL""")
    per_root: dict[str, int] = {}
    for p in payments:
        r = root(p["payment"].removeprefix("case:"))
        per_root[r] = per_root.get(r, 0) + 1
    return {
        "cases_merged": sum(1 for r in cases if r["merged_into"]),
        "cases_forwarded": sum(1 for r in cases if r["forwarded"]),
        "police_answers": len(answers),
        "police_answers_confirmed": sum(1 for a in answers if a["confirmed"]),
        "cases_with_paying_outcome": len(paying_roots),
        "case_rewards_paid": len(per_root),
        "case_rewards_missing": len(paying_roots - set(per_root)),
        "duplicate_case_rewards": sum(n - 1 for n in per_root.values() if n > 1),
    }


async def check_history(platform: Platform, storm: Storm, operation_id: str | None) -> dict[str, int]:
    """Counts measured from the stored data of intel, rewards and dispatch."""
    acked = list(storm.acknowledged)
    stored = {str(r["id"]) for r in await fetch_rows(platform.database_urls["intel"], "SELECT id FROM tips WHERE id = ANY($1::uuid[])", acked)}
    rewarded = await fetch_rows(platform.database_urls["rewards"], """
        SELECT f.data->>'tip_id' AS tip_id, l.rule_line, count(*) AS n
          FROM ledger_entries l JOIN scored_facts f ON f.event_id = l.source_event_id
         WHERE l.rule_line = 'tip.report' AND l.corrects_entry_id IS NULL
         GROUP BY 1, 2""")
    per_tip = {r["tip_id"]: r["n"] for r in rewarded}
    counted = await fetch_rows(platform.database_urls["rewards"],  # every tip counted once; beyond the daily cap it earns nothing
                               "SELECT tip_id, scored FROM tip_submissions WHERE tip_id = ANY($1::text[])", acked)
    owed = {r["tip_id"] for r in counted if r["scored"]} | (set(acked) - {r["tip_id"] for r in counted})
    mismatches = await fetch_rows(platform.database_urls["rewards"], """
        WITH sums AS (
            SELECT account, unit, sum(amount) AS s FROM (
                SELECT credit_account AS account, unit, amount FROM ledger_entries
                UNION ALL SELECT debit_account, unit, -amount FROM ledger_entries) x GROUP BY 1, 2)
        SELECT count(*) AS n FROM sums FULL JOIN (SELECT account, unit, sum(balance) AS balance FROM balances GROUP BY 1, 2) b USING (account, unit)
         WHERE coalesce(sums.s, 0) <> coalesce(b.balance, 0)""")
    duplicates_assign = await fetch_rows(platform.database_urls["dispatch"], """
        SELECT count(*) AS n FROM (SELECT operation_id, volunteer_id FROM assignments GROUP BY 1, 2 HAVING count(*) > 1) d""")
    offers = 0
    if operation_id:
        offers = (await fetch_rows(platform.database_urls["dispatch"], "SELECT count(*) AS n FROM assignments WHERE operation_id = $1::uuid", operation_id))[0]["n"]
    return {
        "tips_acknowledged": len(acked),
        "tips_lost": len(set(acked) - stored),
        "tip_rewards_missing": sum(1 for t in owed if per_tip.get(t, 0) == 0),
        "duplicate_rewards": sum(n - 1 for n in per_tip.values() if n > 1),
        **await check_cases(platform),
        "duplicate_assignments": duplicates_assign[0]["n"],
        "ledger_mismatches": mismatches[0]["n"],
        "operation_offers": offers,
    }


async def run_chaos(stack: TestStack, *, faults: int, volunteers: int = 8, rate_per_s: float = 10.0,
                    log_dir: Path | None = None) -> dict:
    """Start a platform on `stack` (which this run owns), inject `faults` faults under load, check the history."""
    platform = await start_platform(stack, log_dir=log_dir, extra_env={"gateway": ONE_ADDRESS_GATEWAY_ENV})
    try:
        async with platform.client() as client:
            county = await build_county(platform, client)
            crew = [await register_volunteer(client, county, lat=30.25 + 0.001 * i, lon=120.17) for i in range(volunteers)]
            storm, desk = Storm(), CaseDesk()
            storm_task = asyncio.create_task(tip_storm(platform, crew, storm, rate_per_s=rate_per_s))
            desk_task = asyncio.create_task(case_desk(platform, county.analyst_token, desk))
            police = [asyncio.create_task(police_system(platform, desk, group=group, answer=answer))
                      for group, answer in (("police-city", "arrest"), ("police-county", "case_solved"))]
            operation_id = await _activate_operation(client, county, headcount=volunteers)
            injector = FaultInjector(stack, platform)
            schedule = itertools.cycle(
                [("kill", name) for name in ("intel", "rewards", "gateway", "dispatch", "registry")]
                + [("broker", "kafka"), ("pause", "postgresql")]
            )
            started = time.monotonic()
            for _ in range(faults):
                kind, target = next(schedule)
                if kind == "kill":
                    record = await injector.kill_service(target)
                elif kind == "broker":
                    record = await injector.restart_broker()
                else:
                    record = await injector.pause_database()
                await injector.wait_recovered(record, timeout_s=120)
                print(f"  fault {len(injector.records):>2}: {record.kind:15s} {record.target:10s} recovered in {record.recovery_s:.1f}s"
                      f" (tips acknowledged so far {len(storm.acknowledged)})", flush=True)
            storm.stop = desk.stop = True
            await asyncio.gather(storm_task, desk_task)
            final = injector._ended("end of storm", "-")
            await injector.wait_recovered(final, timeout_s=120)
            history, settle_s = await settled_history(platform, storm, operation_id)
            for task in police:
                task.cancel()
            await asyncio.gather(*police, return_exceptions=True)
            return {
                "faults_injected": len(injector.records) - 1,
                **history,
                "settle_seconds": settle_s,
                "police_restarts": desk.police_restarts,
                "tip_attempts": storm.attempts,
                "tips_refused": storm.failures,
                "recovery_seconds_max": round(max(r.recovery_s or 0 for r in injector.records), 2),
                "duration_s": round(time.monotonic() - started, 1),
            }
    finally:
        platform.stop()


async def settled_history(platform: Platform, storm: Storm, operation_id: str | None, *, timeout_s: float = 90) -> tuple[dict, float]:
    """The history once the last answers have travelled police → intel → rewards (or as it stands at the timeout):
    a reward still on its way is not counted missing, one that never comes is."""
    started = time.monotonic()
    while True:
        history = await check_history(platform, storm, operation_id)
        waiting = history["tip_rewards_missing"] + history["case_rewards_missing"]
        if not waiting or time.monotonic() - started > timeout_s:
            return history, round(time.monotonic() - started, 1)
        await asyncio.sleep(2)


async def _activate_operation(client: httpx.AsyncClient, county, *, headcount: int) -> str:
    """Create and activate an operation in the county's town (offers go out while faults happen)."""
    admin = bearer(county.town_admin_token)
    now = datetime.now(UTC).replace(microsecond=0)
    op = expect(await client.post("/api/v1/operations", headers=admin, json={
        "name": "峰会安保（故障演练）", "org_path": county.town["path"], "posts": [{
            "name": "主会场北门", "lat": 30.25, "lon": 120.17, "shift_start": (now + timedelta(hours=2)).isoformat(),
            "shift_end": (now + timedelta(hours=6)).isoformat(), "headcount": headcount}]}), 201)
    expect(await client.post(f"/api/v1/operations/{op['id']}/activate", headers=admin), 202)
    return op["id"]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos")
    parser.add_argument("--faults", type=int, default=35)
    parser.add_argument("--rate", type=float, default=10.0, help="tips per second during the storm")
    args = parser.parse_args()

    async def go() -> dict:
        stack = await asyncio.to_thread(start_test_stack, private=True)
        try:
            return await run_chaos(stack, faults=args.faults, rate_per_s=args.rate)
        finally:
            await asyncio.to_thread(stop_test_stack, stack)

    result = asyncio.run(go())
    result["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    out = Path(__file__).resolve().parent / "results" / "chaos.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    bad = [k for k in ("tips_lost", "tip_rewards_missing", "duplicate_rewards", "duplicate_case_rewards", "case_rewards_missing",
                       "duplicate_assignments", "ledger_mismatches") if result[k]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
