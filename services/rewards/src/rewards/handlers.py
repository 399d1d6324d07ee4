"""Kafka handlers of the rewards service: translate an event and call one service function."""

from __future__ import annotations

from shouwang_shared.app import ConsumerSpec
from shouwang_shared.contracts import registry_of_payloads
from shouwang_shared.contracts.dispatch import AssignmentAttendance, ServiceHoursRecorded
from shouwang_shared.contracts.intel import CaseOutcomeRecorded, CasesMerged, TipSubmitted
from shouwang_shared.contracts.registry import TrainingAttended, VolunteerState
from shouwang_shared.inbox import batch_handler, route

from rewards import crediting

CONSUMER = "rewards"


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
                route(CaseOutcomeRecorded): crediting.pay_case_outcome,
                route(CasesMerged): crediting.merge_cases,
                route(VolunteerState): batch_handler(crediting.record_volunteer_states),
                route(AssignmentAttendance): batch_handler(crediting.record_no_shows),
            },
            max_records=2000,
        )
    ]
