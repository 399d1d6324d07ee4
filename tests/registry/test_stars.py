"""Star changes from rewards take effect at their `effective_at` (never going back to an older star), update the
profile and re-emit the volunteer's state; bad ones are dead-lettered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shouwang_dev.testing import eventually, read_topic
from shouwang_shared.contracts.registry import VolunteerState
from shouwang_shared.contracts.rewards import StarChanged, StarChangeWithdrawn
from shouwang_shared.db import make_engine, make_session_factory
from shouwang_shared.envelope import new_event
from shouwang_shared.kafka import make_producer
from shouwang_shared.topics import dead_letter_topic

from registry.stars import apply_due_stars


def star_event(volunteer_id: str, new_star: int, *, effective_at: datetime | None = None):
    at = effective_at or datetime.now(UTC)
    return new_event(source=StarChanged.SOURCE, type=StarChanged.TYPE, subject=volunteer_id, data=StarChanged(
        volunteer_id=volunteer_id, old_star=1, new_star=new_star, effective_at=at, notice_until=at, reason="季度评星",
    ))


async def send(registry, *events) -> None:
    """Publish star changes as rewards would (key = volunteer id), in the order given."""
    producer = make_producer(registry.stack.bootstrap_servers)
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(f"{registry.stack.topic_prefix}{StarChanged.TOPIC}", event.to_bytes(), key=event.subject.encode())
    finally:
        await producer.stop()


async def star_row(registry, volunteer_id: str):
    return (await registry.sql(
        "SELECT star, version, pending_star, pending_star_effective_at FROM volunteers WHERE id = CAST(:id AS uuid)", id=volunteer_id,
    ))[0]


async def consumed(registry, event) -> bool:
    return bool(await registry.sql("SELECT 1 FROM inbox WHERE event_id = :id", id=event.id))


async def apply_at(registry, now: datetime) -> int:
    """Run the star applier's pass as if it were `now` (what the service's periodic task does)."""
    engine = make_engine(registry.database_url, pool_size=1)
    try:
        return await apply_due_stars(sessions=make_session_factory(engine), now=now)
    finally:
        await engine.dispose()


async def test_a_star_change_shows_on_the_profile_and_in_the_state_stream(registry):
    _, station = await registry.town_with_station()
    volunteer, _ = await registry.volunteer(station)
    prefix, servers = registry.stack.topic_prefix, registry.stack.bootstrap_servers
    producer = make_producer(servers)
    await producer.start()
    try:
        event = star_event(volunteer["id"], 4)
        for _ in range(2):  # a replay changes nothing
            await producer.send_and_wait(f"{prefix}{StarChanged.TOPIC}", event.to_bytes(), key=volunteer["id"].encode())
        poison = star_event("not-a-volunteer-id", 3)
        await producer.send_and_wait(f"{prefix}{StarChanged.TOPIC}", poison.to_bytes(), key=b"x")
    finally:
        await producer.stop()
    me = registry.auth("volunteer", vid=volunteer["id"])

    async def starred():
        body = (await registry.client.get("/v1/volunteers/me", headers=me)).json()
        return body if body["star"] == 4 else None

    profile = await eventually(starred, message="star 4 on the profile")
    assert profile["version"] == 2

    async def states():
        messages = await read_topic(servers, f"{prefix}{VolunteerState.TOPIC}")
        mine = [e for _, e, _ in messages if e.subject == volunteer["id"]]
        return mine if len(mine) >= 2 else None

    mine = await eventually(states, message="re-emitted state")
    assert [(e.data["version"], e.data["star"]) for e in mine] == [(1, 1), (2, 4)]
    assert mine[-1].causationid == event.id

    async def dead():
        messages = await read_topic(servers, f"{prefix}{dead_letter_topic('registry')}")
        return [h for _, e, h in messages if getattr(e, "id", None) == poison.id]

    headers = (await eventually(dead, message="the bad star change dead-lettered"))[0]
    assert b"not-a-volunteer-id" in headers["dlq_reason"]


async def test_a_future_star_change_waits_for_its_time_and_a_late_older_one_never_wins(registry):
    _, station = await registry.town_with_station()
    volunteer, _ = await registry.volunteer(station)
    vid, now = volunteer["id"], datetime.now(UTC)
    newer = star_event(vid, 3, effective_at=now + timedelta(days=7))
    older = star_event(vid, 2, effective_at=now - timedelta(days=1))  # announced before `newer`, arrives after it
    await send(registry, newer, older)

    async def held():
        row = await star_row(registry, vid)
        return row if row.pending_star == 3 else None

    await eventually(held, message="the future change held")
    await eventually(lambda: consumed(registry, older), message="the late older change consumed")
    row = await star_row(registry, vid)
    assert (row.star, row.version, row.pending_star) == (1, 1, 3)  # nothing in force yet, the older one did not win
    assert (await registry.client.get(f"/v1/volunteers/{vid}", headers=registry.admin)).json()["star"] == 1

    assert await apply_at(registry, now + timedelta(days=6)) == 0  # not yet
    assert await apply_at(registry, now + timedelta(days=8)) >= 1
    row = await star_row(registry, vid)
    assert (row.star, row.version, row.pending_star) == (3, 2, None)
    assert (await registry.client.get(f"/v1/volunteers/{vid}", headers=registry.admin)).json()["star"] == 3

    # A replayed or older change after that changes nothing.
    stale = star_event(vid, 5, effective_at=now + timedelta(days=2))
    await send(registry, stale)
    await eventually(lambda: consumed(registry, stale), message="the stale change consumed")
    await apply_at(registry, now + timedelta(days=9))
    assert (await star_row(registry, vid)).star == 3

    async def states():
        messages = await read_topic(registry.stack.bootstrap_servers, f"{registry.stack.topic_prefix}{VolunteerState.TOPIC}")
        mine = [e for _, e, _ in messages if e.subject == vid]
        return mine if len(mine) >= 2 else None

    mine = await eventually(states, message="state re-emitted when the change took effect")
    assert [(e.data["version"], e.data["star"]) for e in mine] == [(1, 1), (2, 3)]
    assert mine[-1].causationid == newer.id


async def test_a_withdrawn_star_change_never_takes_effect_and_a_stale_withdrawal_drops_nothing(registry):
    _, station = await registry.town_with_station()
    volunteer, _ = await registry.volunteer(station)
    vid, now = volunteer["id"], datetime.now(UTC)
    effective_at = now + timedelta(days=7)
    announced = star_event(vid, 2, effective_at=effective_at)

    def withdrawal(at: datetime):
        return new_event(source=StarChangeWithdrawn.SOURCE, type=StarChangeWithdrawn.TYPE, subject=vid, data=StarChangeWithdrawn(
            volunteer_id=vid, star=1, withdrawn_star=2, withdrawn_effective_at=at, reason="公示期内记录恢复"))

    stale, withdrawn = withdrawal(now + timedelta(days=3)), withdrawal(effective_at)
    await send(registry, announced, stale)
    await eventually(lambda: consumed(registry, stale), message="the stale withdrawal consumed")
    assert (await star_row(registry, vid)).pending_star == 2, "a withdrawal of another announcement drops nothing"
    await send(registry, withdrawn)
    await eventually(lambda: consumed(registry, withdrawn), message="the withdrawal consumed")
    row = await star_row(registry, vid)
    assert (row.star, row.pending_star, row.pending_star_effective_at) == (1, None, None)
    await apply_at(registry, now + timedelta(days=8))
    assert (await star_row(registry, vid)).star == 1
