"""The yearly training rule: core volunteers train 4 times a year, ordinary ones at least once. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

CORE_PER_YEAR = 4
ORDINARY_PER_YEAR = 1
WINDOW = timedelta(days=365)


@dataclass(frozen=True)
class TrainingStanding:
    """Where a volunteer stands against the rule on a given day."""

    required: int
    attended: int
    behind: bool
    flagged_since: date | None
    specialised_eligible: bool

    @property
    def compliant(self) -> bool:
        """True when the volunteer meets the rule today."""
        return not self.behind


def required_trainings(*, core: bool, joined_on: date, as_of: date) -> int:
    """Trainings needed in the trailing year; pro rata for someone who joined less than a year ago."""
    per_year = CORE_PER_YEAR if core else ORDINARY_PER_YEAR
    served = (as_of - joined_on).days
    if served >= WINDOW.days:
        return per_year
    return (per_year * max(served, 0)) // WINDOW.days


def trainings_in_window(attended_on: list[date], *, as_of: date) -> int:
    """How many trainings fall in the trailing year ending on `as_of`."""
    start = as_of - WINDOW
    return sum(1 for d in attended_on if start < d <= as_of)


def assess_training(
    *,
    core: bool,
    joined_on: date,
    attended_on: list[date],
    flagged_since: date | None,
    as_of: date,
    notice_days: int,
) -> TrainingStanding:
    """Apply the rule: behind → flagged (from today if not yet); flagged longer than the notice → not eligible."""
    required = required_trainings(core=core, joined_on=joined_on, as_of=as_of)
    attended = trainings_in_window(attended_on, as_of=as_of)
    behind = attended < required
    if not behind:
        return TrainingStanding(required, attended, False, None, True)
    since = flagged_since or as_of
    eligible = (as_of - since).days < notice_days
    return TrainingStanding(required, attended, True, since, eligible)
