"""API shapes of service projects: what staff send to set up a project and its schedule, what volunteers get back."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ProjectKind = Literal["school_patrol", "care", "legal_outreach", "custom"]
SignupStatus = Literal["applied", "confirmed", "waitlisted", "cancelled"]
MAX_SHIFT_MINUTES = 24 * 60


class ProjectPlace(BaseModel):
    """Where a project's shifts happen (a school gate, a 4:30 school, a mediation room)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class ScheduleCreate(BaseModel):
    """An iCalendar recurrence: an RRULE value from a local start date and time (county time, Asia/Shanghai)."""

    model_config = ConfigDict(extra="forbid")

    rrule: str = Field(min_length=6, max_length=500, examples=["FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"])
    starts_on: date
    start_time: time = Field(description="local start time of each shift, e.g. 07:20")
    ends_before: date | None = Field(default=None, description="no shift on or after this date (open when empty)")


class ProjectCreate(BaseModel):
    """A new recurring service project."""

    model_config = ConfigDict(extra="forbid")

    kind: ProjectKind
    label: str | None = Field(default=None, max_length=100, description="what a `custom` project is called")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    org_unit_id: str | None = None
    org_path: str = Field(min_length=1, description="materialized org path the project belongs to")
    places: list[ProjectPlace] = Field(min_length=1, max_length=50, description="one shift per place and occurrence")
    required_skills: list[str] = []
    required_teams: list[str] = Field(default=[], description="any one of these teams")
    capacity: int = Field(ge=1, le=500, description="volunteers per shift; more sign-ups are waitlisted")
    shift_minutes: int = Field(ge=15, le=MAX_SHIFT_MINUTES)
    needs_approval: bool = Field(default=False, description="sign-ups stay `applied` until staff confirm them")
    schedule: ScheduleCreate
    exdates: list[date] = Field(default=[], max_length=400, description="local dates without shifts (holidays)")
    horizon_days: int = Field(default=28, ge=1, le=400, description="how far ahead shifts are generated")

    @model_validator(mode="after")
    def _custom_label(self) -> ProjectCreate:
        if self.kind == "custom" and not (self.label or "").strip():
            raise ValueError("自定义项目需要 label (a custom project needs a label)")
        return self


class ProjectUpdate(BaseModel):
    """Changes to a project that do not touch its schedule (capacity applies to shifts not yet started)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    capacity: int | None = Field(default=None, ge=1, le=500)
    needs_approval: bool | None = None
    horizon_days: int | None = Field(default=None, ge=1, le=400)
    status: Literal["active", "archived"] | None = None


class ScheduleUpdate(BaseModel):
    """A "this and future" edit: from `from_date` on the project follows the new rule; earlier shifts stay as they were."""

    model_config = ConfigDict(extra="forbid")

    from_date: date
    rrule: str = Field(min_length=6, max_length=500)
    start_time: time
    ends_before: date | None = None


class ScheduleExceptionsCreate(BaseModel):
    """Local dates to take out of the schedule (holidays); shifts already generated on them are cancelled."""

    model_config = ConfigDict(extra="forbid")

    dates: list[date] = Field(min_length=1, max_length=400)
    reason: str = Field(default="节假日", max_length=200)


class SegmentPublic(BaseModel):
    """One rule of a project's schedule and the dates it covers."""

    rrule: str
    start_time: time
    starts_on: date
    ends_before: date | None


class ProjectPublic(BaseModel):
    """A stored project."""

    id: str
    kind: ProjectKind
    label: str | None
    name: str
    description: str
    org_unit_id: str | None
    org_path: str
    places: list[ProjectPlace]
    required_skills: list[str]
    required_teams: list[str]
    capacity: int
    shift_minutes: int
    needs_approval: bool
    timezone: str
    exdates: list[date]
    horizon_days: int
    status: str
    schedule: list[SegmentPublic]
    generated_until: datetime | None
    created_by: str
    created_at: datetime


class ShiftPublic(BaseModel):
    """A generated shift and how full it is."""

    id: str
    project_id: str
    project_name: str
    kind: ProjectKind
    place: ProjectPlace
    starts_at: datetime
    ends_at: datetime
    capacity: int
    status: str
    confirmed: int
    waitlisted: int
    applied: int
    distance_km: float | None = None


class ShiftsGeneratedPublic(BaseModel):
    """What one generation run added."""

    project_id: str
    created: int
    generated_until: datetime


class SignupCreate(BaseModel):
    """A volunteer's sign-up: this shift only, or this shift and every later one of the series."""

    model_config = ConfigDict(extra="forbid")

    series: bool = False


class SignupPublic(BaseModel):
    """A sign-up as its volunteer or the project's staff see it."""

    id: str
    shift_id: str
    project_id: str
    project_name: str
    volunteer_id: str
    status: SignupStatus
    series: bool
    starts_at: datetime
    ends_at: datetime
    place: ProjectPlace
    applied_at: datetime
    confirmed_at: datetime | None
    waitlisted_at: datetime | None
    promoted_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    checked_in_at: datetime | None = None
    checked_out_at: datetime | None = None
    hours: float | None = None
    review_reason: str | None = Field(default=None, description="why the attendance waits for review (stale_qr, far_from_post, late_sync, ...)")
    hours_status: Literal["pending", "approved", "declined"] | None = Field(
        default=None, description="after check-out: pending a station admin's approval, approved, or declined (as an assignment's)")
    hours_decline_reason: str | None = None


class SeriesSignupPublic(BaseModel):
    """A series sign-up: each shift's sign-up, and the shifts skipped because they clash with another commitment."""

    signups: list[SignupPublic]
    skipped: list[dict]


class SignupCancelCreate(BaseModel):
    """Why a volunteer withdraws from a shift."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500)


class BeneficiaryCreate(BaseModel):
    """A person a project serves (a child in a care project): a minimal record, sealed at rest."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=50)
    guardian_phone: str = Field(pattern=r"^1[3-9]\d{9}$", description="mainland mobile number of the guardian")
    note: str = Field(default="", max_length=200, description="what the volunteers need to know (kept sealed too)")


class BeneficiaryPublic(BaseModel):
    """A beneficiary as the project's staff see them: name and phone masked, the note as written."""

    id: str
    project_id: str
    name_masked: str
    guardian_phone_masked: str
    note: str
    created_at: datetime
