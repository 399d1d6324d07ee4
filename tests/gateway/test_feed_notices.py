"""Feed notices: whatever process stores a notification, every gateway process hears whose feed changed (PostgreSQL
NOTIFY from a trigger, at commit) and wakes those streams; the listener comes back after its connection is lost."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from shouwang_dev.testing import eventually
from shouwang_shared.auth import Role
from shouwang_shared.contracts.dispatch import AssignmentOffered

from gateway.notifications import FEEDS_CHANNEL, IDLE_REREAD_LISTENING_S, IDLE_REREAD_S, NotificationHub, listen_for_feed_notices
from tests.gateway.test_notifications import SseClient, offered, publish

INSERT = ("INSERT INTO notifications (volunteer_id, event_id, kind, title, data, created_at) "
          "SELECT v, 'notice-test:' || v, 'test', '测试', '{}'::jsonb, now() FROM unnest($1::text[]) AS v")


def dsn_of(platform) -> str:
    return platform.database_urls["gateway"].replace("+asyncpg", "")


async def test_one_insert_of_many_people_is_told_in_chunks_under_the_payload_limit_and_a_rollback_tells_nothing(platform):
    heard: list[str] = []
    listener = await asyncpg.connect(dsn_of(platform))
    writer = await asyncpg.connect(dsn_of(platform))
    try:
        await listener.add_listener(FEEDS_CHANNEL, lambda _c, _pid, _ch, payload: heard.append(payload))
        run = uuid.uuid4().hex[:8]
        people = [f"vol-notice-{run}-{n:03d}" for n in range(400)] + [f"staff:a,b-{run}"]  # a comma in a feed key
        async with writer.transaction():
            await writer.execute(INSERT, people)
            await asyncio.sleep(0.5)
            assert heard == []  # nothing before the commit
        await eventually(lambda: len(heard) >= 3, timeout_s=10, message="the notices of the commit")
        await asyncio.sleep(0.3)
        assert len(heard) == 3 and all(len(p.encode()) < 8000 for p in heard)  # 401 people: 150 + 150 + 101
        assert sorted(key for p in heard for key in p.split("\n")) == sorted(people)
        heard.clear()
        try:
            async with writer.transaction():
                await writer.execute(INSERT, [f"vol-notice-{run}-rolled-back"])
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        await asyncio.sleep(0.5)
        assert heard == []
    finally:
        await listener.close()
        await writer.close()


async def test_the_hub_wakes_a_stream_for_a_row_stored_elsewhere_and_listens_again_after_losing_its_connection(platform):
    hub = NotificationHub()
    person = f"vol-notice-{uuid.uuid4().hex[:8]}"
    wake = hub.subscribe(person)
    other = hub.subscribe(f"vol-notice-other-{uuid.uuid4().hex[:8]}")
    assert hub.idle_reread_s == IDLE_REREAD_S
    listening = asyncio.create_task(listen_for_feed_notices(hub, dsn_of(platform), retry_s=0.2))
    admin = await asyncpg.connect(dsn_of(platform))
    try:
        await eventually(lambda: hub.listening, timeout_s=10, message="the hub listening")
        assert hub.idle_reread_s == IDLE_REREAD_LISTENING_S
        wake.clear()  # set once on connecting (everyone re-reads what was stored before), like `other`
        other.clear()
        await admin.execute(INSERT, [person])  # another process's commit: only the notice can wake this stream
        await eventually(wake.is_set, timeout_s=10, message="the stream woken by the notice")
        assert not other.is_set()  # nobody else's stream

        wake.clear()
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = current_database()")
        assert killed >= 1
        await eventually(lambda: not hub.listening, timeout_s=10, message="the lost connection noticed")
        assert hub.idle_reread_s == IDLE_REREAD_S  # streams poll while nobody listens
        await eventually(lambda: hub.listening, timeout_s=10, message="listening again")
        assert wake.is_set() and other.is_set()  # everyone re-reads once: something may have been stored in the gap
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await admin.close()
    assert not hub.listening


async def test_a_phone_connected_to_another_replica_gets_what_this_replica_stored(platform, strict_gateway, producer):
    """The strict gateway runs no consumer: the offer is stored by the platform gateway; the notice wakes the stream."""
    volunteer = f"vol-replica-{uuid.uuid4().hex[:8]}"
    token = await strict_gateway.old_key_logins.token(Role.VOLUNTEER, volunteer_id=volunteer)
    async with SseClient(strict_gateway.url, token) as stream:
        assert stream.status == 200
        offer = offered(volunteer, name="跨副本推送")
        await publish(producer, platform.prefix, offer, AssignmentOffered.TOPIC)
        await eventually(lambda: stream.events, timeout_s=20, message="the offer on the other replica's stream")
        assert [e["data"]["data"]["assignment_id"] for e in stream.events] == [offer.subject]
