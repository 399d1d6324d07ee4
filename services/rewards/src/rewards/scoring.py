"""Scoring rules as data and the pure functions that turn facts into ledger lines (no I/O).

A `RuleSet` is one version of the points-reward rule and the star rule. Every scoring function takes
a rule set and a fact and returns `Line`s: what to credit, to whom, how much and why. The live
consumers and the re-score preview (`replay`) both score through these functions, so a preview of a
new version is exactly what a fresh replay under that version would post.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator, model_validator

Unit = Literal["points", "hours"]
ISSUED = {"points": "alliance:points_issued", "hours": "alliance:hours_issued"}
CENT = Decimal("0.01")
PENDING = "pending:"
COUNTY_TIME = ZoneInfo("Asia/Shanghai")  # a reporter's "day" for the daily tip cap

TIP_CATEGORY_LABELS = {
    "fugitive": "逃犯线索", "drugs": "涉毒线索", "fraud": "诈骗线索", "counterfeit": "制假售假线索",
    "public_order": "治安线索", "dispute": "矛盾纠纷", "missing_person": "走失人员", "other": "其他线索",
}
TRAINING_LEVEL_LABELS = {"county": "县级", "town": "镇级", "village": "村级"}


def money(value: Any) -> Decimal:
    """A non-negative amount rounded half-up to two decimals."""
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


class StarThreshold(BaseModel):
    """What a volunteer needs to hold `star`: hours, points, reliability and training compliance."""

    star: int = Field(ge=1, le=5)
    min_hours: float = Field(default=0, ge=0)
    min_points: float = Field(default=0, ge=0)
    min_reliability: float = Field(default=0, ge=0, le=1)
    requires_training_compliance: bool = False


class RuleSet(BaseModel):
    """One version of the points-reward and star rules, in force from `effective_from`."""

    version: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")
    effective_from: datetime
    description: str = ""
    points_per_hour: float = Field(default=10, ge=0)
    difficulty_weights: dict[int, float] = Field(default_factory=lambda: {1: 1.0, 2: 1.3, 3: 1.6})
    risk_weights: dict[int, float] = Field(default_factory=lambda: {1: 1.0, 2: 1.25, 3: 1.5})
    role_weights: dict[str, float] = Field(default_factory=lambda: {"member": 1.0, "organiser": 1.2})
    tip_points: dict[str, float] = Field(default_factory=lambda: {
        "fugitive": 20, "drugs": 20, "fraud": 10, "counterfeit": 15, "public_order": 5,
        "dispute": 5, "missing_person": 10, "other": 3,
    })
    tip_attachment_bonus: float = Field(default=2, ge=0)
    tip_daily_cap: int = Field(default=5, ge=0)  # tips per reporter per day (China time) that earn pending points
    verified_bonus_by_quality: dict[int, float] = Field(default_factory=lambda: {1: 10, 2: 20, 3: 40})
    revoke_provisional_on_reject: bool = True
    case_reward_outcomes: list[str] = Field(default_factory=lambda: ["arrest", "case_solved"])
    case_reward_points: dict[str, float] = Field(default_factory=lambda: {
        "fugitive": 500, "drugs": 500, "counterfeit": 300, "fraud": 200, "public_order": 100,
        "dispute": 50, "missing_person": 200, "other": 100,
    })
    case_reward_split: Literal["first_reporter", "equal"] = "first_reporter"
    training_points: dict[str, float] = Field(default_factory=lambda: {"county": 8, "town": 5, "village": 3})
    stars: list[StarThreshold] = Field(default_factory=lambda: [
        StarThreshold(star=1),
        StarThreshold(star=2, min_hours=20, min_points=100, min_reliability=0.6),
        StarThreshold(star=3, min_hours=60, min_points=400, min_reliability=0.75, requires_training_compliance=True),
        StarThreshold(star=4, min_hours=150, min_points=1000, min_reliability=0.85, requires_training_compliance=True),
        StarThreshold(star=5, min_hours=300, min_points=2500, min_reliability=0.9, requires_training_compliance=True),
    ])
    star_notice_days: float = Field(default=7, ge=0)

    @field_validator("effective_from")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @field_validator("difficulty_weights", "risk_weights", "role_weights", "tip_points",
                     "verified_bonus_by_quality", "case_reward_points", "training_points")
    @classmethod
    def _non_negative(cls, value: dict) -> dict:
        for key, amount in value.items():
            if amount < 0:
                raise ValueError(f"{key}: must not be negative")
        return value

    @model_validator(mode="after")
    def _stars_complete(self) -> RuleSet:
        if sorted(t.star for t in self.stars) != [1, 2, 3, 4, 5]:
            raise ValueError("stars: one threshold for each star 1..5")
        return self


@dataclass(frozen=True)
class Line:
    """One credit (positive) or reversal (negative) to post: account, unit, amount and why."""

    rule_line: str
    account: str
    unit: Unit
    amount: Decimal
    reason: str
    volunteer_id: str | None = None
    from_account: str | None = None  # a transfer from this account instead of from the issuing account
    key: str | None = None  # the fact this line is posted once for, when not the scored fact itself (e.g. a case)


class BadFact(ValueError):
    """A fact no rule can score (a negative amount, an unknown grade); the event is dead-lettered."""


def reporter_account(reporter: dict) -> tuple[str, str | None] | None:
    """The account a reporter is credited on (`volunteer:<id>` or `claim:<claim_ref>`), or None if unusable."""
    if reporter.get("kind") == "volunteer" and reporter.get("volunteer_id"):
        return f"volunteer:{reporter['volunteer_id']}", reporter["volunteer_id"]
    if reporter.get("kind") == "anonymous" and reporter.get("claim_ref"):
        return f"claim:{reporter['claim_ref']}", None
    return None


def pending_account(account: str) -> str:
    """Where a reporter's unreviewed tip points wait (`pending:volunteer:<id>`, `pending:claim:<ref>`): not spendable, claimable or ranked."""
    return PENDING + account


def tip_day(submitted_at: datetime) -> date:
    """The county's calendar day a tip was submitted on (the daily cap counts per reporter and day)."""
    return submitted_at.astimezone(COUNTY_TIME).date()


def score_tip_submitted(rules: RuleSet, tip: dict, nth_today: int = 1) -> list[Line]:
    """Pending reporting points for an accepted tip, by category (plus an attachment bonus); none beyond the daily cap."""
    target = reporter_account(tip["reporter"])
    if target is None or nth_today > rules.tip_daily_cap:
        return []
    account, volunteer_id = target
    label = TIP_CATEGORY_LABELS.get(tip["category"], tip["category"])
    points = money(rules.tip_points.get(tip["category"], rules.tip_points.get("other", 0)))
    reason = f"提交{label}（待审核积分）"
    if tip.get("has_attachment") and rules.tip_attachment_bonus:
        points += money(rules.tip_attachment_bonus)
        reason += "，含附件加分"
    if points <= 0:
        return []
    return [Line("tip.report", pending_account(account), "points", points, reason, volunteer_id)]


def score_tip_reviewed(rules: RuleSet, review: dict, provisional: Decimal | None, *, held_on: str | None = None) -> list[Line]:
    """A verified tip: its pending points become spendable, plus a bonus by quality once per case (once per tip without one).

    The case's bonus goes with the review of the case's first tip when intel names it (`first_tip_id`), else
    with the first review of the case consumed.

    A rejected tip: its pending points go back to the issuing account (or become spendable if the rule keeps them).
    `provisional` is what the tip still holds pending (None once released or revoked); `held_on` the account it
    sits on, when known (default: the reporter's pending account; the spendable account itself for entries posted
    before pending accounts existed, which then have nothing to release).
    """
    target = reporter_account(review["reporter"])
    if target is None:
        return []
    account, volunteer_id = target
    pending = held_on or pending_account(account)
    label = TIP_CATEGORY_LABELS.get(review["category"], review["category"])
    if review["verdict"] == "verified":
        quality = int(review.get("quality", 1))
        if quality not in rules.verified_bonus_by_quality:
            raise BadFact(f"quality {quality} has no verified bonus in rule version {rules.version}")
        lines = []
        if provisional and provisional > 0 and pending != account:
            lines.append(Line("tip.report.released", account, "points", provisional, f"{label}经核实，待审核积分转为可用积分",
                              volunteer_id, from_account=pending))
        bonus = money(rules.verified_bonus_by_quality[quality])
        case_id = review.get("case_id")
        if bonus > 0 and review.get("first_tip_id") in (None, review["tip_id"]):
            reason = f"{label}经核实（质量{quality}级）奖励" + ("，同一案件只奖一次" if case_id else "")
            lines.append(Line("tip.verified", account, "points", bonus, reason, volunteer_id, key=f"case:{case_id}" if case_id else None))
        return lines
    if not provisional or provisional <= 0:
        return []
    if rules.revoke_provisional_on_reject:
        return [Line("tip.report.revoked", pending, "points", -provisional, f"{label}未被采信，冲销待审核积分", volunteer_id)]
    if pending == account:
        return []
    return [Line("tip.report.released", account, "points", provisional, f"{label}已审核（按规则保留报告积分）", volunteer_id, from_account=pending)]


def score_case_outcome(rules: RuleSet, outcome: dict, is_valid: Any = lambda account: True) -> list[Line]:
    """The one per-case reward, if the outcome pays: to the first valid reporter (or split equally)."""
    if outcome["outcome"] not in rules.case_reward_outcomes:
        return []
    reward = money(rules.case_reward_points.get(outcome["category"], rules.case_reward_points.get("other", 0)))
    if reward <= 0:
        return []
    candidates = [outcome["first_reporter"], *outcome.get("reporters", [])]
    recipients: list[tuple[str, str | None]] = []
    for reporter in candidates:
        target = reporter_account(reporter)
        if target and target not in recipients and is_valid(target[0]):
            recipients.append(target)
    if not recipients:
        return []
    label = TIP_CATEGORY_LABELS.get(outcome["category"], outcome["category"])
    outcome_label = "抓获嫌疑人" if outcome["outcome"] == "arrest" else "案件告破"
    if rules.case_reward_split == "first_reporter":
        account, vid = recipients[0]
        return [Line("case.reward", account, "points", reward, f"一案一奖：{label}{outcome_label}，首报人奖励", vid)]
    share = (reward / len(recipients)).quantize(CENT, rounding="ROUND_DOWN")
    lines = []
    for i, (account, vid) in enumerate(recipients):
        amount = share + (reward - share * len(recipients) if i == 0 else 0)
        lines.append(Line(f"case.reward.{i}", account, "points", amount,
                          f"一案一奖：{label}{outcome_label}，{len(recipients)}人均分", vid))
    return lines


def score_service_hours(rules: RuleSet, record: dict) -> list[Line]:
    """Service hours into the alliance bank, and points per hour weighted by difficulty, risk and role."""
    hours = Decimal(str(record["hours"]))
    if hours < 0:
        raise BadFact(f"negative amount: hours={record['hours']}")
    difficulty, risk, role = int(record.get("difficulty", 1)), int(record.get("risk", 1)), record.get("role", "member")
    for name, key, table in (("difficulty", difficulty, rules.difficulty_weights), ("risk", risk, rules.risk_weights), ("role", role, rules.role_weights)):
        if key not in table:
            raise BadFact(f"{name} {key!r} has no weight in rule version {rules.version}")
    vid = record["volunteer_id"]
    account = f"volunteer:{vid}"
    if hours == 0:
        return []
    weight = Decimal(str(rules.difficulty_weights[difficulty])) * Decimal(str(rules.risk_weights[risk])) * Decimal(str(rules.role_weights[role]))
    points = money(hours * Decimal(str(rules.points_per_hour)) * weight)
    role_label = "组织者" if role == "organiser" else "队员"
    lines = [Line("hours.bank", account, "hours", money(hours), f"志愿服务时长 {money(hours)} 小时存入联盟银行", vid)]
    if points > 0:
        lines.append(Line("hours.points", account, "points", points,
                          f"服务 {money(hours)} 小时 × {rules.points_per_hour} 分（难度{difficulty}级、风险{risk}级、{role_label}）", vid))
    return lines


def score_training(rules: RuleSet, attendance: dict) -> list[Line]:
    """Points for attending a training session, by its level."""
    level = attendance["level"]
    if level not in rules.training_points:
        raise BadFact(f"training level {level!r} has no points in rule version {rules.version}")
    points = money(rules.training_points[level])
    if points <= 0:
        return []
    vid = attendance["volunteer_id"]
    return [Line("training.points", f"volunteer:{vid}", "points", points, f"参加{TRAINING_LEVEL_LABELS.get(level, level)}培训", vid)]


@dataclass(frozen=True)
class StarAssessment:
    """The star a volunteer's record earns, with the reason for each star above it not reached."""

    star: int
    reasons: list[str]


def assess_star(rules: RuleSet, *, hours: float, points: float, reliability: float | None, training_compliant: bool) -> StarAssessment:
    """The highest star whose every threshold is met (reliability counts as met until there is a record)."""
    reached, missing = 1, []
    for threshold in sorted(rules.stars, key=lambda t: t.star):
        gaps = []
        if hours < threshold.min_hours:
            gaps.append(f"服务时长 {hours:g}/{threshold.min_hours:g} 小时")
        if points < threshold.min_points:
            gaps.append(f"积分 {points:g}/{threshold.min_points:g}")
        if reliability is not None and reliability < threshold.min_reliability:
            gaps.append(f"履约率 {reliability:.0%}/{threshold.min_reliability:.0%}")
        if threshold.requires_training_compliance and not training_compliant:
            gaps.append("培训未达标")
        if gaps:
            missing.append(f"{threshold.star}星还差：" + "，".join(gaps))
            break
        reached = threshold.star
    return StarAssessment(reached, missing)


class RuleBook:
    """The rule sets in force, by version, answering which version scores a fact."""

    def __init__(self, rule_sets: Iterable[RuleSet]) -> None:
        self.by_version = {r.version: r for r in rule_sets}
        self.timeline = sorted(self.by_version.values(), key=lambda r: r.effective_from)

    def pick(self, when: datetime, requested: str | None = None) -> RuleSet:
        """The version named by the event, else the latest in force at `when`; BadFact if none."""
        if requested is not None:
            rules = self.by_version.get(requested)
            if rules is None:
                raise BadFact(f"unknown rule version {requested!r}")
            return rules
        chosen = None
        for rules in self.timeline:
            if rules.effective_from <= when:
                chosen = rules
            else:
                break
        if chosen is None:
            raise BadFact(f"no rule version in force at {when.isoformat()}")
        return chosen

    def current(self, now: datetime) -> RuleSet | None:
        """The version in force now, if any."""
        try:
            return self.pick(now)
        except BadFact:
            return None

    def with_version(self, rules: RuleSet) -> RuleBook:
        """This book with `rules` added (for a preview before adoption)."""
        return RuleBook([*self.by_version.values(), rules])


@dataclass
class Replay:
    """Re-scores a journal of facts in memory exactly as the consumers do, returning totals per account."""

    book: RuleBook
    totals: dict[tuple[str, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    effects: dict[str, Decimal] = field(default_factory=dict)
    case_root: dict[str, str] = field(default_factory=dict)
    paid_cases: set[str] = field(default_factory=set)
    tips_seen: set[str] = field(default_factory=set)
    tips_per_day: Counter = field(default_factory=Counter)

    def root(self, case_id: str) -> str:
        """The case a case was merged into (itself if never merged)."""
        while case_id in self.case_root and self.case_root[case_id] != case_id:
            case_id = self.case_root[case_id]
        return case_id

    def members(self, root: str) -> set[str]:
        """Every case id whose root is `root`."""
        return {c for c in [*self.case_root, root] if self.root(c) == root}

    def _post(self, source_key: str, lines: list[Line]) -> None:
        for line in lines:
            key = f"{line.key or source_key}|{line.rule_line}"
            if key in self.effects:
                continue
            self.effects[key] = line.amount
            self.totals[(line.account, line.unit)] += line.amount
            if line.from_account:
                self.totals[(line.from_account, line.unit)] -= line.amount

    def pending_of(self, tip_id: str) -> Decimal | None:
        """What a tip still holds pending: its reporting points unless already released or revoked."""
        if f"tip:{tip_id}|tip.report.released" in self.effects or f"tip:{tip_id}|tip.report.revoked" in self.effects:
            return None
        return self.effects.get(f"tip:{tip_id}|tip.report")

    def apply(self, event_type: str, data: dict, when: datetime) -> None:
        """Score one journalled fact (event types as in `handlers`)."""
        kind = event_type.split(".")[2]
        if kind == "cases_merged":
            target = self.root(data["case_id"])
            for merged in data["merged_case_ids"]:
                r = self.root(merged)
                if r != target:
                    self.case_root[r] = target
            self.case_root.setdefault(target, target)
            return
        rules = self.book.pick(when, data.get("rule_version"))
        if kind == "tip_submitted":
            if data["tip_id"] in self.tips_seen:
                return
            self.tips_seen.add(data["tip_id"])
            target = reporter_account(data["reporter"])
            nth = 1
            if target is not None:
                day = (target[0], tip_day(when))
                self.tips_per_day[day] += 1
                nth = self.tips_per_day[day]
            self._post(f"tip:{data['tip_id']}", score_tip_submitted(rules, data, nth))
        elif kind == "tip_reviewed":
            self._post(f"tip:{data['tip_id']}", score_tip_reviewed(rules, data, self.pending_of(data["tip_id"])))
        elif kind == "case_outcome_recorded":
            root = self.root(data["case_id"])
            if self.members(root) & self.paid_cases:
                return
            lines = score_case_outcome(rules, data)
            if lines:
                self.paid_cases.add(data["case_id"])
                self._post(f"case:{data['case_id']}", lines)
        elif kind == "service_hours_recorded":
            self._post(f"hours:{data['record_id']}", score_service_hours(rules, data))
        elif kind == "training_attended":
            self._post(f"training:{data['attendance_id']}", score_training(rules, data))

    def balances(self) -> dict[tuple[str, str], Decimal]:
        """Per (account, unit) totals, leaving out accounts that net to zero."""
        return {k: v for k, v in self.totals.items() if v != 0}
