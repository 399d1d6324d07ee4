"""What each event contributes to the figures: a small fact with no names, texts or reporters. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shouwang_shared.contracts import EventPayload
from shouwang_shared.contracts.dispatch import (
    AssignmentAnswered,
    AssignmentAttendance,
    AssignmentOffered,
    OperationActivated,
    OperationClosed,
    ServiceHoursRecorded,
)
from shouwang_shared.contracts.intel import (
    BulletinPublished,
    CaseForwarded,
    CaseOutcomeRecorded,
    CasesMerged,
    DisputeRecorded,
    NeedRecorded,
    TipReviewed,
    TipSubmitted,
)
from shouwang_shared.contracts.registry import OrgUnitUpserted, TrainingAttended, VolunteerState
from shouwang_shared.contracts.rewards import LedgerEntryPosted


@dataclass(frozen=True)
class Fact:
    """One event's contribution: its kind (a projection) and the JSON-able values that projection keeps."""

    kind: str
    data: dict[str, Any]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _org_unit(e: OrgUnitUpserted, _: datetime) -> dict:
    return {"org_unit_id": e.org_unit_id, "name": e.name, "kind": e.kind, "path": e.path}


def _volunteer(e: VolunteerState, _: datetime) -> dict:
    return {
        "volunteer_id": e.volunteer_id, "version": e.version, "status": e.status, "core": e.core, "star": e.star,
        "recruitment_mode": e.recruitment_mode, "teams": sorted(e.teams), "org_path": e.org_path, "display_name": e.display_name,
        "volunteer_number": e.volunteer_number,
    }


def _training(e: TrainingAttended, _: datetime) -> dict:
    return {
        "attendance_id": e.attendance_id, "session_id": e.session_id, "volunteer_id": e.volunteer_id, "level": e.level,
        "topic": e.topic, "attended_on": e.attended_on.isoformat(), "org_path": e.org_path,
    }


def _tip_submitted(e: TipSubmitted, _: datetime) -> dict:
    return {"tip_id": e.tip_id, "category": e.category, "channel": e.channel, "org_unit_id": e.org_unit_id,
            "submitted_at": _iso(e.submitted_at)}


def _tip_reviewed(e: TipReviewed, _: datetime) -> dict:
    return {"tip_id": e.tip_id, "category": e.category, "verdict": e.verdict, "case_id": e.case_id}


def _case_forwarded(e: CaseForwarded, _: datetime) -> dict:
    return {"case_id": e.case_id, "category": e.category, "priority": e.priority, "forwarded_at": _iso(e.forwarded_at)}


def _case_outcome(e: CaseOutcomeRecorded, _: datetime) -> dict:
    fact = {"case_id": e.case_id, "category": e.category, "outcome": e.outcome, "first_tip_id": e.first_tip_id,
            "outcome_at": _iso(e.recorded_at)}
    counts = e.counts  # totals so far, from a confirmed v2 police answer; None for a v1 answer
    fact.update({
        "suspects_caught": counts.suspects_caught if counts else None,
        "fugitives_caught": counts.fugitives_caught if counts else None,
        "dens_closed": counts.dens_closed if counts else None,
        "seizures": len(counts.seizures) if counts else None,  # lines of what was seized (one per kind and unit)
    })
    return fact


def _cases_merged(e: CasesMerged, _: datetime) -> dict:
    return {"case_id": e.case_id, "merged_case_ids": list(e.merged_case_ids), "first_tip_id": e.first_tip_id}


def _need(e: NeedRecorded, _: datetime) -> dict:
    return {"need_id": e.need_id, "category": e.category, "status": e.status, "org_path": e.org_path,
            "created_at": _iso(e.created_at), "updated_at": _iso(e.updated_at)}


def _dispute(e: DisputeRecorded, _: datetime) -> dict:
    return {"dispute_id": e.dispute_id, "category": e.category, "status": e.status, "outcome": e.outcome,
            "org_path": e.org_path, "sessions": e.sessions_held, "created_at": _iso(e.created_at),
            "closed_at": _iso(e.closed_at), "updated_at": _iso(e.updated_at)}


def _ledger(e: LedgerEntryPosted, _: datetime) -> dict:
    holder = e.volunteer_id or e.account.rsplit("volunteer:", 1)[-1]  # the account names its volunteer when the entry does not
    return {"entry_id": e.entry_id, "account": e.account, "volunteer_id": holder, "pending": e.account.startswith("pending:"),
            "unit": e.unit, "amount": e.amount, "rule_line": e.rule_line, "posted_at": _iso(e.posted_at)}


def _bulletin(e: BulletinPublished, _: datetime) -> dict:
    return {"bulletin_id": e.bulletin_id, "case_type": e.case_type, "serial": e.serial,
            "audience_org_paths": list(e.audience_org_paths), "published_at": _iso(e.published_at)}


def _operation_activated(e: OperationActivated, at: datetime) -> dict:
    return {"operation_id": e.operation_id, "name": e.name, "kind": e.kind, "org_path": e.org_path,
            "headcount": e.headcount, "activated_at": _iso(at)}


def _operation_closed(e: OperationClosed, at: datetime) -> dict:
    return {"operation_id": e.operation_id, "closed_at": _iso(at)}


def _offered(e: AssignmentOffered, _: datetime) -> dict:
    return {"assignment_id": e.assignment_id, "operation_id": e.operation_id, "post_id": e.post_id, "volunteer_id": e.volunteer_id,
            "place_name": e.place.name}


def _answered(e: AssignmentAnswered, _: datetime) -> dict:
    return {"assignment_id": e.assignment_id, "operation_id": e.operation_id, "post_id": e.post_id,
            "volunteer_id": e.volunteer_id, "answer": e.answer}


def _attendance(e: AssignmentAttendance, _: datetime) -> dict:
    return {"assignment_id": e.assignment_id, "operation_id": e.operation_id, "post_id": e.post_id,
            "volunteer_id": e.volunteer_id, "attendance": e.action}


def _hours(e: ServiceHoursRecorded, _: datetime) -> dict:
    return {"record_id": e.record_id, "assignment_id": e.assignment_id, "operation_id": e.operation_id,
            "volunteer_id": e.volunteer_id, "hours": e.hours,
            "org_path": e.org_path, "started_at": _iso(e.started_at), "ended_at": _iso(e.ended_at), "activity": e.activity,
            "activity_name": e.activity_name, "activity_kind": e.activity_kind, "place_name": e.place_name,
            "organiser_path": e.organiser_path}


# The contract each fact kind is read from, and how. Kind names are the projections in `projections.py`.
READERS: dict[type[EventPayload], tuple[str, Any]] = {
    OrgUnitUpserted: ("org_unit", _org_unit),
    VolunteerState: ("volunteer", _volunteer),
    TrainingAttended: ("training", _training),
    TipSubmitted: ("tip_submitted", _tip_submitted),
    TipReviewed: ("tip_reviewed", _tip_reviewed),
    CaseForwarded: ("case_forwarded", _case_forwarded),
    CaseOutcomeRecorded: ("case_outcome", _case_outcome),
    CasesMerged: ("cases_merged", _cases_merged),
    NeedRecorded: ("need", _need),
    DisputeRecorded: ("dispute", _dispute),
    LedgerEntryPosted: ("ledger", _ledger),
    BulletinPublished: ("bulletin", _bulletin),
    OperationActivated: ("operation_activated", _operation_activated),
    OperationClosed: ("operation_closed", _operation_closed),
    AssignmentOffered: ("assignment_offered", _offered),
    AssignmentAnswered: ("assignment_answered", _answered),
    AssignmentAttendance: ("assignment_attendance", _attendance),
    ServiceHoursRecorded: ("hours", _hours),
}
READ_CONTRACTS: dict[str, type[EventPayload]] = {model.TYPE: model for model in READERS}


def fact_of(event_type: str, data: dict[str, Any], at: datetime) -> Fact | None:
    """The fact an event contributes (validated by its contract: a bad payload raises), or None for an event no figure uses."""
    model = READ_CONTRACTS.get(event_type)
    if model is None:
        return None
    kind, read = READERS[model]
    return Fact(kind, read(model.model_validate(data), at))
