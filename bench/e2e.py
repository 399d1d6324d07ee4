"""Scenario "summit" end to end, only through the gateway of the service processes on real Kafka + PostgreSQL.

One process per service, and intel's clustering worker in a process of its own as deployed (`RUN_CLUSTERING=false` on
the intel process the gateway calls).

A county of ≈13,000 eligible volunteers in the brief's hierarchy (10 towns with 208 stations, 10 industry branches;
their registry states published on the registry's compacted topic — the registry's own import speed is measured
in bench/registry.py), an operation needing 10,800 people over
≈1,500 posts, 1,256 tips at 100/s (a fifth of them repeat an incident already reported) and 589 disputes.
Figures:
- `summit_assign_seconds`: activation POSTed to the gateway → every offer pushed into the phones' notification
  feed at the gateway (the last hop before a phone; a sample is also read back through `/api/v1/assignments/mine`);
- `e2e_tip_to_reward_p50_ms` / `_p99_ms`: a tip's 202 at the gateway → its reporting-points notification arriving
  on the reporter's open Server-Sent-Events stream from the gateway; measured after a 2-second burst of the storm's
  shape from 100 other phones (pools grown, code warm, as after a platform's first minutes); `e2e_warmup_*` are that
  burst's own figures, the cost of the first burst after a start (`BENCH_E2E_WARMUP=0`: no burst, the storm is the first);
- `summit_errors`: requests that did not get the answer a phone or the console expects.
With `BENCH_E2E=summit` only the summit runs (no storm after it), e.g. to profile it.
Stage figures (where the time goes, from the timestamps the rows and inboxes already carry, on the one clock of this
machine; see docs/performance.md, #22):
- `summit_stage_*_s`: consecutive stages of the summit, summing to `summit_assign_seconds` — `activate` (POST →
  activation event on Kafka), `plan_consume` (→ the planner's inbox), `plan` (→ plan solved), `offers_stored` (→ offers
  and their outbox rows committed: the relay's first pick), `relay` (→ the last offer acknowledged by Kafka), `feeds`
  (→ the last offer in the feeds; the gateway starts storing while the relay still publishes:
  `summit_gateway_first_offer_s` says when);
- `summit_tip_intake_p50_ms` / `_p99_ms`: a tip's POST → its 202 at the phone during the storm (before the figure above
  starts; not intel's own `tip_intake_p99_ms`, measured alone in bench/intel.py);
- `summit_cpu_s_<process>` (with `summit_wall_s`): CPU seconds each process spent from the activation until the last
  offer was in the feeds, counted as for the storm below;
- `e2e_storm_cpu_s_<service>`: CPU seconds (user + system) each service process spent during the storm (tips +
  disputes), `_postgres` and `_kafka` the stack's servers', `_bench` this load generator's own, with `e2e_storm_wall_s`
  the storm's wall time (a process near it saturates one core), `e2e_storm_disputes_s` how long the disputes took
  (they start with the tips) and `e2e_storm_load_average_1m` the host's load;
  `e2e_machine_cpu_*` the machine probe (bench/machine.py) run just before the storm, in the same run as its figures. With
  `BENCH_E2E_PYSPY=<dir>` each service is also sampled by py-spy (`PYSPY`, default /tmp/pyspy/bin/py-spy) during the
  storm, raw folded stacks in `<dir>/<service>.txt`; with `BENCH_E2E_TIMELINE=<file>` each tip's marks (its 202, its
  outbox row's commit, pick and acknowledgement, rewards' inbox, the ledger entry's outbox marks, the gateway's inbox,
  the arrival; wall clock) and the disputes' window are written there as JSON, to see when and where the slow ones were;
- `e2e_storm_dispute_p50_ms` / `_p99_ms`: the console's wait for each dispute it opened during the storm. The storm
  starts once every phone's stream is open (a stream opening replays the phone's feed): the tips and the disputes
  start together then (until session 17 the disputes started with the streams, 3 s before the first tip);
- `tip_hop_*_p50_ms` / `_p99_ms`: a tip's hops from its 202 — `intel_relay` (→ tip_submitted acknowledged by Kafka),
  `rewards_consume` (→ rewards' inbox), `rewards` (→ the ledger entry acknowledged by Kafka), `gateway_consume` (→ the
  gateway's inbox), `push` (→ on the phone's stream).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import asyncpg
import httpx
import psutil

from shouwang_dev.stack.infra import free_port
from shouwang_dev.stack.platform import ONE_ADDRESS_GATEWAY_ENV, Platform, start_platform
from shouwang_dev.stack.services import ServiceDef, ServiceProcess
from shouwang_dev.synthetic import generate_summit  # the dispatch team's summit generator (bench-only import)
from shouwang_shared.contracts.dispatch import AssignmentOffered, OperationActivated
from shouwang_shared.contracts.intel import TipSubmitted
from shouwang_shared.contracts.rewards import LedgerEntryPosted
from shouwang_shared.db import make_engine, make_session_factory

from bench.dispatch import _publish_volunteers as publish_volunteer_states
from bench.stats import CpuMeter, cpu_steadiness, percentile
from gateway.accounts import TokenPolicy, open_session  # sessions as a successful login would open them

TIPS = 1_256
TIP_RATE = 100.0
REPORTERS = 300  # ≤ 5 tips each: rewards pays reporting points for a reporter's first 5 tips a day (`tip_daily_cap`)
DISPUTES = 589
# Before the storm, a burst of its shape from other phones (`BENCH_E2E_WARMUP=0`: none): the storm measures a platform that
# has seen load since its start (pools grown, the broker's JIT and the services' code paths warm), as one does after its
# first minutes in a county; the burst's own latencies are reported as `e2e_warmup_*`.
WARMUP_TIPS = 200
WARMUP_REPORTERS = 100
WARMUP_DISPUTES = 40
INCIDENTS = [
    "会场外围{n}号路口有人兜售假冒纪念品，疑似制假窝点供货",
    "地铁站{n}号口附近有可疑人员反复徘徊拍照，神情紧张",
    "酒店{n}号楼后门有人冒充工作人员收取“安检费”，疑似诈骗",
    "{n}号桥头两名摊贩因占道发生争吵，围观群众增多",
    "滨江广场{n}号区域发现一名走失儿童，穿红色外套",
]


async def _seed_county(platform: Platform, summit) -> None:
    """Publish the county's volunteer states on the registry topic and wait until dispatch knows them all."""
    await publish_volunteer_states(platform.stack, platform.prefix, summit)
    conn = await asyncpg.connect(platform.database_urls["dispatch"].replace("+asyncpg", ""))
    try:
        deadline = time.monotonic() + 300
        while await conn.fetchval("SELECT count(*) FROM volunteers") < len(summit.volunteer_states):
            if time.monotonic() > deadline:
                raise TimeoutError("dispatch did not learn the county in 300 s")
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def _sessions(platform: Platform, summit, reporters: int) -> tuple[str, list[tuple[str, str]]]:
    """An admin token and `reporters` volunteer tokens, from sessions opened in the gateway's own store."""
    engine = make_engine(platform.database_urls["gateway"], pool_size=2)
    policy = TokenPolicy(platform.stack.signer())
    try:
        sessions = make_session_factory(engine)
        admin = await open_session(sessions=sessions, policy=policy, subject="summit-commander", role="county_admin",
                                   scope_path="/county", display_name="指挥长")
        phones = []
        for state in summit.volunteer_states[:reporters]:
            pair = await open_session(sessions=sessions, policy=policy, subject=state.volunteer_id, role="volunteer",
                                      volunteer_id=state.volunteer_id, display_name=state.display_name)
            phones.append((state.volunteer_id, pair.access_token))
        return admin.access_token, phones
    finally:
        await engine.dispose()


async def _assign_summit(platform: Platform, client: httpx.AsyncClient, admin: dict, summit, phones,
                         errors: list) -> tuple[float, dict[str, float]]:
    """Create the operation and its posts, activate it over HTTP, time until every offer reached the phones' feed;
    returns the time and its stages."""
    created = await client.post("/api/v1/operations", headers=admin, json={"name": "G20 峰会安保统一调度", "org_path": "/county"})
    if created.status_code != 201:
        errors.append(f"create operation {created.status_code}")
        raise RuntimeError(created.text)
    operation_id = created.json()["id"]
    loaded = await client.post(f"/api/v1/operations/{operation_id}/posts", headers=admin, json=summit.posts, timeout=120)
    if loaded.status_code != 201:
        errors.append(f"load posts {loaded.status_code}")
        raise RuntimeError(loaded.text)
    gateway_db = await asyncpg.connect(platform.database_urls["gateway"].replace("+asyncpg", ""))
    dispatch_db = await asyncpg.connect(platform.database_urls["dispatch"].replace("+asyncpg", ""))
    cpu: dict[str, float] = {}
    try:
        with _cpu_during(platform, cpu, "summit"):
            elapsed, started_wall = await _activate_and_wait(client, admin, operation_id, dispatch_db, gateway_db, errors)
        stages = await _summit_stages(dispatch_db, gateway_db, operation_id, started_wall, started_wall + elapsed)
    finally:
        await gateway_db.close()
        await dispatch_db.close()
    for _, token in random.sample(phones, 10):
        mine = await client.get("/api/v1/assignments/mine", headers={"Authorization": f"Bearer {token}"})
        if mine.status_code != 200:
            errors.append(f"assignments/mine {mine.status_code}")
    return elapsed, {**stages, **cpu}


async def _activate_and_wait(client: httpx.AsyncClient, admin: dict, operation_id: str, dispatch_db, gateway_db,
                             errors: list) -> tuple[float, float]:
    """Activate the operation over HTTP and wait until every planned offer is in the phones' feeds; returns the
    seconds it took and the wall-clock start."""
    started_wall, started = time.time(), time.perf_counter()
    activated = await client.post(f"/api/v1/operations/{operation_id}/activate", headers=admin)
    if activated.status_code != 202:
        errors.append(f"activate {activated.status_code}")
        raise RuntimeError(activated.text)
    planned = None
    while True:
        if planned is None:
            planned = await dispatch_db.fetchval(
                "SELECT count(*) FROM assignments WHERE operation_id = $1::uuid AND wave = 0", operation_id) or None
            if planned is not None and not await dispatch_db.fetchval(
                    "SELECT planned_at IS NOT NULL FROM operations WHERE id = $1::uuid", operation_id):
                planned = None
        if planned is not None:
            pushed = await gateway_db.fetchval(
                "SELECT count(*) FROM notifications WHERE kind = 'assignment_offered' AND data->>'operation_id' = $1", operation_id)
            if pushed >= planned:
                break
        if time.perf_counter() - started > 600:
            raise TimeoutError(f"offers not all pushed in 600 s ({planned} planned)")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started, started_wall


async def _summit_stages(dispatch_db, gateway_db, operation_id: str, started: float, finished: float) -> dict[str, float]:
    """The summit's consecutive stages (seconds) from dispatch's outbox and inbox rows and the gateway's feed rows.

    `now()` in PostgreSQL is the start of a transaction: an inbox row's `received_at` is when a consumer began a
    batch, an outbox row's `created_at` when its business transaction began, `attempted_at` when the relay picked it
    (just after the commit woke it) and `sent_at` when the broker had acknowledged it.
    """
    activation = await dispatch_db.fetchrow(
        "SELECT o.event_id, extract(epoch FROM o.sent_at) AS sent, extract(epoch FROM min(i.received_at)) AS received"
        " FROM outbox o LEFT JOIN inbox i ON i.event_id = o.event_id::text"
        " WHERE o.topic = $2 AND o.key = $1 AND convert_from(o.payload, 'UTF8')::jsonb->>'type' = $3"
        " GROUP BY o.event_id, o.sent_at", operation_id, OperationActivated.TOPIC, OperationActivated.TYPE)
    planned = await dispatch_db.fetchrow(
        "SELECT extract(epoch FROM planned_at) AS planned, plan_summary->'seconds' AS seconds FROM operations WHERE id = $1::uuid",
        operation_id)
    offers = await dispatch_db.fetchrow(
        "SELECT extract(epoch FROM min(attempted_at)) AS first_pick, extract(epoch FROM max(sent_at)) AS last_sent"
        " FROM outbox WHERE topic = $2 AND created_at >= to_timestamp($1)", started, AssignmentOffered.TOPIC)
    feeds = await gateway_db.fetchrow(
        "SELECT extract(epoch FROM min(created_at)) AS first, extract(epoch FROM max(created_at)) AS last FROM notifications"
        " WHERE kind = 'assignment_offered' AND data->>'operation_id' = $1", operation_id)
    marks = [("activate", activation and activation["sent"]), ("plan_consume", activation and activation["received"]),
             ("plan", planned["planned"]), ("offers_stored", offers["first_pick"]), ("relay", offers["last_sent"]),
             ("feeds", finished)]
    stages: dict[str, float] = {}
    previous = started
    for name, mark in marks:
        if mark is None:
            continue
        stages[f"summit_stage_{name}_s"] = round(float(mark) - previous, 3)
        previous = float(mark)
    if feeds["first"] is not None:
        stages["summit_gateway_first_offer_s"] = round(float(feeds["first"]) - started, 3)
    seconds = json.loads(planned["seconds"]) if planned["seconds"] else {}
    for part in ("load", "solve", "store"):
        if part in seconds:
            stages[f"summit_plan_{part}_s"] = float(seconds[part])
    return stages


async def _reporter(client: aiohttp.ClientSession, streams: httpx.AsyncClient, vid: str, token: str, bodies: list[dict],
                    opened: Callable[[], None], start_at: asyncio.Future[float], offset_s: float, every_s: float,
                    latencies: list[float], intake: list[float], timeline: list[tuple[str, float, float]], errors: list) -> None:
    """One phone: open its notification stream (`opened()` once it is), then from `start_at` + `offset_s` send a tip every
    `every_s` seconds and time each reward's arrival on the stream."""
    headers = {"Authorization": f"Bearer {token}"}
    arrivals: asyncio.Queue[tuple[float, float]] = asyncio.Queue()

    async def listen() -> None:
        async with streams.stream("GET", "/api/v1/notifications/stream", headers=headers, timeout=None) as stream:
            opened()
            event = None
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event == "ledger_entry_posted":
                    arrivals.put_nowait((time.perf_counter(), time.time()))

    listener = asyncio.create_task(listen())
    try:
        start_at = await start_at + offset_s
        for i, body in enumerate(bodies):
            await asyncio.sleep(max(0.0, start_at + i * every_s - time.perf_counter()))
            sent = time.perf_counter()
            async with client.post("/api/v1/tips", headers=headers, json=body) as resp:
                answer = await resp.json() if resp.status == 202 else None
            accepted, accepted_wall = time.perf_counter(), time.time()
            intake.append((accepted - sent) * 1000)
            if answer is None:
                errors.append(f"tip {resp.status}")
                continue
            try:
                arrived, arrived_wall = await asyncio.wait_for(arrivals.get(), timeout=30)
                latencies.append((arrived - accepted) * 1000)
                timeline.append((answer["tip_id"], accepted_wall, arrived_wall))
            except TimeoutError:
                errors.append("reward not pushed within 30 s")
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


async def _tip_storm(client: aiohttp.ClientSession, streams: httpx.AsyncClient, phones: list[tuple[str, str]], start_at: asyncio.Future[float],
                     intake: list, timeline: list, errors: list, *, tips: int = TIPS, seed: int = 7) -> list[float]:
    """`tips` (1,256) tips at 100/s from the phones (300: 5 at most each, as rewards pays for 5 a day), a fifth repeating an
    incident already reported; `start_at` is set when every phone's stream is open, and the first tip is sent then."""
    rng = random.Random(seed)
    reported: list[dict] = []
    bodies: dict[str, list[dict]] = {vid: [] for vid, _ in phones}
    for n in range(tips):
        if reported and rng.random() < 0.2:
            base = rng.choice(reported)
            body = {**base, "text": base["text"] + "，我也看到了", "lat": base["lat"] + 0.0002}
        else:
            body = {"category": rng.choice(["counterfeit", "public_order", "fraud", "dispute", "missing_person"]),
                    "text": rng.choice(INCIDENTS).format(n=n), "lat": 30.2460 + rng.uniform(-0.05, 0.05),
                    "lon": 120.2100 + rng.uniform(-0.05, 0.05)}
            reported.append(body)
        bodies[phones[n % len(phones)][0]].append({**body, "idempotency_key": f"summit-{uuid.uuid4()}"})
    latencies: list[float] = []
    streams_open = asyncio.Semaphore(0)
    reporters = asyncio.gather(*(
        _reporter(client, streams, vid, token, bodies[vid], streams_open.release, start_at, k / TIP_RATE, len(phones) / TIP_RATE,
                  latencies, intake, timeline, errors)
        for k, (vid, token) in enumerate(phones)
    ))
    try:
        for _ in phones:  # every phone's stream open (each replays its feed, the summit's offer) before the first tip
            await asyncio.wait_for(streams_open.acquire(), timeout=60)
        await asyncio.sleep(1.0)  # and the streams' feed reads done
        start_at.set_result(time.perf_counter())
    except BaseException:
        reporters.cancel()
        raise
    await reporters
    return latencies


async def _warm_up(client: aiohttp.ClientSession, streams: httpx.AsyncClient, phones: list[tuple[str, str]], admin: dict,
                   errors: list) -> dict[str, float]:
    """A 2-second burst of the storm's shape (tips at 100/s from phones of its own, disputes 20 at a time), before the
    storm; its p50/p99 tip → reward, as `e2e_warmup_*`: what the first burst after a start costs."""
    start_at: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    disputes: dict = {}
    latencies, _ = await asyncio.gather(_tip_storm(client, streams, phones, start_at, [], [], errors, tips=WARMUP_TIPS, seed=11),
                                        _disputes(client, admin, start_at, errors, disputes, disputes=WARMUP_DISPUTES))
    return {"e2e_warmup_tip_to_reward_p50_ms": round(percentile(latencies, 0.50), 1),
            "e2e_warmup_tip_to_reward_p99_ms": round(percentile(latencies, 0.99), 1),
            "e2e_warmup_dispute_p99_ms": disputes["e2e_storm_dispute_p99_ms"]}


TIP_HOPS = ["intel_relay", "rewards_consume", "rewards", "gateway_consume", "push"]


async def _tip_hops(platform: Platform, timeline: list[tuple[str, float, float]], per_tip: list[dict] | None = None) -> dict[str, float]:
    """p50/p99 of each hop of tip → reward (ms), from intel's and rewards' outbox rows and rewards' and the gateway's inboxes.

    Per tip: its 202 → tip_submitted acknowledged by Kafka (intel's `sent_at`) → rewards began the batch with it (inbox
    `received_at`) → the reporter's first ledger entry for it acknowledged (rewards' `sent_at`) → the gateway began the
    batch with that entry → the entry arrived on the phone's stream. A hop is negative when the next stage began before
    the previous one's end was recorded (the relay marks rows sent after the consumer may have begun).
    """
    dbs = {name: await asyncpg.connect(platform.database_urls[name].replace("+asyncpg", "")) for name in ("intel", "rewards", "gateway")}
    try:
        tips = await dbs["intel"].fetch(
            "SELECT event_id::text AS event_id, convert_from(payload, 'UTF8')::jsonb->'data'->>'tip_id' AS tip_id,"
            " extract(epoch FROM sent_at) AS sent, extract(epoch FROM created_at) AS created, extract(epoch FROM attempted_at) AS attempted"
            " FROM outbox WHERE topic = $1 AND convert_from(payload, 'UTF8')::jsonb->>'type' = $2", TipSubmitted.TOPIC, TipSubmitted.TYPE)
        by_tip = {r["tip_id"]: r for r in tips}
        event_ids = [r["event_id"] for r in tips]
        consumed = {r["event_id"]: float(r["at"]) for r in await dbs["rewards"].fetch(
            "SELECT event_id, extract(epoch FROM min(received_at)) AS at FROM inbox WHERE event_id = ANY($1::text[]) GROUP BY event_id",
            event_ids)}
        entries: dict[str, tuple[str, float]] = {}
        entry_rows: dict[str, asyncpg.Record] = {}
        for r in await dbs["rewards"].fetch(
                "SELECT event_id::text AS event_id, p->'data'->>'source_event_id' AS cause, extract(epoch FROM sent_at) AS sent,"
                " extract(epoch FROM created_at) AS created, extract(epoch FROM attempted_at) AS attempted"
                " FROM (SELECT event_id, sent_at, created_at, attempted_at, convert_from(payload, 'UTF8')::jsonb AS p FROM outbox WHERE topic = $1) o"
                " WHERE p->'data'->>'volunteer_id' IS NOT NULL AND p->'data'->>'source_event_id' = ANY($2::text[])"
                " ORDER BY sent_at", LedgerEntryPosted.TOPIC, event_ids):
            if r["sent"] is not None:
                entries.setdefault(r["cause"], (r["event_id"], float(r["sent"])))
                entry_rows.setdefault(r["cause"], r)
        pushed = {r["event_id"]: float(r["at"]) for r in await dbs["gateway"].fetch(
            "SELECT event_id, extract(epoch FROM min(received_at)) AS at FROM inbox WHERE event_id = ANY($1::text[]) GROUP BY event_id",
            [e for e, _ in entries.values()])}
    finally:
        for conn in dbs.values():
            await conn.close()
    hops: dict[str, list[float]] = {name: [] for name in TIP_HOPS}
    for tip_id, accepted, arrived in timeline:
        tip = by_tip.get(tip_id)
        if tip is None or tip["sent"] is None or tip["event_id"] not in consumed or tip["event_id"] not in entries:
            continue
        entry_id, entry_sent = entries[tip["event_id"]]
        if entry_id not in pushed:
            continue
        marks = [accepted, float(tip["sent"]), consumed[tip["event_id"]], entry_sent, pushed[entry_id], arrived]
        for name, start, end in zip(TIP_HOPS, marks, marks[1:], strict=False):
            hops[name].append((end - start) * 1000)
        if per_tip is not None:  # every mark on the one wall clock, the outbox rows' commit-side times included
            entry = entry_rows[tip["event_id"]]
            per_tip.append({"tip_id": tip_id, "accepted": accepted, "intel_created": float(tip["created"]),
                            "intel_attempted": float(tip["attempted"] or 0), "intel_sent": float(tip["sent"]),
                            "rewards_consumed": consumed[tip["event_id"]], "entry_created": float(entry["created"]),
                            "entry_attempted": float(entry["attempted"] or 0), "entry_sent": entry_sent,
                            "gateway_consumed": pushed[entry_id], "arrived": arrived})
    figures: dict[str, float] = {}
    for name, values in hops.items():
        if values:
            figures[f"tip_hop_{name}_p50_ms"] = round(percentile(values, 0.50), 1)
            figures[f"tip_hop_{name}_p99_ms"] = round(percentile(values, 0.99), 1)
    figures["tip_hop_samples"] = float(len(hops["push"]))
    return figures


async def _disputes(client: aiohttp.ClientSession, admin: dict, start_at: asyncio.Future[float], errors: list, figures: dict[str, float],
                    *, disputes: int = DISPUTES) -> None:
    """`disputes` (589) disputes opened by the console from `start_at` (with the first tip), in `figures` how long they took
    (`e2e_storm_disputes_s`) and the console's wait for each (`e2e_storm_dispute_p50_ms` / `_p99_ms`).

    Burst (default, the storm since session 14): 20 at a time, each twenty as soon as the last answered, a load that takes
    whatever the machine has left. `BENCH_E2E_DISPUTES=paced`: the brief's 589 disputes to its 1,256 tips, spread evenly
    over the tips' seconds (47 a second beside 100 tips a second), each sent at its time whatever the answers before it
    (on this 2-core machine that is more than it sustains: the answers fall behind for the whole storm)."""
    waits: list[float] = []

    async def one(n: int) -> None:
        sent = time.perf_counter()
        async with client.post("/api/v1/disputes", headers=admin, json={
                "summary": f"峰会期间第{n}起纠纷：商户与游客因退款发生争执", "category": "consumer", "org_path": "/county",
                "parties": [{"name": "商户", "role": "respondent"}, {"name": "游客", "role": "applicant"}]}) as resp:
            if resp.status not in (200, 201):
                errors.append(f"dispute {resp.status}")
        waits.append((time.perf_counter() - sent) * 1000)

    async def paced(n: int, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        await one(n)

    started = await start_at
    wall_started = time.time()
    if os.environ.get("BENCH_E2E_DISPUTES", "burst") == "burst":
        for start in range(0, disputes, 20):
            await asyncio.gather(*(one(n) for n in range(start, min(disputes, start + 20))))
    else:
        every_s = TIPS / TIP_RATE / DISPUTES
        await asyncio.gather(*(paced(n, started + n * every_s) for n in range(disputes)))
    figures["e2e_storm_disputes_s"] = round(time.perf_counter() - started, 2)
    figures["e2e_storm_dispute_p50_ms"] = round(percentile(waits, 0.50), 1)
    figures["e2e_storm_dispute_p99_ms"] = round(percentile(waits, 0.99), 1)
    figures["e2e_storm_disputes_window"] = [wall_started, time.time()]  # for the timeline file only


@contextmanager
def _cpu_during(platform: Platform, figures: dict[str, float], prefix: str):
    """Put the CPU seconds each service, PostgreSQL, Kafka and this load generator spend during the block into `figures`
    (`<prefix>_cpu_s_<process>`, with `<prefix>_wall_s`); py-spy every Python process of them on request (`BENCH_E2E_PYSPY`)."""
    python = {name: psutil.Process(svc.process.pid) for name, svc in platform.services.items()}
    python["bench"] = psutil.Process()
    meters = {name: CpuMeter(proc, own_only=name == "bench") for name, proc in python.items()}
    for name, server in (("postgres", platform.stack.pg), ("kafka", platform.stack.kafka)):
        if server is not None and server.process is not None:
            meters[name] = CpuMeter(psutil.Process(server.process.pid))
    spies = []
    pyspy_dir = os.environ.get("BENCH_E2E_PYSPY")
    if pyspy_dir:
        Path(pyspy_dir).mkdir(parents=True, exist_ok=True)
        spy = os.environ.get("PYSPY", "/tmp/pyspy/bin/py-spy")
        for name, proc in python.items():
            spies.append(subprocess.Popen([spy, "record", "-f", "raw", "-r", "50", "-o", f"{pyspy_dir}/{prefix}_{name}.txt", "-p", str(proc.pid)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for meter in meters.values():
        meter.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        figures[f"{prefix}_wall_s"] = round(time.perf_counter() - started, 2)
        for name, meter in meters.items():
            figures[f"{prefix}_cpu_s_{name}"] = round(meter.stop(), 2)
        figures[f"{prefix}_load_average_1m"] = round(os.getloadavg()[0], 2)
        for spy in spies:
            spy.send_signal(2)  # SIGINT: py-spy writes what it sampled and exits
        for spy in spies:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()


async def _start_clustering_worker(platform: Platform) -> None:
    """Intel's clustering worker in a process of its own, as deployed (tools/deploy/manifests.py `WORKERS`): the intel
    process the phones reach runs with `RUN_CLUSTERING=false`, and its twin with the worker on is started after it, so
    the API process's relay holds the outbox shards and is woken by the intake's own commits, as in a deployment whose
    API pods start first."""
    api = platform.services["intel"]
    port = free_port()
    worker = ServiceProcess(ServiceDef("intel_worker", api.definition.factory, port),
                            port=port, env={**api.env, "HTTP_PORT": str(port), "RUN_CLUSTERING": "true"}, log_dir=api.log_path.parent)
    platform.services["intel_worker"] = worker  # stopped with the platform, its CPU counted with the others'
    worker.start()
    await asyncio.to_thread(worker.wait_healthy, 180, ready=True)


async def run(stack) -> dict[str, float]:
    """The summit scenario's figures."""
    platform = await start_platform(stack, extra_env={"gateway": ONE_ADDRESS_GATEWAY_ENV, "intel": {"RUN_CLUSTERING": "false"}})
    errors: list[str] = []
    try:
        await _start_clustering_worker(platform)
        summit = generate_summit(org_path="/county")
        await _seed_county(platform, summit)
        warmup = os.environ.get("BENCH_E2E_WARMUP", "1") != "0"
        admin_token, all_phones = await _sessions(platform, summit, REPORTERS + (WARMUP_REPORTERS if warmup else 0))
        phones, warmup_phones = all_phones[:REPORTERS], all_phones[REPORTERS:]
        admin = {"Authorization": f"Bearer {admin_token}"}
        # Tips and disputes through aiohttp, the open streams on an httpx client of their own: httpx scans every
        # connection of its pool on each request, and with 300 streams (then 100 connections) in the tips' pool that
        # scan was 43-55 % of this process's CPU (py-spy), so the phones saw their 202s late.
        streams_limits = httpx.Limits(max_connections=len(all_phones) + 10, max_keepalive_connections=len(all_phones) + 10)
        async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=60) as client, \
                httpx.AsyncClient(base_url=platform.gateway_url, timeout=60, limits=streams_limits) as streams, \
                aiohttp.ClientSession(base_url=platform.gateway_url, connector=aiohttp.TCPConnector(limit=200),
                                      timeout=aiohttp.ClientTimeout(total=60)) as phones_and_console:
            assign_s, stages = await _assign_summit(platform, client, admin, summit, phones, errors)
            if os.environ.get("BENCH_E2E") == "summit":  # the summit alone, e.g. to profile it: no storm after it
                return {"summit_assign_seconds": round(assign_s, 3), **stages, "summit_errors": float(len(errors))}
            warmed = await _warm_up(phones_and_console, streams, warmup_phones, admin, errors) if warmup else {}
            timeline: list[tuple[str, float, float]] = []
            intake: list[float] = []
            cpu = await cpu_steadiness(3.0, prefix="e2e_machine")  # the host's speed and pauses just before the storm
            with _cpu_during(platform, cpu, "e2e_storm"):
                start_at: asyncio.Future[float] = asyncio.get_running_loop().create_future()
                storm, _ = await asyncio.gather(_tip_storm(phones_and_console, streams, phones, start_at, intake, timeline, errors),
                                                _disputes(phones_and_console, admin, start_at, errors, cpu))
        disputes_window = cpu.pop("e2e_storm_disputes_window", None)
        figures = {"summit_assign_seconds": round(assign_s, 3), **stages, "summit_errors": float(len(errors)), **warmed, **cpu}
        if storm:
            figures["e2e_tip_to_reward_p50_ms"] = round(percentile(storm, 0.50), 1)
            figures["e2e_tip_to_reward_p99_ms"] = round(percentile(storm, 0.99), 1)
            figures["e2e_tip_to_reward_samples"] = float(len(storm))
            figures["summit_tip_intake_p50_ms"] = round(percentile(intake, 0.50), 1)
            figures["summit_tip_intake_p99_ms"] = round(percentile(intake, 0.99), 1)
            per_tip: list[dict] = []
            figures.update(await _tip_hops(platform, timeline, per_tip))
            if os.environ.get("BENCH_E2E_TIMELINE"):  # each tip's marks (wall clock), to see when and where the slow ones were
                Path(os.environ["BENCH_E2E_TIMELINE"]).write_text(json.dumps({"tips": per_tip, "disputes": disputes_window}))
        if errors:
            print("summit errors (first 10):", json.dumps(errors[:10], ensure_ascii=False))
        return figures
    finally:
        platform.stop()
