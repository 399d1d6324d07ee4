"""What the reports API answers: the figures of a period and org unit, and an operation's summary."""

from __future__ import annotations

from pydantic import BaseModel, Field

Counts = dict[str, int]


class ReportScopePublic(BaseModel):
    """The org path and the county's calendar days a report covers (both days included)."""

    org_path: str
    org_name: str | None = None
    from_: str = Field(alias="from")
    to: str


class VolunteerFiguresPublic(BaseModel):
    """Volunteers as they stand now (not as of the period's end: registry keeps each volunteer's latest state)."""

    total: int
    by_status: Counts
    active_by_level: Counts
    active_by_star: Counts
    active_by_recruitment_mode: Counts
    active_by_team: Counts


class TrainingFiguresPublic(BaseModel):
    """Training sessions held in the period and who attended."""

    sessions_held: int
    attendances: int
    attendances_by_volunteer_level: Counts
    sessions_by_level: Counts


class TipFiguresPublic(BaseModel):
    """Tips taken in during the period."""

    taken_in: int
    by_category: Counts
    by_outcome: Counts


class CaseFiguresPublic(BaseModel):
    """Cases handed to the police in the period, with the police outcomes and the counts their answers gave."""

    forwarded: int
    by_outcome: Counts
    suspects_caught: int
    fugitives_caught: int
    dens_closed: int
    seizures: int


class NeedFiguresPublic(BaseModel):
    """Public needs taken in during the period."""

    taken_in: int
    by_status: Counts
    by_category: Counts


class DisputeFiguresPublic(BaseModel):
    """Disputes taken in, and mediated to a close, in the period."""

    taken_in: int
    mediated: int
    mediation_sessions: int
    mediated_by_outcome: Counts


class RewardFiguresPublic(BaseModel):
    """The alliance bank in the period, over volunteers' accounts (anonymous reporters' rewards are never published)."""

    case_rewards: int
    case_reward_points: float
    points_banked: float
    hours_banked: float
    redemptions: int
    redeemed_points: float


class BulletinFiguresPublic(BaseModel):
    """Bulletins published in the period for an audience that includes or lies inside the scope."""

    issued: int
    by_case_type: Counts
    last_serial: int | None


class OperationFiguresPublic(BaseModel):
    """An operation with its fill rate (accepted offers over the people its posts ask for) and hours served."""

    operation_id: str
    name: str | None
    kind: str | None
    org_path: str | None
    activated_at: str | None
    closed_at: str | None
    headcount: int | None
    accepted: int
    fill_rate: float | None
    hours: float


class OperationList(BaseModel):
    """Operations activated in the period."""

    count: int
    hours: float
    items: list[OperationFiguresPublic]


class CountyReportPublic(BaseModel):
    """Every figure the county reports, for one period and one org unit."""

    scope: ReportScopePublic
    volunteers: VolunteerFiguresPublic
    training: TrainingFiguresPublic
    tips: TipFiguresPublic
    cases: CaseFiguresPublic
    needs: NeedFiguresPublic
    disputes: DisputeFiguresPublic
    rewards: RewardFiguresPublic
    bulletins: BulletinFiguresPublic
    operations: OperationList


class OperationTipsPublic(BaseModel):
    """Tips taken in during an operation inside its area."""

    taken_in: int
    by_category: Counts


class OperationSummaryPublic(OperationFiguresPublic):
    """One operation's summary (the G20 kind): people, attendance, hours, and what came in during it inside its area."""

    area: str
    posts: int
    offers: int
    volunteers_dispatched: int
    declined: int
    expired: int
    attended: int
    no_shows: int
    volunteers_served: int
    tips: OperationTipsPublic
    cases: CaseFiguresPublic
    needs_taken_in: int
    disputes_taken_in: int


class RebuildPublic(BaseModel):
    """A rebuild of the projections from the journal."""

    facts_replayed: int
    seconds: float


class ServiceRecordPublic(BaseModel):
    """One approved service entry with the fields of the volunteer-service record rules (MCA Order No. 67);
    docs/schemas/service-record.schema.json is the same shape for the receiving system."""

    record_id: str = Field(description="stable per service entry: a re-export carries the same id")
    volunteer_id: str = Field(description="the platform's volunteer id")
    volunteer_number: str = Field(description="志愿者编号, eight digits, as on the volunteer card; empty if never published")
    volunteer_name: str = Field(description="as registry publishes it, masked (张**)")
    id_type: str = Field(description="volunteer_number (platform_volunteer_id for a volunteer with no published number): "
                                     "the identity number never leaves registry")
    id_number: str
    project: str
    organiser: str
    service_date: str = Field(description="the county's calendar day the service started")
    start_time: str
    end_time: str
    hours: float = Field(description="from check-in to check-out, approved; travel not included")
    service_content: str
    place: str
    recorder: str
    confirmer: str


class ServiceRecordList(BaseModel):
    """Approved service entries of a period."""

    items: list[ServiceRecordPublic]
