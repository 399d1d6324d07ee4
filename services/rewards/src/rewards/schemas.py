"""Request bodies of the rewards API (responses are the dicts the service functions return)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field, model_validator


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


class RedemptionDecline(BaseModel):
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


class PayoutReveal(BaseModel):
    """Why an operator decrypts an anonymous payout target (kept in the audit trail)."""

    reason: str = Field(min_length=4, max_length=500)


class Adoption(BaseModel):
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
