"""Kafka handlers of the rewards service: translate an event and call one service function."""

from __future__ import annotations

from shouwang_shared.app import ConsumerSpec
from shouwang_shared.contracts.dispatch import AssignmentAttendance, ServiceHoursRecorded
from shouwang_shared.contracts.intel import CaseOutcomeRecorded, CasesMerged, TipReviewed, TipSubmitted
from shouwang_shared.contracts.registry import TrainingAttended, VolunteerState
from shouwang_shared.inbox import batch_handler

from rewards import crediting

CONSUMER = "rewards"


def consumer_specs() -> list[ConsumerSpec]:
    """One consumer group over every fact rewards scores; hot fact types are handled a batch at a time."""
    return [
        ConsumerSpec(
            name=CONSUMER,
            topics=[
                TipSubmitted.TOPIC, CaseOutcomeRecorded.TOPIC, ServiceHoursRecorded.TOPIC, TrainingAttended.TOPIC,
                VolunteerState.TOPIC, AssignmentAttendance.TOPIC,
            ],
            handlers={
                TipSubmitted.TYPE: batch_handler(crediting.credit_tips_submitted),
                TipReviewed.TYPE: batch_handler(crediting.review_tips),
                CaseOutcomeRecorded.TYPE: crediting.pay_case_outcome,
                CasesMerged.TYPE: crediting.merge_cases,
                ServiceHoursRecorded.TYPE: batch_handler(crediting.credit_service_hours),
                TrainingAttended.TYPE: batch_handler(crediting.credit_training),
                VolunteerState.TYPE: batch_handler(crediting.record_volunteer_states),
                AssignmentAttendance.TYPE: batch_handler(crediting.record_no_shows),
            },
            max_records=2000,
        )
    ]
