"""Kafka handlers of the dispatch service: translate an event and call one service function."""

from __future__ import annotations

from shouwang_shared.app import ConsumerSpec
from shouwang_shared.contracts.dispatch import OperationActivated
from shouwang_shared.contracts.intel import EscalationRaised
from shouwang_shared.contracts.registry import VolunteerState
from shouwang_shared.inbox import batch_handler, route

from dispatch import operations, read_model

CONSUMER = "dispatch"


def consumer_specs() -> list[ConsumerSpec]:
    """One consumer group: volunteer states (read model), activations (planner) and intel escalations."""
    return [
        ConsumerSpec(
            name=CONSUMER,
            topics=[VolunteerState.TOPIC, OperationActivated.TOPIC, EscalationRaised.TOPIC],
            handlers={
                route(VolunteerState): batch_handler(read_model.record_volunteer_states),
                route(OperationActivated): operations.plan_operation,
                route(EscalationRaised): operations.open_emergency_operation,
            },
            max_records=2000,
        )
    ]
