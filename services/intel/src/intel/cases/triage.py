"""Case priority: category, severity words, sensitive places and corroboration. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

CATEGORY_BASE = {
    "missing_person": 55, "fugitive": 50, "drugs": 40, "public_order": 30, "fraud": 30,
    "dispute": 25, "counterfeit": 20, "other": 15,
}
SEVERITY_WORDS = {
    "持刀": 30, "刀": 15, "枪": 35, "爆炸": 35, "炸药": 35, "绑架": 35, "杀": 30, "血": 20, "受伤": 20, "打人": 15,
    "放火": 30, "着火": 25, "洪水": 35, "溺水": 35, "跳楼": 35, "自杀": 35, "孩子": 20, "小孩": 20, "儿童": 20,
    "老人": 10, "走失": 15, "动手": 15, "群殴": 25, "十几个人": 15, "上百人": 30, "冰毒": 15, "交易": 10,
    "已经转账": 15, "正在": 10, "马上": 10, "紧急": 5,
}
SENSITIVE_PLACES = {"学校": 15, "小学": 15, "幼儿园": 20, "中学": 10, "医院": 10, "车站": 10, "广场": 10, "水库": 10, "河": 5}
PRIORITY_BANDS = ((80, "urgent"), (60, "high"), (35, "normal"), (0, "low"))


@dataclass(frozen=True)
class Assessment:
    """The score, the priority band and why."""

    score: int
    priority: str
    reasons: tuple[str, ...]


def band(score: int) -> str:
    """The priority band of a score."""
    return next(name for floor, name in PRIORITY_BANDS if score >= floor)


def assess(*, category: str, texts: Sequence[str], places: Sequence[str], tip_count: int) -> Assessment:
    """Priority of a case from its category, the words of its tips, where, and how many people reported it."""
    reasons = [f"category:{category}+{CATEGORY_BASE.get(category, 15)}"]
    score = CATEGORY_BASE.get(category, 15)
    joined = "".join(texts)
    severity = 0
    for word, weight in SEVERITY_WORDS.items():
        if word in joined:
            severity += weight
            reasons.append(f"word:{word}+{weight}")
    score += min(severity, 45)
    place_text = "".join(places) + joined
    place_bonus = max((w for p, w in SENSITIVE_PLACES.items() if p in place_text), default=0)
    if place_bonus:
        score += place_bonus
        reasons.append(f"sensitive_place+{place_bonus}")
    if tip_count > 1:
        corroboration = min(5 * (tip_count - 1), 20)
        score += corroboration
        reasons.append(f"corroborated_by:{tip_count}+{corroboration}")
    return Assessment(score, band(score), tuple(reasons))
