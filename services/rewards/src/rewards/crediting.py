"""Consumer use cases: score each fact by the rule in force and post its credits, once.

Each function runs inside the inbox transaction of the batch it is given (it never commits). The
fact is journalled in `scored_facts` (what a re-score replays) and its credits posted with effect
keys, so a duplicate fact with a new event id still credits nothing twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import orjson
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from shouwang_shared.contracts.dispatch import AssignmentAttendance, ServiceHoursRecorded
from shouwang_shared.contracts.intel import CaseOutcomeRecorded, CasesMerged, TipReviewed, TipSubmitted
from shouwang_shared.contracts.registry import TrainingAttended, VolunteerState
from shouwang_shared.db import raw_connection
from shouwang_shared.envelope import Envelope, EventMeta
from shouwang_shared.inbox import PoisonMessage

from rewards.ledger import post_entries, postings_for
from rewards.rules import rule_book, rules_for
from rewards.scoring import (
    PENDING,
    BadFact,
    Line,
    RuleSet,
    reporter_account,
    score_case_outcome,
    score_service_hours,
    score_tip_reviewed,
    score_tip_submitted,
    score_training,
    tip_day,
)

CASE_LOCK = 7_246_601


def fact_row(event: Envelope | EventMeta, data: dict, when: datetime) -> tuple[str, str, datetime, str]:
    """A row of the replay journal (`scored_facts`) for a fact."""
    return (event.id, event.type, when, orjson.dumps(data).decode())


def _scored(score, rules: RuleSet, *args, **kwargs) -> list[Line]:
    try:
        return score(rules, *args, **kwargs)
    except BadFact as exc:
        raise PoisonMessage(str(exc)) from exc


@dataclass(frozen=True)
class FactKind:
    """How a kind of fact is parsed, dated, keyed and scored."""

    model: type[BaseModel]
    when: Callable[[Any], datetime]
    source_key: Callable[[Any], str]
    score: Callable[..., list[Line]]


FACT_KINDS = {
    ServiceHoursRecorded.TYPE: FactKind(
        ServiceHoursRecorded, lambda p: p.ended_at, lambda p: f"hours:{p.record_id}", score_service_hours,
    ),
    TrainingAttended.TYPE: FactKind(
        TrainingAttended, lambda p: datetime.combine(p.attended_on, time(12), tzinfo=UTC),
        lambda p: f"training:{p.attendance_id}", score_training,
    ),
}
CREDITED_FACTS = (*FACT_KINDS, TipSubmitted.TYPE, TipReviewed.TYPE)
ORG_PATH_FACTS = {ServiceHoursRecorded.TYPE, TrainingAttended.TYPE}


@dataclass(frozen=True)
class PendingTip:
    """A tip's reporting points not yet released or revoked: its entry, amount and the account they sit on.

    That is `pending:<reporter account>`, or the spendable account itself for entries older than pending accounts.
    """

    entry_id: str
    amount: Decimal
    held_on: str


async def credit_facts(session: AsyncSession, events: list[Envelope]) -> None:
    """Score a run of facts (tips submitted and reviewed, service hours, training) in order and post all their credits at once."""
    book = await rule_book(session)
    submitted = {e.id: TipSubmitted.model_validate(e.data) for e in events if e.type == TipSubmitted.TYPE}
    tip_rules = {e.id: await rules_for(session, e.data, submitted[e.id].submitted_at, book) for e in events if e.id in submitted}
    new_tips = await _count_new_tips(session, list(submitted.values()))  # after every tip proved scorable: a dead letter is never counted
    pending = await _pending_tip_points(session, events)
    facts, postings, counted = [], [], []
    for event in events:
        data = event.data
        if event.type == TipReviewed.TYPE:
            review = TipReviewed.model_validate(data)
            rules = await rules_for(session, data, event.time, book)
            held = pending.pop(review.tip_id, None)  # a review settles the tip's pending points: later reviews move none
            lines = _scored(score_tip_reviewed, rules, data, held and held.amount, held_on=held and held.held_on)
            facts.append(fact_row(event, data, event.time))
            postings += postings_for(
                lines, source_key=f"tip:{review.tip_id}", rule_version=rules.version, source_event_id=event.id, cause=event,
                corrects={"tip.report.revoked": held.entry_id} if held else None,
            )
            continue
        if event.type == TipSubmitted.TYPE:
            tip = submitted[event.id]
            rules = tip_rules[event.id]
            count = new_tips.pop(tip.tip_id, None)  # None: counted before (a re-sent tip scores nothing again)
            lines = [] if count is None else _scored(score_tip_submitted, rules, data, count.nth)
            facts.append(fact_row(event, data, tip.submitted_at))
            new = postings_for(lines, source_key=f"tip:{tip.tip_id}", rule_version=rules.version, source_event_id=event.id, cause=event)
            for p in new:  # a review later in this run releases or reverses what this run posts
                pending[tip.tip_id] = PendingTip(p.entry_id, p.amount, p.credit_account)
            if count is not None:
                counted.append((tip.tip_id, count.reporter, count.day, count.nth, bool(lines)))
            postings += new
            continue
        kind = FACT_KINDS[event.type]
        payload = kind.model.model_validate(data)  # refuses a bad payload; the fact is scored as given
        when = kind.when(payload)
        rules = await rules_for(session, data, when, book)
        lines = _scored(kind.score, rules, data)
        facts.append(fact_row(event, data, when))
        postings += postings_for(lines, source_key=kind.source_key(payload), rule_version=rules.version, source_event_id=event.id, cause=event)
    await _record_counted_tips(session, counted)  # before the posting: from there to commit the fetch holds volunteers' rows
    posted = await post_entries(session, postings, facts)
    completed = Counter(p.volunteer_id for p in posted if p.rule_line == "hours.bank")
    paths = {e.data["volunteer_id"]: e.data["org_path"] for e in events if e.type in ORG_PATH_FACTS and e.data.get("org_path")}
    await _note_volunteers(session, completed, paths)


@dataclass(frozen=True)
class TipCount:
    """A tip is its reporter's `nth` tip on `day` (China time)."""

    reporter: str
    day: date
    nth: int


async def _count_new_tips(session: AsyncSession, tips: list[TipSubmitted]) -> dict[str, TipCount]:
    """For each tip not scored before: it is its reporter's n-th tip of that day (in consumption order).

    The count commits in a short transaction of its own (`_count_apart`), so the reporter's `tip_days` row is not held
    until this fetch commits; tips it counted before (for a fetch that then failed) keep their place.
    """
    first: dict[str, tuple[str, date]] = {}
    for tip in tips:
        target = reporter_account(tip.reporter.model_dump())
        if target is not None and tip.tip_id not in first:
            first[tip.tip_id] = (target[0], tip_day(tip.submitted_at))
    if not first:
        return {}
    nth, scored = await _count_apart(session, first)
    return {tip_id: TipCount(reporter, day, nth[tip_id]) for tip_id, (reporter, day) in first.items() if tip_id not in scored}


async def _count_apart(session: AsyncSession, tips: dict[str, tuple[str, date]]) -> tuple[dict[str, int], set[str]]:
    """Each tip's place among its reporter's tips of its day, counting tips never counted, committed at once; and which of
    the tips counted before were scored too (a tip counted now cannot have been).

    One call of `count_tips` (migration 0008) on a connection outside any transaction: a single statement is its own
    transaction, so the count commits apart from the fetch and holds a reporter's `tip_days` row only for the call.
    """
    async with session.bind.connect() as apart:
        conn = (await apart.get_raw_connection()).driver_connection  # no SQLAlchemy statement: asyncpg stays in autocommit
        rows = await conn.fetch(
            "SELECT tip_id, nth, scored FROM count_tips($1::text[], $2::text[], $3::date[])",
            list(tips), [r for r, _ in tips.values()], [d for _, d in tips.values()],
        )
    return {r["tip_id"]: r["nth"] for r in rows}, {r["tip_id"] for r in rows if r["scored"]}


async def _record_counted_tips(session: AsyncSession, counted: list[tuple]) -> None:
    """Remember each counted tip, and whether it earned pending points or was beyond the daily cap."""
    if not counted:
        return
    conn = await raw_connection(session)
    await conn.execute(
        "INSERT INTO tip_submissions (tip_id, reporter, day, nth_today, scored) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::int[], $5::bool[]) ON CONFLICT DO NOTHING",
        *(list(column) for column in zip(*counted, strict=True)),
    )


async def _note_volunteers(session: AsyncSession, completed: Counter, paths: dict[str, str]) -> None:
    """Count completed shifts and fill in org paths not yet known from registry."""
    ids = sorted(set(completed) | set(paths))
    if not ids:
        return
    conn = await raw_connection(session)
    await conn.execute(
        """
        INSERT INTO volunteer_standing (volunteer_id, org_path, shifts_completed)
        SELECT * FROM unnest($1::text[], $2::text[], $3::int[])
        ON CONFLICT (volunteer_id) DO UPDATE
        SET shifts_completed = volunteer_standing.shifts_completed + excluded.shifts_completed,
            org_path = coalesce(volunteer_standing.org_path, excluded.org_path),
            needs_review = volunteer_standing.needs_review OR excluded.shifts_completed > 0
        """,
        ids, [paths.get(i) for i in ids], [completed.get(i, 0) for i in ids],
    )


async def _pending_tip_points(session: AsyncSession, events: list[Envelope]) -> dict[str, PendingTip]:
    """Reporting points still pending for the tips reviewed in `events` (never more than the account holding them still has)."""
    tip_ids = {e.data.get("tip_id") for e in events if e.type == TipReviewed.TYPE}
    if not tip_ids:
        return {}
    conn = await raw_connection(session)
    rows = await conn.fetch(
        "SELECT effect_key, entry_id::text, amount, credit_account FROM ledger_entries WHERE effect_key = ANY($1::text[])",
        [f"tip:{t}|{line}" for t in tip_ids for line in ("tip.report", "tip.report.released", "tip.report.revoked")],
    )
    settled = {r["effect_key"].rsplit("|", 1)[0] for r in rows if not r["effect_key"].endswith("|tip.report")}
    pending = {}
    for r in rows:
        source = r["effect_key"].rsplit("|", 1)[0]
        if r["effect_key"].endswith("|tip.report") and source not in settled:
            pending[source.removeprefix("tip:")] = PendingTip(r["entry_id"], r["amount"], r["credit_account"])
    return await _clamped_to_what_is_held(conn, pending)


async def _clamped_to_what_is_held(conn, pending: dict[str, PendingTip]) -> dict[str, PendingTip]:
    """Points credited straight to a spendable account (before pending accounts) may have been spent: revoke at most what is left."""
    spendable = {tip_id: p for tip_id, p in pending.items() if not p.held_on.startswith(PENDING)}
    accounts = sorted({p.held_on for p in spendable.values()})
    if not accounts:
        return pending
    rows = await conn.fetch(
        "SELECT account, balance FROM balances WHERE account = ANY($1::text[]) AND unit = 'points' ORDER BY account FOR UPDATE", accounts
    )
    left = {r["account"]: r["balance"] for r in rows}
    for tip_id, held in spendable.items():
        amount = max(min(held.amount, left.get(held.held_on, Decimal(0))), Decimal(0))
        left[held.held_on] = left.get(held.held_on, Decimal(0)) - amount
        pending[tip_id] = PendingTip(held.entry_id, amount, held.held_on)
    return pending


async def _case_root(conn, case_id: str) -> str:
    """The case `case_id` now belongs to (recording the case when first seen)."""
    await conn.execute("INSERT INTO case_links (case_id, root_id) VALUES ($1, $1) ON CONFLICT DO NOTHING", case_id)
    return await conn.fetchval("SELECT root_id FROM case_links WHERE case_id = $1", case_id)


async def pay_case_outcome(session: AsyncSession, *, outcome: CaseOutcomeRecorded, cause: EventMeta) -> None:
    """One case, one reward: pay on a paying outcome unless this case, or any merged with it, was paid."""
    data = outcome.model_dump(mode="json")
    rules = await rules_for(session, data, outcome.recorded_at)
    facts = [fact_row(cause, data, outcome.recorded_at)]
    conn = await raw_connection(session)
    await conn.execute("SELECT pg_advisory_xact_lock($1)", CASE_LOCK)
    root = await _case_root(conn, outcome.case_id)
    paid = await conn.fetchval(
        "SELECT r.case_id FROM case_rewards r JOIN case_links l ON l.case_id = r.case_id WHERE l.root_id = $1 LIMIT 1", root
    )
    lines = [] if paid is not None else _scored(score_case_outcome, rules, data)
    if not lines:
        await post_entries(session, [], facts)
        return
    await conn.execute(
        "INSERT INTO case_rewards (case_id, outcome, rule_version, source_event_id) VALUES ($1, $2, $3, $4)",
        outcome.case_id, outcome.outcome, rules.version, cause.id,
    )
    await post_entries(session, postings_for(
        lines, source_key=f"case:{outcome.case_id}", rule_version=rules.version, source_event_id=cause.id, cause=cause,
    ), facts)


async def merge_cases(session: AsyncSession, *, merged: CasesMerged, cause: EventMeta) -> None:
    """Fold merged cases into the surviving case, so a reward paid to any of them is never paid again."""
    await post_entries(session, [], [fact_row(cause, merged.model_dump(mode="json"), cause.time)])
    conn = await raw_connection(session)
    await conn.execute("SELECT pg_advisory_xact_lock($1)", CASE_LOCK)
    target = await _case_root(conn, merged.case_id)
    for case_id in merged.merged_case_ids:
        root = await _case_root(conn, case_id)
        if root != target:
            await conn.execute("UPDATE case_links SET root_id = $1 WHERE root_id = $2", target, root)


async def record_no_shows(session: AsyncSession, events: list[Envelope]) -> None:
    """Count each no-show once per assignment (it lowers reliability, hence the star); a late offline check-in takes it back."""
    rows, arrived = [], []
    for event in events:
        attendance = AssignmentAttendance.model_validate(event.data)
        if attendance.action == "no_show":
            rows.append((attendance.assignment_id, attendance.volunteer_id, attendance.at))
        elif attendance.action == "checked_in":
            arrived.append(attendance.assignment_id)
    conn = await raw_connection(session)
    if rows:
        await conn.execute(
            """
            WITH fresh AS (
                INSERT INTO no_shows (assignment_id, volunteer_id, at) SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
                ON CONFLICT DO NOTHING RETURNING volunteer_id
            ), per AS (SELECT volunteer_id, count(*)::int AS n FROM fresh GROUP BY volunteer_id)
            INSERT INTO volunteer_standing (volunteer_id, no_shows) SELECT volunteer_id, n FROM per
            ON CONFLICT (volunteer_id) DO UPDATE SET no_shows = volunteer_standing.no_shows + excluded.no_shows, needs_review = TRUE
            """,
            [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
        )
    if arrived:
        await conn.execute(
            """
            WITH gone AS (DELETE FROM no_shows WHERE assignment_id = ANY($1::text[]) RETURNING volunteer_id),
                 per AS (SELECT volunteer_id, count(*)::int AS n FROM gone GROUP BY volunteer_id)
            UPDATE volunteer_standing s SET no_shows = s.no_shows - per.n, needs_review = TRUE FROM per WHERE s.volunteer_id = per.volunteer_id
            """,
            arrived,
        )


async def record_volunteer_states(session: AsyncSession, events: list[Envelope]) -> None:
    """Keep the local read model of volunteers (org path, status, training compliance) at the newest version."""
    latest: dict[str, VolunteerState] = {}
    for event in events:
        state = VolunteerState.model_validate(event.data)
        if state.volunteer_id not in latest or latest[state.volunteer_id].version < state.version:
            latest[state.volunteer_id] = state
    if not latest:
        return
    states = list(latest.values())
    conn = await raw_connection(session)
    await conn.execute(
        """
        INSERT INTO volunteer_standing (volunteer_id, state_version, display_name, status, org_path, training_compliant, needs_review)
        SELECT v, ver, n, s, p, t, TRUE FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bool[]) AS u(v, ver, n, s, p, t)
        ON CONFLICT (volunteer_id) DO UPDATE SET
            state_version = excluded.state_version, display_name = excluded.display_name, status = excluded.status,
            org_path = excluded.org_path, training_compliant = excluded.training_compliant, needs_review = TRUE, updated_at = now()
        WHERE volunteer_standing.state_version < excluded.state_version
        """,
        [s.volunteer_id for s in states], [s.version for s in states], [s.display_name for s in states],
        [s.status for s in states], [s.org_path for s in states], [s.training_compliant for s in states],
    )
