"""What a phone and the ops console do through the gateway, as reusable steps for the end-to-end tests."""

from __future__ import annotations

import asyncio
import random
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx

from shouwang_dev.stack.platform import Platform
from shouwang_dev.testing import eventually, fetch_rows
from shouwang_shared.auth import Role

from registry.national_id import make_national_id  # test data only: a well-formed GB 11643 number

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = ["秀英", "建华", "伟", "芳", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def expect(resp: httpx.Response, *codes: int) -> dict:
    """The JSON of a response whose status is one of `codes` (the body is shown when it is not)."""
    assert resp.status_code in codes, f"{resp.request.method} {resp.request.url.path} → {resp.status_code}: {resp.text[:500]}"
    return resp.json() if resp.content else {}


_COUNTY_ROOTS: dict[str, dict] = {}


@dataclass
class County:
    """A small county built through the gateway: units, a grid, staff who logged in with passwords."""

    county: dict
    town: dict
    station: dict
    grid: dict
    station_admin_token: str
    analyst_token: str
    town_admin_token: str


async def build_county(platform: Platform, client: httpx.AsyncClient) -> County:
    """Bootstrap with an operator token, then create staff accounts and log them in by password."""
    ops = bearer(platform.stack.token(Role.OPERATOR, sub="bootstrap-operator"))
    tag = uuid.uuid4().hex[:6]
    made: dict = {}
    if platform.prefix not in _COUNTY_ROOTS:  # a registry has one county alliance; later callers add a town under it
        body = {"name": "平安县志愿者联盟", "kind": "county", "lat": 30.25, "lon": 120.17}
        _COUNTY_ROOTS[platform.prefix] = expect(await client.post("/api/v1/org-units", headers=ops, json=body), 201)
    made["county"] = parent = _COUNTY_ROOTS[platform.prefix]
    for kind, name in (("town", "城关镇平安联盟"), ("station", "东门社区志愿服务站")):
        body = {"name": f"{name}{tag}", "kind": kind, "lat": 30.25, "lon": 120.17, "parent_id": parent["id"]}
        made[kind] = parent = expect(await client.post("/api/v1/org-units", headers=ops, json=body), 201)
    grid = expect(await client.post("/api/v1/grids", headers=ops, json={"name": f"东门一网格{tag}", "station_id": made["station"]["id"]}), 201)
    tokens = {}
    for role, unit in (("station_admin", made["station"]), ("analyst", made["county"]), ("town_admin", made["town"])):
        username, password = f"{role}_{tag}", f"守望-{tag}-口令"
        expect(await client.post("/api/v1/staff", headers=ops, json={
            "username": username, "password": password, "role": role, "display_name": "测试员", "org_unit_id": unit["id"]}), 201)
        login = expect(await client.post("/api/v1/auth/login", json={"username": username, "password": password}), 200)
        tokens[role] = login["access_token"]
    return County(made["county"], made["town"], made["station"], grid, tokens["station_admin"], tokens["analyst"], tokens["town_admin"])


@dataclass
class Volunteer:
    """A volunteer who registered through a QR invite, was activated, and logged in with a one-time code."""

    volunteer_id: str
    phone: str
    token: str


async def register_volunteer(client: httpx.AsyncClient, county: County, *, lat: float = 30.25, lon: float = 120.17,
                             skills: list[str] | None = None) -> Volunteer:
    """Invite → public registration → activation by staff → phone + code login."""
    staff = bearer(county.station_admin_token)
    invite = expect(await client.post("/api/v1/invites", headers=staff, json={"grid_id": county.grid["id"], "max_uses": 1}), 201)
    phone = f"13{random.randint(0, 999_999_999):09d}"
    person = {
        "invite_token": invite["token"], "real_name": random.choice(SURNAMES) + random.choice(GIVEN),
        "national_id": make_national_id("330102", date(1970 + random.randint(0, 35), random.randint(1, 12), random.randint(1, 28)), random.randint(0, 999)),
        "phone": phone, "lat": lat, "lon": lon, "skills": skills or [],
        "availability": [{"weekday": d, "start": "00:00", "end": "24:00"} for d in range(7)],
    }
    applicant = expect(await client.post("/api/v1/registrations", json=person), 201)
    volunteer_id = applicant["volunteer_id"]
    expect(await client.post(f"/api/v1/volunteers/{volunteer_id}/activate", headers=staff, json={"reason": "审核通过"}), 200)
    expect(await client.post("/api/v1/auth/codes", json={"phone": phone}), 202)
    code = expect(await client.get(f"/api/v1/auth/dev/codes/{phone}"), 200)["code"]
    login = expect(await client.post("/api/v1/auth/code-login", json={"phone": phone, "code": code}), 200)
    assert login["volunteer_id"] == volunteer_id
    return Volunteer(volunteer_id, phone, login["access_token"])


async def ledger_entries(client: httpx.AsyncClient, token: str) -> list[dict]:
    """The entries of a volunteer's own ledger, as their phone reads them."""
    body = expect(await client.get("/api/v1/ledger/mine", headers=bearer(token)), 200)
    return body["items"] if isinstance(body, dict) and "items" in body else body


HOURS_LINES = ("hours.bank", "hours.points")  # rewards' ledger lines of service hours: the hours banked and their points


async def hours_banked(client: httpx.AsyncClient, token: str) -> list[dict] | None:
    """A volunteer's ledger entries of service hours (banked hours and their points), None while there are none."""
    return [e for e in await ledger_entries(client, token) if e["rule_line"] in HOURS_LINES] or None


async def case_of_tip(client: httpx.AsyncClient, analyst_token: str, tip_id: str) -> str | None:
    """The case an analyst sees a tip in (None until intel has filed it)."""
    listed = expect(await client.get("/api/v1/cases", headers=bearer(analyst_token)), 200)
    for case in listed["items"] if isinstance(listed, dict) else listed:
        case_id = case.get("case_id") or case["id"]
        detail = expect(await client.get(f"/api/v1/cases/{case_id}", headers=bearer(analyst_token)), 200)
        if tip_id in {t["tip_id"] for t in detail.get("tips", [])}:
            return case_id
    return None


async def verify_case(client: httpx.AsyncClient, analyst_token: str, case_id: str) -> None:
    """An analyst takes a new case through claim → triage → verify (its tips' pending points become spendable)."""
    for step, body in (("claim", {}), ("triage", {}), ("verify", {"quality": 2})):
        expect(await client.post(f"/api/v1/cases/{case_id}/{step}", headers=bearer(analyst_token), json=body), 200)


async def forward_case(client: httpx.AsyncClient, analyst_token: str, case_id: str, *, summary: str) -> None:
    """An analyst takes a new case through claim → triage → verify → forward to the police feed."""
    await verify_case(client, analyst_token, case_id)
    expect(await client.post(f"/api/v1/cases/{case_id}/forward", headers=bearer(analyst_token), json={"summary": summary}), 200)


async def police_answers(client: httpx.AsyncClient, analyst_token: str, case_id: str, *, count: int = 1) -> list[dict]:
    """The police answers shown on a case, once at least `count` of them have arrived."""
    async def arrived():
        shown = expect(await client.get(f"/api/v1/cases/{case_id}", headers=bearer(analyst_token)), 200)["dispositions"]
        return shown if len(shown) >= count else None

    return await eventually(arrived, timeout_s=30, message=f"{count} police answer(s) on case {case_id}")


async def confirm_police_answers(client: httpx.AsyncClient, analyst_token: str, case_id: str, answers: list[dict]) -> None:
    """The analyst confirms every police answer not yet confirmed (only a confirmed answer sets the outcome and pays)."""
    for answer in answers:
        if not answer["confirmed"]:
            confirm = f"/api/v1/cases/{case_id}/dispositions/{answer['disposition_id']}/confirm"
            expect(await client.post(confirm, headers=bearer(analyst_token)), 200)


async def wait_until_known_to_dispatch(platform: Platform, volunteer_ids: list[str]) -> None:
    """Wait until dispatch's read model holds these volunteers as active (registry's state events consumed)."""
    async def known() -> bool:
        rows = await fetch_rows(platform.database_urls["dispatch"],
                                "SELECT count(*) AS n FROM volunteers WHERE volunteer_id = ANY($1::text[]) AND status = 'active'", volunteer_ids)
        return rows[0]["n"] == len(volunteer_ids)

    await eventually(known, timeout_s=30, message="volunteers known to dispatch")


async def hours_written(platform: Platform, volunteer_ids: list[str]) -> int:
    """How many `ServiceHoursRecorded` dispatch has written for these volunteers (its outbox keeps rows an hour after sending)."""
    rows = await fetch_rows(platform.database_urls["dispatch"],
                            "SELECT count(*) AS n FROM outbox WHERE topic = 'dispatch.hours.v1' AND key = ANY($1::text[])", volunteer_ids)
    return rows[0]["n"]


async def approve_hours(client: httpx.AsyncClient, staff_token: str, assignment_ids: list[str]) -> dict:
    """A station admin approves these hours (as the console's hours page does): they reach rewards and the bank."""
    return expect(await client.post("/api/v1/hours/approve", headers=bearer(staff_token), json={"assignment_ids": assignment_ids}), 200)


async def activated_operation(client: httpx.AsyncClient, county: County, *, name: str, post: str, lat: float, lon: float,
                              headcount: int = 1, start: datetime | None = None, hours: float = 2) -> dict:
    """An operation of the county's town with one post (its shift running now unless `start` says), created and activated by its town admin."""
    admin = bearer(county.town_admin_token)
    start = start or datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    op = expect(await client.post("/api/v1/operations", headers=admin, json={
        "name": name, "org_path": county.town["path"], "posts": [{
            "name": post, "lat": lat, "lon": lon, "shift_start": start.isoformat(),
            "shift_end": (start + timedelta(hours=hours)).isoformat(), "headcount": headcount}]}), 201)
    expect(await client.post(f"/api/v1/operations/{op['id']}/activate", headers=admin), 202)
    return op


async def police_answer(platform: Platform, disposition: str, *, group: str) -> None:
    """Run the reference police consumer as its own process: it reads the liaison feed and answers every case."""
    script = Path(__file__).resolve().parents[2] / "examples" / "police_consumer" / "police_consumer.py"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), "--bootstrap", platform.stack.bootstrap_servers, "--prefix", platform.prefix,
        "--group", group, "--answer", disposition, "--unit", "城关派出所", "--once", "--idle", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, out.decode()[-2000:]
