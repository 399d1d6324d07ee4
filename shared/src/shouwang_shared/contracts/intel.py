"""Events published by the intel service. `intel.liaison.v1` is a public contract for police systems."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from shouwang_shared.contracts import EventPayload
from shouwang_shared.contracts.police import OutcomeCounts

SOURCE = "/services/intel"
TipCategory = Literal[
    "fugitive", "drugs", "fraud", "counterfeit", "public_order", "dispute", "missing_person", "other"
]
CaseOutcome = Literal["acknowledged", "investigating", "arrest", "case_solved", "unfounded"]


class Reporter(BaseModel):
    """Who reported, for rewards only: a volunteer id, or the claim reference of an anonymous receipt."""

    kind: Literal["volunteer", "anonymous"]
    volunteer_id: str | None = None
    claim_ref: str | None = None  # keyed hash of the receipt code; the code itself never travels


class TipSubmitted(EventPayload):
    """A tip was accepted (internal topic: rewards scores it at once)."""

    TYPE = "shouwang.intel.tip_submitted.v1"
    TOPIC = "intel.tips.v1"
    SOURCE = SOURCE

    tip_id: str
    category: TipCategory
    channel: Literal["app", "hotline", "web", "public_account"]
    reporter: Reporter
    submitted_at: datetime
    org_unit_id: str | None = None
    has_attachment: bool = False
    text_length: int = 0


class TipReviewed(EventPayload):
    """An analyst verified or rejected a tip; `quality` 1..3 grades a verified one."""

    TYPE = "shouwang.intel.tip_reviewed.v1"
    TOPIC = "intel.tips.v1"
    SOURCE = SOURCE

    tip_id: str
    case_id: str | None = None
    verdict: Literal["verified", "rejected"]
    reason: str | None = None
    quality: int = 1
    category: TipCategory
    reporter: Reporter
    first_tip_id: str | None = None  # the case's first tip: only its review carries the case's one verification bonus


class CaseOutcomeRecorded(EventPayload):
    """The police recorded an outcome for a case; rewards pays the one per-case reward on arrest or case solved."""

    TYPE = "shouwang.intel.case_outcome_recorded.v1"
    TOPIC = "intel.cases.v1"
    SOURCE = SOURCE

    case_id: str
    outcome: CaseOutcome
    category: TipCategory
    first_tip_id: str
    first_reporter: Reporter
    reporters: list[Reporter] = []
    recorded_at: datetime
    counts: OutcomeCounts | None = Field(
        None, description="what the police reported achieving on the case so far (a v2 answer); absent for a v1 answer"
    )


class CasesMerged(EventPayload):
    """Cases were merged into `case_id`; `merged_case_ids` no longer exist on their own."""

    TYPE = "shouwang.intel.cases_merged.v1"
    TOPIC = "intel.cases.v1"
    SOURCE = SOURCE

    case_id: str
    merged_case_ids: list[str]
    first_tip_id: str
    first_reporter: Reporter


class LiaisonPlace(BaseModel):
    """Where it happened: coordinates (WGS-84) and/or a free-text description."""

    lat: float | None = Field(default=None, description="of the incident, rounded to 3 decimals (~100 m); never the reporter's own position")
    lon: float | None = Field(default=None, description="of the incident, rounded to 3 decimals (~100 m)")
    text: str | None = Field(default=None, description="the incident's place as reported; absent when it was the reporter's home")


class CaseForwarded(EventPayload):
    """A verified case handed to the police. Sanitized: informants appear only as pseudonyms."""

    TYPE = "shouwang.intel.case_forwarded.v1"
    TOPIC = "intel.liaison.v1"
    SOURCE = SOURCE

    case_id: str
    reference: str = Field(description="human-readable case reference, e.g. SW-2026-000123")
    category: TipCategory
    priority: Literal["urgent", "high", "normal", "low"]
    summary: str = Field(
        description="police summary reviewed by an analyst: drafted from the case's tips with every informant identifier removed, never raw tip text"
    )
    place: LiaisonPlace
    first_seen_at: datetime | None = None
    tip_count: int
    informant_pseudonyms: list[str] = Field(description="stable per-case pseudonyms, never names, IDs, phones or receipt codes")
    forwarded_at: datetime
    sla_due_at: datetime


class EscalationRaised(EventPayload):
    """A verified case needs people on the ground: dispatch opens an emergency operation near the place."""

    TYPE = "shouwang.intel.escalation_raised.v1"
    TOPIC = "intel.escalations.v1"
    SOURCE = SOURCE

    escalation_id: str
    case_id: str
    kind: str
    name: str
    lat: float
    lon: float
    headcount: int
    radius_km: float = 5.0
    skills: list[str] = []
    teams: list[str] = []
    starts_at: datetime
    ends_at: datetime
    org_path: str | None = None


class BulletinPublished(EventPayload):
    """A safety bulletin for the publication channels."""

    TYPE = "shouwang.intel.bulletin_published.v1"
    TOPIC = "intel.bulletins.v1"
    SOURCE = SOURCE

    bulletin_id: str
    title: str
    body: str
    case_type: TipCategory
    channels: list[str]
    audience_org_paths: list[str]
    published_at: datetime
    serial: int | None = Field(None, description="the county's issue number for the year: 第 N 期")
    serial_year: int | None = Field(None, description="the year `serial` counts in (Beijing time)")
    serial_label: str | None = Field(None, description="how the issue is named, e.g. 2026年第3期")


class NeedRecorded(EventPayload):
    """A public need was taken in or changed status: its latest state (key = need id; never the description or who asked)."""

    TYPE = "shouwang.intel.need_recorded.v1"
    TOPIC = "intel.community.v1"
    SOURCE = SOURCE

    need_id: str
    category: str
    status: str
    org_path: str
    created_at: datetime
    updated_at: datetime


class DisputeRecorded(EventPayload):
    """A dispute was taken in, mediated or closed: its latest state (key = dispute id; never the parties or the summary)."""

    TYPE = "shouwang.intel.dispute_recorded.v1"
    TOPIC = "intel.community.v1"
    SOURCE = SOURCE

    dispute_id: str
    category: str
    status: str
    outcome: str | None = None
    org_path: str
    sessions_held: int = 0
    created_at: datetime
    closed_at: datetime | None = None
    updated_at: datetime


class UrgentCaseAlert(EventPayload):
    """An urgent case waits for an analyst: the on-duty staff of `alerted_org_path` should claim it by `claim_due_at`.

    Raised when a case becomes urgent (level 0: the case's own scope, or the nearest scope above it with someone on duty)
    and again one level up each time the claim is overdue. It names no informant and carries no tip text: it is pushed.
    """

    TYPE = "shouwang.intel.urgent_case_alert.v1"
    TOPIC = "intel.cases.v1"
    SOURCE = SOURCE

    alert_id: str
    case_id: str
    reference: str
    category: TipCategory
    case_org_path: str
    alerted_org_path: str
    level: int = Field(description="how many org levels above the case's own scope the alert has gone (0: its own scope)")
    escalated: bool = Field(description="true when raised because nobody claimed the case in time at the level below")
    recipients: list[str] = Field(description="subjects (`sub`) of the staff on duty for `alerted_org_path`")
    raised_at: datetime
    claim_due_at: datetime
