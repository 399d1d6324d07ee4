"""Events police liaison systems publish on `police.dispositions.v1` (a public contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from shouwang_shared.contracts import EventPayload


class DispositionRecorded(EventPayload):
    """The police answer to a forwarded case. Envelope `source` is the police system, `subject` the case id."""

    TYPE = "shouwang.police.disposition_recorded.v1"
    TOPIC = "police.dispositions.v1"
    SOURCE = "/police/liaison"

    case_id: str
    reference: str | None = None
    disposition: Literal["acknowledged", "investigating", "arrest", "case_solved", "unfounded"]
    note: str | None = None
    officer_unit: str | None = None
    recorded_at: datetime
