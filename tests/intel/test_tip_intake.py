"""Tip intake against the real database and broker: anonymity, idempotency, receipts and bad input."""

from __future__ import annotations

import base64
import hashlib
import statistics
import time
import uuid

import orjson
from sqlalchemy import text

from shouwang_dev.testing import eventually, read_topic, running_app
from shouwang_shared.contracts.intel import TipSubmitted

from intel.main import create_app
from intel_helpers import case_of
from tests.intel.conftest import intel_settings

FRAUD_TEXT = "接到自称公安局民警的电话，号码17012345678，说我涉嫌洗钱要把钱转到安全账户，让我转账20000元"


async def _tip_events(intel, tip_id: str):
    events = await read_topic(intel.stack.bootstrap_servers, intel.topic("intel.tips.v1"))
    return [env for _, env, _ in events if not isinstance(env, bytes) and env.subject == tip_id]


async def _outbox_drained(intel) -> bool:
    async with intel.engine.connect() as conn:
        return await conn.scalar(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL")) == 0


async def test_anonymous_tip_keeps_nothing_identifying(intel):
    headers = {"User-Agent": "Mozilla/5.0 (iPhone; zhangsan-phone)", "X-Forwarded-For": "203.0.113.77", "X-Device-Id": "device-abc-123"}
    body = {"category": "fraud", "text": FRAUD_TEXT, "lat": 29.87, "lon": 119.94, "channel": "web"}
    resp = await intel.client.post("/v1/tips", json=body, headers=headers)
    assert resp.status_code == 202, resp.text
    answer = resp.json()
    assert answer["receipt_code"].startswith("R") and len(answer["receipt_secret"]) == 16
    tip_id = answer["tip_id"]

    async with intel.engine.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM tips WHERE id = :id"), {"id": tip_id})).mappings().one()
        outbox = [bytes(r[0]) for r in (await conn.execute(text("SELECT payload FROM outbox"))).all()]
    stored = orjson.dumps({k: str(v) for k, v in row.items()}).decode() + "".join(p.decode() for p in outbox)
    for secret in ("203.0.113.77", "Mozilla", "iPhone", "device-abc-123", answer["receipt_code"], answer["receipt_secret"]):
        assert secret not in stored, f"{secret} was stored"
    assert row["volunteer_id"] is None and row["reporter_kind"] == "anonymous"
    assert row["receipt_secret_hash"] != answer["receipt_secret"]

    events = await eventually(lambda: _tip_events(intel, tip_id), message="TipSubmitted on intel.tips.v1")
    event = events[0]
    assert event.type == "shouwang.intel.tip_submitted.v1"
    assert TipSubmitted.model_validate(event.data).tip_id == tip_id  # the prebuilt payload keeps the contract
    assert event.data["reporter"] == {"kind": "anonymous", "volunteer_id": None, "claim_ref": answer["claim_ref"]}
    raw = event.model_dump_json()
    for secret in ("203.0.113.77", "Mozilla", "device-abc-123", answer["receipt_code"], answer["receipt_secret"]):
        assert secret not in raw


async def test_volunteer_tip_names_the_volunteer_and_shows_in_mine(intel):
    vid = f"vol-{uuid.uuid4().hex[:6]}"
    resp = await intel.client.post(
        "/v1/tips", json={"category": "drugs", "text": "上塘村出租屋经常半夜有人进出，怀疑有人吸毒", "place_text": "白石镇上塘村"},
        headers=intel.volunteer(vid),
    )
    assert resp.status_code == 202, resp.text
    assert resp.json()["receipt_code"] is None
    events = await eventually(lambda: _tip_events(intel, resp.json()["tip_id"]), message="TipSubmitted")
    assert events[0].data["reporter"]["volunteer_id"] == vid
    mine = await intel.client.get("/v1/tips/mine", headers=intel.volunteer(vid))
    assert mine.status_code == 200
    assert [t["tip_id"] for t in mine.json()] == [resp.json()["tip_id"]]
    assert mine.json()[0]["text"] == "上塘村出租屋经常半夜有人进出，怀疑有人吸毒"
    other = await intel.client.get("/v1/tips/mine", headers=intel.volunteer("someone-else"))
    assert other.json() == []


async def test_same_idempotency_key_makes_one_tip_with_the_same_answer(intel):
    key = str(uuid.uuid4())
    body = {"category": "public_order", "text": f"城关镇和平社区桥头深夜飙车扰民 {key[:4]}", "channel": "app"}
    first = await intel.client.post("/v1/tips", json=body, headers={"Idempotency-Key": key})
    again = await intel.client.post("/v1/tips", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    async with intel.engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM tips WHERE text = :t"), {"t": body["text"]})
        events = await conn.scalar(
            text("SELECT count(*) FROM outbox WHERE key = :k AND topic = 'intel.tips.v1'"), {"k": first.json()["tip_id"]}
        )
    assert count == 1 and events == 1
    reused = await intel.client.post("/v1/tips", json={**body, "text": "完全不同的另一条线索内容"}, headers={"Idempotency-Key": key})
    assert reused.status_code == 409 and reused.json()["detail"]["field"] == "Idempotency-Key"


async def test_volunteer_retry_with_key_in_body_is_one_tip(intel):
    body = {"category": "other", "text": "河堤边有一段护栏断了，晚上很危险", "idempotency_key": "retry-key-0001"}
    a = await intel.client.post("/v1/tips", json=body, headers=intel.volunteer("vol-idem"))
    b = await intel.client.post("/v1/tips", json=body, headers=intel.volunteer("vol-idem"))
    c = await intel.client.post("/v1/tips", json=body, headers=intel.volunteer("vol-other"))
    assert a.json()["tip_id"] == b.json()["tip_id"] != c.json()["tip_id"]


async def test_receipt_with_the_secret_shows_progress(intel):
    resp = await intel.client.post("/v1/tips", json={"category": "counterfeit", "text": "老街口烟酒店在卖假茅台，一瓶才三百"})
    code, secret = resp.json()["receipt_code"], resp.json()["receipt_secret"]
    await case_of(intel, resp.json()["tip_id"])
    status = await intel.client.get(f"/v1/receipts/{code}", headers={"X-Receipt-Secret": secret, "X-Forwarded-For": "198.51.100.1"})
    assert status.status_code == 200, status.text
    assert status.json()["category"] == "counterfeit" and status.json()["case_status"] == "new"
    assert status.json()["claim_ref"] == resp.json()["claim_ref"]


async def test_wrong_receipt_secret_answers_like_an_unknown_code_and_is_rate_limited(intel):
    resp = await intel.client.post("/v1/tips", json={"category": "other", "text": "村口路灯坏了一个月没人修"})
    code = resp.json()["receipt_code"]
    wrong = await intel.client.get(f"/v1/receipts/{code}", headers={"X-Receipt-Secret": "WRONGSECRET12345", "X-Forwarded-For": "198.51.100.2"})
    unknown = await intel.client.get("/v1/receipts/RZZZZZZZZZZZ", headers={"X-Receipt-Secret": "WRONGSECRET12345", "X-Forwarded-For": "198.51.100.3"})
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json() == unknown.json()
    assert wrong.json()["detail"]["field"] == "receipt"

    async def timed(path: str, client_ip: str) -> float:
        started = time.perf_counter()
        await intel.client.get(path, headers={"X-Receipt-Secret": "WRONGSECRET12345", "X-Forwarded-For": client_ip})
        return time.perf_counter() - started

    # timing: fresh codes and clients (no limiter involved), measured interleaved once the relay is idle
    codes = []
    for i in range(25):
        tip = await intel.client.post("/v1/tips", json={"category": "other", "text": f"时间测试线索第{i}条，路面塌陷"})
        codes.append(tip.json()["receipt_code"])
    await eventually(lambda: _outbox_drained(intel), message="outbox drained")
    wrong_times, unknown_times = [], []
    for i, known in enumerate(codes):
        wrong_times.append(await timed(f"/v1/receipts/{known}", f"10.9.0.{i}"))
        unknown_times.append(await timed(f"/v1/receipts/RUNKNOWN{i:04d}", f"10.9.1.{i}"))
    ratio = statistics.median(wrong_times) / statistics.median(unknown_times)
    assert 0.5 < ratio < 2.0, (statistics.median(wrong_times), statistics.median(unknown_times))

    # five failures on one code lock it, even for the right secret
    for i in range(intel.settings.receipt_failures_per_code - 1):
        await intel.client.get(f"/v1/receipts/{code}", headers={"X-Receipt-Secret": f"BAD{i}", "X-Forwarded-For": f"10.8.0.{i}"})
    locked = await intel.client.get(f"/v1/receipts/{code}", headers={"X-Receipt-Secret": resp.json()["receipt_secret"], "X-Forwarded-For": "10.8.1.1"})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    # One client scanning many codes is limited at the gateway (tests/gateway/test_edge.py), which knows the client.


async def test_two_replicas_share_one_count_of_wrong_receipt_secrets(intel):
    """Guesses split over two intel replicas lock the code as soon as their sum reaches the limit (not twice it)."""
    resp = await intel.client.post("/v1/tips", json={"category": "other", "text": "菜市场后门的下水道盖板丢了"})
    code, secret = resp.json()["receipt_code"], resp.json()["receipt_secret"]
    second = create_app(intel_settings(intel.stack, intel.settings.database_url, intel.prefix, run_clustering="false"))
    async with running_app(second) as other_replica:
        replicas = [intel.client, other_replica]
        for i in range(intel.settings.receipt_failures_per_code):
            wrong = await replicas[i % 2].get(f"/v1/receipts/{code}", headers={"X-Receipt-Secret": f"GUESS{i:011d}"})
            assert wrong.status_code == 404, wrong.text
        for replica in replicas:
            locked = await replica.get(f"/v1/receipts/{code}", headers={"X-Receipt-Secret": secret})
            assert locked.status_code == 429, locked.text
            assert 0 < int(locked.headers["Retry-After"]) <= intel.settings.receipt_lockout_s
    async with intel.engine.begin() as conn:  # the window runs out: the code opens again, and a new window starts
        await conn.execute(text("UPDATE receipt_failures SET window_started_at = now() - interval '1 day'"))
    assert (await intel.client.get(f"/v1/receipts/{code}", headers={"X-Receipt-Secret": secret})).status_code == 200
    await intel.client.get(f"/v1/receipts/{code}", headers={"X-Receipt-Secret": "GUESSAGAIN000000"})
    async with intel.engine.connect() as conn:
        assert await conn.scalar(text("SELECT failures FROM receipt_failures")) == 1


async def test_bad_input_gets_a_4xx_naming_the_field(intel):
    async def field_of(body, status=422, headers=None):
        resp = await intel.client.post("/v1/tips", json=body, headers=headers or {})
        assert resp.status_code == status, resp.text
        return resp.json()["detail"]["field"]

    assert await field_of({"category": "alien_invasion", "text": "天上有飞碟"}) == "category"
    assert await field_of({"category": "other", "text": "长" * 5001}) == "text"
    assert await field_of({"category": "other", "text": "坐标错了", "lat": 95.0, "lon": 119.9}) == "lat"
    assert await field_of({"category": "other", "text": "坐标错了", "lat": 29.0, "lon": 181.0}) == "lon"
    big = {"content_type": "image/jpeg", "size_bytes": 50 * 1024 * 1024, "sha256": "a" * 64}
    assert await field_of({"category": "other", "text": "附件太大", "attachments": [big]}, status=413) == "attachments.0.size_bytes"
    content = b"x" * 100
    lying = {"content_type": "image/png", "size_bytes": 100, "sha256": "b" * 64, "content_base64": base64.b64encode(content).decode()}
    assert await field_of({"category": "other", "text": "哈希不符", "attachments": [lying]}) == "attachments.0.sha256"
    assert await field_of({"category": "other", "text": "短键"}, headers={"Idempotency-Key": "short-key-1"}) == "Idempotency-Key"


async def test_attachment_bytes_are_stored_with_their_hash(intel):
    content = "现场照片".encode() * 300
    sha = hashlib.sha256(content).hexdigest()
    att = {"content_type": "image/jpeg", "size_bytes": len(content), "sha256": sha, "content_base64": base64.b64encode(content).decode()}
    resp = await intel.client.post("/v1/tips", json={"category": "drugs", "text": "桥头交易毒品，附照片", "attachments": [att]})
    assert resp.status_code == 202, resp.text
    async with intel.engine.connect() as conn:
        stored = (await conn.execute(text("SELECT sha256, size_bytes, content FROM tip_attachments WHERE tip_id = :id"), {"id": resp.json()["tip_id"]})).one()
    assert stored.sha256 == sha and bytes(stored.content) == content


async def test_concurrent_retries_with_one_key_make_one_tip_and_one_case(intel):
    import asyncio

    key = str(uuid.uuid4())
    body = {"category": "fraud", "text": f"有人冒充快递客服要求扫码退款 {key[:6]}", "lat": 29.91, "lon": 119.95}
    answers = await asyncio.gather(*[intel.client.post("/v1/tips", json=body, headers={"Idempotency-Key": key}) for _ in range(5)])
    assert {a.status_code for a in answers} == {202} and len({a.json()["tip_id"] for a in answers}) == 1
    tip_id = answers[0].json()["tip_id"]
    case_id = await case_of(intel, tip_id)
    async with intel.engine.connect() as conn:
        tips = await conn.scalar(text("SELECT count(*) FROM tips WHERE text = :t"), {"t": body["text"]})
        events = await conn.scalar(text("SELECT count(*) FROM outbox WHERE key = :k"), {"k": tip_id})
        count = await conn.scalar(text("SELECT tip_count FROM cases WHERE id = :id"), {"id": case_id})
    assert tips == 1 and events == 1 and count == 1
