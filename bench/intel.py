"""Intel figures: tip intake latency at 100 tips/s over real HTTP, and clustering precision/recall on the labelled set.

The intake figure runs the service as deployed: an API process without the clustering worker
(`RUN_CLUSTERING=false`) and the worker in a process of its own, woken by each intake commit (PostgreSQL
NOTIFY), each its own uvicorn. It sends tips open-loop at a fixed rate from this process (bench/httpload: raw
keep-alive sockets, cheap on CPU), 30 s at 100/s after a warm-up; a 202 is answered only after the tip and its
outbox row are committed on a durable PostgreSQL (fsync on). Latency counts from each request's scheduled send
time, so a client that falls behind does not hide queueing. A first run at 20 tips/s (figures suffixed
`_at_20_per_s`) shows the latency below saturation; a last one (suffixed `_one_process`) runs the worker inside
the API process, as in development. Per run it also reports the CPU the API process used per tip (intake and
relay: /proc/<pid>/stat), the worker's (`tip_clustering_cpu_ms_per_tip`), and how long tips waited for their
case (`clustered_at - submitted_at`, read from the database).
Clustering is measured on the labelled Chinese tips of tests/intel/data: the freely written sets of
`free_tips/` (every file: `cluster_precision`/`cluster_recall` for all together, `_<file>` for each, e.g.
`cluster_precision_holdout`; `suggest_recall_at_3` over the cases clustering left split, and
`suggest_recall_at_3_tips_apart` as if every tip were a case of its own) and the old template set (`_templates`), by the pure
module and by the running service (tips posted through the API in the order they were seen, cases read back
once the worker has placed every tip: `cluster_precision_service`, free sets; `..._service_templates`).
`cluster_ms_per_tip_at_1000_cases` is the CPU one tip costs the pure module with 1,000 open cases, chosen as
the worker chooses its candidates (category, window, ~12 km, 50 most recent).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from sqlalchemy import text

from shouwang_dev.stack.services import ServiceProcess
from shouwang_shared.auth import Role
from shouwang_shared.db import make_engine

from bench.httpload import build_request, open_connections, open_loop, start_service_process
from bench.stats import cpu_steadiness, percentile, process_cpu_seconds, settle_database
from intel.cases import clustering
from intel.context import TIPS_WAITING_CHANNEL
from tests.intel.free_tips import load_sets

LABELLED = Path(__file__).resolve().parents[1] / "tests" / "intel" / "data" / "labelled_tips.json"
RATE_PER_S = 100
SECONDS = 30
CONNECTIONS = 32  # the client's keep-alive pool, opened before the clock starts


async def _start_service(stack, url: str, prefix: str, **extra: str) -> tuple[ServiceProcess, str]:
    env = stack.service_env("intel", url, prefix=prefix, **{"default_org_path": "/c1", "log_level": "WARNING", "db_pool_size": "20", **extra})
    service = await start_service_process("intel", env)
    return service, service.url


def _tip_bodies(data: list[dict], count: int, seed: int = 5) -> list[tuple[dict, dict]]:
    """`count` (body, headers): labelled texts at shifted places, half from volunteers, half anonymous, each with a key."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        t = data[i % len(data)]
        body = {"category": t["category"], "text": t["text"], "channel": rng.choice(["app", "web", "hotline", "public_account"]),
                "idempotency_key": str(uuid.uuid4())}
        if t["lat"] is not None:
            body["lat"], body["lon"] = t["lat"] + rng.uniform(-0.2, 0.2), t["lon"] + rng.uniform(-0.2, 0.2)
        if t["place_text"]:
            body["place_text"] = t["place_text"]
        out.append((body, {"vid": f"bench-vol-{i % 300}"} if i % 2 else {}))
    return out


async def _placed_rows(url: str, tip_ids: list[str], columns: str, what: str) -> list:
    """`columns` of the tips once the clustering worker has placed every one of them (a minute at most)."""
    engine = make_engine(url, pool_size=1)
    try:
        for _ in range(600):
            async with engine.connect() as conn:
                rows = (await conn.execute(
                    text(f"SELECT {columns}, clustered_at IS NOT NULL AS placed FROM tips WHERE id = ANY(:ids)"),
                    {"ids": [uuid.UUID(i) for i in tip_ids]},
                )).all()
            if len(rows) == len(tip_ids) and all(r.placed for r in rows):
                return rows
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{what} still without a case a minute after intake")
    finally:
        await engine.dispose()


async def _clustering_lag(url: str, tip_ids: list[str], suffix: str) -> dict[str, float]:
    """How long the tips waited for their case: `clustered_at - submitted_at`, once every one is placed."""
    rows = await _placed_rows(url, tip_ids, "extract(epoch FROM clustered_at - submitted_at) * 1000 AS ms", "tips")
    lags = [float(r.ms) for r in rows]
    return {f"tip_clustering_lag_p50_ms{suffix}": percentile(lags, 0.50), f"tip_clustering_lag_p99_ms{suffix}": percentile(lags, 0.99)}


async def _intake(
    stack, base: str, data: list[dict], *, pid: int, url: str, rate: int = RATE_PER_S, seconds: int = SECONDS, suffix: str = "",
    worker_pid: int | None = None,
) -> dict[str, float]:
    tokens = {f"bench-vol-{i}": stack.token(Role.VOLUNTEER, sub=f"u{i}", volunteer_id=f"bench-vol-{i}", ttl_s=3600) for i in range(300)}

    def request(body: dict, who: dict) -> bytes:
        return build_request("POST", "/v1/tips", body=body, headers={"Authorization": f"Bearer {tokens[who['vid']]}"} if who else {})

    conns = await open_connections(int(base.rsplit(":", 1)[1]), CONNECTIONS)
    try:
        # Warm up every connection, the service's database pool and its caches, a few requests at a time.
        await open_loop(conns, [request(b, w) for b, w in _tip_bodies(data, 100, seed=1)], rate=200)
        requests = [request(b, w) for b, w in _tip_bodies(data, rate * seconds, seed=rate)]
        cpu_before = process_cpu_seconds(pid), process_cpu_seconds(worker_pid) if worker_pid else 0.0
        latencies, answers, elapsed = await open_loop(conns, requests, rate)
        cpu_ms_per_tip = (process_cpu_seconds(pid) - cpu_before[0]) * 1000 / len(requests)
        worker_cpu_ms_per_tip = (process_cpu_seconds(worker_pid) - cpu_before[1]) * 1000 / len(requests) if worker_pid else None
    finally:
        for c in conns:
            c.close()
    tip_ids = [orjson.loads(body)["tip_id"] for status, body in answers if status == 202]
    lag = await _clustering_lag(url, tip_ids, suffix)
    accepted = len(tip_ids)
    if accepted < len(requests) * 0.9:
        raise RuntimeError(f"{len(requests) - accepted} tips not accepted: {sorted({s for s, _ in answers})}")
    return {
        f"tip_intake_failed{suffix}": float(len(requests) - accepted),
        f"tip_intake_p50_ms{suffix}": percentile(latencies, 0.50),
        f"tip_intake_p99_ms{suffix}": percentile(latencies, 0.99),
        f"tip_intake_max_ms{suffix}": max(latencies),
        f"tip_intake_rate_per_s{suffix}": len(requests) / elapsed,
        f"tip_intake_service_cpu_ms_per_tip{suffix}": cpu_ms_per_tip,
        **({f"tip_clustering_cpu_ms_per_tip{suffix}": worker_cpu_ms_per_tip} if worker_pid else {}),
        **lag,
    }


async def _service_clustering(base: str, url: str, data: list[dict], suffix: str) -> dict[str, float]:
    """Post the labelled tips in the order seen, read back which case each joined, score pairwise."""
    ordered = sorted(data, key=lambda t: t["seen_at"])
    tip_of: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for t in ordered:
            body = {"category": t["category"], "text": t["text"], "seen_at": t["seen_at"], "channel": "app"}
            if t["lat"] is not None:
                body["lat"], body["lon"] = t["lat"], t["lon"]
            if t["place_text"]:
                body["place_text"] = t["place_text"]
            response = await client.post("/v1/tips", json=body)
            tip_of[response.json()["tip_id"]] = t["id"]
    rows = await _placed_rows(url, list(tip_of), "id, case_id", "labelled tips")  # the worker places them just after intake
    predicted = {tip_of[str(r.id)]: str(r.case_id) for r in rows}
    precision, recall = clustering.pairwise_precision_recall(predicted, {t["id"]: t["incident"] for t in data})
    return {f"cluster_precision_service{suffix}": precision, f"cluster_recall_service{suffix}": recall}


SCALEOUT_TIPS = 6000  # a backlog of ~20 s of one worker's clustering


async def _post_backlog(base: str, data: list[dict]) -> list[str]:
    """Post `SCALEOUT_TIPS` tips (labelled texts at shifted places, seen a second apart) one after the other to an API
    without a worker, so that every run has the same tips in the same order; their ids in order."""
    conns = await open_connections(int(base.rsplit(":", 1)[1]), 1)
    seen = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    try:
        requests = [build_request("POST", "/v1/tips", body={**body, "seen_at": (seen + timedelta(seconds=n)).isoformat()})
                    for n, (body, _) in enumerate(_tip_bodies(data, SCALEOUT_TIPS, seed=11))]
        _, answers, _ = await open_loop(conns, requests, rate=10_000)
    finally:
        for c in conns:
            c.close()
    if any(status != 202 for status, _ in answers):
        raise RuntimeError(f"backlog not accepted: {sorted({status for status, _ in answers})}")
    return [orjson.loads(body)["tip_id"] for _, body in answers]


async def _backlog_placed(url: str, timeout_s: float) -> None:
    """Wait until no tip waits for a case (one light count a second, not to load the database being measured)."""
    engine = make_engine(url, pool_size=1)
    try:
        for _ in range(int(timeout_s)):
            async with engine.connect() as conn:
                if not await conn.scalar(text("SELECT count(*) FROM tips WHERE case_id IS NULL AND clustering_failed_at IS NULL")):
                    return
            await asyncio.sleep(1.0)
        raise RuntimeError(f"the backlog still waits for cases after {timeout_s:.0f} s")
    finally:
        await engine.dispose()


async def _hold_backlog(url: str, *, held: bool) -> None:
    """Set the waiting backlog aside (`held`), so workers started one after another all find it at once when it is
    released (and NOTIFYed); otherwise the first worker drains part of it while the next one starts."""
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            if held:
                await conn.execute(text("UPDATE tips SET clustering_failed_at = now(), clustering_error = 'bench: held' WHERE case_id IS NULL"))
            else:
                await conn.execute(text("UPDATE tips SET clustering_failed_at = NULL, clustering_error = NULL WHERE clustering_error = 'bench: held'"))
                await conn.execute(text(f"NOTIFY {TIPS_WAITING_CHANNEL}"))
    finally:
        await engine.dispose()


async def _clustering_scaleout(stack, data: list[dict]) -> dict[str, float]:
    """Tips per second that 1 and 2 clustering worker processes place from one backlog (first to last placement; the
    backlog is held until every worker has started, so they all find it at once), the ratio and the workers' CPU per tip. (That two writers reach one writer's cases
    is tested on the tuning set, tests/intel/test_clustering_worker.py: here texts repeat, equal scores fall to the
    case ids, random per run, and runs differ even with one writer.)"""
    figures = {}
    for workers in (1, 2):
        await settle_database(stack)
        prefix = stack.new_prefix()
        await stack.ensure_topics(prefix)
        url = await stack.create_database(f"bench_intel_scaleout{workers}_{uuid.uuid4().hex[:6]}")
        api, base = await _start_service(stack, url, prefix, run_clustering="false")
        try:
            tip_ids = await _post_backlog(base, data)
        finally:
            api.stop()
        await _hold_backlog(url, held=True)
        await settle_database(stack)
        started = await asyncio.gather(*(_start_service(stack, url, prefix, db_pool_size="5") for _ in range(workers)), return_exceptions=True)
        processes = [s[0] for s in started if not isinstance(s, BaseException)]
        cpu_before = sum(process_cpu_seconds(p.process.pid) for p in processes)
        try:
            if len(processes) < workers:
                raise next(s for s in started if isinstance(s, BaseException))
            await asyncio.sleep(2.0)  # every worker past its segmenter warm-up
            await _hold_backlog(url, held=False)
            await _backlog_placed(url, timeout_s=300)
            cpu = sum(process_cpu_seconds(p.process.pid) for p in processes) - cpu_before
        finally:
            for process in processes:
                process.stop()
        rows = await _placed_rows(url, tip_ids, "extract(epoch FROM clustered_at) AS at", "backlog")
        span = float(max(r.at for r in rows) - min(r.at for r in rows))
        figures[f"clustering_{workers}_workers_tips_per_s"] = len(rows) / span
        figures[f"clustering_{workers}_workers_cpu_ms_per_tip"] = cpu * 1000 / len(rows)
    figures["clustering_scaleout_ratio"] = figures["clustering_2_workers_tips_per_s"] / figures["clustering_1_workers_tips_per_s"]
    return figures


def _features(data: list[dict]) -> list[clustering.TipFeatures]:
    return [
        clustering.TipFeatures(t["id"], t["category"], t["text"], datetime.fromisoformat(t["seen_at"]), t["lat"], t["lon"], t["place_text"])
        for t in data
    ]


def _offline_clustering(data: list[dict], suffix: str, *, suggestions: bool = False) -> dict[str, float]:
    """Pairwise precision/recall of the pure module on one labelled set (and, when asked, suggestion recall at 3)."""
    tips = _features(data)
    truth = {t["id"]: t["incident"] for t in data}
    started = time.perf_counter()
    predicted = clustering.cluster_offline(tips)
    elapsed = time.perf_counter() - started
    precision, recall = clustering.pairwise_precision_recall(predicted, truth)
    figures = {f"cluster_precision{suffix}": precision, f"cluster_recall{suffix}": recall, f"cluster_ms_per_tip{suffix}": elapsed * 1000 / len(tips)}
    if suggestions:
        at_3, split_cases = clustering.suggestion_recall(tips, predicted, truth)
        apart, _ = clustering.suggestion_recall(tips, {t.tip_id: t.tip_id for t in tips}, truth)  # every tip a case of its own
        figures |= {f"suggest_recall_at_3{suffix}": at_3, f"suggest_split_cases{suffix}": float(split_cases),
                    f"suggest_recall_at_3_tips_apart{suffix}": apart}
    return figures


def _cpu_at_1000_cases(background: list[dict], probes: list[dict], open_cases: int = 1000, seed: int = 17) -> float:
    """CPU ms the pure module spends on one new tip with `open_cases` open cases (1-3 tips each, spread over the
    county and the last 10 days), candidates chosen as the worker's SQL chooses them; case tips already analysed
    (the worker's caches), the new tip's text not."""
    rng = random.Random(seed)
    start = min(datetime.fromisoformat(t["seen_at"]) for t in probes)
    cases = []
    for i in range(open_cases):
        lat, lon, at = rng.uniform(29.74, 30.0), rng.uniform(119.83, 120.12), start - timedelta(hours=rng.uniform(0.5, 240))
        rows = [background[(i * 3 + k) % len(background)] for k in range(rng.randint(1, 3))]
        members = [clustering.TipFeatures(f"bg-{i}-{k}", rows[0]["category"], r["text"], at, lat + rng.uniform(-0.003, 0.003), lon,
                                          r["place_text"]) for k, r in enumerate(rows)]
        cases.append((clustering.CaseProfile(f"case-{i}", rows[0]["category"], members), at, lat, lon))
    clustering.text_profile.cache_clear()
    for case, *_ in cases:
        for member in case.tips:
            clustering.text_profile(member.text, member.category)
            clustering.text_profile(f"{member.text} {member.place_text}", member.category)
    tips = _features(probes)
    started = time.process_time()
    for tip in tips:
        near = [
            (at, case) for case, at, lat, lon in cases
            if case.category == tip.category and at >= tip.at - timedelta(days=10)
            and (tip.lat is None or tip.lon is None or (abs(lat - tip.lat) < 0.12 and abs(lon - tip.lon) < 0.12))
        ]
        clustering.best_case(tip, [case for _, case in sorted(near, key=lambda p: p[0], reverse=True)[:50]])
    return (time.process_time() - started) * 1000 / len(tips)


async def run(stack) -> dict[str, float]:
    """Measure intake latency at 100 tips/s and clustering quality; returns only measured figures."""
    data = json.loads(LABELLED.read_text(encoding="utf-8"))
    free_sets = load_sets()
    free = [t for rows in free_sets.values() for t in rows]
    clustering.warm_up()
    figures = _offline_clustering(data, "_templates")
    figures |= _offline_clustering(free, "", suggestions=True)
    for name, rows in free_sets.items():
        figures |= _offline_clustering(rows, f"_{name}", suggestions=True)
    figures["cluster_ms_per_tip_at_1000_cases"] = _cpu_at_1000_cases(data, free)
    figures.update(await _clustering_scaleout(stack, data))
    for purpose in ("intake", "intake_one_process", "clusters", "clusters_free"):
        if purpose != "intake":
            await settle_database(stack)  # the previous run's writes flushed first
        prefix = stack.new_prefix()
        await stack.ensure_topics(prefix)
        url = await stack.create_database(f"bench_intel_{purpose}_{uuid.uuid4().hex[:6]}")
        processes = []
        try:
            if purpose == "intake":
                api, base = await _start_service(stack, url, prefix, run_clustering="false")
                worker, _ = await _start_service(stack, url, prefix, db_pool_size="5")
                processes = [api, worker]
                pids = {"pid": api.process.pid, "worker_pid": worker.process.pid}
                figures.update(await cpu_steadiness(3.0, prefix="intel_machine"))
                figures.update(await _intake(stack, base, data, url=url, rate=20, seconds=15, suffix="_at_20_per_s", **pids))
                figures.update(await _intake(stack, base, data, url=url, **pids))
            elif purpose == "intake_one_process":
                service, base = await _start_service(stack, url, prefix)
                processes = [service]
                figures.update(await _intake(stack, base, data, pid=service.process.pid, url=url, suffix="_one_process"))
            else:
                service, base = await _start_service(stack, url, prefix)
                processes = [service]
                if purpose == "clusters":
                    figures.update(await _service_clustering(base, url, data, "_templates"))
                else:
                    figures.update(await _service_clustering(base, url, free, ""))
        finally:
            for process in processes:
                process.stop()
    return figures
