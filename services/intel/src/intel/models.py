"""Tables of the intel service (SQLModel), matching migrations/0001_initial.sql."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, LargeBinary
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


def _ts(**kw: Any) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), **kw))


class Case(SQLModel, table=True):
    """Tips about one incident, worked through the triage workflow and forwarded to the police."""

    __tablename__ = "cases"
    id: uuid.UUID = Field(primary_key=True)
    reference: str
    category: str
    status: str = "new"
    priority: str = "normal"
    priority_score: int = 0
    priority_reasons: list = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    first_tip_id: uuid.UUID | None = None
    first_submitted_at: datetime | None = _ts()
    last_submitted_at: datetime | None = _ts()
    tip_count: int = 0
    lat: float | None = None
    lon: float | None = None
    place_text: str | None = None
    org_path: str = ""
    summary: str = ""
    rejection_reason: str | None = None
    locked_by: str | None = None
    locked_until: datetime | None = _ts()
    forwarded_at: datetime | None = _ts()
    sla_due_at: datetime | None = _ts()
    outcome: str | None = None
    outcome_at: datetime | None = _ts()
    merged_into: uuid.UUID | None = None
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class Tip(SQLModel, table=True):
    """One report. Anonymous: no volunteer id, only hashes of the receipt; never an IP, device or phone."""

    __tablename__ = "tips"
    id: uuid.UUID = Field(primary_key=True)
    idempotency_hash: str | None = None
    request_hash: str
    reporter_kind: str
    volunteer_id: str | None = None
    receipt_code_hash: str | None = None
    receipt_secret_hash: str | None = None
    claim_ref: str | None = None
    category: str
    text: str
    lat: float | None = None
    lon: float | None = None
    place_text: str | None = None
    seen_at: datetime | None = _ts()
    channel: str
    org_path: str = ""
    status: str = "submitted"
    case_id: uuid.UUID | None = Field(default=None, foreign_key="cases.id")
    cluster_reasons: list = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    cluster_score: float | None = None
    submitted_at: datetime = _ts(nullable=False)
    clustered_at: datetime | None = _ts()


class TipAttachment(SQLModel, table=True):
    """Attachment metadata, and the bytes when uploaded (behind a size limit)."""

    __tablename__ = "tip_attachments"
    id: uuid.UUID = Field(primary_key=True)
    tip_id: uuid.UUID = Field(foreign_key="tips.id")
    content_type: str
    size_bytes: int
    sha256: str
    content: bytes | None = Field(default=None, sa_column=Column(LargeBinary))


class CaseHistory(SQLModel, table=True):
    """What happened to a case, by whom."""

    __tablename__ = "case_history"
    id: int | None = Field(default=None, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id")
    action: str
    actor: str
    detail: dict = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    at: datetime = _ts(nullable=False)


class Disposition(SQLModel, table=True):
    """A police answer attached to a case."""

    __tablename__ = "dispositions"
    id: uuid.UUID = Field(primary_key=True)
    event_id: str
    case_id: uuid.UUID = Field(foreign_key="cases.id")
    disposition: str
    note: str | None = None
    officer_unit: str | None = None
    police_source: str
    recorded_at: datetime = _ts(nullable=False)
    received_at: datetime = _ts(nullable=False)


class Escalation(SQLModel, table=True):
    """An escalation raised for a verified case (at most one per case)."""

    __tablename__ = "escalations"
    id: uuid.UUID = Field(primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id")
    kind: str
    headcount: int
    raised_by: str
    raised_at: datetime = _ts(nullable=False)


class OrgUnit(SQLModel, table=True):
    """Local read model of the registry's org units (for routing by place)."""

    __tablename__ = "org_units"
    id: str = Field(primary_key=True)
    name: str
    kind: str
    path: str
    lat: float | None = None
    lon: float | None = None


class Need(SQLModel, table=True):
    """A public need from the public-needs column, routed to the org unit that covers it."""

    __tablename__ = "needs"
    id: uuid.UUID = Field(primary_key=True)
    category: str
    description: str
    lat: float | None = None
    lon: float | None = None
    place_text: str | None = None
    org_unit_id: str | None = None
    org_path: str = ""
    routed_by: str
    status: str = "open"
    volunteer_id: str | None = None
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class Dispute(SQLModel, table=True):
    """A mediation case: parties, a mediator volunteer, sessions and an outcome."""

    __tablename__ = "disputes"
    id: uuid.UUID = Field(primary_key=True)
    summary: str
    category: str = "other"
    org_path: str
    case_id: uuid.UUID | None = None
    mediator_volunteer_id: str | None = None
    status: str = "open"
    outcome: str | None = None
    outcome_note: str | None = None
    created_by: str
    created_at: datetime = _ts(nullable=False)
    closed_at: datetime | None = _ts()


class DisputeParty(SQLModel, table=True):
    """A party to a dispute; the phone is encrypted and shown masked."""

    __tablename__ = "dispute_parties"
    id: uuid.UUID = Field(primary_key=True)
    dispute_id: uuid.UUID = Field(foreign_key="disputes.id")
    name: str
    role: str
    phone_cipher: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    phone_masked: str | None = None


class MediationSession(SQLModel, table=True):
    """One mediation session of a dispute."""

    __tablename__ = "mediation_sessions"
    id: uuid.UUID = Field(primary_key=True)
    dispute_id: uuid.UUID = Field(foreign_key="disputes.id")
    held_at: datetime = _ts(nullable=False)
    place: str | None = None
    notes: str = ""
    recorded_by: str


class Bulletin(SQLModel, table=True):
    """A safety bulletin by case type and area: drafted, then published."""

    __tablename__ = "bulletins"
    id: uuid.UUID = Field(primary_key=True)
    title: str
    body: str
    case_type: str
    channels: list = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    audience_org_paths: list = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    status: str = "draft"
    basis: dict = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    created_by: str
    created_at: datetime = _ts(nullable=False)
    published_at: datetime | None = _ts()
