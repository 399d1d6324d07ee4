"""Which verified cases need people on the ground, and how many. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FLOOD_WORDS = ("洪水", "内涝", "溺水", "被淹", "决堤", "山洪")
LARGE_DISPUTE_WORDS = ("群体", "十几个人", "几十人", "上百人", "对峙", "群殴", "聚集")


@dataclass(frozen=True)
class EscalationNeed:
    """An emergency operation to open: what kind, how many people, which skills and teams."""

    kind: str
    name: str
    headcount: int
    radius_km: float
    skills: tuple[str, ...]
    teams: tuple[str, ...]
    hours: int


def escalation_need(*, category: str, texts: Sequence[str], tip_count: int) -> EscalationNeed | None:
    """The escalation a verified case calls for, or None when no people are needed."""
    joined = "".join(texts)
    if any(w in joined for w in FLOOD_WORDS):
        return EscalationNeed("flood", "防汛救援", 40, 5.0, ("first_aid", "water_rescue"), ("emergency_rescue",), 12)
    if category == "missing_person":
        headcount = 30 if any(w in joined for w in ("孩子", "儿童", "小孩", "老人")) else 20
        return EscalationNeed("missing_person", "寻人搜救", headcount, 5.0, ("search",), ("voluntary_patrol",), 8)
    if category == "dispute" and (any(w in joined for w in LARGE_DISPUTE_WORDS) or tip_count >= 5):
        return EscalationNeed("large_dispute", "纠纷现场疏导", 15, 2.0, ("mediation",), ("mediation", "voluntary_patrol"), 6)
    return None
