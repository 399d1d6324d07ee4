"""Star changes from rewards update the profile and re-emit the volunteer's state; bad ones are dead-lettered."""

from __future__ import annotations

from datetime import UTC, datetime

from shouwang_shared.contracts.registry import VolunteerState
from shouwang_shared.contracts.rewards import StarChanged
from shouwang_shared.envelope import new_event
from shouwang_shared.kafka import make_producer
from shouwang_shared.testing import eventually, read_topic
from shouwang_shared.topics import dead_letter_topic


def star_event(volunteer_id: str, new_star: int):
    now = datetime.now(UTC)
    return new_event(source=StarChanged.SOURCE, type=StarChanged.TYPE, subject=volunteer_id, data=StarChanged(
        volunteer_id=volunteer_id, old_star=1, new_star=new_star, effective_at=now, notice_until=now, reason="季度评星",
    ))


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
