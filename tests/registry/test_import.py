"""Bulk CSV import of rosters: per-row errors with line and field, bulk insert, safe re-runs, encoding and column checks."""

from __future__ import annotations

import asyncio
import csv
import gc
import io
import uuid

from shouwang_dev.testing import eventually, read_topic
from shouwang_shared.contracts.registry import VolunteerState
from shouwang_shared.db import make_engine, make_session_factory
from shouwang_shared.envelope import Envelope
from shouwang_shared.pii import PiiCipher

from registry import importer
from registry.roster import import_roster, job_queue
from tests.registry.people import new_person

HEADER = ["姓名", "身份证号", "手机号", "所属组织", "网格", "骨干", "招募方式", "服务类型", "专业队伍", "技能", "纬度", "经度"]


def roster(rows: list[list[str]], header: list[str] = HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def good_row(station: dict, **overrides) -> list[str]:
    person = new_person()
    row = {"姓名": person["real_name"], "身份证号": person["national_id"], "手机号": person["phone"], "所属组织": station["name"],
           "网格": "", "骨干": "是", "招募方式": "长期", "服务类型": "治理;公益", "专业队伍": "义务巡防队;交通文明劝导队",
           "技能": "急救、驾驶", "纬度": "30.25", "经度": "120.17"}
    row.update(overrides)
    return [row[h] for h in HEADER]


async def upload(registry, body: bytes, headers=None, filename="roster.csv"):
    """Upload a roster and wait for its import job: the job as it ended (or the refusal of the upload)."""
    return await registry.upload_roster(body, headers, filename)


def cipher_of(registry) -> PiiCipher:
    """The registry's own PII cipher (its keys from the stack)."""
    return PiiCipher(*(registry.stack.service_env("registry", registry.database_url)[k] for k in ("PII_KEY", "PII_INDEX_KEY")))


async def import_over(registry, earlier: list[list[str]], rows: list[list[str]]):
    """Import `earlier`, then `rows` (each prepared in this process); the second import's report."""
    engine = make_engine(registry.database_url, pool_size=2)
    try:
        sessions, cipher = make_session_factory(engine), cipher_of(registry)
        first = await import_roster(sessions=sessions, cipher=cipher, raw=roster(earlier), workers=0)
        assert first.imported == len(earlier)
        return await import_roster(sessions=sessions, cipher=cipher, raw=roster(rows), workers=0)
    finally:
        await engine.dispose()


async def stored_at(registry, station: dict) -> tuple[int, int, int]:
    """How many volunteers of `station` are stored, and how many history rows and outbox rows they have."""
    counts = await registry.sql(
        "SELECT (SELECT count(*) FROM volunteers v WHERE v.org_unit_id = CAST(:s AS uuid)), "
        "(SELECT count(*) FROM volunteer_status_changes h JOIN volunteers v ON v.id = h.volunteer_id WHERE v.org_unit_id = CAST(:s AS uuid)), "
        "(SELECT count(*) FROM outbox o JOIN volunteers v ON o.key = v.id::text WHERE v.org_unit_id = CAST(:s AS uuid))", s=station["id"])
    return tuple(counts[0])


async def test_good_rows_are_imported_bad_rows_reported_and_a_rerun_adds_nothing(registry):
    _, station = await registry.town_with_station()
    rows = [good_row(station) for _ in range(5)]
    dup = list(rows[0])
    dup[2] = new_person()["phone"]
    bad = [
        good_row(station, 身份证号="330102199002301234"),  # line 7: 30 February
        good_row(station, 手机号="12345"),  # line 8
        good_row(station, 所属组织="不存在的村"),  # line 9
        good_row(station, 姓名="名" * 70),  # line 10
        good_row(station, 专业队伍="宇航队"),  # line 11
        good_row(station, 纬度="north"),  # line 12
        dup,  # line 13: same person as line 2
        ["只有", "三列", "数据"],  # line 14
    ]
    body = roster(rows + bad)
    response = await upload(registry, body)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["status"] == "done" and report["progress"] == 1.0 and report["total_lines"] == 13 and report["error_count"] == 8
    assert report["rows"] == 13 and report["imported"] == 5 and report["already_registered"] == 0
    assert [(e["line"], e["field"]) for e in report["errors"]] == [
        (7, "national_id"), (8, "phone"), (9, "org_unit"), (10, "real_name"), (11, "teams"), (12, "lat"), (13, "national_id"), (14, "row"),
    ]
    assert "出生日期" in report["errors"][0]["reason"]

    listed = (await registry.client.get(f"/v1/volunteers?org_unit_id={station['id']}&limit=50", headers=registry.admin)).json()
    assert listed["total"] == 5
    first = next(v for v in listed["items"] if v["phone_masked"].endswith(rows[0][2][-4:]))
    assert first["status"] == "active" and first["core"] is True and first["teams"] == ["voluntary_patrol", "traffic_civility"]
    assert first["service_types"] == ["governance", "public_welfare"] and first["skills"] == ["急救", "驾驶"]

    again = (await upload(registry, body)).json()
    assert again["imported"] == 0 and again["already_registered"] == 5 and len(again["errors"]) == 8
    assert (await registry.client.get(f"/v1/volunteers?org_unit_id={station['id']}", headers=registry.admin)).json()["total"] == 5

    async def states():
        messages = await read_topic(registry.stack.bootstrap_servers, f"{registry.stack.topic_prefix}{VolunteerState.TOPIC}")
        mine = [e for _, e, _ in messages if e.data.get("org_unit_id") == station["id"]]
        return mine if len(mine) >= 5 else None

    events = await eventually(states, message="a state event per imported volunteer")
    assert len(events) == 5
    raw = b"".join(e.to_bytes() for e in events).decode()
    for row in rows:
        assert row[1] not in raw and row[2] not in raw
    numbers = {v["id"]: v["volunteer_number"] for v in listed["items"]}
    for event in events:
        state = VolunteerState.model_validate(event.data)
        assert state.version == 1 and state.status == "active" and state.org_path == station["path"] and event.type == VolunteerState.TYPE
        assert state.volunteer_number == numbers[state.volunteer_id] and len(state.volunteer_number) == 8  # as on the card


async def test_wrong_encoding_or_columns_are_refused_naming_the_problem(registry):
    _, station = await registry.town_with_station()
    text_body = roster([good_row(station)]).decode("utf-8")
    gbk = await upload(registry, text_body.encode("gbk"))
    assert gbk.status_code == 422 and gbk.json()["detail"]["field"] == "file" and "GBK" in gbk.json()["detail"]["message"]
    unknown = await upload(registry, roster([["a", "b"]], header=["姓名", "年龄"]))
    assert unknown.status_code == 422 and unknown.json()["detail"]["field"] == "columns" and "年龄" in unknown.json()["detail"]["message"]
    missing = await upload(registry, roster([["张三"]], header=["姓名"]))
    assert missing.status_code == 422 and missing.json()["detail"]["code"] == "missing_columns"
    empty = await upload(registry, b"")
    assert empty.status_code == 422 and empty.json()["detail"]["field"] == "file"
    bom = await upload(registry, b"\xef\xbb\xbf" + text_body.encode("utf-8"))
    assert bom.status_code == 200 and bom.json()["imported"] == 1
    assert (await registry.client.get(f"/v1/volunteers?org_unit_id={station['id']}", headers=registry.admin)).json()["total"] == 1


async def test_a_town_admin_imports_only_into_their_town(registry):
    town, station = await registry.town_with_station()
    _, other_station = await registry.town_with_station()
    body = roster([good_row(station), good_row(other_station, 所属组织=other_station["id"])])
    report = (await upload(registry, body, headers=registry.auth("town_admin", scope=town["path"]))).json()
    assert report["imported"] == 1 and [(e["line"], e["field"]) for e in report["errors"]] == [(3, "org_unit")]
    assert (await upload(registry, body, headers=registry.auth("analyst"))).status_code == 403


async def test_the_command_line_importer_shows_progress_and_reports_rows(registry, tmp_path, monkeypatch, capsys):
    # The command line's own entry point (what `python -m registry.importer` runs), in a thread as it runs its own loop.
    path = tmp_path / "名册.csv"
    home = registry.county
    people = [good_row(home, 所属组织=home["id"]) for _ in range(3)] + [good_row(home, 所属组织=home["id"], 手机号="abc")]
    path.write_bytes(roster(people))
    for key, value in registry.stack.service_env("registry", registry.database_url).items():
        monkeypatch.setenv(key, value)
    argv = [str(path), "--database-url", registry.database_url, "--chunk-size", "2"]
    assert await asyncio.to_thread(importer.main, argv) == 1
    out = capsys.readouterr()
    assert "导入 3" in out.out and "错误 1" in out.out
    assert "第 5 行 [phone]" in out.err and "行/秒" in out.err
    assert await asyncio.to_thread(importer.main, argv[:3]) == 1
    assert "导入 0" in capsys.readouterr().out
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes(roster(people).decode("utf-8").encode("gbk"))
    assert await asyncio.to_thread(importer.main, [str(gbk), "--database-url", registry.database_url]) == 2
    assert "GBK" in capsys.readouterr().err


async def test_a_large_roster_is_prepared_by_worker_processes_with_the_same_checks_and_events(registry):
    _, station = await registry.town_with_station()
    rows = [good_row(station, 所属组织=station["id"]) for _ in range(200)]
    repeated = list(rows[1])  # line 3's person again, many chunks later
    repeated[2] = new_person()["phone"]
    rows.insert(149, repeated)  # line 151
    rows.insert(99, good_row(station, 骨干="也许"))  # line 101
    engine = make_engine(registry.database_url, pool_size=2)
    try:
        sessions = make_session_factory(engine)
        cipher = cipher_of(registry)
        seen_progress = []
        report = await import_roster(sessions=sessions, cipher=cipher, raw=roster(rows), chunk_size=40, workers=2,
                                     progress=lambda r: seen_progress.append(r.imported))
        assert (report.rows, report.imported, report.already_registered) == (202, 200, 0)
        assert gc.get_freeze_count() == 0  # the workers were forked with objects frozen; this process has them back
        assert [(e.line, e.field) for e in report.errors] == [(101, "core"), (152, "national_id")]
        assert seen_progress == sorted(seen_progress) and seen_progress[-1] == 200
        again = await import_roster(sessions=sessions, cipher=cipher, raw=roster(rows), chunk_size=40, workers=2)
        assert (again.imported, again.already_registered, len(again.errors)) == (0, 200, 2)
    finally:
        await engine.dispose()
    stored = await registry.sql("SELECT count(*) FROM volunteers WHERE org_unit_id = CAST(:s AS uuid)", s=station["id"])
    assert stored[0][0] == 200
    payloads = await registry.sql(
        "SELECT o.payload, v.volunteer_number FROM outbox o JOIN volunteers v ON o.key = v.id::text "
        "WHERE v.org_unit_id = CAST(:s AS uuid)", s=station["id"])
    assert len(payloads) == 200
    plain = [r[1] for r in rows] + [r[2] for r in rows]
    for payload, number in payloads:
        event = Envelope.from_bytes(payload)
        state = VolunteerState.model_validate(event.data)
        assert event.type == VolunteerState.TYPE and state.version == 1 and state.org_path == station["path"]
        assert state.volunteer_number == f"{number:08d}"  # reserved before the piece was prepared, stored as published
        assert not any(p in payload.decode() for p in plain)
    assert len({n for _, n in payloads}) == 200


async def test_a_roster_overlapping_one_imported_before_adds_only_the_new_people(registry):
    _, station = await registry.town_with_station()
    rows = [good_row(station, 所属组织=station["id"]) for _ in range(6)]
    # The whole COPY meets the unique index at the third row: it rolls back, the chunk looks the people up.
    report = await import_over(registry, rows[2:3] + rows[5:6], rows)
    assert (report.imported, report.already_registered, report.errors) == (4, 2, [])
    assert await stored_at(registry, station) == (6, 6, 6)
    orphans = await registry.sql(
        "SELECT (SELECT count(*) FROM outbox o WHERE o.topic LIKE '%volunteer%' AND NOT EXISTS (SELECT 1 FROM volunteers v WHERE o.key = v.id::text)), "
        "(SELECT count(*) FROM volunteer_status_changes h WHERE NOT EXISTS (SELECT 1 FROM volunteers v WHERE v.id = h.volunteer_id)), "
        "(SELECT count(*) FROM volunteers v WHERE NOT EXISTS (SELECT 1 FROM org_units u WHERE u.id = v.org_unit_id))")
    # No event or history left behind by the COPY that rolled back; every volunteer's org unit exists (migration 0008
    # stopped PostgreSQL checking that reference row by row: the import checks it against the units it loaded).
    assert tuple(orphans[0]) == (0, 0, 0)


async def test_a_person_registered_between_the_look_up_and_the_copy_is_skipped_not_duplicated(registry, monkeypatch):
    from registry.roster import write as roster_module

    _, station = await registry.town_with_station()
    rows = [good_row(station, 所属组织=station["id"]) for _ in range(3)]
    # The whole COPY meets the unique index; then the look-up sees nobody, as when a registration commits right after
    # it: the second COPY meets the index too, and the chunk goes through the staging table. (The first import, of
    # people all new, never looks anyone up.)
    monkeypatch.setattr(roster_module, "REGISTERED_SQL", "SELECT NULL::text WHERE $1::text IS NULL AND $2::text IS NULL")
    report = await import_over(registry, rows[1:2], rows)
    assert (report.imported, report.already_registered, report.errors) == (2, 1, [])
    assert await stored_at(registry, station) == (3, 3, 3)


async def test_an_upload_is_queued_at_once_and_its_job_shows_progress_then_the_report_without_the_file(registry, monkeypatch):
    town, station = await registry.town_with_station()
    rows = [good_row(station) for _ in range(7)] + [good_row(station, 手机号="12345")]
    seen = []
    record_progress = job_queue._record_progress

    async def watched(sessions, job_id, report):
        await record_progress(sessions, job_id, report)
        seen.append((await registry.client.get(f"/v1/imports/{job_id}", headers=registry.admin)).json())

    monkeypatch.setattr(job_queue, "CHUNK_SIZE", 3)  # pieces of 3 lines: progress after each
    monkeypatch.setattr(job_queue, "_record_progress", watched)
    queued = await registry.client.post("/v1/imports", files={"file": ("r.csv", roster(rows), "text/csv")}, headers=registry.admin)
    assert queued.status_code == 202, queued.text
    job = queued.json()
    assert job["status"] == "queued" and job["total_lines"] == 8 and job["rows"] == 0 and job["progress"] == 0.0
    done = await upload_followed(registry, job["id"])
    assert (done["status"], done["rows"], done["imported"], done["error_count"]) == ("done", 8, 7, 1)
    assert [(e["line"], e["field"]) for e in done["errors"]] == [(9, "phone")] and done["progress"] == 1.0
    assert len(seen) >= 2 and all(s["status"] == "running" and 0 < s["progress"] < 1 for s in seen[:-1])
    assert [s["rows"] for s in seen] == sorted(s["rows"] for s in seen)
    [(file_left, started, attempts)] = await registry.sql(
        "SELECT file_enc IS NOT NULL, started_at IS NOT NULL, attempts FROM roster_imports WHERE id = CAST(:id AS uuid)", id=job["id"])
    assert (file_left, started, attempts) == (False, True, 1)  # the upload (plain identity numbers inside) is gone
    _, other_station = await registry.town_with_station()
    elsewhere = registry.auth("town_admin", scope=other_station["path"], sub="someone-else")
    assert (await registry.client.get(f"/v1/imports/{job['id']}", headers=elsewhere)).status_code == 404
    assert (await registry.client.get(f"/v1/imports/{job['id']}", headers=registry.auth("analyst"))).status_code == 403
    missing = await registry.client.get("/v1/imports/not-a-job", headers=registry.admin)
    assert missing.status_code == 404 and missing.json()["detail"]["field"] == "import_id"
    town_admin = registry.auth("town_admin", scope=town["path"], sub="town-admin")
    mine = await registry.upload_roster(roster([good_row(station)]), headers=town_admin)
    assert mine.json()["imported"] == 1 and mine.json()["created_by"] == "town-admin"


async def upload_followed(registry, job_id: str) -> dict:
    """The import job `job_id` once it has ended."""
    async def ended():
        job = (await registry.client.get(f"/v1/imports/{job_id}", headers=registry.admin)).json()
        return job if job["status"] in ("done", "failed") else None

    return await eventually(ended, timeout_s=60, message="the import job to end")


async def test_a_job_whose_worker_stopped_is_taken_again_and_a_live_one_is_left_alone(registry):
    _, station = await registry.town_with_station()
    rows = [good_row(station) for _ in range(3)]
    cipher = cipher_of(registry)
    sealed = cipher.encrypt(roster(rows).decode(), context=job_queue.FILE_CONTEXT)
    stale, live, broken = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    await registry.sql(  # a file that cannot be opened (another key): the job fails, naming why, and drops the file
        "INSERT INTO roster_imports (id, created_by, created_role, scope_path, file_enc, total_lines) "
        "VALUES (CAST(:id AS uuid), 'tester', 'county_admin', :scope, :file, 3)", id=broken, scope=registry.county["path"], file=b"\x01garbage")
    for job_id, beat in ((stale, "now() - interval '1 hour'"), (live, "now()")):
        await registry.sql(
            "INSERT INTO roster_imports (id, created_by, created_role, scope_path, status, file_enc, total_lines, attempts, "
            f"started_at, heartbeat_at) VALUES (CAST(:id AS uuid), 'tester', 'county_admin', :scope, 'running', :file, 3, 1, {beat}, {beat})",
            id=job_id, scope=registry.county["path"], file=sealed)
    engine = make_engine(registry.database_url, pool_size=2)
    try:
        sessions = make_session_factory(engine)
        while await job_queue.run_next_import(sessions=sessions, cipher=cipher, workers=0):
            pass  # the service's own worker may take the stale job first: either way it runs once more
    finally:
        await engine.dispose()
    done = await upload_followed(registry, stale)
    assert (done["imported"], done["already_registered"], done["errors"]) == (3, 0, [])
    [(status, attempts)] = await registry.sql("SELECT status, attempts FROM roster_imports WHERE id = CAST(:id AS uuid)", id=live)
    assert (status, attempts) == ("running", 1)
    failed = await upload_followed(registry, broken)
    assert failed["status"] == "failed" and failed["failure"] and failed["imported"] == 0
    [(file_left,)] = await registry.sql("SELECT file_enc IS NOT NULL FROM roster_imports WHERE id = CAST(:id AS uuid)", id=broken)
    assert file_left is False
    await registry.sql("UPDATE roster_imports SET status = 'failed', file_enc = NULL WHERE id = CAST(:id AS uuid)", id=live)
