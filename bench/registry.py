"""Registry figures: roster import rate (100,000-row CSV, encryption included), registration latency at 100/s over HTTP,
and how many volunteer cards one core verifies per second. With `BENCH_IMPORT_1M=1`, also the province-scale import
of 1,000,000 rows (issue #22) with its peak memory: opt-in, as it takes minutes and ~1 GB."""

from __future__ import annotations

import csv
import io
import os
import resource
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from statistics import median_high

import orjson
from sqlalchemy import text

from shouwang_shared.auth import Role
from shouwang_shared.contracts.card import CardClaims, CardStatus, CardVerifier, encode_card, generate_private_key_pem, key_id, load_private_key
from shouwang_shared.db import make_engine, make_session_factory
from shouwang_shared.migrations import migrate

from bench.httpload import build_request, open_connections, open_loop, start_service_process
from bench.stats import cpu_steadiness, percentile, process_cpu_seconds, settle_database
from registry.config import RegistrySettings
from registry.main import MIGRATIONS
from registry.national_id import make_national_id
from registry.roster import import_roster

IMPORT_ROWS = 100_000
IMPORT_1M_ROWS = 1_000_000
IMPORT_RUNS = 3  # the host's speed drifts by up to ~40 % over minutes: the median of three imports, best and worst beside it
REGISTER_RATE_PER_S = 100
REGISTER_SECONDS = 30
CARD_VERIFY_SECONDS = 3.0
CARD_VERIFY_RUNS = 3
CARD_REVOKED = 10_000  # a revocation list far longer than a county's day of suspensions
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀兰", "霞"]


def settings_for(stack, url: str) -> RegistrySettings:
    env = stack.service_env("registry", url, argon2_time_cost="1", argon2_memory_kib="8192", log_level="WARNING",
                            outbox_poll_interval_s="0.05")
    return RegistrySettings(**{k.lower(): v for k, v in env.items()})


def person(i: int, *, phone_prefix: str = "13") -> tuple[str, str, str]:
    """A distinct made-up person number `i`: name, identity number, phone."""
    born = date(1960, 1, 1) + timedelta(days=(i // 1000) % 15000)
    national_id = make_national_id(("330102", "330106", "330110", "330122")[i % 4], born, i % 1000)
    name = SURNAMES[i % len(SURNAMES)] + GIVEN[(i // 20) % len(GIVEN)]
    return name, national_id, f"{phone_prefix}{i % 10}{i:08d}"[:11]


def roster_csv(rows: int, stations: list[str]) -> bytes:
    """A roster of `rows` distinct people spread over `stations` (by id)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["姓名", "身份证号", "手机号", "所属组织", "骨干", "招募方式", "服务类型", "专业队伍", "技能", "纬度", "经度"])
    for i in range(rows):
        name, national_id, phone = person(i)
        writer.writerow([name, national_id, phone, stations[i % len(stations)], "是" if i % 5 == 0 else "否",
                         ("长期", "应急", "储备")[i % 3], "治理;公益", "义务巡防队" if i % 3 else "交通文明劝导队",
                         "急救;驾驶" if i % 2 else "巡逻", f"{30.1 + (i % 200) / 1000:.4f}", f"{120.1 + (i % 300) / 1000:.4f}"])
    return out.getvalue().encode("utf-8")


async def seed_units(sessions, towns: int = 10, stations_per_town: int = 5) -> tuple[str, list[str]]:
    """A county, towns and stations written directly; returns (county id, station ids)."""
    county = str(uuid.uuid4())
    station_ids = []
    async with sessions() as session, session.begin():
        await session.execute(text("INSERT INTO org_units (id, name, kind, path, depth) VALUES (:id, '测评县联盟', 'county', :p, 0)"),
                              {"id": county, "p": f"/{county}"})
        for t in range(towns):
            town = str(uuid.uuid4())
            await session.execute(text("INSERT INTO org_units (id, name, kind, parent_id, path, depth) VALUES (:id, :n, 'town', :c, :p, 1)"),
                                  {"id": town, "n": f"测评镇{t}", "c": county, "p": f"/{county}/{town}"})
            for s in range(stations_per_town):
                station = str(uuid.uuid4())
                station_ids.append(station)
                await session.execute(
                    text("INSERT INTO org_units (id, name, kind, parent_id, path, depth) VALUES (:id, :n, 'station', :t, :p, 2)"),
                    {"id": station, "n": f"测评镇{t}村{s}", "t": town, "p": f"/{county}/{town}/{station}"})
    return county, station_ids


def children_cpu() -> float:
    """CPU seconds of this process's finished child processes (the import's worker pool once it is shut down)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def import_per_s(stack, settings: RegistrySettings) -> tuple[float, float]:
    """Volunteers imported per second from a 100,000-row CSV (parse, validate, encrypt, index, COPY, events),
    and the client's CPU time per row in µs: this process and the worker processes it ran (not the database's share)."""
    engine = make_engine(settings.database_url, pool_size=4)
    try:
        await migrate(engine, MIGRATIONS)
        sessions = make_session_factory(engine)
        _, stations = await seed_units(sessions)
        raw = roster_csv(IMPORT_ROWS, stations)
        cipher = settings.pii_cipher()
        started, cpu_started, children_started = time.perf_counter(), time.process_time(), children_cpu()
        report = await import_roster(sessions=sessions, cipher=cipher, raw=raw, chunk_size=5_000)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started + children_cpu() - children_started  # the pool is joined by now
        if report.imported != IMPORT_ROWS or report.errors:
            raise RuntimeError(f"import incomplete: {report.imported} imported, {len(report.errors)} errors, first {report.errors[:3]}")
        return report.imported / elapsed, cpu / report.imported * 1e6
    finally:
        await engine.dispose()


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM) since it was last reset, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def import_1m(stack) -> dict[str, float]:
    """The province-scale import: 1,000,000 distinct people over 300 stations in one file, its rate, and the peak
    memory of the importing process (reset just before) and of its largest worker process."""
    settings = settings_for(stack, await stack.create_database(f"bench_registry_import_1m_{uuid.uuid4().hex[:6]}"))
    engine = make_engine(settings.database_url, pool_size=4)
    try:
        await migrate(engine, MIGRATIONS)
        sessions = make_session_factory(engine)
        _, stations = await seed_units(sessions, towns=30, stations_per_town=10)
        raw = roster_csv(IMPORT_1M_ROWS, stations)
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM: the peak below is the import's, not the bench's
        started = time.perf_counter()
        report = await import_roster(sessions=sessions, cipher=settings.pii_cipher(), raw=raw, chunk_size=5_000)
        elapsed = time.perf_counter() - started
        if report.imported != IMPORT_1M_ROWS or report.errors:
            raise RuntimeError(f"import incomplete: {report.imported} imported, {len(report.errors)} errors, first {report.errors[:3]}")
        return {"registry_import_1m_per_s": report.imported / elapsed, "registry_import_1m_seconds": elapsed,
                "registry_import_1m_peak_rss_mb": peak_rss_mb(),
                "registry_import_1m_worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    finally:
        await engine.dispose()


async def register_p99_ms(stack, url: str) -> tuple[float, int, float, float]:
    """p99 latency of `POST /v1/registrations` (QR invite path) sent at 100/s for 30 s to the service in its own
    uvicorn process, failures, the service's CPU time per registration in ms (HTTP, registration, relay and
    consumers together), and the p50.

    Requests are sent open-loop (on schedule, whatever the answers) from pre-opened keep-alive connections,
    so a slow server shows up as latency; a failed request counts with the time it took.
    """
    env = stack.service_env("registry", url, argon2_time_cost="1", argon2_memory_kib="8192", log_level="WARNING")
    service = await start_service_process("registry", env)
    engine = make_engine(url, pool_size=1)
    conns = []
    try:
        sessions = make_session_factory(engine)
        county, stations = await seed_units(sessions, towns=1, stations_per_town=1)
        grid = str(uuid.uuid4())
        async with sessions() as session, session.begin():
            path = (await session.execute(text("SELECT path FROM org_units WHERE id = :id"), {"id": stations[0]})).scalar()
            await session.execute(text("INSERT INTO grids (id, name, station_id, org_path) VALUES (:id, '测评网格', :s, :p)"),
                                  {"id": grid, "s": stations[0], "p": path})
        conns = await open_connections(service.port, 32)
        admin = {"Authorization": f"Bearer {stack.token(Role.COUNTY_ADMIN, scope_path=f'/{county}')}"}
        status, body = await conns[0].send(build_request(
            "POST", "/v1/invites", body={"grid_id": grid, "max_uses": 10_000, "ttl_hours": 2}, headers=admin))
        if status != 201:
            raise RuntimeError(f"invite not created: {status} {body[:200]!r}")
        token = orjson.loads(body)["token"]

        def registration(i: int) -> bytes:
            name, national_id, phone = person(500_000 + i, phone_prefix="15")
            return build_request("POST", "/v1/registrations", body={
                "invite_token": token, "real_name": name, "national_id": national_id, "phone": phone,
                "skills": ["巡逻"], "availability": [{"weekday": 6, "start": "09:00", "end": "17:00"}],
            })

        await open_loop(conns, [registration(i) for i in range(100)], rate=200)  # warm-up: connections, pools, caches
        requests = [registration(100 + i) for i in range(REGISTER_RATE_PER_S * REGISTER_SECONDS)]
        cpu_before = process_cpu_seconds(service.process.pid)
        latencies, answers, _ = await open_loop(conns, requests, REGISTER_RATE_PER_S)
        cpu_ms = (process_cpu_seconds(service.process.pid) - cpu_before) * 1000 / len(requests)
        failures = [body[:200] for status, body in answers if status != 201]
        if len(failures) == len(requests):
            raise RuntimeError(f"every registration failed, first: {failures[0]!r}")
        return percentile(latencies, 0.99), len(failures), cpu_ms, percentile(latencies, 0.50)
    finally:
        for c in conns:
            c.close()
        await engine.dispose()
        service.stop()


def card_verify_per_s() -> tuple[float, float]:
    """Cards verified per CPU-second on one thread (a day-long card, issuer key cached, 10,000 revoked serials) — the
    median of three runs of 3 s — and the microseconds one check takes."""
    key = load_private_key(generate_private_key_pem())
    now = datetime.now(UTC).replace(microsecond=0)
    cards = [encode_card(CardClaims(
        serial=str(uuid.uuid4()), number=100_000 + i, name="张*", station_id=str(uuid.uuid4()), station="城关镇东门社区志愿服务站",
        teams=("voluntary_patrol", "traffic_civility"), star=1 + i % 5, issued_at=now, expires_at=now + timedelta(hours=24),
    ), key) for i in range(64)]
    verifier = CardVerifier({key_id(key.public_key()): key.public_key()}, revoked=(str(uuid.uuid4()) for _ in range(CARD_REVOKED)))
    rates = []
    for _ in range(CARD_VERIFY_RUNS):
        checked, started = 0, time.process_time()
        while time.process_time() - started < CARD_VERIFY_SECONDS:
            for card in cards:
                assert verifier.verify(card, now=now).status is CardStatus.VALID
            checked += len(cards)
        rates.append(checked / (time.process_time() - started))
    rate = median_high(rates)
    return round(rate), round(1e6 / rate, 1)


async def run(stack) -> dict[str, float]:
    """The registry figures, import and registration each on a fresh database."""
    cards_per_s, card_us = card_verify_per_s()
    await stack.ensure_topics()
    speed = await cpu_steadiness(3.0, prefix="registry_import_machine")
    imports = []
    for _ in range(IMPORT_RUNS):
        import_settings = settings_for(stack, await stack.create_database(f"bench_registry_import_{uuid.uuid4().hex[:6]}"))
        imports.append(await import_per_s(stack, import_settings))
        await settle_database(stack)  # each import's dirty pages are not the next figure's business
    rates, cpus = [r for r, _ in imports], [c for _, c in imports]
    steadiness = await cpu_steadiness(3.0, prefix="registry_machine")  # the host's CPU pauses just before, as context for the p99
    p99, failed, register_cpu_ms, p50 = await register_p99_ms(stack, await stack.create_database(f"bench_registry_register_{uuid.uuid4().hex[:6]}"))
    province = {}
    if os.environ.get("BENCH_IMPORT_1M") == "1":
        await settle_database(stack)
        province = await import_1m(stack)
    return {**province, "registry_import_per_s": median_high(rates), "registry_import_per_s_best": max(rates),
            "registry_import_per_s_worst": min(rates), "registry_import_client_cpu_us_per_row": median_high(cpus), **speed,
            "registry_register_p99_ms": p99, "registry_register_p50_ms": p50, "registry_register_failed": failed,
            "registry_register_service_cpu_ms_per_request": register_cpu_ms,
            "card_verify_per_s": cards_per_s, "card_verify_us": card_us,
            **steadiness}
