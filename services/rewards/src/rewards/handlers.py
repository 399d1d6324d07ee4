"""Kafka handlers of the rewards service: translate an event and call one service function."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from shouwang_shared.app import ConsumerSpec
from shouwang_shared.contracts import registry_of_payloads
from shouwang_shared.contracts.dispatch import AssignmentAttendance, ServiceHoursRecorded
from shouwang_shared.contracts.intel import CaseOutcomeRecorded, CasesMerged, TipSubmitted
from shouwang_shared.contracts.registry import TrainingAttended, VolunteerState
from shouwang_shared.envelope import EventMeta
from shouwang_shared.inbox import batch_handler, route, typed_handlers

from rewards import crediting

CONSUMER = "rewards"


async def on_case_outcome(session: AsyncSession, outcome: CaseOutcomeRecorded, event: EventMeta) -> None:
    """Intel recorded a case's outcome: pay the case's one reward if it is due."""
    await crediting.pay_case_outcome(session, outcome=outcome, cause=event)


async def on_cases_merged(session: AsyncSession, merged: CasesMerged, event: EventMeta) -> None:
    """Intel merged cases: they share one reward from now on."""
    await crediting.merge_cases(session, merged=merged, cause=event)


def consumer_specs() -> list[ConsumerSpec]:
    """One consumer group over every fact rewards scores; the hot facts, of whatever type, are credited a run at a time."""
    credit_facts = batch_handler(crediting.credit_facts)
    payloads = registry_of_payloads()
    return [
        ConsumerSpec(
            name=CONSUMER,
            topics=[
                TipSubmitted.TOPIC, CaseOutcomeRecorded.TOPIC, ServiceHoursRecorded.TOPIC, TrainingAttended.TOPIC,
                VolunteerState.TOPIC, AssignmentAttendance.TOPIC,
            ],
            handlers={
                **dict.fromkeys((route(payloads[t]) for t in crediting.CREDITED_FACTS), credit_facts),
                **typed_handlers({CaseOutcomeRecorded: on_case_outcome, CasesMerged: on_cases_merged}),
                route(VolunteerState): batch_handler(crediting.record_volunteer_states),
                route(AssignmentAttendance): batch_handler(crediting.record_no_shows),
            },
            max_records=2000,
        )
    ]
