"""Demo data: the brief's county, loaded idempotently, announced to the other services through the outbox.

    python -m shouwang_dev.demo --database-url postgresql+asyncpg://…/registry --volunteers 5000

One county alliance, 10 town alliances, 10 industry branches, 208 village/community stations spread over
the towns, two grids per station each with a grid worker, the 16 specialised teams (seeded by the
migration), a few thousand volunteers (core/ordinary, recruitment modes, skills, certificates,
availability), staff logins, and a year of training sessions with attendance. Everything has a
deterministic id or natural key, so running it again adds nothing. Org units and volunteers are
written with their `OrgUnitUpserted` / `VolunteerState` events (and attendance with
`TrainingAttended`) into the outbox; the running registry publishes them.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
from sqlalchemy import text

from shouwang_shared.contracts.registry import TrainingAttended
from shouwang_shared.db import make_engine, make_session_factory
from shouwang_shared.migrations import migrate
from shouwang_shared.outbox import enqueue_many, outbox_row
from shouwang_shared.pii import PiiCipher

import registry
from registry.config import RegistrySettings
from registry.national_id import make_national_id
from registry.orgs import UNIT_COLUMNS, publish_units
from registry.roster import PreparedChunk, write_chunk
from registry.staff import STAFF_COLUMNS, password_hasher, publish_staff_state
from registry.training import reassess
from registry.volunteers import seal_identity

MIGRATIONS = Path(registry.__file__).parent / "migrations"  # registry's own schema
NAMESPACE = uuid.UUID("5a0e6f1c-8d1b-4c55-9d0a-2f6a3b7c9e11")
DEV_PASSWORD = "shouwang-dev"
DEV_PHONES = ("13800000001", "13800000002")
CENTRE = (30.2, 120.2)

COUNTY = "守望县平安法治志愿者联盟"
TOWNS = ["城关街道", "东湖街道", "南苑街道", "星桥街道", "塘栖镇", "崇贤街道", "仁和街道", "良渚街道", "径山镇", "瓶窑镇"]
BRANCHES = ["环卫行业分会", "城管协管分会", "出租车驾驶员分会", "快递物流分会", "物业保安分会",
            "商贸市场分会", "金融网点分会", "医疗卫生分会", "教育系统分会", "法律服务分会"]
VILLAGE_HEADS = ["杨家", "桥头", "沈家", "前进", "红旗", "光明", "新港", "洪桥", "荷花", "塘南", "石桥", "东风", "五星", "长乐",
                 "双溪", "永安", "白塔", "凤凰", "青山", "金星", "联合", "太平", "黄湖", "大陆", "安溪", "西塘", "南山", "北港"]
VILLAGE_TAILS = ["村", "社区"]
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程魏苏吕丁任沈姚卢"
    "姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀兰", "霞",
         "平", "刚", "桂英", "建华", "建国", "志强", "海燕", "晓明", "文静", "国庆", "玉兰", "红梅", "子涵", "浩然", "雨轩", "思远"]
SKILLS = ["急救", "驾驶", "心理疏导", "调解", "法律咨询", "摄影", "无人机", "消防", "外语", "手语", "计算机", "电工", "游泳", "巡逻"]
CERTIFICATES = ["first_aid", "fire_safety", "mediator", "driver_c1", "psych_counsellor", "lifeguard", "lawyer"]
TEAMS = ["psychological_counselling", "traffic_civility", "dispute_mediation", "legal_publicity", "voluntary_patrol",
         "anti_fraud", "drug_prevention", "fire_safety", "emergency_rescue", "medical_aid", "youth_care", "campus_safety",
         "information_collection", "community_correction", "red_armband", "legal_aid"]
REGIONS = ["330110", "330102", "330106", "330108", "330122"]


def stable_id(*parts: object) -> uuid.UUID:
    """The same id for the same demo thing, every run."""
    return uuid.uuid5(NAMESPACE, "/".join(str(p) for p in parts))


def near(rng: random.Random, lat: float, lon: float, spread: float) -> tuple[float, float]:
    """A point within `spread` degrees of (lat, lon)."""
    return round(lat + rng.uniform(-spread, spread), 6), round(lon + rng.uniform(-spread, spread), 6)


def station_names() -> list[str]:
    """208 distinct village/community names."""
    names = [h + m + t for h in VILLAGE_HEADS for m in ("", "新", "上", "下") for t in VILLAGE_TAILS]
    random.Random(7).shuffle(names)
    return names[:208]


async def load_units(sessions) -> tuple[dict, list[dict], list[dict], list[dict]]:
    """County, towns, branches and stations (created once, with events); returns them as row dicts."""
    rng = random.Random(1)
    plan = []
    county_id = stable_id("county")
    plan.append((county_id, COUNTY, "county", None, f"/{county_id}", CENTRE))
    towns = []
    for i, name in enumerate(TOWNS):
        tid = stable_id("town", i)
        towns.append(tid)
        plan.append((tid, name, "town", county_id, f"/{county_id}/{tid}", near(rng, *CENTRE, 0.12)))
    for i, name in enumerate(BRANCHES):
        bid = stable_id("branch", i)
        plan.append((bid, name, "branch", county_id, f"/{county_id}/{bid}", near(rng, *CENTRE, 0.05)))
    town_coords = {p[0]: p[5] for p in plan if p[2] == "town"}
    for i, name in enumerate(station_names()):
        tid = towns[i % len(towns)]
        sid = stable_id("station", i)
        plan.append((sid, name, "station", tid, f"/{county_id}/{tid}/{sid}", near(rng, *town_coords[tid], 0.03)))
    async with sessions() as session, session.begin():
        created = (await session.execute(
            text(f"INSERT INTO org_units (id, name, kind, parent_id, path, depth, lat, lon) "
                 f"SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:names AS text[]), CAST(:kinds AS text[]), CAST(:parents AS uuid[]), "
                 f"CAST(:paths AS text[]), CAST(:depths AS smallint[]), CAST(:lats AS float8[]), CAST(:lons AS float8[])) "
                 f"ON CONFLICT (id) DO NOTHING RETURNING {UNIT_COLUMNS}"),
            {"ids": [p[0] for p in plan], "names": [p[1] for p in plan], "kinds": [p[2] for p in plan],
             "parents": [p[3] for p in plan], "paths": [p[4] for p in plan], "depths": [p[4].count("/") - 1 for p in plan],
             "lats": [p[5][0] for p in plan], "lons": [p[5][1] for p in plan]},
        )).mappings().all()
        await publish_units(session, created)
        rows = (await session.execute(text(f"SELECT {UNIT_COLUMNS} FROM org_units WHERE path LIKE :p ORDER BY path"),
                                      {"p": f"/{county_id}%"})).mappings().all()
    units = [dict(r) for r in rows]
    by_kind = {k: [u for u in units if u["kind"] == k] for k in ("county", "town", "branch", "station")}
    stations = sorted(by_kind["station"], key=lambda u: [p[0] for p in plan].index(u["id"]))
    return by_kind["county"][0], sorted(by_kind["town"], key=lambda u: towns.index(u["id"])), by_kind["branch"], stations


async def load_grids_and_staff(sessions, *, county: dict, towns: list[dict], stations: list[dict], password_hash: str) -> list[dict]:
    """Two grids per station, each with a grid worker, and the named dev logins; returns the grids."""
    grids, staff = [], []
    for i, station in enumerate(stations):
        for g in range(2):
            worker = stable_id("grid-worker", i, g)
            grids.append({"id": stable_id("grid", i, g), "name": f"第{g + 1}网格", "station_id": station["id"],
                          "org_path": station["path"], "grid_worker_id": worker})
            staff.append((worker, f"gw{i:03d}{g}", "grid_worker", f"{station['name']}第{g + 1}网格员", station["id"], station["path"]))
    staff += [
        (stable_id("staff", "admin"), "admin", "county_admin", "县联盟管理员", county["id"], county["path"]),
        (stable_id("staff", "ops"), "ops", "operator", "平台运维", county["id"], county["path"]),
        (stable_id("staff", "analyst"), "analyst", "analyst", "情报研判员", county["id"], county["path"]),
        (stable_id("staff", "liaison"), "liaison", "police_liaison", "公安联络员", county["id"], county["path"]),
        (stable_id("staff", "town1"), "town1", "town_admin", f"{towns[0]['name']}管理员", towns[0]["id"], towns[0]["path"]),
        (stable_id("staff", "station1"), "station1", "station_admin", f"{stations[0]['name']}站长", stations[0]["id"], stations[0]["path"]),
    ]
    async with sessions() as session, session.begin():
        created = (await session.execute(
            text("INSERT INTO staff (id, username, password_hash, role, display_name, org_unit_id, scope_path) "
                 "SELECT i, u, :hash, r, d, o, s FROM unnest(CAST(:ids AS uuid[]), CAST(:users AS text[]), CAST(:roles AS text[]), "
                 "CAST(:names AS text[]), CAST(:units AS uuid[]), CAST(:scopes AS text[])) AS t(i, u, r, d, o, s) "
                 f"ON CONFLICT DO NOTHING RETURNING {STAFF_COLUMNS}"),
            {"hash": password_hash, "ids": [s[0] for s in staff], "users": [s[1] for s in staff], "roles": [s[2] for s in staff],
             "names": [s[3] for s in staff], "units": [s[4] for s in staff], "scopes": [s[5] for s in staff]},
        )).mappings().all()
        for row in created:  # announced like any account made through the API, so consumers know every account
            await publish_staff_state(session, row)
        await session.execute(
            text("INSERT INTO grids (id, name, station_id, org_path, grid_worker_id) "
                 "SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:names AS text[]), CAST(:stations AS uuid[]), CAST(:paths AS text[]), "
                 "CAST(:workers AS uuid[])) ON CONFLICT DO NOTHING"),
            {"ids": [g["id"] for g in grids], "names": [g["name"] for g in grids], "stations": [g["station_id"] for g in grids],
             "paths": [g["org_path"] for g in grids], "workers": [g["grid_worker_id"] for g in grids]},
        )
    return grids


def volunteer_records(cipher: PiiCipher, *, count: int, grids: list[dict], branches: list[dict], stations: list[dict]) -> list[tuple]:
    """`count` made-up volunteers as insert records (deterministic people; fresh ciphertexts)."""
    rng = random.Random(42)
    station_coords = {s["id"]: (s["lat"], s["lon"]) for s in stations}
    today = date.today()
    records = []
    for i in range(count):
        born = date(1955, 1, 1) + timedelta(days=(i * 7919) % 18250)  # a bijection: no two people share (birth date, sequence)
        national_id = make_national_id(REGIONS[i % len(REGIONS)], born, (i // 18250) % 1000)
        phone = DEV_PHONES[i] if i < len(DEV_PHONES) else f"159{(i * 7_919_113) % 10**8:08d}"
        name = rng.choice(SURNAMES) + rng.choice(GIVEN)
        identity = seal_identity(cipher, real_name=name, national_id=national_id, phone=phone)
        if i % 10 == 9:
            home, grid = rng.choice(branches), None
            lat, lon = near(rng, home["lat"], home["lon"], 0.05)
        else:
            grid = grids[i % len(grids)]
            home = stations[(i % len(grids)) // 2]
            lat, lon = near(rng, *station_coords[home["id"]], 0.01)
        core = i < 2 or rng.random() < 0.15
        mode = rng.choices(["long_term", "emergency", "reserve"], weights=[70, 15, 15])[0]
        certificates = [{"code": c, "expires_on": str(today + timedelta(days=rng.randint(-60, 1000)))}
                        for c in rng.sample(CERTIFICATES, rng.choice([0, 0, 1, 1, 2]))]
        availability = [{"weekday": d, "start": rng.choice(["08:00", "09:00", "14:00", "18:00"]), "end": "22:00"}
                        for d in sorted(rng.sample(range(7), rng.randint(1, 3)))]
        status = "active" if i < 2 else rng.choices(["active", "applicant", "suspended"], weights=[90, 8, 2])[0]
        records.append((
            stable_id("volunteer", i), identity.real_name, identity.display_name, identity.national_id_enc,
            identity.national_id_index, identity.national_id_masked, identity.phone_enc, identity.phone_index,
            identity.phone_masked, identity.birth_date, identity.gender, home["id"], home["path"],
            grid["id"] if grid else None, grid["grid_worker_id"] if grid else None, lat, lon, core, mode,
            rng.sample(["professional", "public_welfare", "governance"], rng.randint(1, 2)),
            rng.sample(TEAMS, rng.choice([0, 1, 1, 2])), rng.sample(SKILLS, rng.randint(0, 3)),
            orjson.dumps(certificates).decode(), orjson.dumps(availability).decode(), status,
            "" if status != "suspended" else "多次无故缺勤", today - timedelta(days=rng.randint(30, 1500)),
        ))
    return records


async def load_training(sessions, *, county: dict, towns: list[dict], volunteer_ids: list[uuid.UUID]) -> int:
    """37 training sessions over the past year (ethics, skills, discipline) and who attended them; returns new attendances."""
    rng = random.Random(99)
    today = date.today()
    plan = []
    for i in range(37):
        unit = county if i % 3 == 0 else towns[i % len(towns)]
        level = "county" if unit is county else "town"
        plan.append((stable_id("training", i), f"{'县级' if level == 'county' else '镇级'}{['职业道德', '业务技能', '纪律作风'][i % 3]}培训（第{i + 1}期）",
                     level, ["ethics", "skills", "discipline"][i % 3], unit, today - timedelta(days=rng.randint(1, 360))))
    async with sessions() as session, session.begin():
        await session.execute(
            text("INSERT INTO training_sessions (id, title, level, topic, org_unit_id, org_path, held_on, created_by) "
                 "SELECT *, 'demo' FROM unnest(CAST(:ids AS uuid[]), CAST(:titles AS text[]), CAST(:levels AS text[]), "
                 "CAST(:topics AS text[]), CAST(:units AS uuid[]), CAST(:paths AS text[]), CAST(:days AS date[])) ON CONFLICT DO NOTHING"),
            {"ids": [p[0] for p in plan], "titles": [p[1] for p in plan], "levels": [p[2] for p in plan], "topics": [p[3] for p in plan],
             "units": [p[4]["id"] for p in plan], "paths": [p[4]["path"] for p in plan], "days": [p[5] for p in plan]},
        )
        pairs = [(p[0], vid) for vid in volunteer_ids for p in rng.sample(plan, rng.choice([0, 1, 1, 2, 4]))]
        inserted = (await session.execute(
            text("INSERT INTO training_attendance (id, session_id, volunteer_id, attended_on, recorded_by) "
                 "SELECT gen_random_uuid(), s, v, t.held_on, 'demo' FROM unnest(CAST(:s AS uuid[]), CAST(:v AS uuid[])) AS a(s, v) "
                 "JOIN training_sessions t ON t.id = a.s ON CONFLICT DO NOTHING "
                 "RETURNING id, session_id, volunteer_id, attended_on"),
            {"s": [p[0] for p in pairs], "v": [p[1] for p in pairs]},
        )).mappings().all()
        if inserted:
            meta = {p[0]: p for p in plan}
            homes = dict((await session.execute(
                text("SELECT id, org_unit_id || '|' || org_path FROM volunteers WHERE id = ANY(CAST(:ids AS uuid[]))"),
                {"ids": list({a["volunteer_id"] for a in inserted})},
            )).all())
            events = []
            for a in inserted:
                unit_id, path = homes[a["volunteer_id"]].split("|", 1)
                session_plan = meta[a["session_id"]]
                payload = TrainingAttended(
                    attendance_id=str(a["id"]), volunteer_id=str(a["volunteer_id"]), session_id=str(a["session_id"]),
                    level=session_plan[2], topic=session_plan[3], attended_on=a["attended_on"], org_unit_id=unit_id, org_path=path,
                )
                events.append(outbox_row(payload, subject=payload.volunteer_id))
            await enqueue_many(session, events)
    return len(inserted)


async def load_demo(database_url: str, *, volunteers: int, settings: RegistrySettings | None = None) -> dict:
    """Load the demo county into the registry database; returns what was created and the dev logins."""
    settings = settings or RegistrySettings(database_url=database_url)
    cipher = settings.pii_cipher()
    engine = make_engine(database_url, pool_size=4)
    try:
        await migrate(engine, MIGRATIONS)
        sessions = make_session_factory(engine)
        county, towns, branches, stations = await load_units(sessions)
        hasher = password_hasher(settings.argon2_time_cost, settings.argon2_memory_kib)
        existing = (await _scalar(sessions, "SELECT password_hash FROM staff WHERE username = 'admin'"))
        grids = await load_grids_and_staff(sessions, county=county, towns=towns, stations=stations,
                                           password_hash=existing or await asyncio.to_thread(hasher.hash, DEV_PASSWORD))
        records = await asyncio.to_thread(volunteer_records, cipher, count=volunteers, grids=grids, branches=branches, stations=stations)
        imported = 0
        for start in range(0, len(records), 5000):
            added, _ = await write_chunk(sessions, PreparedChunk(records[start:start + 5000], [], 0))
            imported += added
        attended = await load_training(sessions, county=county, towns=towns, volunteer_ids=[r[0] for r in records])
        async with sessions() as session, session.begin():
            await reassess(session, volunteer_ids=None, as_of=date.today(), notice_days=settings.training_notice_days, path=county["path"])
        counts = dict(await _rows(sessions, "SELECT kind, count(*) FROM org_units GROUP BY kind"))
        total = await _scalar(sessions, "SELECT count(*) FROM volunteers")
    finally:
        await engine.dispose()
    return {
        "org_units": counts, "grids": len(grids), "volunteers_added": imported, "volunteers_total": total,
        "attendance_added": attended, "county_id": str(county["id"]), "county_path": county["path"],
        "town_path": towns[0]["path"], "station_path": stations[0]["path"],
        "logins": {"admin": "county_admin", "ops": "operator", "analyst": "analyst", "liaison": "police_liaison",
                   "town1": f"town_admin · {towns[0]['name']}", "station1": f"station_admin · {stations[0]['name']}",
                   "gw0000": f"grid_worker · {stations[0]['name']}第1网格"},
        "password": DEV_PASSWORD, "volunteer_phones": list(DEV_PHONES[:min(volunteers, 2)]),
    }


async def _scalar(sessions, sql: str):
    async with sessions() as session:
        return (await session.execute(text(sql))).scalar()


async def _rows(sessions, sql: str):
    async with sessions() as session:
        return (await session.execute(text(sql))).all()


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, load the demo county and print the dev logins."""
    parser = argparse.ArgumentParser(prog="python -m shouwang_dev.demo", description="载入演示县数据（可重复运行）")
    parser.add_argument("--database-url", default=None, help="registry database (default: DATABASE_URL)")
    parser.add_argument("--volunteers", type=int, default=5000)
    args = parser.parse_args(argv)
    settings = RegistrySettings() if args.database_url is None else RegistrySettings(database_url=args.database_url)
    if not settings.pii_key or not settings.pii_index_key:
        print("请设置 PII_KEY 与 PII_INDEX_KEY（与登记服务相同的密钥）", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    result = asyncio.run(load_demo(settings.database_url, volunteers=args.volunteers, settings=settings))
    seconds = (datetime.now(UTC) - started).total_seconds()
    units = result["org_units"]
    print(f"演示县已就绪（{seconds:.1f} 秒）：县 {units.get('county', 0)}，镇街 {units.get('town', 0)}，行业分会 {units.get('branch', 0)}，"
          f"站点 {units.get('station', 0)}，网格 {result['grids']}，志愿者 {result['volunteers_total']}（本次新增 {result['volunteers_added']}），"
          f"培训签到新增 {result['attendance_added']}")
    print(f"开发登录（密码均为 {result['password']}）：")
    for username, role in result["logins"].items():
        print(f"  {username:<10} {role}")
    print("可用验证码登录的志愿者手机号：" + "、".join(result["volunteer_phones"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
