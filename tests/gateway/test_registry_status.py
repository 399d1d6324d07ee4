"""Issue #23 (4): registry's volunteer and staff state decide who keeps a session at the gateway.

End to end through the real services and broker: registry commits the status change with its state event in
the outbox, the relay publishes it, the gateway's consumer revokes the person's sessions.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
import httpx
import pytest

from shouwang_dev.testing import eventually
from shouwang_shared.auth import Role
from shouwang_shared.contracts.registry import VolunteerState

from gateway import accounts
from registry.national_id import make_national_id
from tests.gateway.events import publish_volunteer_states

REVOCATION_BOUND_S = 10.0  # registry relay + broker + gateway consumer + the other replicas' 2 s session check


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def _post(client: httpx.AsyncClient, path: str, **kwargs) -> httpx.Response:
    """POST, waiting out the login limit every test of the session shares (all calls come from 127.0.0.1)."""
    for _ in range(30):
        resp = await client.post(path, **kwargs)
        if resp.status_code != 429:
            return resp
        await asyncio.sleep(int(resp.headers["Retry-After"]))
    return resp


async def _register(client: httpx.AsyncClient, admin: dict, county: dict, real_name: str) -> tuple[str, str]:
    """A volunteer registered by the county admin (an applicant until approved): their id and phone."""
    phone = f"139{secrets.randbelow(100_000_000):08d}"  # from the OS: many tests register volunteers on one platform
    born = date(1960, 1, 1) + timedelta(days=secrets.randbelow(40 * 365))
    created = await client.post("/api/v1/volunteers", headers=admin, json={
        "real_name": real_name, "national_id": make_national_id("330102", born, secrets.randbelow(1000)),
        "phone": phone, "org_unit_id": county["station"]["id"]})
    assert created.status_code == 201, created.text
    return created.json()["id"], phone


async def _code_login(client: httpx.AsyncClient, phone: str) -> httpx.Response:
    assert (await _post(client, "/api/v1/auth/codes", json={"phone": phone})).status_code == 202
    code = (await client.get(f"/api/v1/auth/dev/codes/{phone}")).json()["code"]
    return await _post(client, "/api/v1/auth/code-login", json={"phone": phone, "code": code})


async def _refused_within(client: httpx.AsyncClient, path: str, token: str, bound_s: float) -> float:
    """Seconds until `token` is refused on `path` (polled); fails past `bound_s`."""
    started = time.monotonic()
    while (resp := await client.get(path, headers=_bearer(token))).status_code != 401:
        assert resp.status_code == 200, resp.text
        assert time.monotonic() - started < bound_s, f"still served {bound_s} s after the status change"
        await asyncio.sleep(0.2)
    assert resp.json()["detail"]["code"] == "token_revoked"
    return time.monotonic() - started


@pytest.fixture
def admin(stack, county) -> dict:
    return _bearer(stack.token(Role.COUNTY_ADMIN, scope_path=county["county"]["path"]))


async def test_an_applicant_cannot_log_in_with_a_code(platform, county, admin):
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        _, phone = await _register(client, admin, county, "刘建国")
        refused = await _code_login(client, phone)
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"] == {**refused.json()["detail"], "code": "volunteer_not_approved", "field": "phone"}


async def test_suspending_a_volunteer_ends_their_access_and_refresh_within_seconds(platform, county, admin):
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        volunteer_id, phone = await _register(client, admin, county, "赵丽华")
        assert (await client.post(f"/api/v1/volunteers/{volunteer_id}/activate", headers=admin)).status_code == 200
        login = await _code_login(client, phone)
        assert login.status_code == 200, login.text
        pair = login.json()
        assert (await client.get("/api/v1/volunteers/me", headers=_bearer(pair["access_token"]))).status_code == 200
        suspended = await client.post(f"/api/v1/volunteers/{volunteer_id}/suspend", headers=admin,
                                      json={"reason": "多次无故缺勤，暂停服务"})
        assert suspended.status_code == 200 and suspended.json()["status"] == "suspended", suspended.text
        took = await _refused_within(client, "/api/v1/volunteers/me", pair["access_token"], REVOCATION_BOUND_S)
        refreshed = await _post(client, "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        again = await _code_login(client, phone)
    assert refreshed.status_code == 401 and refreshed.json()["detail"]["field"] == "refresh_token", refreshed.text
    assert again.status_code == 403 and again.json()["detail"]["code"] == "volunteer_blocked", again.text
    print(f"suspended volunteer refused {took:.2f} s after the suspension")


async def test_a_refresh_before_the_access_check_is_refused_too(platform, county, admin):
    """Refresh re-checks the person's status itself: a client that refreshes first gets no new token."""
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        volunteer_id, phone = await _register(client, admin, county, "孙志强")
        assert (await client.post(f"/api/v1/volunteers/{volunteer_id}/activate", headers=admin)).status_code == 200
        pair = (await _code_login(client, phone)).json()
        retired = await client.post(f"/api/v1/volunteers/{volunteer_id}/retire", headers=admin, json={"reason": "本人申请退出"})
        assert retired.status_code == 200, retired.text
        started = time.monotonic()
        while (refreshed := await _post(client, "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})).status_code == 200:
            assert time.monotonic() - started < REVOCATION_BOUND_S, "refresh still works after retirement"
            pair = refreshed.json()
            await asyncio.sleep(0.3)
    assert refreshed.status_code == 401, refreshed.text


async def test_deactivating_a_staff_account_ends_its_sessions_within_seconds(platform, county, admin):
    username = f"grid_{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        created = await client.post("/api/v1/staff", headers=admin, json={
            "username": username, "password": "东门社区-网格-2026", "role": "grid_worker", "display_name": "周网格员",
            "org_unit_id": county["station"]["id"]})
        assert created.status_code == 201, created.text
        login = await _post(client, "/api/v1/auth/login", json={"username": username, "password": "东门社区-网格-2026"})
        assert login.status_code == 200, login.text
        pair = login.json()
        assert (await client.get("/api/v1/staff/me", headers=_bearer(pair["access_token"]))).status_code == 200
        deactivated = await client.post(f"/api/v1/staff/{created.json()['id']}/deactivate", headers=admin)
        assert deactivated.status_code == 200 and deactivated.json()["active"] is False, deactivated.text
        await _refused_within(client, "/api/v1/staff/me", pair["access_token"], REVOCATION_BOUND_S)
        refreshed = await _post(client, "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        again = await _post(client, "/api/v1/auth/login", json={"username": username, "password": "东门社区-网格-2026"})
    assert refreshed.status_code == 401, refreshed.text
    assert again.status_code == 401, again.text


async def test_a_new_code_does_not_reset_the_wrong_guesses_of_the_day(platform, county, admin):
    """Five wrong guesses burn a code; ten in a day lock code login for the phone, whatever new codes are asked for."""
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        volunteer_id, phone = await _register(client, admin, county, "钱美玲")
        assert (await client.post(f"/api/v1/volunteers/{volunteer_id}/activate", headers=admin)).status_code == 200

        async def guess(code: str) -> str:
            resp = await _post(client, "/api/v1/auth/code-login", json={"phone": phone, "code": code})
            return "ok" if resp.status_code == 200 else resp.json()["detail"]["code"]

        async def new_code() -> str:
            assert (await _post(client, "/api/v1/auth/codes", json={"phone": phone})).status_code == 202
            return (await client.get(f"/api/v1/auth/dev/codes/{phone}")).json()["code"]

        rounds = []
        for _ in range(2):
            code = await new_code()
            rounds.append([await guess("000000" if code != "000000" else "111111") for _ in range(6)])
        assert rounds == [["bad_code"] * 5 + ["code_expired"], ["bad_code"] * 5 + ["code_locked"]]
        assert await guess(await new_code()) == "code_locked", "a third code must not open the phone's account today"


async def test_code_login_answers_alike_for_a_volunteer_and_for_a_phone_nobody_registered(platform, county, admin):
    """Before the phone is proved, asking a code and guessing it wrong tell nobody whether the phone is a volunteer's."""
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        _, registered = await _register(client, admin, county, "孙立平")
        unknown = f"137{secrets.randbelow(100_000_000):08d}"

        async def answers(phone: str) -> list:
            asked = await _post(client, "/api/v1/auth/codes", json={"phone": phone})
            seen = [(asked.status_code, asked.json())]
            for _ in range(6):
                guess = await _post(client, "/api/v1/auth/code-login", json={"phone": phone, "code": "000000"})
                seen.append((guess.status_code, guess.json()["detail"]))
            return seen

        volunteer_answers, unknown_answers = await answers(registered), await answers(unknown)
        assert volunteer_answers == unknown_answers
        assert [status for status, _ in volunteer_answers] == [202] + [401] * 6


async def test_an_older_volunteer_state_arriving_late_does_not_lift_a_suspension(platform, stack, logins):
    volunteer_id = str(uuid.uuid4())
    pair = await logins.login(Role.VOLUNTEER, volunteer_id=volunteer_id)

    def state(version: int, status: str) -> VolunteerState:
        return VolunteerState(volunteer_id=volunteer_id, version=version, display_name="吴**", status=status, org_unit_id="s1",
                              org_path="/c1/t1/s1", updated_at=datetime.now(UTC))

    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        assert (await client.get("/api/v1/notifications", headers=_bearer(pair.access_token))).status_code == 200
        await publish_volunteer_states(stack, platform.prefix, [state(7, "suspended"), state(6, "active")])
        await _refused_within(client, "/api/v1/notifications", pair.access_token, REVOCATION_BOUND_S)
        conn = await asyncpg.connect(platform.database_urls["gateway"].replace("+asyncpg", ""))
        try:
            kept = await conn.fetchrow("SELECT status, version FROM subject_status WHERE subject = $1", volunteer_id)
        finally:
            await conn.close()
        assert (kept["status"], kept["version"]) == ("suspended", 7), "version 6 came after 7: the volunteer is still suspended"
        await publish_volunteer_states(stack, platform.prefix, [state(8, "active")])
        reinstated = await logins.login(Role.VOLUNTEER, volunteer_id=volunteer_id)
        await eventually(lambda: _served(client, reinstated.access_token), timeout_s=REVOCATION_BOUND_S, message="reinstated")
        assert (await client.get("/api/v1/notifications", headers=_bearer(pair.access_token))).status_code == 401, \
            "sessions revoked at the suspension stay revoked"


async def _served(client: httpx.AsyncClient, token: str) -> bool:
    return (await client.get("/api/v1/notifications", headers=_bearer(token))).status_code == 200


async def test_a_state_consumed_late_does_not_end_a_session_opened_after_registry_changed_it(platform, stack, logins):
    """An applicant's state relayed after their approval and first login (registry checked them live at login)."""
    volunteer_id = str(uuid.uuid4())
    changed_at = datetime.now(UTC) - timedelta(seconds=30)
    pair = await logins.login(Role.VOLUNTEER, volunteer_id=volunteer_id)
    applicant = VolunteerState(volunteer_id=volunteer_id, version=1, display_name="吴**", status="applicant", org_unit_id="s1",
                               org_path="/c1/t1/s1", updated_at=changed_at)
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        await publish_volunteer_states(stack, platform.prefix, [applicant], at=changed_at)
        conn = await asyncpg.connect(platform.database_urls["gateway"].replace("+asyncpg", ""))
        try:
            await eventually(lambda: conn.fetchval("SELECT 1 FROM subject_status WHERE subject = $1", volunteer_id),
                             timeout_s=REVOCATION_BOUND_S, message="the late state applied")
        finally:
            await conn.close()
        assert await _served(client, pair.access_token), "a session opened after the state changed stays live"
    refreshed = await accounts.refresh_session(sessions=logins.sessions, policy=logins.policy, refresh_token=pair.refresh_token)
    assert refreshed.access_token, "refresh re-checks the state and lets the newer session go on"
