"""The daily training review: due at the configured hour of county time, run once per day even when replicas race."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from shouwang_dev.testing import eventually, running_app
from shouwang_shared.db import make_engine, make_session_factory

from registry import training
from registry.daily_schedule import due_day, run_time
from registry.main import create_app
from tests.registry.conftest import Registry, registry_settings

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_the_review_day_follows_county_time():
    # 17:30 UTC on 1 March is 01:30 on 2 March in Shanghai: before 02:00, so the day due is still 1 March.
    assert due_day(datetime(2026, 3, 1, 17, 30, tzinfo=UTC), hour=2, tz=SHANGHAI) == date(2026, 3, 1)
    assert due_day(datetime(2026, 3, 1, 18, 0, tzinfo=UTC), hour=2, tz=SHANGHAI) == date(2026, 3, 2)
    assert run_time(date(2026, 3, 2), hour=2, tz=SHANGHAI) == datetime(2026, 3, 1, 18, 0, tzinfo=UTC)


class Stop(Exception):
    """Ends a review loop running on a simulated clock."""


def simulated_time(start: datetime, end: datetime):
    """A clock and a sleep for one replica: sleeping moves its clock on; past `end` the loop is stopped."""
    now = [start]

    async def sleep(seconds: float) -> None:
        now[0] += timedelta(seconds=seconds)
        if now[0] > end:
            raise Stop
        await asyncio.sleep(0)

    return (lambda: now[0]), sleep


@pytest.fixture(scope="module")
async def lone_registry(stack, topics):
    """A registry on its own database (a county-wide review must not touch the other tests' volunteers), loop off."""
    url = await stack.create_database("registry_daily")
    app = create_app(registry_settings(stack, url, training_review_hour="-1"))
    async with running_app(app) as client:
        operator = {"Authorization": f"Bearer {stack.token('operator', sub='ops')}"}
        county = (await client.post("/v1/org-units", json={"name": "复核县", "kind": "county"}, headers=operator)).json()
        yield Registry(client=client, database_url=url, stack=stack, county=county)


async def test_two_replicas_racing_review_each_day_once_and_flag_who_is_behind(lone_registry, monkeypatch):
    registry = lone_registry
    _, station = await registry.town_with_station()
    behind, _ = await registry.volunteer(station)
    await registry.sql("UPDATE volunteers SET joined_on = CAST(:d AS date) WHERE id = CAST(:id AS uuid)",
                       d=date.today() - timedelta(days=730), id=behind["id"])
    ran: list[date] = []
    real_review = training.daily_review

    async def counted_review(**kwargs):
        outcome = await real_review(**kwargs)
        if outcome is not None:
            ran.append(kwargs["as_of"])
        return outcome

    monkeypatch.setattr(training, "daily_review", counted_review)
    first_day = date.today() + timedelta(days=1)
    start = run_time(first_day, hour=2, tz=SHANGHAI) + timedelta(hours=1)  # 03:00 county time
    end = run_time(first_day + timedelta(days=2), hour=2, tz=SHANGHAI) + timedelta(hours=10)
    engines = [make_engine(registry.database_url, pool_size=2) for _ in range(2)]  # two replicas, two pools
    try:
        loops = []
        for engine in engines:
            clock, sleep = simulated_time(start, end)
            loops.append(training.run_daily_reviews(sessions=make_session_factory(engine), notice_days=30, hour=2,
                                                    tz=SHANGHAI, clock=clock, sleep=sleep))
        results = await asyncio.gather(*loops, return_exceptions=True)
    finally:
        for engine in engines:
            await engine.dispose()
    assert all(isinstance(r, Stop) for r in results), results
    days = [first_day + timedelta(days=i) for i in range(3)]
    assert sorted(ran) == days  # three days, each reviewed by exactly one replica
    runs = await registry.sql("SELECT run_on, outcome FROM daily_runs WHERE job = 'training_review' ORDER BY run_on")
    assert [r.run_on for r in runs] == days and runs[0].outcome["changed"] == 1
    flagged = (await registry.client.get(f"/v1/volunteers/{behind['id']}", headers=registry.admin)).json()
    assert flagged["training_compliant"] is False and flagged["training_flagged_on"] == str(first_day)


async def test_the_service_runs_the_review_by_itself(stack, topics):
    url = await stack.create_database("registry_daily_app")
    app = create_app(registry_settings(stack, url, training_review_hour="2"))
    async with running_app(app):
        engine = make_engine(url, pool_size=1)
        try:
            sessions = make_session_factory(engine)
            today = due_day(datetime.now(UTC), hour=2, tz=SHANGHAI)

            async def reviewed():
                async with sessions() as session:
                    return (await session.execute(text(
                        "SELECT run_on FROM daily_runs WHERE job = 'training_review'"))).scalars().all()

            assert await eventually(reviewed, message="the day's review run at start") == [today]
            assert await training.daily_review(sessions=sessions, as_of=today, notice_days=30) is None  # once a day
        finally:
            await engine.dispose()
