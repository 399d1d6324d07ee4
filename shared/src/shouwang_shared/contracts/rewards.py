"""Events published by the rewards service."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from shouwang_shared.contracts import EventPayload

SOURCE = "/services/rewards"


class LedgerEntryPosted(EventPayload):
    """Points or service hours were credited (or debited) to an account of the alliance bank."""

    TYPE = "shouwang.rewards.ledger_entry_posted.v1"
    TOPIC = "rewards.ledger.v1"
    SOURCE = SOURCE

    entry_id: str
    account: str  # "volunteer:<id>", or "pending:volunteer:<id>" (tip points awaiting review); anonymous accounts are never published
    volunteer_id: str | None = None
    unit: Literal["points", "hours"]
    amount: float
    balance_after: float
    reason: str
    rule_version: str
    rule_line: str | None = None  # what the entry is for: tip.report, tip.verified, case.reward, hours.bank, redemption, ...
    source_event_id: str
    posted_at: datetime


class StarChanged(EventPayload):
    """A volunteer's star rating changes at `effective_at`, after a public-notice period."""

    TYPE = "shouwang.rewards.star_changed.v1"
    TOPIC = "rewards.stars.v1"
    SOURCE = SOURCE

    volunteer_id: str
    old_star: int
    new_star: int
    effective_at: datetime
    notice_until: datetime
    reason: str


class StarChangeWithdrawn(EventPayload):
    """A star change announced for `withdrawn_effective_at` will not happen: the record came back during the notice."""

    TYPE = "shouwang.rewards.star_change_withdrawn.v1"
    TOPIC = "rewards.stars.v1"
    SOURCE = SOURCE

    volunteer_id: str
    star: int  # the star that stays in force
    withdrawn_star: int
    withdrawn_effective_at: datetime
    reason: str
