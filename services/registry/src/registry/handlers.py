"""Kafka handlers of the registry service: translate an event and call one service function."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from shouwang_shared.app import ConsumerSpec
from shouwang_shared.contracts.rewards import StarChanged, StarChangeWithdrawn
from shouwang_shared.envelope import EventMeta
from shouwang_shared.inbox import PoisonMessage, typed_handlers

from registry.stars import record_star_change, withdraw_star_change

log = logging.getLogger(__name__)


async def on_star_changed(session: AsyncSession, change: StarChanged, event: EventMeta) -> None:
    """Hold the star change until its `effective_at` (applied at once when already due) and re-emit the state then."""
    if not 1 <= change.new_star <= 5:
        raise PoisonMessage(f"new_star {change.new_star} is outside 1..5")
    try:
        uuid.UUID(change.volunteer_id)
    except ValueError as exc:
        raise PoisonMessage(f"volunteer_id is not a UUID: {change.volunteer_id!r}") from exc
    known = await record_star_change(session, change=change, cause_id=event.id, correlation_id=event.correlationid)
    if not known:
        raise PoisonMessage(f"unknown volunteer {change.volunteer_id}")


async def on_star_change_withdrawn(session: AsyncSession, withdrawal: StarChangeWithdrawn, _event: EventMeta) -> None:
    """Drop the waiting star change rewards withdrew, so it never takes effect."""
    try:
        uuid.UUID(withdrawal.volunteer_id)
    except ValueError as exc:
        raise PoisonMessage(f"volunteer_id is not a UUID: {withdrawal.volunteer_id!r}") from exc
    if not await withdraw_star_change(session, withdrawal=withdrawal):
        raise PoisonMessage(f"unknown volunteer {withdrawal.volunteer_id}")


def consumer_specs() -> list[ConsumerSpec]:
    """The consumer groups this service runs."""
    return [ConsumerSpec(name="registry", topics=[StarChanged.TOPIC], handlers=typed_handlers({
        StarChanged: on_star_changed, StarChangeWithdrawn: on_star_change_withdrawn}))]
