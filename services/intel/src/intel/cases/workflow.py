"""The case workflow: new → triaged → verified / rejected → forwarded → closed, and when a police answer counts. Pure, no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta

TRANSITIONS: dict[str, dict[str, str]] = {
    "triage": {"new": "triaged", "triaged": "triaged"},
    "verify": {"new": "verified", "triaged": "verified"},
    "reject": {"new": "rejected", "triaged": "rejected", "verified": "rejected"},
    "forward": {"verified": "forwarded"},
    "close": {"new": "closed", "triaged": "closed", "verified": "closed", "rejected": "closed", "forwarded": "closed"},
}
REJECTION_REASONS = ("unfounded", "prank", "duplicate")
FINAL_OUTCOMES = ("case_solved", "unfounded")
POLICE_CLOCK_SKEW = timedelta(minutes=5)
MAX_DISPOSITIONS_PER_CASE = 50


class InvalidTransition(Exception):
    """The action is not allowed from the case's current status."""


def next_status(current: str, action: str) -> str:
    """The status after `action`; raises InvalidTransition when it is not allowed now."""
    target = TRANSITIONS.get(action, {}).get(current)
    if target is None:
        raise InvalidTransition(f"cannot {action} a case that is {current}")
    return target


class ImplausibleAnswer(Exception):
    """A police answer that cannot be true (dated in the future, or before the case reached the police)."""


def police_answer_time(recorded_at: datetime, *, forwarded_at: datetime, now: datetime, skew: timedelta = POLICE_CLOCK_SKEW) -> datetime:
    """When a police answer counts as recorded: its own time, clamped into [forwarded, now] within `skew`; refused beyond."""
    if recorded_at > now + skew:
        raise ImplausibleAnswer(f"recorded_at {recorded_at.isoformat()} lies in the future (received {now.isoformat()})")
    if recorded_at < forwarded_at - skew:
        raise ImplausibleAnswer(f"recorded_at {recorded_at.isoformat()} is before the case was forwarded ({forwarded_at.isoformat()})")
    return min(max(recorded_at, forwarded_at), now)
