"""Events published by the dispatch service."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from shouwang_shared.contracts import EventPayload

SOURCE = "/services/dispatch"
TOPIC_OPERATIONS = "dispatch.operations.v1"
TOPIC_ASSIGNMENTS = "dispatch.assignments.v1"


class OperationActivated(EventPayload):
    """An operation was activated: the planner assigns volunteers to all its posts at once."""

    TYPE = "shouwang.dispatch.operation_activated.v1"
    TOPIC = TOPIC_OPERATIONS
    SOURCE = SOURCE

    operation_id: str
    kind: Literal["planned", "emergency"]
    name: str
    org_unit_id: str | None = None
    org_path: str | None = None
    activated_by: str
    escalation_id: str | None = None
    headcount: int | None = None  # people the operation's posts ask for in all (what a fill rate divides by)


class OperationClosed(EventPayload):
    """An operation ended; open offers lapse."""

    TYPE = "shouwang.dispatch.operation_closed.v1"
    TOPIC = TOPIC_OPERATIONS
    SOURCE = SOURCE

    operation_id: str
    closed_by: str


class Place(BaseModel):
    """Where a post is."""

    name: str
    lat: float
    lon: float


class AssignmentOffered(EventPayload):
    """A volunteer is offered a shift at a post and must answer by `respond_by`."""

    TYPE = "shouwang.dispatch.assignment_offered.v1"
    TOPIC = TOPIC_ASSIGNMENTS
    SOURCE = SOURCE

    assignment_id: str
    operation_id: str
    operation_name: str
    post_id: str
    volunteer_id: str
    shift_start: datetime
    shift_end: datetime
    place: Place
    respond_by: datetime
    wave: int = 0


class AssignmentAnswered(EventPayload):
    """A volunteer accepted or declined an offer, or it expired unanswered."""

    TYPE = "shouwang.dispatch.assignment_answered.v1"
    TOPIC = TOPIC_ASSIGNMENTS
    SOURCE = SOURCE

    assignment_id: str
    operation_id: str
    post_id: str
    volunteer_id: str
    answer: Literal["accepted", "declined", "expired", "cancelled"]
    reason: str | None = None
    at: datetime


class AssignmentAttendance(EventPayload):
    """A volunteer checked in at or out of a post."""

    TYPE = "shouwang.dispatch.assignment_attendance.v1"
    TOPIC = TOPIC_ASSIGNMENTS
    SOURCE = SOURCE

    assignment_id: str
    operation_id: str
    post_id: str
    volunteer_id: str
    action: Literal["checked_in", "checked_out", "no_show"]
    at: datetime


class ShiftSignupChanged(EventPayload):
    """A volunteer's sign-up for a shift of a service project changed state (why: signed_up, promoted from the waitlist,
    confirmed by staff, cancelled by the volunteer, or cancelled because the shift was)."""

    TYPE = "shouwang.dispatch.shift_signup_changed.v1"
    TOPIC = TOPIC_ASSIGNMENTS
    SOURCE = SOURCE

    signup_id: str
    shift_id: str
    project_id: str
    project_name: str
    volunteer_id: str
    status: Literal["applied", "confirmed", "waitlisted", "cancelled"]
    previous_status: Literal["applied", "confirmed", "waitlisted", "cancelled"] | None = None
    reason: Literal["signed_up", "promoted", "confirmed", "cancelled", "shift_cancelled"]
    starts_at: datetime
    ends_at: datetime
    place: Place
    at: datetime


class ServiceHoursRecorded(EventPayload):
    """Service hours earned at a post (after check-out); what rewards credits to the alliance bank."""

    TYPE = "shouwang.dispatch.service_hours_recorded.v1"
    TOPIC = "dispatch.hours.v1"
    SOURCE = SOURCE

    record_id: str
    assignment_id: str
    volunteer_id: str
    operation_id: str
    post_id: str
    hours: float
    difficulty: int = 1  # 1..3
    risk: int = 1  # 1..3
    role: Literal["member", "organiser"] = "member"
    started_at: datetime
    ended_at: datetime
    org_path: str | None = None
    # What the hours were served in, for the national service record: an operation's post, or a project's shift
    # (then `operation_id` is the project's id and `post_id` the shift's). Absent in events before 2026-12-04.
    activity: Literal["operation", "project"] = "operation"
    activity_name: str | None = None  # the operation's or the project's name
    activity_kind: str | None = None  # planned / emergency; a project's kind (school_patrol, care, legal_outreach, custom)
    place_name: str | None = None  # the post, or the project's place
    organiser_path: str | None = None  # the org unit that ran it
