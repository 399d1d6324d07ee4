"""The push queue on a gateway database of its own: a push service that is away gets the push again later, until
the attempts run out (the sent and dropped-device outcomes are driven end to end in tests/e2e/test_push.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
from sqlalchemy import text

from shouwang_shared.db import make_engine, make_session_factory
from shouwang_shared.migrations import migrate

import gateway
from gateway.notifications import NewNotification, NotificationHub, record_notifications
from gateway.push import MAX_ATTEMPTS, PushDelivery, PushDevice, forget_device, register_device


class AwayPushService:
    """A push service that never takes a message: every send answers `retry`."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, device: PushDevice, payload: bytes, *, ttl_s: int) -> str:
        """Record the try and answer that the push service is away."""
        self.sent.append((device.device_id, orjson.loads(payload)["id"]))
        return "retry"


async def test_a_push_service_that_is_away_gets_the_push_again_later_until_the_attempts_run_out(stack):
    url = await stack.create_database(f"gateway_push_{uuid.uuid4().hex[:6]}")
    engine = make_engine(url, pool_size=2)
    await migrate(engine, Path(gateway.__file__).parent / "migrations")
    sessions = make_session_factory(engine)
    try:
        device = PushDevice("phone-1", "https://push.example/send/1", "p256dh-key", "auth-secret")
        await register_device(sessions=sessions, volunteer_id="v-1", device=device, allowed_hosts=["push.example"])
        hub = NotificationHub()
        async with sessions() as session, session.begin():
            await record_notifications(session, hub=hub, items=[NewNotification("v-1", "event-1", "test", "标题", {"n": 1})])
        service = AwayPushService()
        delivery = PushDelivery(sessions, service, wake=hub.stored)

        async def queued() -> list[tuple[int, bool]]:
            async with sessions() as session:
                return [tuple(r) for r in await session.execute(text("SELECT attempts, not_before > now() FROM push_queue"))]

        assert await delivery.deliver_due() == 1 and len(service.sent) == 1
        assert await queued() == [(1, True)], "kept for later, not due now"
        assert await delivery.deliver_due() == 0, "a row waiting for its time is not taken"
        for attempt in range(2, MAX_ATTEMPTS + 1):
            async with sessions() as session, session.begin():
                await session.execute(text("UPDATE push_queue SET not_before = now()"))  # its wait has passed
            assert await delivery.deliver_due() == 1
            assert await queued() == ([(attempt, True)] if attempt < MAX_ATTEMPTS else []), attempt
        assert len(service.sent) == MAX_ATTEMPTS and {s[0] for s in service.sent} == {"phone-1"}
        await forget_device(sessions=sessions, volunteer_id="v-1", device_id="phone-1")
        async with sessions() as session:
            assert (await session.execute(text("SELECT count(*) FROM push_devices"))).scalar_one() == 0
    finally:
        await engine.dispose()
