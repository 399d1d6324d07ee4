"""The edge: rate limits (429 + Retry-After), size limits (413), bad input (4xx), a downed service (503), CORS."""

from __future__ import annotations

import asyncio
import time

import httpx

from shouwang_shared.auth import Role


async def test_anonymous_tips_are_limited_per_client_with_retry_after(strict_gateway):
    async with strict_gateway.client("10.1.0.1") as client:
        answers = [await client.post("/api/v1/tips", json={"content": "村口有人散发传销材料"}) for _ in range(7)]
    assert all(r.headers.get("x-upstream-service") == "intel" for r in answers[:5])
    limited = answers[5]
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["detail"]["code"] == "rate_limited"
    async with strict_gateway.client("10.1.0.2") as client:
        other = await client.post("/api/v1/tips", json={"content": "另一位群众"})
    assert other.status_code != 429, "another client has its own bucket"


async def _tips(client: httpx.AsyncClient, texts: list[str], headers: list[dict] | None = None) -> list[int]:
    """Anonymous tips, one per text, as a citizen's phone sends them: the status of each."""
    headers = headers or [{}] * len(texts)
    return [(await client.post("/api/v1/tips", json={"category": category, "text": text}, headers=h)).status_code
            for (category, text), h in zip(texts, headers, strict=True)]


TIP_TEXTS = [("counterfeit", "菜市场东门有人用假币买菜"), ("public_order", "河堤那边晚上总有人偷挖河沙"),
             ("fraud", "我们小区有人冒充社区干部上门收费"), ("public_order", "网吧里有未成年人通宵上网"),
             ("counterfeit", "学校门口有人推销三无零食"), ("other", "工地围挡后面堆着很多来路不明的电缆")]


async def test_behind_the_ingress_each_client_has_its_own_bucket(ingress):
    async with ingress.client("127.0.0.2") as citizen_a, ingress.client("127.0.0.3") as citizen_b:
        a = await _tips(citizen_a, TIP_TEXTS)
        b = await _tips(citizen_b, TIP_TEXTS[:1])
    assert a == [202] * 5 + [429], a
    assert b == [202], "another citizen behind the same ingress is still served"


async def test_a_spoofed_leftmost_forwarded_for_gets_no_fresh_bucket(ingress):
    spoofed = [{"X-Forwarded-For": f"203.0.113.{i}"} for i in range(len(TIP_TEXTS))]
    async with ingress.client("127.0.0.4") as client:
        answers = await _tips(client, TIP_TEXTS, spoofed)
    assert answers == [202] * 5 + [429], answers


async def test_two_gateway_replicas_share_one_limit(strict_gateway, strict_twin):
    async with strict_gateway.client("10.1.7.1") as one, strict_twin.client("10.1.7.1") as two:
        answers = [await _tips(replica, [text]) for replica, text in zip([one, two] * 3, TIP_TEXTS, strict=True)]
    assert answers == [[202]] * 5 + [[429]], answers


async def test_receipt_look_ups_are_limited_per_client_at_the_gateway(ingress):
    async def look_up(client: httpx.AsyncClient, n: int) -> httpx.Response:
        return await client.get(f"/api/v1/receipts/WRONG{n:04d}", headers={"X-Receipt-Secret": "k7Qm-guess-2031"})

    async with ingress.client("127.0.0.5") as guesser, ingress.client("127.0.0.6") as citizen:
        guesses = [await look_up(guesser, n) for n in range(21)]
        own = await look_up(citizen, 9999)
    assert [r.status_code for r in guesses] == [404] * 20 + [429]
    assert "x-upstream-service" not in guesses[-1].headers, "refused at the gateway, intel never asked"
    assert own.status_code == 404 and own.json()["detail"]["code"] == "receipt_not_found", "another citizen is not locked out"


async def test_login_is_limited_per_client_and_per_account(strict_gateway):
    async with strict_gateway.client("10.2.0.1") as client:
        answers = [await client.post("/api/v1/auth/login", json={"username": "张三", "password": "错"}) for _ in range(4)]
    assert [r.status_code == 429 for r in answers] == [False, False, False, True]
    assert int(answers[3].headers["Retry-After"]) >= 1
    async with strict_gateway.client("10.2.0.2") as client:
        same_account = await client.post("/api/v1/auth/login", json={"username": "张三", "password": "错"})
    assert same_account.status_code == 429, "the account's bucket is empty whichever client tries"


async def _until_limited(client: httpx.AsyncClient, path: str, most: int) -> tuple[list[httpx.Response], float]:
    """Send GETs until one is refused (at most `most`): the responses and how long that took."""
    started = time.monotonic()
    answers = []
    for _ in range(most):
        answers.append(await client.get(path))
        if answers[-1].status_code == 429:
            break
    return answers, time.monotonic() - started


async def test_per_account_limit(strict_gateway):
    token = await strict_gateway.old_key_logins.token(Role.VOLUNTEER)
    async with strict_gateway.client("10.3.0.1", token) as client:
        answers, took = await _until_limited(client, "/api/v1/notifications", 100)
    passed = [r.status_code for r in answers[:-1]]
    assert answers[-1].status_code == 429 and int(answers[-1].headers["Retry-After"]) >= 1
    assert passed == [200] * len(passed) and 20 <= len(passed) <= 20 + took * 20 / 60 + 1


async def test_per_ip_limit_covers_every_route(strict_gateway):
    async with strict_gateway.client("10.4.0.1") as client:
        answers, took = await _until_limited(client, "/api/v1/nowhere", 200)
    passed = [r.status_code for r in answers[:-1]]
    assert answers[-1].status_code == 429 and answers[-1].json()["detail"]["code"] == "rate_limited"
    assert passed == [404] * len(passed) and 40 <= len(passed) <= 40 + took * 40 / 60 + 1


async def test_oversize_bodies_are_413_declared_or_streamed(strict_gateway):
    big = ("举报内容" * 1000).encode()
    async with strict_gateway.client("10.5.0.1") as client:
        declared = await client.post("/api/v1/tips", content=big, headers={"content-type": "application/json"})

        async def chunks():
            for _ in range(10):
                yield b"x" * 1000

        streamed = await client.post("/api/v1/auth/login", content=chunks(), headers={"content-type": "application/json"})
    assert declared.status_code == 413 and declared.json()["detail"]["field"] == "body"
    assert streamed.status_code == 413, streamed.text


async def test_bad_input_is_a_clear_4xx(platform):
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        malformed = await client.post("/api/v1/auth/login", content=b"{not json", headers={"content-type": "application/json"})
        wrong_type = await client.post("/api/v1/auth/login", json={"username": 123, "password": ["x"]})
        bad_phone = await client.post("/api/v1/auth/codes", json={"phone": "12345"})
        bad_code = await client.post("/api/v1/auth/code-login", json={"phone": "13812345678", "code": "abc"})
        unknown = await client.get("/api/v1/no-such-resource")
        traversal = await client.get("/api/v1/bulletins/%2e%2e/%2e%2e/internal/v1/staff")
        bad_since = await client.get("/api/v1/notifications", params={"since": "昨天"},
                                     headers={"Authorization": "Bearer x"})
    assert malformed.status_code == 422 and malformed.json()["detail"]["field"] == "body"
    assert wrong_type.status_code == 422 and wrong_type.json()["detail"]["field"] == "username"
    assert bad_phone.status_code == 422 and bad_phone.json()["detail"]["field"] == "phone"
    assert bad_code.status_code == 422 and bad_code.json()["detail"]["field"] == "code"
    assert unknown.status_code == 404
    assert traversal.status_code == 404 and "x-upstream-service" not in traversal.headers
    assert bad_since.status_code == 401


async def test_bad_cursor_names_the_field(platform, logins):
    token = await logins.token(Role.VOLUNTEER)
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        resp = await client.get("/api/v1/notifications", params={"since": "昨天"})
    assert resp.status_code == 422 and resp.json()["detail"]["field"] == "since"


async def test_a_downed_service_gives_503_for_its_routes_only(strict_gateway):
    token = await strict_gateway.old_key_logins.token(Role.COUNTY_ADMIN, scope_path="/county")
    async with strict_gateway.client("10.6.0.1", token) as client:
        down = [await client.get("/api/v1/leaderboards") for _ in range(4)]
        for resp in down:
            assert resp.status_code == 503, resp.text
            assert resp.json()["detail"]["service"] == "rewards" and "rewards" in resp.json()["detail"]["message"]
            assert int(resp.headers["Retry-After"]) >= 1
        assert int(down[-1].headers["Retry-After"]) > 2, "after 3 failures the circuit is open for 30 s"
        up = await client.get("/api/v1/operations")
        public = await client.get("/api/v1/bulletins")
        notes = await client.get("/api/v1/org-units")
    assert up.headers.get("x-upstream-service") == "dispatch" and up.status_code < 500
    assert public.headers.get("x-upstream-service") == "intel" and public.status_code < 500
    assert notes.headers.get("x-upstream-service") == "registry" and notes.status_code < 500


async def test_cors_admits_the_console_origin_only(platform):
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        ok = await client.options("/api/v1/operations", headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "GET",
                                                                 "Access-Control-Request-Headers": "authorization"})
        other = await client.options("/api/v1/operations", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "access-control-allow-origin" not in other.headers


async def test_correlation_id_goes_in_and_comes_out(platform):
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        given = await client.get("/api/v1/bulletins", headers={"X-Correlation-ID": "corr-守望-1".encode().hex()})
        fresh = await client.get("/api/v1/bulletins")
    assert given.headers["x-correlation-id"] == "corr-守望-1".encode().hex()
    assert len(fresh.headers["x-correlation-id"]) >= 32


async def test_a_phone_that_hangs_up_mid_body_is_no_error_and_the_next_call_is_served(platform, logins):
    token = await logins.token(Role.VOLUNTEER)
    gateway = platform.services["gateway"]
    log_size = gateway.log_path.stat().st_size
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(f"POST /api/v1/tips HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                 "Content-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"category\": \"fraud\"".encode())
    await writer.drain()
    await asyncio.sleep(0.3)  # the gateway has begun reading the body
    writer.close()
    await asyncio.sleep(0.5)
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as client:
        after = await client.get("/api/v1/assignments/mine", headers={"Authorization": f"Bearer {token}"})
    assert after.status_code == 200
    with open(gateway.log_path, "rb") as log:
        log.seek(log_size)
        assert b"Exception in ASGI application" not in log.read()
