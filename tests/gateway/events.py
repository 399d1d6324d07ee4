"""Registry's events as its relay publishes them, for gateway tests that play registry."""

from __future__ import annotations

from datetime import datetime

from shouwang_dev.testing import TestStack
from shouwang_shared.contracts.registry import VolunteerState
from shouwang_shared.envelope import new_event
from shouwang_shared.kafka import make_producer


async def publish_volunteer_states(stack: TestStack, prefix: str, states: list[VolunteerState], *, at: datetime | None = None) -> None:
    """Publish volunteer states as registry's relay does: the envelope, keyed by volunteer id, on the compacted topic
    (dated `at` when given: a state registry changed earlier and the relay sends late)."""
    producer = make_producer(stack.bootstrap_servers)
    await producer.start()
    try:
        for state in states:
            event = new_event(source=state.SOURCE, type=state.TYPE, subject=state.volunteer_id, data=state)
            if at is not None:
                event.time = at
            await producer.send_and_wait(f"{prefix}{state.TOPIC}", event.to_bytes(), key=state.volunteer_id.encode())
    finally:
        await producer.stop()
