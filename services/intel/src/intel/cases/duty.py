"""Who an urgent case goes to: the org levels above a case's scope, and the first of them with someone on duty. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def scope_levels(org_path: str) -> list[str]:
    """The case's own scope and every scope above it, nearest first: `/c1/t2/s3` → `/c1/t2/s3`, `/c1/t2`, `/c1`."""
    parts = [p for p in org_path.strip("/").split("/") if p]
    return ["/" + "/".join(parts[:n]) for n in range(len(parts), 0, -1)]


@dataclass(frozen=True)
class AlertTarget:
    """The scope to alert, how many levels above the case's own it is, and who is on duty there."""

    org_path: str
    level: int
    recipients: tuple[str, ...]


def first_staffed(levels: Sequence[str], on_duty: Mapping[str, Sequence[str]], *, from_level: int = 0) -> AlertTarget | None:
    """The nearest level at or above `from_level` with someone on duty; None when nobody is on duty up to the top."""
    for level in range(from_level, len(levels)):
        people = sorted(set(on_duty.get(levels[level], ())))
        if people:
            return AlertTarget(levels[level], level, tuple(people))
    return None
