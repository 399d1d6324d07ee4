"""QR check-in: rotating and per-shift tokens, what a check-in with each proves, and the printable images staff get."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import png
import zxingcpp

from dispatch.checkin_qr import ROTATION, Verdict, qr_png, qr_svg, rotating_token, shift_token, verdict
from tests.dispatch.service import TOWN_A, TOWN_B, post, volunteer_state

POST = str(uuid.uuid4())
SECRET = "s3cr3t-of-the-post"
NOW = datetime(2026, 12, 7, 1, 3, tzinfo=UTC)
SHIFT = NOW + timedelta(minutes=20)
LAT, LON = 24.5, 116.5


def judge(token: str, *, at: datetime = NOW, now: datetime | None = None, post_id: str = POST, shift_start: datetime = SHIFT) -> Verdict:
    return verdict(token, post_id=post_id, secret=SECRET, at=at, now=now or at, shift_start=shift_start)


def rotating(at: datetime, post_id: str = POST, secret: str = SECRET) -> str:
    return rotating_token(post_id=post_id, secret=secret, at=at).token


# --- the token rule (pure) ---------------------------------------------------------------------------------------


def test_a_rotating_token_is_fresh_in_its_step_and_the_next_then_stale():
    assert judge(rotating(NOW)) is Verdict.FRESH
    assert judge(rotating(NOW - ROTATION)) is Verdict.FRESH  # the previous step: scanned just before it rotated
    assert judge(rotating(NOW - 2 * ROTATION)) is Verdict.STALE
    assert judge(rotating(NOW - timedelta(days=1))) is Verdict.STALE  # a photo of yesterday's QR


def test_a_token_later_than_a_lagging_phone_clock_is_fresh_but_never_one_the_server_has_not_shown():
    lagging = NOW - timedelta(minutes=4)  # an offline check-in stamped by a phone whose clock lags
    assert judge(rotating(NOW), at=lagging, now=NOW) is Verdict.FRESH
    assert judge(rotating(NOW + ROTATION), at=NOW, now=NOW) is Verdict.STALE


def test_a_shift_token_is_fresh_for_its_shift_only():
    issued = shift_token(post_id=POST, secret=SECRET, shift_start=SHIFT, shift_end=SHIFT + timedelta(hours=3), opens_before=timedelta(hours=1))
    assert (issued.valid_from, issued.valid_until, issued.refresh_at) == (SHIFT - timedelta(hours=1), SHIFT + timedelta(hours=3), None)
    assert judge(issued.token) is Verdict.FRESH
    assert judge(issued.token, shift_start=SHIFT + timedelta(days=1)) is Verdict.STALE  # yesterday's sheet, today's shift


def test_another_posts_token_or_a_forged_one_is_refused():
    other = str(uuid.uuid4())
    assert judge(rotating(NOW, post_id=other)) is Verdict.OTHER_POST
    assert judge(rotating(NOW, secret="guessed")) is Verdict.INVALID
    token = rotating(NOW)
    step = re.search(r"\.r(\d+)\.", token)[1]
    assert judge(token.replace(f".r{step}.", f".r{int(step) + 1}.")) is Verdict.INVALID  # a step edited by hand
    assert judge("guess") is Verdict.INVALID and judge("") is Verdict.INVALID


def test_rotating_tokens_change_every_step_and_say_when_to_refresh():
    first = rotating_token(post_id=POST, secret=SECRET, at=NOW)
    assert first.valid_from <= NOW < first.refresh_at == first.valid_from + ROTATION
    assert first.valid_until == first.valid_from + 2 * ROTATION
    assert rotating(first.refresh_at) != first.token and rotating(first.refresh_at - timedelta(seconds=1)) == first.token


def decode_png(data: bytes) -> str:
    width, height, rows, info = png.Reader(bytes=data).read()
    planes = info["planes"]
    pixels = np.array([np.frombuffer(bytes(r) if not isinstance(r, bytes) else r, dtype=np.uint8) for r in rows])
    grey = pixels.reshape(height, width, planes)[:, :, 0] if planes > 1 else pixels.reshape(height, width)
    if info["bitdepth"] == 1:
        grey = grey * 255
    found = zxingcpp.read_barcodes(np.ascontiguousarray(grey.astype(np.uint8)))
    assert len(found) == 1 and found[0].format == zxingcpp.BarcodeFormat.QRCode
    return found[0].text


def decode_svg(data: bytes) -> str:
    """Rasterise the SVG's unit squares (qrcode's path image: `Mx,yH..V..H..z` per dark module) and decode it."""
    text = data.decode()
    assert text.startswith("<?xml") and "<svg" in text and 'xmlns="http://www.w3.org/2000/svg"' in text
    squares = [(float(x), float(y), float(right) - float(x)) for x, y, right in re.findall(r"M([\d.]+),([\d.]+)H([\d.]+)", text)]
    module = squares[0][2]
    assert all(abs(w - module) < 1e-9 for _, _, w in squares)
    size = round(float(re.search(r'viewBox="0 0 ([\d.]+) ', text)[1]) / module)
    image = np.full((size * 4, size * 4), 255, dtype=np.uint8)
    for x, y, _ in squares:
        col, row = round(x / module), round(y / module)
        image[row * 4:(row + 1) * 4, col * 4:(col + 1) * 4] = 0
    found = zxingcpp.read_barcodes(image)
    assert len(found) == 1
    return found[0].text


def test_the_images_decode_to_the_token():
    token = rotating(NOW)
    assert decode_png(qr_png(token)) == token
    assert decode_png(qr_png(token, box_size=3)) == token
    assert decode_svg(qr_svg(token)) == token


# --- the real service ---------------------------------------------------------------------------------------------


async def _accepted(dispatch, op_id: str, post_id: str) -> list[dict]:
    rows = await dispatch.sql("SELECT id::text, volunteer_id FROM assignments WHERE operation_id = $1 AND post_id = $2 ORDER BY volunteer_id",
                              uuid.UUID(op_id), uuid.UUID(post_id))
    for r in rows:
        answer = await dispatch.client.post(f"/v1/assignments/{r['id']}/accept", headers=dispatch.volunteer(r["volunteer_id"]))
        assert answer.status_code == 200, answer.text
    return [dict(r) for r in rows]


async def _operation_with_two_posts(dispatch, start: datetime) -> tuple[dict, str, str]:
    pool = [volunteer_state(LAT + i * 0.0005, LON) for i in range(6)] + [volunteer_state(LAT + 0.4, LON)]
    await dispatch.add_volunteers(pool)
    op = await dispatch.create_operation({"name": "校门护学", "org_path": TOWN_A, "posts": [
        post("第一小学南门", LAT, LON, start, hours=2, headcount=6, org_path=TOWN_A + "/s1"),
        post("第二小学北门", LAT + 0.4, LON, start, hours=2, headcount=1, org_path=TOWN_A + "/s1"),
    ]})
    await dispatch.activate_and_wait(op["id"])
    posts = {r["name"]: str(r["id"]) for r in await dispatch.sql("SELECT id, name FROM posts WHERE operation_id = $1", uuid.UUID(op["id"]))}
    return op, posts["第一小学南门"], posts["第二小学北门"]


async def test_check_in_by_qr_accepts_current_and_previous_tokens_flags_stale_and_far_refuses_another_posts(dispatch):
    start = datetime.now(UTC) + timedelta(minutes=20)
    op, south, north = await _operation_with_two_posts(dispatch, start)
    crew = await _accepted(dispatch, op["id"], south)
    assert len(crew) == 6
    staff = dispatch.headers(scope_path=TOWN_A)
    base = f"/v1/operations/{op['id']}/posts"
    secret = (await dispatch.sql("SELECT checkin_code FROM posts WHERE id = $1", uuid.UUID(south)))[0]["checkin_code"]
    now = datetime.now(UTC)

    async def check_in(who: dict, **body):
        return await dispatch.client.post(f"/v1/assignments/{who['id']}/check-in", json=body, headers=dispatch.volunteer(who["volunteer_id"]))

    current = (await dispatch.client.get(f"{base}/{south}/checkin-token", headers=staff)).json()
    assert current["mode"] == "rotating" and current["post_id"] == south
    other = (await dispatch.client.get(f"{base}/{north}/checkin-token", headers=staff)).json()["token"]
    refused = await check_in(crew[0], qr_token=other)
    assert refused.status_code == 422 and refused.json()["detail"]["field"] == "qr_token"
    assert (await check_in(crew[0], qr_token="SW1.garbage")).json()["detail"]["field"] == "qr_token"

    outcomes = {}
    for who, body in zip(crew, (
        {"qr_token": current["token"]},
        {"qr_token": rotating_token(post_id=south, secret=secret, at=now - ROTATION).token},  # previous step
        {"qr_token": rotating_token(post_id=south, secret=secret, at=now - timedelta(days=1)).token},  # yesterday's photo
        {"qr_token": current["token"], "lat": LAT + 0.05, "lon": LON},  # 5.5 km away with a fresh token
        {"qr_token": rotating_token(post_id=south, secret=secret, at=now - timedelta(hours=2)).token, "lat": LAT + 0.05, "lon": LON},
        {"qr_token": (await dispatch.client.get(f"{base}/{south}/checkin-token?mode=shift", headers=staff)).json()["token"]},
    ), strict=True):
        answer = await check_in(who, **body)
        assert answer.status_code == 200, answer.text
        outcomes[who["id"]] = (answer.json()["status"], answer.json()["review_reason"])
    assert list(outcomes.values()) == [
        ("checked_in", None), ("checked_in", None), ("checked_in", "stale_qr"), ("checked_in", "far_from_post"),
        ("checked_in", "stale_qr,far_from_post"), ("checked_in", None),
    ]
    stored = await dispatch.sql("SELECT id::text, review_reason FROM assignments WHERE post_id = $1", uuid.UUID(south))
    assert {r["id"]: r["review_reason"] for r in stored} == {k: v[1] for k, v in outcomes.items()}


async def test_staff_in_scope_get_the_printable_qr_that_decodes_to_the_token_others_do_not(dispatch):
    start = datetime.now(UTC) + timedelta(days=2)
    op, south, _ = await _operation_with_two_posts(dispatch, start)
    base = f"/v1/operations/{op['id']}/posts/{south}"
    station = dispatch.headers("station_admin", scope_path=TOWN_A + "/s1")

    shift = (await dispatch.client.get(f"{base}/checkin-token?mode=shift", headers=station)).json()
    assert shift["refresh_at"] is None and datetime.fromisoformat(shift["valid_until"]) == start + timedelta(hours=2)
    assert datetime.fromisoformat(shift["valid_from"]) == start - timedelta(hours=1)
    printed = await dispatch.client.get(f"{base}/checkin-qr.png?mode=shift", headers=station)
    assert printed.status_code == 200 and printed.headers["content-type"] == "image/png"
    assert printed.headers["cache-control"] == "no-store" and "refresh" not in printed.headers
    assert decode_png(printed.content) == shift["token"]
    svg = await dispatch.client.get(f"{base}/checkin-qr.svg?mode=shift", headers=station)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert decode_svg(svg.content) == shift["token"]

    before = (await dispatch.client.get(f"{base}/checkin-token", headers=station)).json()["token"]
    screen = await dispatch.client.get(f"{base}/checkin-qr.svg", headers=station)
    after = (await dispatch.client.get(f"{base}/checkin-token", headers=station)).json()["token"]
    assert decode_svg(screen.content) in {before, after}  # the step may turn between the calls
    assert 1 <= int(screen.headers["refresh"]) <= ROTATION.total_seconds()

    elsewhere = dispatch.headers("station_admin", scope_path=TOWN_B + "/s9")
    for path in ("checkin-token", "checkin-qr.svg", "checkin-qr.png"):
        denied = await dispatch.client.get(f"{base}/{path}", headers=elsewhere)
        assert denied.status_code == 403 and denied.json()["detail"]["field"] == "org_path"
        volunteer = await dispatch.client.get(f"{base}/{path}", headers=dispatch.volunteer(str(uuid.uuid4())))
        assert volunteer.status_code == 403
    assert (await dispatch.client.get(f"/v1/operations/{op['id']}/posts/{uuid.uuid4()}/checkin-qr.png", headers=station)).status_code == 404
    assert (await dispatch.client.get(f"/v1/operations/{op['id']}/posts/not-a-post/checkin-token", headers=station)).status_code == 404
    bad_mode = await dispatch.client.get(f"{base}/checkin-qr.png?mode=forever", headers=station)
    assert bad_mode.status_code == 422 and "mode" in bad_mode.text
