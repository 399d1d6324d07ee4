"""Tip clustering: decides which case a new tip belongs to, with the reasons. Pure, no I/O.

Chinese has no spaces between words, so text similarity is the cosine of character bigram and
trigram counts of the normalised text (NFKC, punctuation and whitespace dropped), each n-gram
weighted by its rarity across the tips compared (boilerplate such as "发现有人" weighs little,
a licence plate or a shop name weighs a lot). Two tips are the same incident when they share an
attachment hash, or when they have the same category, are near in time and are near in place
(or place is unknown on one side) with similar enough text.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

# Per category: how far apart in time (hours) and place (km) two reports of one incident may be.
TIME_WINDOW_H: dict[str, float] = {"fugitive": 168.0, "missing_person": 96.0, "fraud": 120.0, "counterfeit": 240.0, "drugs": 168.0}
DEFAULT_TIME_WINDOW_H = 72.0
PLACE_RADIUS_KM: dict[str, float] = {"fugitive": 3.0, "missing_person": 5.0, "fraud": 6.0}
DEFAULT_PLACE_RADIUS_KM = 1.0

TEXT_THRESHOLD_NEAR = 0.08  # place known and near
TEXT_THRESHOLD_UNKNOWN_PLACE = 0.16  # place unknown on at least one side
PLACE_TEXT_NEAR = 0.45  # free-text places this similar count as the same place

HARD_CONFLICTS = frozenset({"different_plate", "different_number", "different_named_place", "far_in_place"})

_DROP = re.compile(r"[\W_]+", re.UNICODE)
_PLATE = re.compile(r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-Z][A-Z0-9]{4,5}")
_NUMBER = re.compile(r"\d[\d-]{5,}\d")
_VILLAGE = re.compile(r"([\u4e00-\u9fff]{2})(?:村(?!委)|社区)")
_TOWN = re.compile(r"([\u4e00-\u9fff]{2})(?:镇|乡|街道)")


@dataclass(frozen=True)
class TipFeatures:
    """What clustering looks at in a tip."""

    tip_id: str
    category: str
    text: str
    at: datetime
    lat: float | None = None
    lon: float | None = None
    place_text: str | None = None
    attachment_hashes: frozenset[str] = frozenset()


@dataclass
class CaseProfile:
    """A candidate case and the tips it already holds."""

    case_id: str
    category: str
    tips: list[TipFeatures] = field(default_factory=list)
    _gram_keys: tuple[int, frozenset[str]] | None = field(default=None, init=False, repr=False, compare=False)

    def gram_keys(self) -> frozenset[str]:
        """The n-grams any of the case's tips uses; worked out again only after tips were added."""
        if self._gram_keys is None or self._gram_keys[0] != len(self.tips):
            keys: set[str] = set()
            for member in self.tips:
                keys.update(char_ngrams(_with_place(member)).keys())
            self._gram_keys = (len(self.tips), frozenset(keys))
        return self._gram_keys[1]


@dataclass(frozen=True)
class PairVerdict:
    """Whether two tips report the same incident, how strongly, and why."""

    same: bool
    score: float
    reasons: tuple[str, ...]

    @property
    def conflict(self) -> bool:
        """True when the tips cannot be one incident (different plates, numbers, places), whatever else matches."""
        return not self.same and self.reasons[-1].split(":")[0] in HARD_CONFLICTS


@dataclass(frozen=True)
class ClusterMatch:
    """The case a tip joins, with the score and the reasons shown to analysts."""

    case_id: str
    score: float
    reasons: tuple[str, ...]
    matched_tip_id: str


def normalize_text(text: str) -> str:
    """NFKC-normalised, lower-cased text without punctuation or whitespace."""
    return _DROP.sub("", unicodedata.normalize("NFKC", text or "").lower())


@lru_cache(maxsize=100_000)
def char_ngrams(text: str, sizes: tuple[int, ...] = (2, 3)) -> Counter[str]:
    """Counts of the character n-grams of the normalised text (single characters for very short texts).

    Cached (tips are compared with the same candidates again and again): callers must not modify the result.
    """
    norm = normalize_text(text)
    grams: Counter[str] = Counter()
    for n in sizes:
        grams.update(norm[i : i + n] for i in range(len(norm) - n + 1))
    if not grams and norm:
        grams.update(norm)
    return grams


class NgramWeights:
    """Inverse document frequency of n-grams over a set of texts: rare n-grams weigh more."""

    def __init__(self, documents: Iterable[Iterable[str]] = ()) -> None:
        self.df: Counter[str] = Counter()
        self.docs = 0
        self._weights: dict[str, float] = {}
        for doc in documents:
            self.add(doc)

    def add(self, grams: Iterable[str]) -> None:
        """Count one more document by its distinct n-grams."""
        self.docs += 1
        self.df.update(grams)
        self._weights.clear()

    def weight(self, gram: str) -> float:
        """Smoothed idf of `gram` (n-grams in every document weigh nearly nothing); remembered until the next `add`."""
        w = self._weights.get(gram)
        if w is None:
            w = self._weights[gram] = math.log((2 + self.docs) / (1 + self.df.get(gram, 0)))
        return w


def cosine(a: Counter[str], b: Counter[str], weights: NgramWeights | None = None) -> float:
    """Cosine similarity of two n-gram count vectors, optionally idf-weighted."""
    if not a or not b:
        return 0.0
    w = weights.weight if weights else (lambda _g: 1.0)
    common = a.keys() & b.keys()
    dot = sum(a[g] * b[g] * w(g) ** 2 for g in common)
    if dot == 0:
        return 0.0
    na = math.sqrt(sum((c * w(g)) ** 2 for g, c in a.items()))
    nb = math.sqrt(sum((c * w(g)) ** 2 for g, c in b.items()))
    return dot / (na * nb)


def text_similarity(a: str, b: str, weights: NgramWeights | None = None) -> float:
    """Similarity in [0, 1] of two Chinese texts by character bigrams and trigrams."""
    return cosine(char_ngrams(a), char_ngrams(b), weights)


@lru_cache(maxsize=100_000)
def identifiers(text: str) -> dict[str, frozenset[str]]:
    """Licence plates and phone/account numbers mentioned in a tip, by kind."""
    norm = unicodedata.normalize("NFKC", text or "").upper()
    plates = frozenset(_PLATE.findall(norm))
    numbers = frozenset(n.replace("-", "") for n in _NUMBER.findall(norm))
    return {"plate": plates, "number": numbers}


@lru_cache(maxsize=100_000)
def named_places(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """Town and village names mentioned in a tip (the two characters before 镇/乡/街道 and 村/社区)."""
    norm = unicodedata.normalize("NFKC", text or "")
    return frozenset(_TOWN.findall(norm)), frozenset(_VILLAGE.findall(norm))


def _names_conflict(a: frozenset[str], b: frozenset[str]) -> bool:
    """Both texts name places of a level and no name of one shares a character with a name of the other."""
    return bool(a and b) and not any(set(x) & set(y) for x in a for y in b)


def _near_equal(a: str, b: str) -> bool:
    """Equal, or one typo apart (a character changed, dropped or added)."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) <= 1
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def _identifier_relation(a: TipFeatures, b: TipFeatures) -> tuple[str, str] | None:
    """('same', id) when the tips share a plate or number, ('conflict', kind) when both name different ones."""
    ia, ib = identifiers(a.text), identifiers(b.text)
    conflict = None
    for kind in ("plate", "number"):
        if ia[kind] and ib[kind]:
            shared = [x for x in ia[kind] for y in ib[kind] if _near_equal(x, y)]
            if shared:
                return ("same", shared[0])
            conflict = ("conflict", kind)
    return conflict


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two WGS-84 points."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(h)))


def compare(a: TipFeatures, b: TipFeatures, weights: NgramWeights | None = None) -> PairVerdict:
    """Decide whether tips `a` and `b` report the same incident."""
    decided, reasons, place = _rules(a, b)
    if decided is not None:
        return decided
    return _by_text(a, b, reasons, place, weights)


def _rules(a: TipFeatures, b: TipFeatures) -> tuple[PairVerdict | None, list[str], str]:
    """The cheap rules (attachment, category, time, place, identifiers, named places); None when text must decide."""
    shared = a.attachment_hashes & b.attachment_hashes
    if shared:
        return PairVerdict(True, 1.0, (f"same_attachment:{sorted(shared)[0][:12]}",)), [], ""
    if a.category != b.category:
        return PairVerdict(False, 0.0, ("different_category",)), [], ""
    reasons = [f"same_category:{a.category}"]
    gap_h = abs((a.at - b.at).total_seconds()) / 3600
    if gap_h > TIME_WINDOW_H.get(a.category, DEFAULT_TIME_WINDOW_H):
        return PairVerdict(False, 0.0, (*reasons, f"far_in_time:{gap_h:.0f}h")), reasons, ""
    reasons.append(f"near_in_time:{gap_h:.1f}h")
    place = _place_relation(a, b)
    if place == "far":
        return PairVerdict(False, 0.0, (*reasons, "far_in_place")), reasons, place
    reasons.append("place_unknown" if place == "unknown" else place)
    ident = _identifier_relation(a, b)
    if ident and ident[0] == "conflict":
        return PairVerdict(False, 0.0, (*reasons, f"different_{ident[1]}")), reasons, place
    if ident and ident[0] == "same":
        return PairVerdict(True, 0.95, (*reasons, f"same_identifier:{ident[1]}")), reasons, place
    (town_a, village_a), (town_b, village_b) = named_places(_with_place(a)), named_places(_with_place(b))
    if _names_conflict(town_a, town_b) or _names_conflict(village_a, village_b):
        return PairVerdict(False, 0.0, (*reasons, "different_named_place")), reasons, place
    return None, reasons, place


def _by_text(a: TipFeatures, b: TipFeatures, reasons: list[str], place: str, weights: NgramWeights | None) -> PairVerdict:
    sim = text_similarity(_with_place(a), _with_place(b), weights)
    threshold = TEXT_THRESHOLD_UNKNOWN_PLACE if place == "unknown" else TEXT_THRESHOLD_NEAR
    return PairVerdict(sim >= threshold, sim, (*reasons, f"similar_text:{sim:.2f}"))


def _with_place(tip: TipFeatures) -> str:
    """The tip's text followed by its free-text place, the words text similarity compares."""
    return f"{tip.text} {tip.place_text}" if tip.place_text else tip.text


def _place_relation(a: TipFeatures, b: TipFeatures) -> str:
    """'near_place:<km>' / 'same_place_text:<sim>', 'far', or 'unknown' when place cannot be compared."""
    radius = PLACE_RADIUS_KM.get(a.category, DEFAULT_PLACE_RADIUS_KM)
    if None not in (a.lat, a.lon, b.lat, b.lon):
        km = haversine_km(a.lat, a.lon, b.lat, b.lon)  # type: ignore[arg-type]
        return f"near_place:{km:.2f}km" if km <= radius else "far"
    if a.place_text and b.place_text:
        sim = text_similarity(a.place_text, b.place_text)
        return f"same_place_text:{sim:.2f}" if sim >= PLACE_TEXT_NEAR else "far"
    return "unknown"


def weights_for(tip: TipFeatures, cases: Sequence[CaseProfile]) -> NgramWeights:
    """N-gram weights by case frequency over the new tip and the candidate cases of its category.

    Each case counts once, so the words its own reports repeat keep their weight, while the
    phrasing common to many different cases ("看到一个人很像通缉令上的") loses it.
    """
    weights = NgramWeights([char_ngrams(_with_place(tip)).keys()])
    for case in cases:
        if case.category != tip.category:
            continue
        weights.add(case.gram_keys())
    return weights


def matching_cases(tip: TipFeatures, cases: Sequence[CaseProfile], weights: NgramWeights | None = None) -> list[ClusterMatch]:
    """Every candidate case the tip belongs to, best first (score of its best-matching member tip).

    The cheap rules run first; the n-gram weights (from `weights_for` unless given) are only built when
    some pair is left for the text to decide.
    """
    matches: list[ClusterMatch] = []
    for case in cases:
        best: ClusterMatch | None = None
        for member in case.tips:
            verdict, reasons, place = _rules(tip, member)
            if verdict is None:
                if weights is None:
                    weights = weights_for(tip, cases)
                verdict = _by_text(tip, member, reasons, place, weights)
            if verdict.conflict:
                best = None
                break
            if verdict.same and (best is None or verdict.score > best.score):
                best = ClusterMatch(case.case_id, verdict.score, verdict.reasons, member.tip_id)
        if best is not None:
            matches.append(best)
    return sorted(matches, key=lambda m: -m.score)


def best_case(tip: TipFeatures, cases: Sequence[CaseProfile], weights: NgramWeights | None = None) -> ClusterMatch | None:
    """The candidate case the tip belongs to, or None when it starts a new case."""
    matches = matching_cases(tip, cases, weights)
    return matches[0] if matches else None


def cluster_offline(tips: Sequence[TipFeatures]) -> dict[str, str]:
    """Cluster tips in arrival order as the service does; returns tip id → cluster id (the first tip's id)."""
    cases: dict[str, CaseProfile] = {}
    assignment: dict[str, str] = {}
    for tip in sorted(tips, key=lambda t: t.at):
        candidates = [c for c in cases.values() if c.category == tip.category or tip.attachment_hashes]
        match = best_case(tip, candidates)
        if match is None:
            cases[tip.tip_id] = CaseProfile(tip.tip_id, tip.category, [tip])
            assignment[tip.tip_id] = tip.tip_id
        else:
            cases[match.case_id].tips.append(tip)
            assignment[tip.tip_id] = match.case_id
    return assignment


def pairwise_precision_recall(predicted: dict[str, str], truth: dict[str, str]) -> tuple[float, float]:
    """Pairwise precision and recall of a clustering against true labels (both: item → cluster)."""
    def pairs(labels: dict[str, str]) -> set[tuple[str, str]]:
        groups: dict[str, list[str]] = {}
        for item, label in labels.items():
            groups.setdefault(label, []).append(item)
        out = set()
        for members in groups.values():
            members.sort()
            out.update((members[i], members[j]) for i in range(len(members)) for j in range(i + 1, len(members)))
        return out

    p, t = pairs(predicted), pairs(truth)
    precision = len(p & t) / len(p) if p else 1.0
    recall = len(p & t) / len(t) if t else 1.0
    return precision, recall
