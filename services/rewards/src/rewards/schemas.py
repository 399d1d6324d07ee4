"""Request bodies (XCreate) and responses (XPublic) of the rewards API; names follow docs/conventions.md."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, PlainSerializer, WithJsonSchema, model_validator

# A time as rewards always answered it (`isoformat()`: `+00:00`, not pydantic's `Z`), so typed answers stay byte-compatible.
Timestamp = Annotated[
    datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class BenefitCreate(BaseModel):
    """A benefit offered in the catalogue for points."""

    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)
    cost_points: Decimal = Field(gt=0, le=Decimal("1000000"))
    stock: int = Field(ge=0, le=1_000_000)


class RedemptionCreate(BaseModel):
    """Spend points on `quantity` of a benefit; the same `idempotency_key` redeems once."""

    benefit_id: str
    quantity: int = Field(default=1, ge=1, le=100)
    idempotency_key: str | None = Field(default=None, max_length=100)


class RedemptionDeclineCreate(BaseModel):
    """Why staff decline a redemption (shown to the volunteer with the refund)."""

    reason: str = Field(min_length=2, max_length=500)


class ClaimCreate(BaseModel):
    """Claim an anonymous reporter's held rewards into a volunteer account or an outside payout target."""

    claim_ref: str = Field(min_length=8, max_length=200)
    volunteer_id: str | None = Field(default=None, max_length=100)
    payout_target: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _one_target(self) -> ClaimCreate:
        if bool(self.volunteer_id) == bool(self.payout_target):
            raise ValueError("give exactly one of volunteer_id or payout_target")
        return self


class PayoutRevealCreate(BaseModel):
    """Why an operator decrypts an anonymous payout target (kept in the audit trail)."""

    reason: str = Field(min_length=4, max_length=500)


class AdoptionCreate(BaseModel):
    """Adopt a draft rule version; with `rescore`, post adjustments so history is scored by it."""

    rescore: bool = False


class ModelVolunteersCreate(BaseModel):
    """Name the model volunteers of a campaign month under an org unit."""

    month: str = Field(pattern=r"^\d{4}-\d{2}$")
    org_path: str = Field(default="", max_length=500)
    count: int = Field(default=10, ge=1, le=100)


class CommendationCreate(BaseModel):
    """A yearly award to a service brand, an organisation or an individual."""

    kind: Literal["service_brand", "organisation", "individual"]
    period: str = Field(pattern=r"^\d{4}(-\d{2})?$")
    org_path: str = Field(default="", max_length=500)
    subject_id: str = Field(min_length=1, max_length=100)
    subject_name: str = Field(min_length=1, max_length=200)
    citation: str = Field(default="", max_length=2000)


class LedgerItemPublic(BaseModel):
    """One line item of an account: signed amount, why, by which rule and from which fact."""

    seq: int
    entry_id: str
    account: str
    unit: str
    amount: float
    reason: str
    rule_version: str
    rule_line: str
    source_event_id: str
    corrects_entry_id: str | None
    posted_at: Timestamp


class LedgerPagePublic(BaseModel):
    """A page of line items of some accounts, newest first, and where the next page starts."""

    accounts: list[str]
    items: list[LedgerItemPublic]
    next_before_seq: int | None


class BalancesPublic(BaseModel):
    """Points and hours held on an account, and its tip points pending review."""

    account: str
    points: float
    hours: float
    pending_points: float


class TipsTodayPublic(BaseModel):
    """Today's tips of a reporter against the daily cap."""

    tips: int
    cap: int
    over_cap: int


class StarPendingPublic(BaseModel):
    """An announced star change waiting for its notice to end."""

    star: int
    effective_at: Timestamp | None
    reason: str | None


class StarRecordPublic(BaseModel):
    """The record a star is earned by."""

    hours: float
    points: float
    reliability: float | None
    shifts_completed: int
    no_shows: int
    training_compliant: bool


class StarHistoryPublic(BaseModel):
    """One past star change."""

    old_star: int | None
    new_star: int | None
    announced_at: Timestamp | None
    effective_at: Timestamp | None
    applied_at: Timestamp | None
    reason: str | None
    rule_version: str | None


class StarPublic(BaseModel):
    """A volunteer's star, any announced change, the record and what the next star lacks."""

    volunteer_id: str
    star: int
    org_path: str | None
    pending: StarPendingPublic | None
    record: StarRecordPublic
    earned_star: int
    why: list[str]
    rule_version: str | None
    thresholds: list[dict[str, Any]]
    history: list[StarHistoryPublic]


class MyBalancesPublic(BalancesPublic):
    """The signed-in volunteer's balances, today's tips and star."""

    tips_today: TipsTodayPublic
    star: StarPublic | None


class RuleVersionPublic(BaseModel):
    """A scoring rule version: its status, when it takes effect and its rules (as `RuleSet`)."""

    version: str
    status: str
    effective_from: Timestamp
    created_by: str | None
    created_at: Timestamp
    adopted_at: Timestamp | None
    rules: dict[str, Any]


class AdoptionPublic(RuleVersionPublic):
    """An adopted rule version and how many adjusting entries its re-scoring posted."""

    adjusting_entries: int


class StarThresholdsPublic(BaseModel):
    """The star thresholds and notice period of a rule version."""

    version: str
    effective_from: Timestamp
    stars: list[dict[str, Any]]
    notice_days: int


class PreviewAccountPublic(BaseModel):
    """One account's scored total now, under the draft, and the change."""

    account: str
    unit: str
    current: float
    preview: float
    delta: float


class PreviewPublic(BaseModel):
    """What re-scoring history with a draft would change, per account and per unit."""

    version: str
    facts_replayed: int
    accounts: list[PreviewAccountPublic]
    totals: dict[str, dict[str, float]]
    changed_accounts: int


class LeaderboardRowPublic(BaseModel):
    """One ranked volunteer."""

    rank: int
    volunteer_id: str
    display_name: str | None
    org_path: str | None
    star: int
    total: float


class LeaderboardPublic(BaseModel):
    """A ranking of volunteers under an org path for a period."""

    org_path: str
    period: str
    unit: str
    ranking: list[LeaderboardRowPublic]


class BenefitPublic(BaseModel):
    """A benefit of the catalogue with its stock."""

    benefit_id: str
    name: str
    description: str
    cost_points: float
    stock: int
    active: bool
    created_at: Timestamp


class RedemptionPublic(BaseModel):
    """A volunteer's redemption: what, how many, for how many points, its ledger entry, and where it stands.

    `requested` until a station hands the benefit over (`handed_over`) or staff decline it (`declined`, with the
    reason the volunteer reads and the refund's ledger entry).
    """

    redemption_id: str
    volunteer_id: str
    benefit_id: str
    quantity: int
    points: float
    entry_id: str
    created_at: Timestamp
    status: Literal["requested", "handed_over", "declined"]
    decided_at: Timestamp | None
    decline_reason: str | None
    refund_entry_id: str | None


class StaffRedemptionPublic(RedemptionPublic):
    """A redemption as staff see it: who (masked name, org path), what, its status and decision, and who decided."""

    entry_id: str | None = Field(default=None, exclude=True)
    display_name: str | None
    org_path: str | None
    benefit_name: str
    decided_by: str | None


class PendingTipPointsPublic(BaseModel):
    """A volunteer's tip points and their review status (settled only by intel's tip review)."""

    entry_id: str
    source: str
    volunteer_id: str
    display_name: str | None
    org_path: str | None
    amount: float
    reason: str
    rule_version: str
    posted_at: Timestamp
    status: Literal["pending", "released", "revoked"]
    settled_at: Timestamp | None


class CommendationPublic(BaseModel):
    """A commendation: kind, period, org unit, who and why."""

    commendation_id: str
    kind: str
    period: str
    org_path: str
    subject_id: str
    subject_name: str
    citation: str
    rank: int | None
    points: float | None
    awarded_by: str
    awarded_at: Timestamp


class HeldRewardsPublic(BalancesPublic):
    """What is held for an anonymous reporter, with its line items."""

    items: list[LedgerItemPublic]


class ClaimPublic(BaseModel):
    """A claim of held rewards: where they went and how much (pending points stay)."""

    claim_id: str
    target: str
    points: float
    hours: float
    pending_points: float


class PayoutTargetPublic(BaseModel):
    """An anonymous claim's decrypted payout target, for the operator paying it."""

    claim_id: str
    account: str
    payout_target: str
    points: float
    hours: float


class LedgerProblemPublic(BaseModel):
    """A balance that differs from the sum of its entries (account `*`: a unit not netting to zero)."""

    account: str
    unit: str
    from_entries: float
    stored: float


class LedgerCheckPublic(BaseModel):
    """The ledger audit."""

    ok: bool
    entries: int
    accounts: int
    problems: list[LedgerProblemPublic]


class StarSweepPublic(BaseModel):
    """What a star sweep did."""

    applied: int
    reviewed: int
    announced: int
