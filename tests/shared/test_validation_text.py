"""A refused request says why in Chinese, naming the field and the bound: the `message` is for the person who typed it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import httpx
from fastapi import FastAPI
from pydantic import BaseModel, Field

from shouwang_shared.app import install_error_handlers
from shouwang_shared.validation_text import chinese_reason


class Place(BaseModel):
    name: str = Field(min_length=2, max_length=20)
    lat: float = Field(ge=-90, le=90)


class Shift(BaseModel):
    places: list[Place] = Field(min_length=1)
    kind: Literal["patrol", "school"]
    starts_at: datetime
    capacity: int = Field(gt=0)


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/shifts")
    async def add_shift(shift: Shift) -> dict:
        return {}

    return app


async def _refusal(body) -> dict:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://test") as client:
        answer = await client.post("/shifts", json=body)
    assert answer.status_code == 422
    return answer.json()["detail"]


GOOD = {"places": [{"name": "东门", "lat": 30.2}], "kind": "patrol", "starts_at": "2026-12-05T09:00:00+08:00", "capacity": 2}


async def test_a_phone_or_console_user_reads_each_refused_field_in_chinese_with_its_bound():
    detail = await _refusal({**GOOD, "places": [{"name": "东", "lat": "三十"}], "kind": "guard", "capacity": 0})
    reasons = {e["field"]: e["message"] for e in detail["errors"]}
    assert reasons == {
        "places.0.name": "太短，至少 2 个字",
        "places.0.lat": "应为数字",
        "kind": "不是可选的值（可选：'patrol' or 'school'）",
        "capacity": "应大于 0",
    }
    assert detail["code"] == "invalid" and detail["field"] == "places.0.name" and detail["message"] == "places.0.name: 太短，至少 2 个字"
    assert {e["type"] for e in detail["errors"]} == {"string_too_short", "float_parsing", "literal_error", "greater_than"}  # for programs

    missing = await _refusal({"kind": "patrol", "places": [], "starts_at": "明天上午", "capacity": 1})
    assert {e["field"]: e["message"] for e in missing["errors"]} == {
        "places": "至少 1 项", "starts_at": "应为日期时间，如 2026-12-05T09:00:00+08:00"}
    assert (await _refusal(None))["message"].endswith("必填")


def test_our_own_validators_reasons_pass_through_and_an_unknown_type_keeps_pydantics_words():
    assert chinese_reason({"type": "value_error", "msg": "Value error, 结束时间应晚于开始时间"}) == "结束时间应晚于开始时间"
    assert chinese_reason({"type": "greater_than_equal", "msg": "x", "ctx": {"ge": 1}}) == "应不小于 1"
    assert chinese_reason({"type": "string_too_long", "msg": "x"}) == "太长"  # the bound missing: the reason without it
    assert chinese_reason({"type": "some_new_type", "msg": "Input is odd"}) == "Input is odd"
