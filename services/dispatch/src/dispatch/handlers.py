"""Kafka handlers of the dispatch service: translate an event and call one service function."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from shouwang_shared.app import ConsumerSpec
from shouwang_shared.contracts.dispatch import OperationActivated
from shouwang_shared.contracts.intel import EscalationRaised
from shouwang_shared.contracts.registry import VolunteerState
from shouwang_shared.envelope import EventMeta
from shouwang_shared.inbox import batch_handler, route, typed_handlers

from dispatch import operations, read_model

CONSUMER = "dispatch"


async def on_operation_activated(session: AsyncSession, activated: OperationActivated, event: EventMeta) -> None:
    """An operation was activated: plan it."""
    await operations.plan_operation(session, activated=activated, cause=event)


async def on_escalation_raised(session: AsyncSession, escalation: EscalationRaised, event: EventMeta) -> None:
    """Intel escalated a case: open an emergency operation for it."""
    await operations.open_emergency_operation(session, escalation=escalation, cause=event)


def consumer_specs() -> list[ConsumerSpec]:
    """One consumer group: volunteer states (read model), activations (planner) and intel escalations."""
    return [
        ConsumerSpec(
            name=CONSUMER,
            topics=[VolunteerState.TOPIC, OperationActivated.TOPIC, EscalationRaised.TOPIC],
            handlers={
                route(VolunteerState): batch_handler(read_model.record_volunteer_states),
                **typed_handlers({OperationActivated: on_operation_activated, EscalationRaised: on_escalation_raised}),
            },
            max_records=2000,
        )
    ]
