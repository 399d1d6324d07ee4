"""Request and response bodies of the intel API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shouwang_shared.contracts.intel import TipCategory
from shouwang_shared.schemas import Timestamp

from intel.outreach.violations import Violation

Channel = Literal["app", "hotline", "web", "public_account"]
Priority = Literal["urgent", "high", "normal", "low"]


class AttachmentCreate(BaseModel):
    """Attachment metadata, with the bytes as base64 when uploaded."""

    model_config = ConfigDict(extra="forbid")
    content_type: str = Field(min_length=3, max_length=100, pattern=r"^[\w.+-]+/[\w.+-]+$")
    size_bytes: int = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    content_base64: str | None = None


class TipCreate(BaseModel):
    """A tip as submitted by a volunteer or a citizen."""

    model_config = ConfigDict(extra="forbid")
    category: TipCategory
    text: str = Field(min_length=2, max_length=5000)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    place_text: str | None = Field(default=None, max_length=300)
    seen_at: datetime | None = None
    channel: Channel = "app"
    attachments: list[AttachmentCreate] = Field(default_factory=list, max_length=5)
    org_path: str | None = Field(default=None, max_length=500)
    idempotency_key: str | None = Field(default=None, min_length=8, max_length=200)


class TipAccepted(BaseModel):
    """The answer to an accepted tip; an anonymous reporter also gets a receipt code and secret (shown once)."""

    tip_id: str
    status: str
    submitted_at: datetime
    receipt_code: str | None = None
    receipt_secret: str | None = None
    claim_ref: str | None = None


class TipProgress(BaseModel):
    """How a tip is going, as its reporter may see it: its own status and its case's, never who else reported."""

    category: str
    status: str
    case_status: str | None = None
    case_outcome: str | None = None
    submitted_at: datetime


class MyTipPublic(TipProgress):
    """A volunteer's own tip as they see it."""

    tip_id: str
    text: str
    channel: str


class ReceiptStatus(TipProgress):
    """What a citizen learns with a receipt code and its secret: the tip's progress."""

    receipt_code: str
    claim_ref: str


class AnalystTipPublic(BaseModel):
    """A tip inside a case as analysts see it: the reporter only as a pseudonym."""

    tip_id: str
    reporter: str
    reporter_kind: str
    category: str
    text: str
    channel: str
    lat: float | None
    lon: float | None
    place_text: str | None
    seen_at: datetime | None
    submitted_at: datetime
    cluster_reasons: list[str]
    attachments: list[dict]


class CaseSummaryPublic(BaseModel):
    """A case in lists and the triage queue."""

    case_id: str
    reference: str
    category: str
    status: str
    priority: str
    priority_score: int
    tip_count: int
    org_path: str
    summary: str
    place_text: str | None
    lat: float | None
    lon: float | None
    first_tip_id: str | None
    created_at: datetime
    locked_by: str | None
    locked_until: datetime | None
    outcome: str | None
    sla_due_at: datetime | None


class CaseDetailPublic(CaseSummaryPublic):
    """A case with its tips (pseudonymous), priority reasons, police dispositions and history."""

    priority_reasons: list[str]
    rejection_reason: str | None
    tips: list[AnalystTipPublic]
    dispositions: list[dict]
    history: list[dict]


class LiaisonCasePublic(BaseModel):
    """A forwarded case as the police liaison sees it: sanitized."""

    case_id: str
    reference: str
    category: str
    priority: str
    summary: str
    place: dict
    tip_count: int
    informant_pseudonyms: list[str]
    forwarded_at: datetime | None
    sla_due_at: datetime | None
    outcome: str | None
    dispositions: list[dict]


class PoliceRemovalPublic(BaseModel):
    """One informant identifier taken out of the police summary, masked, with the reason."""

    kind: str
    text: str
    reason: str


class PoliceDraftPublic(BaseModel):
    """The drafted police summary for the analyst to review before forwarding."""

    case_id: str
    category: str
    summary: str
    place: dict
    removals: list[PoliceRemovalPublic]


class CaseClaimCreate(BaseModel):
    """How long to hold the edit lock."""

    model_config = ConfigDict(extra="forbid")
    minutes: int = Field(default=15, ge=1, le=240)


class TriageCreate(BaseModel):
    """Triage a case; the priority may be overridden."""

    model_config = ConfigDict(extra="forbid")
    priority: Priority | None = None
    note: str | None = Field(default=None, max_length=1000)


class VerificationCreate(BaseModel):
    """Verify a case; `quality` 1..3 grades the tips."""

    model_config = ConfigDict(extra="forbid")
    quality: int = Field(default=1, ge=1, le=3)
    note: str | None = Field(default=None, max_length=1000)


class RejectionCreate(BaseModel):
    """Reject a case with a reason."""

    model_config = ConfigDict(extra="forbid")
    reason: Literal["unfounded", "prank", "duplicate"]
    note: str | None = Field(default=None, max_length=1000)


class ForwardCreate(BaseModel):
    """Forward a verified case: the drafted police summary, or the analyst's edited `summary` (checked for informants)."""

    model_config = ConfigDict(extra="forbid")
    sla_hours: int | None = Field(default=None, ge=1, le=24 * 30)
    summary: str | None = Field(default=None, min_length=2, max_length=2000)


class MergeCreate(BaseModel):
    """Merge cases into a target case."""

    model_config = ConfigDict(extra="forbid")
    target_case_id: str
    case_ids: list[str] = Field(min_length=1, max_length=50)


class SimilarCasePublic(BaseModel):
    """An open case that may report the same incident, with the clustering score and its reasons."""

    case_id: str
    reference: str
    score: float
    reasons: list[str]
    tip_count: int
    summary: str | None = None


class PairDecisionPublic(BaseModel):
    """An analyst's decision on a suggested pair of cases (kept to calibrate clustering)."""

    case_id: str
    other_case_id: str
    decision: str
    score: float | None = None
    decided_by: str
    decided_at: datetime


class SuggestionRejectionCreate(BaseModel):
    """Why a suggested case is another incident (optional)."""

    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=500)


class SplitCreate(BaseModel):
    """Move tips out of a case into a new case."""

    model_config = ConfigDict(extra="forbid")
    tip_ids: list[str] = Field(min_length=1, max_length=200)


class NeedCreate(BaseModel):
    """A public need (public-needs collection column)."""

    model_config = ConfigDict(extra="forbid")
    category: Literal["safety_patrol", "legal_aid", "mediation", "elder_care", "child_care", "traffic", "psychological", "other"]
    description: str = Field(min_length=2, max_length=2000)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    place_text: str | None = Field(default=None, max_length=300)


class NeedStatusUpdate(BaseModel):
    """Move a need along."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["open", "in_progress", "done", "declined"]


class PartyCreate(BaseModel):
    """A party to a dispute."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=50)
    role: Literal["applicant", "respondent", "other"] = "applicant"
    phone: str | None = Field(default=None, pattern=r"^1[3-9]\d{9}$")


class DisputeCreate(BaseModel):
    """Open a mediation case."""

    model_config = ConfigDict(extra="forbid")
    summary: str = Field(min_length=2, max_length=2000)
    category: Literal["neighbourhood", "land", "labour", "family", "consumer", "other"] = "other"
    org_path: str = Field(min_length=1, max_length=500)
    parties: list[PartyCreate] = Field(min_length=2, max_length=20)
    case_id: str | None = None


class MediatorUpdate(BaseModel):
    """Assign a mediator volunteer (e.g. a retired judge)."""

    model_config = ConfigDict(extra="forbid")
    volunteer_id: str = Field(min_length=1, max_length=64)


class MediationSessionCreate(BaseModel):
    """Record a mediation session."""

    model_config = ConfigDict(extra="forbid")
    held_at: datetime
    place: str | None = Field(default=None, max_length=200)
    notes: str = Field(default="", max_length=5000)


class DisputeOutcomeUpdate(BaseModel):
    """Close a dispute with its outcome."""

    model_config = ConfigDict(extra="forbid")
    outcome: Literal["settled", "referred_to_court", "withdrawn"]
    note: str | None = Field(default=None, max_length=2000)


BulletinChannelName = Literal["public_account", "radio", "tv", "newspaper", "brochure", "qq_group", "forum", "sms"]


class BulletinCreate(BaseModel):
    """A bulletin written by hand."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=2, max_length=100)
    body: str = Field(min_length=2, max_length=5000)
    case_type: TipCategory
    channels: list[BulletinChannelName] = Field(default_factory=lambda: ["public_account"], min_length=1)
    audience_org_paths: list[str] = Field(min_length=1)


class TrendDraftCreate(BaseModel):
    """Draft bulletins from the last `days` of tips against the `baseline_days` before."""

    model_config = ConfigDict(extra="forbid")
    days: int = Field(default=7, ge=1, le=60)
    baseline_days: int = Field(default=28, ge=7, le=365)
    min_recent: int = Field(default=3, ge=1, le=1000)
    min_ratio: float = Field(default=2.0, ge=1.0, le=100.0)


class DutyShiftCreate(BaseModel):
    """An analyst on duty for an org scope over a time window (both ends with their UTC offset)."""

    model_config = ConfigDict(extra="forbid")
    staff_sub: str = Field(min_length=1, max_length=100, description="the analyst's account subject, as in their token")
    org_path: str = Field(min_length=2, max_length=500, pattern=r"^/[^\s]*$", description="the org scope they cover on this shift")
    starts_at: AwareDatetime
    ends_at: AwareDatetime


NEED_CATEGORY_NAMES = {
    "safety_patrol": "治安巡防", "legal_aid": "法律援助", "mediation": "矛盾调解", "elder_care": "关爱老人", "child_care": "关爱儿童",
    "traffic": "交通", "psychological": "心理疏导", "other": "其他",
}
CHINESE_PLATE = r"^[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-HJ-NP-Z][A-HJ-NP-Z0-9]{4,5}[A-HJ-NP-Z0-9挂学警港澳]$"


class ColumnPublic(BaseModel):
    """An information column (信息栏目) of the county's online platforms: what it is, whose it is, where it applies."""

    column_id: str
    title: str
    kind: Literal["needs_form", "broadcasts", "curated", "lookup"]
    org_path: str = Field(description="the area the column serves (the county unless set)")
    publisher: str
    description: str


class ColumnItemPublic(BaseModel):
    """One published item of a column: a bulletin (broadcasts) or a staff-curated entry."""

    item_id: str
    title: str
    body: str
    link: str | None = None
    org_path: str = Field(description="the area the item is for (an area sees its own items and those of the areas above)")
    publisher: str
    published_at: datetime
    serial_label: str | None = Field(default=None, description="a bulletin's issue, 2026年第3期")


class NeedsFormPublic(BaseModel):
    """How the public-needs column takes a need: the route and the categories it accepts."""

    submit: str
    categories: dict[str, str]


class ColumnPage(BaseModel):
    """A column with its items for an area; a form column says how to submit, a lookup column where to ask."""

    column: ColumnPublic
    items: list[ColumnItemPublic]
    form: NeedsFormPublic | None = None
    lookup: str | None = None


class ColumnItemCreate(BaseModel):
    """An entry staff publish in a curated column, for an area in their scope."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=2, max_length=200)
    body: str = Field(min_length=2, max_length=5000)
    link: str | None = Field(default=None, max_length=500, pattern=r"^https?://[^\s]+$")
    org_path: str = Field(min_length=1, max_length=500)


class ColumnCreate(BaseModel):
    """A curated column of the county's own (the brief counts six columns; four are built in)."""

    model_config = ConfigDict(extra="forbid")
    column_id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,39}$")
    title: str = Field(min_length=2, max_length=50)
    publisher: str = Field(min_length=2, max_length=100)
    description: str = Field(default="", max_length=500)


class ViolationLookupPublic(BaseModel):
    """A vehicle's traffic violations, as the police traffic system answered."""

    plate: str
    violations: list[Violation]


class NeedPublic(BaseModel):
    """A public need as stored: where it is, the org unit it was routed to and how, and its status."""

    need_id: str
    category: str
    description: str
    lat: float | None
    lon: float | None
    place_text: str | None
    org_unit_id: str | None
    org_path: str
    routed_by: str
    status: str
    created_at: Timestamp
    updated_at: Timestamp


class DisputeSummaryPublic(BaseModel):
    """A mediation case in a list: its state, outcome, mediator and how many sessions were held."""

    dispute_id: str
    summary: str
    category: str
    org_path: str
    status: str
    outcome: str | None
    mediator_volunteer_id: str | None
    sessions_held: int
    created_at: Timestamp
    closed_at: Timestamp | None


class DisputePartyPublic(BaseModel):
    """A party to a dispute, the phone masked."""

    name: str
    role: str
    phone: str | None


class MediationSessionPublic(BaseModel):
    """A mediation session held for a dispute."""

    session_id: str
    held_at: Timestamp
    place: str | None
    notes: str
    recorded_by: str


class DisputePublic(BaseModel):
    """A mediation case with its parties and sessions."""

    dispute_id: str
    summary: str
    category: str
    org_path: str
    case_id: str | None
    mediator_volunteer_id: str | None
    status: str
    outcome: str | None
    outcome_note: str | None
    created_at: Timestamp
    closed_at: Timestamp | None
    parties: list[DisputePartyPublic]
    sessions: list[MediationSessionPublic]


class BulletinPublic(BaseModel):
    """A published safety bulletin as the public sees it."""

    bulletin_id: str
    title: str
    body: str
    case_type: str
    channels: list[str]
    audience_org_paths: list[str]
    status: str
    created_at: Timestamp
    published_at: Timestamp | None
    serial: int | None
    serial_year: int | None
    serial_label: str | None = Field(description="the issue, 2026年第3期 (published bulletins)")


class BulletinDraftPublic(BulletinPublic):
    """A bulletin as its editors see it: also why it was drafted (by hand, or the trend behind it)."""

    basis: dict[str, Any]


class ChannelDeliveriesPublic(BaseModel):
    """Bulletin deliveries on one channel, by status."""

    channel: str
    delivered: int
    pending: int
    failed: int


class BulletinDeliveryPublic(BaseModel):
    """How a bulletin went out on one channel."""

    channel: str
    status: str
    attempts: int
    last_error: str | None
    delivered_at: Timestamp | None


class BulletinDeliveriesPublic(BaseModel):
    """How one published bulletin went out, channel by channel."""

    bulletin_id: str
    serial_label: str | None
    deliveries: list[BulletinDeliveryPublic]


class DutyShiftPublic(BaseModel):
    """An analyst's duty shift for an org scope."""

    shift_id: str
    staff_sub: str
    org_path: str
    starts_at: Timestamp
    ends_at: Timestamp
    created_by: str


class ColumnItemPublishedPublic(BaseModel):
    """An entry just published in a curated column."""

    item_id: str
    column_id: str
    title: str
    org_path: str
    published_at: Timestamp
