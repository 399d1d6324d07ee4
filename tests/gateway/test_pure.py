"""Pure logic of the gateway: circuit breaker, client address behind proxies, route table and home assembly."""

from __future__ import annotations

import time

import pytest

from shouwang_shared.auth import Principal, Role
from shouwang_shared.errors import Forbidden, Unauthorized

from gateway.breaker import BreakerState, CircuitBreaker
from gateway.console.orgs import org_name, tree_order, unit_names
from gateway.console.views import PROJECT_INPUTS, ServiceAnswer, form_refusal, local_time, operation_map, reason_text
from gateway.edge import client_ip
from gateway.home import assemble_home
from gateway.routing import ROUTES, SERVICES, authorize, check_scope_param, resolve
from gateway.schemas import HomePartPublic


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_threshold_and_fails_fast_until_reset():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=10, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == BreakerState.CLOSED
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == BreakerState.OPEN
    assert not breaker.allow()
    clock.now += 4
    assert breaker.retry_after_s() == 6
    assert not breaker.allow()


def test_breaker_half_open_lets_one_trial_and_closes_on_success():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=5, clock=clock)
    breaker.allow()
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    assert breaker.state == BreakerState.HALF_OPEN
    assert not breaker.allow(), "only one trial at a time"
    breaker.record_success()
    assert breaker.state == BreakerState.CLOSED and breaker.allow()


def test_breaker_failed_trial_reopens():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=5, clock=clock)
    breaker.allow()
    breaker.record_failure()
    clock.now += 6
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == BreakerState.OPEN and not breaker.allow()


def test_success_resets_the_failure_count():
    breaker = CircuitBreaker(failure_threshold=3, clock=Clock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == BreakerState.CLOSED


def _scope(peer: str, *forwarded: str) -> dict:
    return {"client": (peer, 51000), "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded]}


def test_client_ip_is_the_socket_peer_unless_proxies_are_trusted():
    assert client_ip(_scope("10.0.0.7", "203.0.113.9"), proxy_hops=0) == "10.0.0.7", "no proxy: the header is the client's word"


def test_client_ip_counts_trusted_hops_from_the_right():
    ingress_saw = _scope("10.42.0.3", "198.51.100.23")
    assert client_ip(ingress_saw, proxy_hops=1) == "198.51.100.23"
    spoofed = _scope("10.42.0.3", "1.2.3.4, 198.51.100.23")
    assert client_ip(spoofed, proxy_hops=1) == "198.51.100.23", "what the client wrote left of the ingress's entry is ignored"
    two_headers = _scope("10.42.0.3", "1.2.3.4", "198.51.100.23")
    assert client_ip(two_headers, proxy_hops=1) == "198.51.100.23"
    behind_lb_and_ingress = _scope("10.42.0.3", "6.6.6.6, 198.51.100.23, 10.0.0.9")
    assert client_ip(behind_lb_and_ingress, proxy_hops=2) == "198.51.100.23"
    assert client_ip(_scope("10.42.0.3", "2001:db8::1"), proxy_hops=1) == "2001:db8::1"


def test_client_ip_falls_back_to_the_peer_when_the_header_cannot_be_trusted():
    assert client_ip(_scope("10.42.0.3"), proxy_hops=1) == "10.42.0.3", "no header: a request that bypassed the ingress"
    assert client_ip(_scope("10.42.0.3", "198.51.100.23"), proxy_hops=2) == "10.42.0.3", "fewer entries than hops"
    assert client_ip(_scope("10.42.0.3", "unknown"), proxy_hops=1) == "10.42.0.3"
    assert client_ip(_scope("10.42.0.3", "1.2.3.4, 不是地址"), proxy_hops=1) == "10.42.0.3"


def _p(role: Role, scope: str = "/c/t1") -> Principal:
    return Principal(sub="s", role=role, scope_path=scope if role != Role.VOLUNTEER else "", volunteer_id="v" if role == Role.VOLUNTEER else None)


def test_route_table_covers_every_resource_of_the_conventions_once():
    expected = {
        "registry": {"org-units", "grids", "volunteers", "teams", "invites", "registrations", "training", "staff", "imports", "cards"},
        "dispatch": {"operations", "posts", "assignments", "fill-rate", "hours", "projects", "shifts"},
        "intel": {"tips", "receipts", "cases", "triage", "needs", "disputes", "bulletins", "liaison", "duty-roster", "columns",
                  "violations"},
        "rewards": {"ledger", "balances", "rules", "stars", "leaderboards", "redemptions", "benefits", "commendations"},
        "reports": {"reports"},
    }
    for service in SERVICES:
        assert {r.resource for r in ROUTES if r.service == service} == expected[service]
    assert len({r.resource for r in ROUTES}) == len(ROUTES)
    assert resolve("nothing") is None


def test_anonymous_routes_are_exactly_the_public_ones():
    public = {(r.resource, m) for r in ROUTES for m in ("GET", "POST", "PUT", "PATCH", "DELETE") if r.is_public(m)}
    assert ("tips", "POST") in public and ("needs", "POST") in public and ("registrations", "POST") in public
    assert ("bulletins", "GET") in public and ("receipts", "GET") in public
    assert ("tips", "GET") not in public and ("bulletins", "POST") not in public
    assert {res for res, _ in public} == {"tips", "needs", "registrations", "bulletins", "receipts", "columns", "violations"}
    assert {m for res, m in public if res in ("columns", "violations")} == {"GET"}  # the information columns are read-only
    assert not resolve("needs").is_public("POST", "n-1/status") and not resolve("bulletins").is_public("GET", "drafts")  # only the root
    assert resolve("receipts").is_public("POST", "R-1/reward-claim")
    cards = resolve("cards")  # a card verifier caches the issuer keys and the revocation list without signing in
    assert cards.is_public("GET", "keys") and cards.is_public("GET", "revocations") and cards.is_public("HEAD", "keys")
    assert not cards.is_public("GET", "") and not cards.is_public("GET", "anything") and not cards.is_public("POST", "keys")
    assert cards.allowed_roles("GET", "") == frozenset()


def test_authorize_401_without_token_403_for_excluded_role_and_own_paths():
    volunteers = resolve("volunteers")
    with pytest.raises(Unauthorized):
        authorize(volunteers, "GET", "", None)
    with pytest.raises(Forbidden):
        authorize(volunteers, "GET", "", _p(Role.VOLUNTEER))
    authorize(volunteers, "GET", "me", _p(Role.VOLUNTEER))
    authorize(volunteers, "GET", "", _p(Role.TOWN_ADMIN))
    with pytest.raises(Forbidden):
        authorize(resolve("bulletins"), "GET", "", _p(Role.SERVICE))
    authorize(resolve("tips"), "POST", "", None)
    with pytest.raises(Forbidden):
        authorize(resolve("liaison"), "GET", "", _p(Role.VOLUNTEER))


def test_scope_param_outside_the_staff_scope_is_refused():
    check_scope_param(_p(Role.TOWN_ADMIN, "/c/t1"), "/c/t1/s9")
    with pytest.raises(Forbidden) as err:
        check_scope_param(_p(Role.TOWN_ADMIN, "/c/t1"), "/c/t2")
    assert err.value.field == "org_path"
    check_scope_param(_p(Role.OPERATOR, ""), "/c/t2")


def test_home_assembly_splits_assignments_and_marks_missing_parts():
    parts = {
        "profile": HomePartPublic(status="ok", service="registry", data={"display_name": "张三", "star": 3}),
        "assignments": HomePartPublic(status="ok", service="dispatch", data={"items": [
            {"id": "a1", "status": "offered"}, {"id": "a2", "status": "accepted"}, {"id": "a3", "status": "declined"}]}),
        "balances": HomePartPublic(status="timeout", service="rewards"),
    }
    home = assemble_home(parts, 812.34)
    assert [a["id"] for a in home.offers.data] == ["a1"]
    assert [a["id"] for a in home.shifts.data] == ["a2"]
    assert home.points.status == "timeout"
    assert home.star.status == "ok" and home.star.data == 3, "star falls back to the profile"
    assert home.complete is False and home.elapsed_ms == 812.3


def test_a_cached_token_verification_still_refuses_the_token_once_it_expires():
    from shouwang_shared.auth import TokenSigner, TokenVerifier, generate_keypair

    private, public = generate_keypair()
    clock = Clock()
    clock.now = time.time()
    verifier = TokenVerifier({"k": public}, issuer="shouwang", audience="shouwang", clock=clock)
    signer = TokenSigner(private, "k", issuer="shouwang", audience="shouwang")
    token = signer.issue(sub="v1", role=Role.VOLUNTEER, volunteer_id="v1", ttl_s=60)
    first = verifier.verify(token)
    assert verifier.verify(token) is first, "the second check is served from the cache"
    clock.now += 60 + verifier.leeway_s
    with pytest.raises(Unauthorized) as expired:
        verifier.verify(token)
    assert expired.value.code == "token_expired"
    with pytest.raises(Unauthorized):
        verifier.verify(token)
    forged = token[: token.rindex(".") + 1] + ("A" if token[-1] != "A" else "B") * 86
    with pytest.raises(Unauthorized):
        TokenVerifier({"k": public}, issuer="shouwang", audience="shouwang").verify(forged)


def test_the_token_cache_is_bounded():
    from shouwang_shared.auth import TokenSigner, TokenVerifier, generate_keypair

    private, public = generate_keypair()
    verifier = TokenVerifier({"k": public}, issuer="shouwang", audience="shouwang", cache_size=3)
    signer = TokenSigner(private, "k", issuer="shouwang", audience="shouwang")
    tokens = [signer.issue(sub=f"v{i}", role=Role.VOLUNTEER) for i in range(5)]
    for token in tokens:
        verifier.verify(token)
    assert len(verifier._verified) == 3 and tokens[0] not in verifier._verified and tokens[-1] in verifier._verified


async def test_concurrent_session_checks_share_one_database_read_and_logout_news_wins():
    import asyncio

    from gateway.accounts import SessionCheckCache

    cache, reads = SessionCheckCache(ttl_s=2.0), []
    release = asyncio.Event()

    async def load() -> bool:
        reads.append(1)
        await release.wait()
        return True

    waiting = [asyncio.ensure_future(cache.check("s1", load)) for _ in range(20)]
    await asyncio.sleep(0)
    cache.put("s1", False)  # a logout on this replica while the read is in flight
    release.set()
    assert await asyncio.gather(*waiting) == [True] * 20 and len(reads) == 1
    assert cache.get("s1") is False, "the older read does not overwrite the logout"


async def test_a_stale_session_answer_is_served_while_one_background_check_refreshes_it():
    import asyncio
    import time

    from gateway.accounts import SessionCheckCache

    cache, reads = SessionCheckCache(ttl_s=2.0, stale_for_s=30.0), []
    release = asyncio.Event()

    async def revoked_elsewhere() -> bool:
        reads.append(1)
        await release.wait()
        return False

    cache.put("s1", True)
    cache._entries["s1"] = (True, time.monotonic() - 3)  # past its ttl, within the stale window
    assert [cache.get("s1", refresh=revoked_elsewhere) for _ in range(50)] == [True] * 50, "busy callers never wait"
    await asyncio.sleep(0)
    assert len(reads) == 1, "one background check for all of them"
    release.set()
    await asyncio.sleep(0.01)
    assert cache.get("s1", refresh=revoked_elsewhere) is False, "the revocation is seen as soon as the check returns"
    cache._entries["s1"] = (True, time.monotonic() - 31)
    assert cache.get("s1", refresh=revoked_elsewhere) is None, "too old to serve: the caller waits for a check"


def test_the_operation_map_places_posts_north_up_and_shows_only_open_cases_near_them():
    posts = [
        {"post_id": "p1", "name": "东门", "lat": 30.27, "lon": 120.20, "required": 4, "accepted": 4, "on_post": 3, "checked_in": 3},
        {"post_id": "p2", "name": "西门", "lat": 30.26, "lon": 120.18, "required": 1, "accepted": 0, "on_post": 0, "checked_in": 0},
        {"post_id": "p3", "name": "未定位", "lat": None, "lon": None, "required": 2, "accepted": 1, "on_post": 0, "checked_in": 0},
    ]
    cases = [
        {"case_id": "c1", "status": "new", "lat": 30.265, "lon": 120.19},
        {"case_id": "c2", "status": "forwarded", "lat": 30.265, "lon": 120.19},  # handed over: not the operation's to watch
        {"case_id": "c3", "status": "triaged", "lat": 31.0, "lon": 121.0},  # far away
        {"case_id": "c4", "status": "verified", "lat": None, "lon": None},
    ]
    drawn = operation_map(posts, cases)
    east, west = drawn["posts"]
    assert (east["filled"], west["filled"]) == ("full", "empty") and len(drawn["posts"]) == 2
    assert east["x"] > west["x"] and east["y"] < west["y"]  # east is right, north is up
    assert east["r"] > west["r"]  # four people need a bigger mark than one
    assert all(0 <= p["x"] <= drawn["width"] and 0 <= p["y"] <= drawn["height"] for p in drawn["posts"])
    assert [c["case_id"] for c in drawn["cases"]] == ["c1"]
    assert operation_map([posts[2]], cases) is None


def test_reason_codes_read_as_words_an_analyst_understands():
    assert reason_text("same_category:fraud") == "同类：诈骗"
    assert reason_text("near_place:0.03km") == "相距 0.03 公里"
    assert reason_text("near_in_time:0.5h") == "时间相隔 0.5 小时"
    assert reason_text("same_identifier:17099887766") == "同一号码或账号：17099887766"
    assert reason_text("same_identifier:wx_chenhao") == "同一号码或账号：wx_chenhao"
    assert reason_text("category:fraud+30") == "类别：诈骗（+30）"
    assert reason_text("word:孩子+20") == "关键词：孩子（+20）"
    assert reason_text("corroborated_by:6+20") == "多条线索印证：6 条（+20）"
    assert reason_text("shared_words:白车、出租屋") == "共同词语：白车、出租屋"
    assert reason_text("something_new:1") == "something_new:1"  # a code the console does not know yet is shown as it is


def test_a_single_post_sits_in_the_middle_of_the_map():
    drawn = operation_map([{"post_id": "p", "name": "东门", "lat": 30.27, "lon": 120.2, "required": 2, "accepted": 1}], [])
    (post,) = drawn["posts"]
    assert (post["x"], post["y"]) == (drawn["width"] / 2, drawn["height"] / 2)


def test_console_times_are_beijing_time():
    assert local_time("2026-12-03T11:30:00+00:00") == "2026-12-03 19:30"
    assert local_time("2026-12-03T16:30:00Z") == "2026-12-04 00:30"
    assert local_time(None) == "" and local_time("not a time") == "not a time"


def test_a_posts_check_in_qr_is_forwarded_for_staff_only():
    operations = resolve("operations")
    path = "op-1/posts/post-1/checkin-qr.png"
    for role in (Role.STATION_ADMIN, Role.TOWN_ADMIN, Role.COUNTY_ADMIN):
        authorize(operations, "GET", path, _p(role))  # dispatch then checks the post's org scope
    for role in (Role.VOLUNTEER, Role.GRID_WORKER, Role.ANALYST):  # the gateway refuses what dispatch would
        with pytest.raises(Forbidden):
            authorize(operations, "GET", path, _p(role))
        with pytest.raises(Forbidden):
            authorize(operations, "GET", "", _p(role))
    with pytest.raises(Unauthorized):
        authorize(operations, "GET", path, None)


def test_an_operations_offers_are_listed_cancelled_and_reoffered_by_dispatch_staff_only():
    operations = resolve("operations")
    for method, path in (("GET", "op-1/offers"), ("POST", "op-1/offers/cancel"), ("POST", "op-1/offers/reoffer")):
        for role in (Role.STATION_ADMIN, Role.TOWN_ADMIN, Role.COUNTY_ADMIN, Role.OPERATOR):
            authorize(operations, method, path, _p(role))  # dispatch then checks the operation's and each post's org scope
        for role in (Role.VOLUNTEER, Role.GRID_WORKER, Role.ANALYST, Role.POLICE_LIAISON):
            with pytest.raises(Forbidden):
                authorize(operations, method, path, _p(role))
        with pytest.raises(Unauthorized):
            authorize(operations, method, path, None)


def test_an_org_path_reads_as_the_names_of_its_units_below_the_scope():
    units = tree_order([
        {"id": "t1", "name": "城关镇", "depth": 1, "path": "/c/t1", "kind": "town"},
        {"id": "s2", "name": "西门站", "depth": 2, "path": "/c/t1/s2", "kind": "station"},
        {"id": "s1", "name": "东门站", "depth": 2, "path": "/c/t1/s1", "kind": "station"},
    ])
    assert [u["name"] for u in units] == ["城关镇", "东门站", "西门站"] and [u["level"] for u in units] == [0, 1, 1]
    names = unit_names(units)
    assert org_name("/c/t1/s1", names) == "东门站"  # the scope's own town left out: every row lies in it
    assert org_name("/c/t1/s1/g9", names) == "东门站"  # a grid below what the picker loads: named by its station
    assert org_name("/c/t1", names) == "城关镇"  # the scope's own unit when the row is its own
    assert org_name("/c/t7/s8", names) == "/c/t7/s8" and org_name(None, names) == ""  # nothing known: the path


def test_a_refused_form_names_its_own_label_and_marks_the_input():
    bad_lat = ServiceAnswer(422, message="places.0.lat: 应为数字", field="places.0.lat")
    assert form_refusal(bad_lat, PROJECT_INPUTS) == ("纬度：应为数字", "place-lat")
    out_of_scope = ServiceAnswer(403, message="不在您的管辖范围内", field="org_path")  # a refusal that is not a validation's
    assert form_refusal(out_of_scope, PROJECT_INPUTS) == ("所属组织：不在您的管辖范围内", "project-org")
    elsewhere = ServiceAnswer(409, message="同名项目已存在", field="Idempotency-Key")  # no input of the form: as said
    assert form_refusal(elsewhere, PROJECT_INPUTS) == ("同名项目已存在", None)
