"""Events police liaison systems publish on `police.dispositions.v1` (a public contract)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

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
