"""Tokens at the gateway: expiry, forgery, revocation at logout (here and on another replica), refresh and key rotation."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt

from shouwang_shared.auth import Role, TokenSigner, generate_keypair

from gateway.accounts import TokenPolicy, open_session, revoke_session


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def _refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    """POST /auth/refresh, waiting out the per-IP login limit the earlier tests (the fuzz above all) may have used up."""
    for _ in range(30):
        resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
        if resp.status_code != 429:
            return resp
        await asyncio.sleep(int(resp.headers["Retry-After"]))
    return resp


async def test_expired_access_token_is_401_token_expired(platform, logins, stack):
    expired = await open_session(
        sessions=logins.sessions, policy=TokenPolicy(stack.signer(), access_ttl_s=-30), subject="vol-expired",
        role=Role.VOLUNTEER, volunteer_id="vol-expired",
    )
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        resp = await client.get("/api/v1/notifications", headers=_bearer(expired.access_token))
    assert resp.status_code == 401 and resp.json()["detail"]["code"] == "token_expired"


async def test_forged_and_malformed_tokens_are_401_never_500(platform, stack):
    other_private, _ = generate_keypair()
    forged_same_kid = TokenSigner(other_private, stack.jwt_kid, issuer="shouwang", audience="shouwang").issue(sub="x", role="county_admin")
    unknown_kid = TokenSigner(other_private, "nobody", issuer="shouwang", audience="shouwang").issue(sub="x", role="county_admin")
    alg_none = jwt.encode({"sub": "x", "role": "operator", "iss": "shouwang", "aud": "shouwang", "exp": int(time.time()) + 60},
                          key=None, algorithm="none", headers={"kid": stack.jwt_kid})
    wrong_audience = TokenSigner(stack.jwt_private_pem, stack.jwt_kid, issuer="shouwang", audience="elsewhere").issue(sub="x", role="operator")
    bad_role = stack.signer().issue(sub="x", role="emperor")
    headers = [_bearer(t) for t in (forged_same_kid, unknown_kid, alg_none, wrong_audience, bad_role, "not.a.jwt", "完全不是令牌")]
    headers += [{"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}]
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        for h in headers:
            resp = await client.get("/api/v1/operations", headers={k: v.encode() for k, v in h.items()})
            assert resp.status_code == 401, (h, resp.status_code, resp.text)
            assert resp.json()["detail"]["code"] in ("invalid_token", "missing_token")
            assert "x-upstream-service" not in resp.headers


async def test_logout_revokes_access_and_refresh_tokens_at_once(platform, logins):
    pair = await logins.login(Role.VOLUNTEER)
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        assert (await client.get("/api/v1/notifications", headers=_bearer(pair.access_token))).status_code == 200
        assert (await client.post("/api/v1/auth/logout", headers=_bearer(pair.access_token))).status_code == 204
        after = await client.get("/api/v1/notifications", headers=_bearer(pair.access_token))
        refreshed = await _refresh(client, pair.refresh_token)
    assert after.status_code == 401 and after.json()["detail"]["code"] == "token_revoked"
    assert refreshed.status_code == 401 and refreshed.json()["detail"]["field"] == "refresh_token"


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_session(platform, logins):
    pair = await logins.login(Role.TOWN_ADMIN, scope_path="/county/town-7")
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        first = await _refresh(client, pair.refresh_token)
        assert first.status_code == 200, first.text
        rotated = first.json()
        assert rotated["refresh_token"] != pair.refresh_token and rotated["scope_path"] == "/county/town-7"
        claims = jwt.decode(rotated["access_token"], options={"verify_signature": False})
        assert claims["role"] == "town_admin" and claims["scope"] == "/county/town-7" and claims["exp"] - claims["iat"] == 900
        reused = await _refresh(client, pair.refresh_token)
        assert reused.status_code == 401, "an old refresh token is refused"
        stolen_family = await _refresh(client, rotated["refresh_token"])
        assert stolen_family.status_code == 401, "reuse revokes the whole session"
        garbage = await _refresh(client, "x" * 40)
        assert garbage.status_code == 401 and garbage.json()["detail"]["field"] == "refresh_token"


async def test_rotated_key_signs_new_tokens_while_the_previous_key_still_verifies(strict_gateway):
    new_key_token = await strict_gateway.logins.token(Role.VOLUNTEER)
    old_key_token = await strict_gateway.old_key_logins.token(Role.VOLUNTEER)
    assert jwt.get_unverified_header(new_key_token)["kid"] == "key-2"
    for token in (new_key_token, old_key_token):
        async with strict_gateway.client("10.0.0.1", token) as client:
            resp = await client.get("/api/v1/notifications")
        assert resp.status_code == 200, resp.text
    async with strict_gateway.client("10.0.0.1") as client:
        refreshed = await _refresh(client, (await strict_gateway.old_key_logins.login(Role.ANALYST)).refresh_token)
    assert refreshed.status_code == 200
    assert jwt.get_unverified_header(refreshed.json()["access_token"])["kid"] == "key-2", "refresh re-signs with the active key"


async def test_a_session_revoked_elsewhere_stops_working_within_the_session_check_bound(platform, logins):
    """Logout on another replica only changes the database: this gateway notices within SESSION_CHECK_CACHE_S (2 s)."""
    pair = await logins.login(Role.VOLUNTEER)
    session_id = jwt.decode(pair.access_token, options={"verify_signature": False})["sid"]
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30, headers=_bearer(pair.access_token)) as client:
        assert (await client.get("/api/v1/notifications")).status_code == 200, "the token and the live session are now cached"
        await revoke_session(sessions=logins.sessions, session_id=session_id, reason="logout on another replica")
        revoked_at = time.monotonic()
        while (resp := await client.get("/api/v1/notifications")).status_code == 200:
            assert time.monotonic() - revoked_at < 3.0, "still served more than the 2 s bound after revocation"
            await asyncio.sleep(0.1)
    assert resp.status_code == 401 and resp.json()["detail"]["code"] == "token_revoked"
