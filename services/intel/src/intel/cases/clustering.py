"""Tip clustering: decides which case a new tip belongs to, how sure it is, and why. Pure, no I/O but its data files.

Two tips are weighed the way an analyst weighs them: same category, how far apart in place and time, the places
they name, identifiers (plates, phone and account numbers, photos) and what the text says. Text is read as words:
the tip is cut into words (jieba), each word is mapped through a domain lexicon kept as data (`lexicon/`:
菜场 = 菜市场, 阿婆 = 老人, 安全帐户 = 安全账户, ...) and weighed by how rare it is in general Chinese (jieba's word
frequencies, a fixed background corpus: the weights never depend on which tips happen to be compared), with
the words every tip of a category uses (举报, 怀疑, 通缉 for a fugitive) weighing little. Character bigrams are
added at a lower weight so a typo or an unknown word still counts partly.

The evidence is combined into one score, the probability that the two tips report one incident (a logistic
model fitted on labelled pairs, `PAIR_MODEL`). At or above `JOIN_THRESHOLD` a tip joins the case; below it the
case is only suggested to analysts (`similar_cases`), best first.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

# Per category: how far apart in time (hours) and place (km) two reports of one incident may be at most.
TIME_WINDOW_H: dict[str, float] = {"fugitive": 168.0, "missing_person": 96.0, "fraud": 120.0, "counterfeit": 240.0, "drugs": 168.0}
DEFAULT_TIME_WINDOW_H = 72.0
PLACE_RADIUS_KM: dict[str, float] = {"fugitive": 5.0, "missing_person": 6.0, "fraud": 6.0}
DEFAULT_PLACE_RADIUS_KM = 3.0
# A lost person walks on: witnesses see them near another landmark, in the next town, so the towns the text's place
# words point to do not rule a pair out (the positions' radius and the town or village names written out still do).
MOVING_CATEGORIES = frozenset({"missing_person"})
PLACE_SCALE_KM = 0.8  # place closeness exp(-km / scale): 1 on the spot, 0.29 at 1 km
# time closeness exp(-hours / scale): a fight is reported within the hour, a dealer or a fugitive over days
TIME_SCALE_H: dict[str, float] = {"public_order": 24.0, "dispute": 12.0, "missing_person": 24.0, "fraud": 48.0}
DEFAULT_TIME_SCALE_H = 72.0
MIN_TEXT_TO_JOIN = 0.08  # two reports that say nothing in common are never joined automatically, however near
MIN_CHARS_TO_JOIN = 0.35  # ... or this much of their characters (~ the 99th percentile of different incidents' pairs)

# The pair model: log-odds = intercept + sum(weight * evidence); fitted by `python -m bench.fit_pair_model` on the pairs
# of tests/intel/data/free_tips/tune.json read four times: through the whole lexicon, without synonyms and twice with
# half of its concepts removed (its author wrote the lexicon too: other people's words are partly or not in it), so
# the weights hold for reports in words the lexicon does not know (logistic regression, L2 0.001). `contradiction`
# is set by hand: no pair of one incident there contradicts; contradicting details are nearly decisive to an analyst.
PAIR_MODEL: dict[str, float] = {
    "intercept": -7.53, "text": 6.54, "chars": 5.2, "place": 2.94, "time": 3.49, "place_and_time": 1.76, "same_town": 0.46,
    "place_unknown": 2.64, "contradiction": -4.0,
}
EVIDENCE = ("text", "chars", "place", "time", "place_and_time", "same_town", "place_unknown", "contradiction")
JOIN_THRESHOLD = 0.5  # a tip joins at this score or above: more likely one incident than two (joined pairs of the tuning
# set are >= 97% one incident in every reading of the fit, bench/fit_pair_model.py)
SUGGEST_THRESHOLD = 0.02  # an open case scoring at least this is offered to analysts as similar
SUGGESTIONS = 10

LEXICON_DIR = Path(__file__).parent / "lexicon"
OOV_IDF = 12.0  # weight basis of a word jieba's dictionary does not know (as rare as a word seen ~100 times)
LEXICON_IDF = 12.0  # weight basis of a lexicon concept
COMMON_IDF = 7.0  # words at least this common in general Chinese weigh nothing
BOILERPLATE_FACTOR = 0.15
BIGRAM_WEIGHT = 0.35  # a character bigram against a word (relative, before normalisation)
UNKNOWN_BIGRAM_IDF = 9.0  # a bigram that is no word (mostly across two words) weighs little
CHAR_COMMON_IDF = 6.5  # characters at least this common (的 人 有 老 市 ..., the ~150 commonest) weigh nothing
CHAR_MAX_IDF = 11.0

HARD_CONFLICTS = frozenset({"different_plate", "different_number", "different_named_place", "different_town", "far_in_place"})

_DROP = re.compile(r"[\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u4e00-\u9fff]+")
_PLATE = re.compile(r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-Z][A-Z0-9]{4,5}")
_NUMBER = re.compile(r"\d[\d-]{5,}\d")
_NOT_NAME_START = frozenset("我你他她它咱这那哪本全整各每隔邻一个小古老大在到去的了是有和跟从回住个条座")
# ... nor a name ending in a preposition: "下午在镇上" names no town 午在 (but 前进村 is a village)
_NOT_NAME_END = frozenset("们个条座的农古小在到去回往从")
_TOWN_SUFFIX = re.compile(r"(?:镇|街道|乡)$")
_VILLAGE = re.compile(r"([\u4e00-\u9fff]{2})(?:村(?!委)|社区)")
_TOWN = re.compile(r"([\u4e00-\u9fff]{2})(?:镇|街道|(?<![老家城故同下])乡)")


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


@dataclass(frozen=True)
class PairVerdict:
    """Whether two tips report the same incident, the score (probability of one incident) and why."""

    same: bool
    score: float
    reasons: tuple[str, ...]

    @property
    def conflict(self) -> bool:
        """True when the tips cannot be one incident (different plates, numbers, places), whatever else matches."""
        return not self.same and self.reasons[-1].split(":")[0] in HARD_CONFLICTS


@dataclass(frozen=True)
class ClusterMatch:
    """The case a tip joins (or resembles), with the score and the reasons shown to analysts."""

    case_id: str
    score: float
    reasons: tuple[str, ...]
    matched_tip_id: str


@dataclass(frozen=True)
class Lexicon:
    """The domain lexicon: word → concepts, place name → town, per-category boilerplate, background idf."""

    concepts: dict[str, tuple[str, ...]]
    towns: dict[str, str]
    boilerplate: dict[str, frozenset[str]]
    idf: dict[str, float]
    exclusive: tuple[tuple[frozenset[str], frozenset[str] | None], ...] = ()  # (concepts, categories it holds in; None: all)
    char_idf: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TextProfile:
    """What the text of a tip says, as clustering compares it: weighted words (unit length) and the towns it names."""

    vector: dict[str, float]
    towns: frozenset[str]
    chars: dict[str, float] = field(default_factory=dict)


def _rows(name: str, *, split_on_tab: bool = True) -> Iterable[tuple[str, list[str]]]:
    """The (key, words) lines of a lexicon file, normalised as tip text is, comments and blank lines skipped."""
    for line in (LEXICON_DIR / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, rest = line.partition("\t" if split_on_tab else " ")
            yield normalize_text(key) or key.strip(), [normalize_text(w) for w in rest.split()]  # as tips are read: KTV is ktv


def _exclusive_groups() -> Iterable[tuple[frozenset[str], frozenset[str] | None]]:
    """The groups of `exclusive.tsv` with the categories each holds in (None: every category)."""
    for line in (LEXICON_DIR / "exclusive.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            concepts, _, categories = line.partition("\t")
            yield frozenset(normalize_text(w) for w in concepts.split()), frozenset(categories.split()) or None


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    """The lexicon files loaded, and jieba taught their words (done once per process; `warm_up` does it early)."""
    import jieba

    jieba.setLogLevel(60)
    concepts: dict[str, list[str]] = {}
    for canonical, variants in _rows("synonyms.tsv"):
        for word in {canonical, *variants}:
            concepts.setdefault(word, []).append(canonical)
    towns = {name: town for town, names in _rows("places.tsv") for name in (town, *names)}
    boilerplate: dict[str, set[str]] = {}
    for category, words in _rows("boilerplate.tsv"):
        boilerplate.setdefault(category, set()).update(words)
    jieba.initialize()
    for word in [*concepts, *towns]:
        jieba.add_word(word, freq=max(jieba.get_FREQ(word) or 0, 2000))
    total = jieba.dt.total
    idf = {w: math.log(total / (f + 1)) for w, f in jieba.dt.FREQ.items() if f}
    common = boilerplate.pop("*", set())
    exclusive = tuple(_exclusive_groups())
    return Lexicon(
        {w: tuple(dict.fromkeys(c)) for w, c in concepts.items()}, towns,
        {cat: frozenset(words | common) for cat, words in boilerplate.items()} | {"*": frozenset(common)}, idf, exclusive,
        _char_idf(jieba.dt.FREQ),
    )


def _char_idf(freq: dict[str, int]) -> dict[str, float]:
    """How rare each character is in general Chinese: -log of its share of the dictionary's word frequencies."""
    counts: dict[str, int] = {}
    for word, f in freq.items():
        if f:
            for ch in set(word):
                counts[ch] = counts.get(ch, 0) + f
    total = sum(counts.values())
    return {ch: math.log(total / (n + 1)) for ch, n in counts.items()}


def warm_up() -> None:
    """Load the lexicon and the segmenter now (1.5-2 s: the dictionary and the characters' frequencies) rather than on the first tip."""
    lexicon()
    text_profile("菜场有人卖假货", "drugs")


def normalize_text(text: str) -> str:
    """NFKC-normalised, lower-cased text without punctuation or whitespace."""
    return _DROP.sub("", unicodedata.normalize("NFKC", text or "").lower())


def _word_weight(word: str, lex: Lexicon, boilerplate: frozenset[str], original: str) -> float:
    """How much a word (or concept) tells about the incident: general rarity, less for the category's boilerplate."""
    factor = BOILERPLATE_FACTOR if word in boilerplate or original in boilerplate else 1.0
    if word in lex.concepts:  # a concept of the lexicon: analysts listed it because it tells incidents apart
        basis = LEXICON_IDF
    else:
        basis = min(lex.idf.get(word, OOV_IDF), OOV_IDF)
    if word.isdigit():
        basis = min(basis, 9.0)
    return max(0.0, basis - COMMON_IDF) * factor


@lru_cache(maxsize=50_000)
def text_profile(text: str, category: str) -> TextProfile:
    """The words, concepts and bigrams of a tip's text with their weights (unit vector), and the towns it names.

    Cached: tips are compared again and again; callers must not modify the result.
    """
    import jieba

    lex = lexicon()
    boilerplate = lex.boilerplate.get(category, lex.boilerplate["*"])
    norm = normalize_text(text)
    vector: dict[str, float] = {}
    towns: set[str] = set()
    for token in jieba.lcut(norm, HMM=True):
        town = lex.towns.get(token)
        if town:
            towns.add(town)
        for word in lex.concepts.get(token, (token,)):
            w = _word_weight(word, lex, boilerplate, token)
            if town and _TOWN_SUFFIX.sub("", token) == _TOWN_SUFFIX.sub("", town):  # `same_town` counts it, the text not again
                w *= BOILERPLATE_FACTOR
            if w > vector.get(word, 0.0):
                vector[word] = w
    for run in _CJK.findall(norm):
        for i in range(len(run) - 1):
            gram = run[i : i + 2]
            if gram not in boilerplate:
                basis = lex.idf.get(gram, UNKNOWN_BIGRAM_IDF)
                vector.setdefault("~" + gram, BIGRAM_WEIGHT * max(0.0, basis - COMMON_IDF))
    for name, town in lex.towns.items():  # a town named inside a longer word ("城关老街口") still counts
        if len(name) >= 2 and name in norm:
            towns.add(town)
    return TextProfile(_unit(vector), frozenset(towns), _unit(_char_weights(norm, lex, boilerplate)))


def _char_weights(norm: str, lex: Lexicon, boilerplate: frozenset[str]) -> dict[str, float]:
    """Each Chinese character of the text weighed by its rarity in general Chinese, less when it belongs to the
    category's boilerplate: 菜场 and 菜市场, 杀鱼的 and 鱼摊 share characters though no word."""
    quiet = _boilerplate_chars(boilerplate)
    weights: dict[str, float] = {}
    for run in _CJK.findall(norm):
        for ch in run:
            if ch not in weights:
                basis = min(lex.char_idf.get(ch, CHAR_MAX_IDF), CHAR_MAX_IDF) - CHAR_COMMON_IDF
                weights[ch] = max(0.0, basis) * (BOILERPLATE_FACTOR if ch in quiet else 1.0)
    return weights


@lru_cache(maxsize=16)
def _boilerplate_chars(boilerplate: frozenset[str]) -> frozenset[str]:
    return frozenset(ch for word in boilerplate for ch in word)


def _unit(vector: dict[str, float]) -> dict[str, float]:
    norm2 = math.sqrt(sum(v * v for v in vector.values()))
    return {k: v / norm2 for k, v in vector.items() if v > 0} if norm2 > 0 else {}


def text_similarity(a: str, b: str, category: str = "*") -> float:
    """Similarity in [0, 1] of two Chinese texts: cosine of their weighted words, concepts and bigrams."""
    return _cosine(text_profile(a, category).vector, text_profile(b, category).vector)


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b[k] for k, v in a.items() if k in b)


def shared_words(a: TextProfile, b: TextProfile, limit: int = 4) -> list[str]:
    """The words (not bigrams) two texts share that weigh most: what an analyst reads as the reason they match."""
    common = [(a.vector[k] * b.vector[k], k) for k in a.vector.keys() & b.vector.keys() if not k.startswith("~")]
    return [k for _, k in sorted(common, reverse=True)[:limit]]


@lru_cache(maxsize=50_000)
def identifiers(text: str) -> dict[str, frozenset[str]]:
    """Licence plates and phone/account numbers mentioned in a tip, by kind."""
    norm = unicodedata.normalize("NFKC", text or "").upper()
    plates = frozenset(_PLATE.findall(norm))
    numbers = frozenset(n.replace("-", "") for n in _NUMBER.findall(norm))
    return {"plate": plates, "number": numbers}


@lru_cache(maxsize=50_000)
def named_places(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """Town and village names written with their suffix in a tip (the two characters before 镇/乡/街道 and 村/社区),
    leaving out what only looks like a name in free text (我们村, 这个镇, 那条街道, 农村)."""
    norm = unicodedata.normalize("NFKC", text or "")
    return _names(_TOWN.findall(norm)), _names(_VILLAGE.findall(norm))


def _names(found: list[str]) -> frozenset[str]:
    return frozenset(n for n in found if n[0] not in _NOT_NAME_START and n[1] not in _NOT_NAME_END)


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


def _with_place(tip: TipFeatures) -> str:
    """The tip's text followed by its free-text place, the words text similarity compares."""
    return f"{tip.text} {tip.place_text}" if tip.place_text else tip.text


def _profile(tip: TipFeatures) -> TextProfile:
    return text_profile(_with_place(tip), tip.category)


@dataclass(frozen=True)
class PairEvidence:
    """The evidence on a pair that passed the rules, each in [0, 1] (contradiction: how many details contradict)."""

    text: float
    chars: float
    place: float
    time: float
    place_and_time: float
    same_town: float
    place_unknown: float
    contradiction: float

    def shares_text(self) -> bool:
        """The texts have something in common: a word (or concept) that weighs, or enough of their characters."""
        return self.text >= MIN_TEXT_TO_JOIN or self.chars >= MIN_CHARS_TO_JOIN

    def score(self) -> float:
        """The probability that the two tips report one incident."""
        m = PAIR_MODEL
        z = m["intercept"] + sum(m[k] * getattr(self, k) for k in EVIDENCE)
        return 1.0 / (1.0 + math.exp(-z))


def compare(a: TipFeatures, b: TipFeatures) -> PairVerdict:
    """Decide whether tips `a` and `b` report the same incident."""
    decided, evidence, reasons = _evidence(a, b)
    if decided is not None:
        return decided
    assert evidence is not None
    score = evidence.score()
    same = score >= JOIN_THRESHOLD and evidence.shares_text()
    return PairVerdict(same, score, (*reasons, f"score:{score:.2f}"))


def _evidence(a: TipFeatures, b: TipFeatures) -> tuple[PairVerdict | None, PairEvidence | None, list[str]]:
    """The rules that decide alone (photo, category, time, place, identifiers, named places), else the evidence."""
    shared = a.attachment_hashes & b.attachment_hashes
    if shared:
        return PairVerdict(True, 1.0, (f"same_attachment:{sorted(shared)[0][:12]}",)), None, []
    if a.category != b.category:
        return PairVerdict(False, 0.0, ("different_category",)), None, []
    reasons = [f"same_category:{a.category}"]
    gap_h = abs((a.at - b.at).total_seconds()) / 3600
    if gap_h > TIME_WINDOW_H.get(a.category, DEFAULT_TIME_WINDOW_H):
        return PairVerdict(False, 0.0, (*reasons, f"far_in_time:{gap_h:.0f}h")), None, reasons
    reasons.append(f"near_in_time:{gap_h:.1f}h")
    km = None
    if None not in (a.lat, a.lon, b.lat, b.lon):
        km = haversine_km(a.lat, a.lon, b.lat, b.lon)  # type: ignore[arg-type]
        if km > PLACE_RADIUS_KM.get(a.category, DEFAULT_PLACE_RADIUS_KM):
            return PairVerdict(False, 0.0, (*reasons, "far_in_place")), None, reasons
        reasons.append(f"near_place:{km:.2f}km")
    else:
        reasons.append("place_unknown")
    ident = _identifier_relation(a, b)
    if ident and ident[0] == "conflict":
        return PairVerdict(False, 0.0, (*reasons, f"different_{ident[1]}")), None, reasons
    if ident and ident[0] == "same":
        return PairVerdict(True, 0.97, (*reasons, f"same_identifier:{ident[1]}")), None, reasons
    (town_a, village_a), (town_b, village_b) = named_places(_with_place(a)), named_places(_with_place(b))
    moving = a.category in MOVING_CATEGORIES
    if _names_conflict(town_a, town_b) or _names_conflict(village_a, village_b):
        return PairVerdict(False, 0.0, (*reasons, "different_named_place")), None, reasons
    pa, pb = _profile(a), _profile(b)
    if not moving and pa.towns and pb.towns and not pa.towns & pb.towns:
        return PairVerdict(False, 0.0, (*reasons, f"different_town:{'/'.join(sorted(pa.towns ^ pb.towns))}")), None, reasons
    if pa.towns & pb.towns:
        reasons.append(f"same_town:{'/'.join(sorted(pa.towns & pb.towns))}")
    sim = _cosine(pa.vector, pb.vector)
    reasons.append(f"similar_text:{sim:.2f}")
    words = shared_words(pa, pb)
    if words:
        reasons.append(f"shared_words:{'、'.join(words)}")
    contradicting = _contradictions(pa, pb, a.category)
    if contradicting:
        reasons.append(f"contradicting_details:{'; '.join(contradicting)}")
    near_place = math.exp(-km / PLACE_SCALE_KM) if km is not None else 0.0
    near_time = math.exp(-gap_h / TIME_SCALE_H.get(a.category, DEFAULT_TIME_SCALE_H))
    evidence = PairEvidence(
        text=sim,
        chars=_cosine(pa.chars, pb.chars),
        place=near_place,
        time=near_time,
        place_and_time=near_place * near_time,
        same_town=1.0 if pa.towns & pb.towns else 0.0,
        place_unknown=1.0 if km is None else 0.0,
        contradiction=float(len(contradicting)),
    )
    return None, evidence, reasons


def _contradictions(a: TextProfile, b: TextProfile, category: str) -> list[str]:
    """Each group of exclusive concepts (holding in `category`) where one text names only one and the other only another."""
    found = []
    for group, categories in lexicon().exclusive:
        if categories is not None and category not in categories:
            continue
        in_a, in_b = group & a.vector.keys(), group & b.vector.keys()
        if in_a and in_b and not in_a & in_b:
            found.append(f"{'、'.join(sorted(in_a))}/{'、'.join(sorted(in_b))}")
    return found


def case_similarity(tip: TipFeatures, case: CaseProfile) -> ClusterMatch | None:
    """How strongly a tip resembles a case: its best-matching member; None when any member rules it out.

    A pair with too little text in common scores just under `JOIN_THRESHOLD` (0.45-0.495, in the order of its score:
    it can be suggested, never joined).
    """
    best: tuple[PairVerdict, str] | None = None
    for member in case.tips:
        verdict = compare(tip, member)
        if verdict.conflict:
            return None
        if verdict.score > 0 and (best is None or verdict.score > best[0].score):
            best = (verdict, member.tip_id)
    if best is None:
        return None
    verdict, member_id = best
    score = verdict.score
    if not verdict.same and score >= JOIN_THRESHOLD:  # too little text in common: just under, still ranked by the score
        score = JOIN_THRESHOLD * (0.9 + 0.09 * score)
    reasons = verdict.reasons if score == verdict.score else (*verdict.reasons[:-1], f"score:{score:.2f}")
    return ClusterMatch(case.case_id, score, reasons, member_id)


def matching_cases(tip: TipFeatures, cases: Sequence[CaseProfile], threshold: float = JOIN_THRESHOLD) -> list[ClusterMatch]:
    """Every candidate case scoring at least `threshold` for the tip, best first."""
    matches = [m for case in cases if (m := case_similarity(tip, case)) is not None and m.score >= threshold]
    return sorted(matches, key=lambda m: (-m.score, m.case_id))


def best_case(tip: TipFeatures, cases: Sequence[CaseProfile]) -> ClusterMatch | None:
    """The candidate case the tip joins (score at least `JOIN_THRESHOLD`), or None when it starts a new case."""
    matches = matching_cases(tip, cases)
    return matches[0] if matches else None


def case_similarity_of_cases(case: CaseProfile | None, other: CaseProfile | None) -> ClusterMatch | None:
    """How strongly two cases resemble each other: their best pair of tips; None when a pair rules it out (or no tips)."""
    if case is None or other is None:
        return None
    best: ClusterMatch | None = None
    for tip in case.tips:
        match = case_similarity(tip, other)
        if match is None:
            return None
        if best is None or match.score > best.score:
            best = match
    return best


def similar_cases(case: CaseProfile, others: Sequence[CaseProfile], limit: int = SUGGESTIONS) -> list[ClusterMatch]:
    """The cases most like `case` scoring at least `SUGGEST_THRESHOLD`, best first (`case_similarity_of_cases`).

    `matched_tip_id` is the other case's tip that matched; the reasons are those of the best pair.
    """
    found = [
        m for other in others
        if other.case_id != case.case_id and (m := case_similarity_of_cases(case, other)) is not None and m.score >= SUGGEST_THRESHOLD
    ]
    return sorted(found, key=lambda m: (-m.score, m.case_id))[:limit]


def cluster_offline(tips: Sequence[TipFeatures]) -> dict[str, str]:
    """Cluster tips in arrival order as the service does; returns tip id → cluster id (the first tip's id)."""
    cases: dict[str, CaseProfile] = {}
    cluster_of: dict[str, str] = {}
    for tip in sorted(tips, key=lambda t: t.at):
        candidates = [c for c in cases.values() if c.category == tip.category or tip.attachment_hashes]
        match = best_case(tip, candidates)
        if match is None:
            cases[tip.tip_id] = CaseProfile(tip.tip_id, tip.category, [tip])
            cluster_of[tip.tip_id] = tip.tip_id
        else:
            cases[match.case_id].tips.append(tip)
            cluster_of[tip.tip_id] = match.case_id
    return cluster_of


def suggestion_recall(tips: Sequence[TipFeatures], predicted: dict[str, str], truth: dict[str, str], k: int = 3) -> tuple[float, int]:
    """Share of the cases of a split incident whose top-`k` similar cases hold another case of that incident; and how many."""
    by_case: dict[str, CaseProfile] = {}
    for tip in sorted(tips, key=lambda t: t.at):
        by_case.setdefault(predicted[tip.tip_id], CaseProfile(predicted[tip.tip_id], tip.category, [])).tips.append(tip)
    incidents_of = {cid: {truth[t.tip_id] for t in case.tips} for cid, case in by_case.items()}
    hits = total = 0
    for cid, case in by_case.items():
        siblings = {other for other, inc in incidents_of.items() if other != cid and inc & incidents_of[cid]}
        if not siblings:
            continue
        total += 1
        top = [m.case_id for m in similar_cases(case, [c for c in by_case.values() if c.category == case.category], limit=k)]
        hits += bool(siblings & set(top))
    return (hits / total if total else 1.0), total


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
