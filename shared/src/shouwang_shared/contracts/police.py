"""Events police liaison systems publish on `police.dispositions.v1` (a public contract)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from shouwang_shared.contracts import EventPayload


class DispositionRecorded(EventPayload):
    """The police answer to a forwarded case. Envelope `source` is the police system (`/police/<system>`), `subject` the case id.

    Text is bounded; `recorded_at` carries its UTC offset and may not lie in the future nor before the case was forwarded.
    """

    TYPE = "shouwang.police.disposition_recorded.v1"
    TOPIC = "police.dispositions.v1"
    SOURCE = "/police/liaison"

    case_id: str = Field(max_length=64)
    reference: str | None = Field(None, max_length=64)
    disposition: Literal["acknowledged", "investigating", "arrest", "case_solved", "unfounded"]
    note: str | None = Field(None, max_length=2000)
    officer_unit: str | None = Field(None, max_length=100)
    recorded_at: AwareDatetime


MAX_PEOPLE = 10_000  # suspects or fugitives one answer may report: bounded, a county's cases are far below it
MAX_DENS = 1_000
MAX_SEIZURE_ITEMS = 20
SeizureKind = Literal["drugs", "cash", "weapons", "ammunition", "vehicles", "phones", "bank_cards", "counterfeit_goods", "other"]
SeizureUnit = Literal["g", "kg", "yuan", "piece", "vehicle", "set"]
NO_RESULT_DISPOSITIONS = ("acknowledged", "unfounded")


class Seizure(BaseModel):
    """One line of what was seized: a kind, a positive quantity in one of a few units, and an optional description."""

    kind: SeizureKind
    quantity: float = Field(gt=0, le=1_000_000_000)
    unit: SeizureUnit
    description: str | None = Field(None, max_length=200)


class OutcomeCounts(BaseModel):
    """What a police answer achieved on a case so far (totals, not increments: a later answer repeats and extends them)."""

    suspects_caught: int = Field(0, ge=0, le=MAX_PEOPLE)
    fugitives_caught: int = Field(0, ge=0, le=MAX_PEOPLE, description="wanted persons (网上逃犯) among or besides the suspects")
    dens_closed: int = Field(0, ge=0, le=MAX_DENS, description="dens of gambling, drugs, fraud or the like closed (捣毁窝点)")
    seizures: list[Seizure] = Field(default_factory=list, max_length=MAX_SEIZURE_ITEMS)

    @model_validator(mode="after")
    def _one_line_per_kind_and_unit(self) -> OutcomeCounts:
        seen: set[tuple[str, str]] = set()
        for i, item in enumerate(self.seizures):
            if (item.kind, item.unit) in seen:
                raise ValueError(f"seizures.{i}: {item.kind} in {item.unit} is listed twice; add the quantities into one line")
            seen.add((item.kind, item.unit))
        return self

    def is_empty(self) -> bool:
        """True when the answer reports no result at all."""
        return not (self.suspects_caught or self.fugitives_caught or self.dens_closed or self.seizures)


class DispositionRecordedV2(DispositionRecorded):
    """A police answer with what it achieved (`counts`), on the same topic as v1; v1 answers stay valid side by side.

    `counts` are the case's totals as of `recorded_at`; an `acknowledged` or `unfounded` answer carries none.
    """

    TYPE = "shouwang.police.disposition_recorded.v2"

    counts: OutcomeCounts

    @model_validator(mode="after")
    def _no_results_without_a_result(self) -> DispositionRecordedV2:
        if self.disposition in NO_RESULT_DISPOSITIONS and not self.counts.is_empty():
            raise ValueError(f"counts: a '{self.disposition}' answer reports no suspects, fugitives, dens or seizures")
        return self
