"""The case workflow: new → triaged → verified / rejected → forwarded → closed. Pure, no I/O."""

from __future__ import annotations

TRANSITIONS: dict[str, dict[str, str]] = {
    "triage": {"new": "triaged", "triaged": "triaged"},
    "verify": {"new": "verified", "triaged": "verified"},
    "reject": {"new": "rejected", "triaged": "rejected", "verified": "rejected"},
    "forward": {"verified": "forwarded"},
    "close": {"new": "closed", "triaged": "closed", "verified": "closed", "rejected": "closed", "forwarded": "closed"},
}
REJECTION_REASONS = ("unfounded", "prank", "duplicate")
OPEN_STATUSES = ("new", "triaged", "verified", "forwarded")
FINAL_OUTCOMES = ("case_solved", "unfounded")


class InvalidTransition(Exception):
    """The action is not allowed from the case's current status."""


def next_status(current: str, action: str) -> str:
    """The status after `action`; raises InvalidTransition when it is not allowed now."""
    target = TRANSITIONS.get(action, {}).get(current)
    if target is None:
        raise InvalidTransition(f"cannot {action} a case that is {current}")
    return target
