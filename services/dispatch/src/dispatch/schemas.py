"""API shapes of the dispatch service: what staff and volunteers send and get back."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_SHIFT_HOURS = 24


class PostBase(BaseModel):
    """A post of an operation: a place, one shift window, how many heads and who qualifies."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    zone: str | None = Field(default=None, max_length=100)
    org_unit_id: str | None = None
    org_path: str | None = Field(default=None, description="defaults to the operation's org path")
    shift_start: datetime
    shift_end: datetime
    headcount: int = Field(ge=1, le=5000)
    required_skills: list[str] = []
    required_teams: list[str] = Field(default=[], description="any one of these teams")
    required_certificates: list[str] = []
    min_star: int = Field(default=1, ge=1, le=5)
    core_only: bool = False
    priority: int = Field(default=3, ge=1, le=5, description="1 most important … 5 least")
    difficulty: int = Field(default=1, ge=1, le=3)
    risk: int = Field(default=1, ge=1, le=3)
    geofence_m: int = Field(default=300, ge=20, le=5000)
    max_distance_km: float | None = Field(default=None, gt=0, le=500, description="only volunteers this close are asked")

    @field_validator("shift_start", "shift_end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("需要带时区的时间 (a time zone is required)")
        return value

    @model_validator(mode="after")
    def _window(self) -> PostBase:
        if self.shift_end <= self.shift_start:
            raise ValueError("shift_end 必须晚于 shift_start (the shift must end after it starts)")
        if (self.shift_end - self.shift_start).total_seconds() > MAX_SHIFT_HOURS * 3600:
            raise ValueError(f"一个班次不能超过 {MAX_SHIFT_HOURS} 小时 (a shift is at most {MAX_SHIFT_HOURS} hours)")
        return self


class OperationCreate(BaseModel):
    """A new operation (draft) with its posts."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: Literal["planned", "emergency"] = "planned"
    description: str = Field(default="", max_length=5000)
    org_unit_id: str | None = None
    org_path: str = Field(min_length=1, description="materialized org path the operation belongs to")
    respond_within_minutes: int = Field(default=120, ge=1, le=7 * 24 * 60)
    posts: list[PostBase] = []


class PostPublic(PostBase):
    """A stored post."""

    model_config = ConfigDict(extra="ignore")

    id: str
    operation_id: str
    org_path: str


class OperationPublic(BaseModel):
    """A stored operation."""

    id: str
    kind: str
    name: str
    description: str
    status: str
    org_unit_id: str | None
    org_path: str
    respond_within_minutes: int
    escalation_id: str | None
    created_by: str
    created_at: datetime
    activated_at: datetime | None
    planned_at: datetime | None
    closed_at: datetime | None
    plan_summary: dict | None
    post_count: int
    headcount: int


class PostsLoadedPublic(BaseModel):
    """What a bulk post load stored."""

    operation_id: str
    loaded: int
    post_ids: list[str]


class DeclineCreate(BaseModel):
    """Why a volunteer declines an offer."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


class CheckIn(BaseModel):
    """Proof of presence at the post: the token of the post's QR (with the phone's position if it has one), or the position alone (geofence)."""

    model_config = ConfigDict(extra="forbid")

    qr_token: str | None = Field(default=None, max_length=200, description="the text of the post's check-in QR, as scanned")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    at: AwareDatetime | None = Field(default=None, description="the phone's time when the check-in was captured offline (see the late-sync rule)")

    @model_validator(mode="after")
    def _some_proof(self) -> CheckIn:
        if self.qr_token is None and (self.lat is None or self.lon is None):
            raise ValueError("需要 qr_token 或 lat/lon (a QR token or a position is required)")
        return self


class CheckOut(BaseModel):
    """Leaving the post; `at` is the phone's time when the check-out was captured offline."""

    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime | None = Field(default=None, description="the phone's time when the check-out was captured offline")


class AssignmentPublic(BaseModel):
    """An assignment as its volunteer or staff see it."""

    id: str
    operation_id: str
    operation_name: str
    post_id: str
    post_name: str
    place: dict
    volunteer_id: str
    status: str
    wave: int
    distance_km: float
    shift_start: datetime
    shift_end: datetime
    offered_at: datetime
    respond_by: datetime
    answered_at: datetime | None
    decline_reason: str | None
    checked_in_at: datetime | None
    checked_out_at: datetime | None
    hours: float | None
    review_reason: str | None = Field(
        default=None,
        description="why staff should confirm this attendance, comma-separated: late_sync, device_clock_ahead, stale_qr, far_from_post, auto_checkout",
    )
    hours_status: Literal["pending", "approved", "declined"] | None = Field(
        default=None, description="after check-out: pending a station admin's approval (with HOURS_APPROVAL=flagged: only flagged"
        " attendance, the rest approved at once), approved, or declined",
    )
    hours_decline_reason: str | None = None


class OfferPublic(AssignmentPublic):
    """An operation's offer as staff see it: the assignment, and when staff had its slot offered again."""

    reoffered_at: datetime | None = Field(default=None, description="when staff had this lost slot offered again (a backfill wave)")


class OffersCancelCreate(BaseModel):
    """Cancel some offers of an operation (offered or accepted) with a reason the volunteers are told."""

    model_config = ConfigDict(extra="forbid")

    assignment_ids: list[str] = Field(min_length=1, max_length=1000)
    reason: str = Field(min_length=1, max_length=500)


class OffersCancelledPublic(BaseModel):
    """What a bulk cancel did: the offers it cancelled, and those cancelled before (unchanged, nobody told twice)."""

    cancelled: list[str]
    already_cancelled: list[str]


class OffersReofferCreate(BaseModel):
    """Offer the slots of some declined, expired, cancelled or no-show assignments again (a backfill wave at their posts)."""

    model_config = ConfigDict(extra="forbid")

    assignment_ids: list[str] = Field(min_length=1, max_length=1000)


class OffersReofferedPublic(BaseModel):
    """What a bulk re-offer did: slots offered again, slots re-offered before (unchanged), slots nobody could take
    (the post is full again or nobody in reach is free; try later), and how many new offers went out."""

    reoffered: list[str]
    already_reoffered: list[str]
    not_refilled: list[str]
    offers_sent: int


class CheckinTokenPublic(BaseModel):
    """The token a post's check-in QR carries, and the time it is accepted for."""

    post_id: str
    post_name: str
    mode: Literal["rotating", "shift"]
    token: str = Field(description="the QR's text; a phone sends it as `qr_token` when checking in")
    valid_from: datetime
    valid_until: datetime = Field(description="rotating: the end of the step after this one; shift: the shift's end")
    refresh_at: datetime | None = Field(description="when a screen should show the next rotating token (None for a printed shift token)")
    shift_start: datetime
    shift_end: datetime


class HoursDecisionCreate(BaseModel):
    """Approve or decline the pending hours of some assignments or project-shift sign-ups (one or many, mixed)."""

    model_config = ConfigDict(extra="forbid")

    assignment_ids: list[str] = Field(min_length=1, max_length=1000)
    reason: str | None = Field(default=None, min_length=1, max_length=500, description="required to decline; kept with the hours")


class HoursPendingPublic(BaseModel):
    """Hours waiting for a station admin: who served where, how long, and why the attendance was flagged (null: nothing flagged)."""

    kind: Literal["assignment", "shift"] = Field(
        default="assignment", description="assignment: an operation's post; shift: a project shift (ids: sign-up, project, shift)")
    assignment_id: str
    operation_id: str
    operation_name: str
    post_id: str
    post_name: str
    post_org_path: str
    volunteer_id: str
    shift_start: datetime
    shift_end: datetime
    checked_in_at: datetime | None
    checked_out_at: datetime | None
    hours: float | None
    review_reason: str | None


class HoursDecidedPublic(BaseModel):
    """What a decision did: the hours it approved or declined, and those already decided before (unchanged)."""

    decided: list[str]
    already_decided: list[str]


class ShortfallPublic(BaseModel):
    """A post the planner cannot fill: heads left empty and why, with the pools behind the reason (`reason`,
    `qualified_within_reach`, `holding_overlapping_shifts`, `serving_here`, `taken_by_other_posts` when the planner explains it)."""

    model_config = ConfigDict(extra="allow")

    post_id: str
    post_name: str
    headcount: int
    unfilled: int
    eligible_pool: int | None


class PlanPreviewPublic(BaseModel):
    """What the planner would fill now and why each short post stays short (nothing stored)."""

    required: int
    fillable: int
    unfilled: int
    shortfall: list[ShortfallPublic]


class PostFillPublic(BaseModel):
    """How one post is filled: heads asked, offered, pending, accepted, present, lost and projected."""

    post_id: str
    name: str
    zone: str | None
    lat: float
    lon: float
    required: int
    offered: int
    pending: int
    accepted: int
    checked_in: int
    on_post: int
    declined: int
    expired: int
    no_show: int
    declined_by_reason: dict[str, int]
    projected: float
    shortfall: float
    eligible_pool: int | None


class FillRatePublic(BaseModel):
    """The fill rate of an operation (totals over its posts) and of each post."""

    operation_id: str
    name: str
    status: str
    kind: str
    required: float
    offered: float
    accepted: float
    checked_in: float
    on_post: float
    declined: float
    expired: float
    no_show: float
    projected: float
    shortfall: float
    declined_by_reason: dict[str, int]
    fill_pct: float
    unplanned: int | None
    posts: list[PostFillPublic]


class QuotaPublic(BaseModel):
    """One level's quota of an operation: its share, what it split further, and volunteers serving from below it."""

    org_path: str
    parent_org_path: str | None
    quota: int
    status: str
    split_out: int
    unsplit: int
    offered: int
    accepted: int
    checked_in: int


class QuotaTreePublic(BaseModel):
    """The fan-out tree of an operation's quotas the caller may see."""

    operation_id: str
    quotas: list[QuotaPublic]


class QuotaShare(BaseModel):
    """A part of a quota handed to a lower org unit."""

    model_config = ConfigDict(extra="forbid")

    org_path: str = Field(min_length=1)
    headcount: int = Field(ge=0, le=100_000)


class QuotaSplitCreate(BaseModel):
    """Split the quota of `parent_org_path` (the operation's own org by default) into shares."""

    model_config = ConfigDict(extra="forbid")

    parent_org_path: str | None = None
    shares: list[QuotaShare] = Field(min_length=1)


class QuotaAcceptCreate(BaseModel):
    """Accept the share of an org unit (by someone whose scope covers it)."""

    model_config = ConfigDict(extra="forbid")

    org_path: str
