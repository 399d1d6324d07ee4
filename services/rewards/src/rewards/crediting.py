"""Consumer use cases: score each fact by the rule in force and post its credits, once.

Each function runs inside the inbox transaction of the batch it is given (it never commits). The
fact is journalled in `scored_facts` (what a re-score replays) and its credits posted with effect
keys, so a duplicate fact with a new event id still credits nothing twice.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from shouwang_shared.contracts.dispatch import AssignmentAttendance, ServiceHoursRecorded
from shouwang_shared.contracts.intel import CaseOutcomeRecorded, CasesMerged, TipReviewed, TipSubmitted
from shouwang_shared.contracts.registry import TrainingAttended, VolunteerState
from shouwang_shared.db import raw_connection
from shouwang_shared.envelope import Envelope
from shouwang_shared.inbox import PoisonMessage

from rewards.ledger import Posting, post_entries, postings_for
from rewards.rules import rule_book, rules_for
from rewards.scoring import (
    BadFact, Line, RuleSet, score_case_outcome, score_service_hours, score_tip_reviewed, score_tip_submitted,
    score_training,
)

CASE_LOCK = 7_246_601


def fact_row(event: Envelope, data: dict, when: datetime) -> tuple[str, str, datetime, str]:
    """A row of the replay journal (`scored_facts`) for a fact."""
    return (event.id, event.type, when, orjson.dumps(data).decode())


def _scored(score, rules: RuleSet, *args) -> list[Line]:
    try:
        return score(rules, *args)
    except BadFact as exc:
        raise PoisonMessage(str(exc)) from exc


async def _credit_simple(session: AsyncSession, events: list[Envelope], model, when_of, key_of, score) -> list[Posting]:
    facts, postings = [], []
    book = await rule_book(session)
    for event in events:
        payload = model.model_validate(event.data)  # refuses a bad payload; the fact is scored as given
        data = event.data
        when = when_of(payload)
        rules = await rules_for(session, data, when, book)
        lines = _scored(score, rules, data)
        facts.append(fact_row(event, data, when))
        postings += postings_for(lines, source_key=key_of(payload), rule_version=rules.version, source_event_id=event.id, cause=event)
    return await post_entries(session, postings, facts)


async def credit_tips_submitted(session: AsyncSession, events: list[Envelope]) -> None:
    """Provisional reporting points for each accepted tip, at once."""
    await _credit_simple(
        session, events, TipSubmitted, lambda p: p.submitted_at, lambda p: f"tip:{p.tip_id}", score_tip_submitted,
    )


async def credit_service_hours(session: AsyncSession, events: list[Envelope]) -> None:
    """Hours into the alliance bank plus weighted points; counts the completed shift and notes the org path."""
    posted = await _credit_simple(
        session, events, ServiceHoursRecorded, lambda p: p.ended_at, lambda p: f"hours:{p.record_id}", score_service_hours,
    )
    completed = Counter(p.volunteer_id for p in posted if p.rule_line == "hours.bank")
    paths = {e.data["volunteer_id"]: e.data.get("org_path") for e in events if e.data.get("org_path")}
    await _note_volunteers(session, completed, paths)


async def credit_training(session: AsyncSession, events: list[Envelope]) -> None:
    """Points for each training attended."""
    await _credit_simple(
        session, events, TrainingAttended,
        lambda p: datetime.combine(p.attended_on, time(12), tzinfo=UTC),
        lambda p: f"training:{p.attendance_id}", score_training,
    )
    paths = {e.data["volunteer_id"]: e.data.get("org_path") for e in events if e.data.get("org_path")}
    await _note_volunteers(session, Counter(), paths)


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


async def review_tips(session: AsyncSession, events: list[Envelope]) -> None:
    """A verified tip earns its quality bonus; a rejected one has its provisional points reversed by a compensating entry."""
    reviews = [(event, TipReviewed.model_validate(event.data)) for event in events]
    conn = await raw_connection(session)
    provisional = {
        r["effect_key"]: r for r in await conn.fetch(
            "SELECT effect_key, entry_id::text, amount FROM ledger_entries WHERE effect_key = ANY($1::text[])",
            [f"tip:{review.tip_id}|tip.report" for _, review in reviews],
        )
    }
    book = await rule_book(session)
    facts, postings = [], []
    for event, review in reviews:
        rules = await rules_for(session, event.data, event.time, book)
        original = provisional.get(f"tip:{review.tip_id}|tip.report")
        lines = _scored(score_tip_reviewed, rules, event.data, original["amount"] if original else None)
        facts.append(fact_row(event, event.data, event.time))
        postings += postings_for(
            lines, source_key=f"tip:{review.tip_id}", rule_version=rules.version, source_event_id=event.id, cause=event,
            corrects={"tip.report.revoked": original["entry_id"]} if original else None,
        )
    await post_entries(session, postings, facts)


async def _case_root(conn, case_id: str) -> str:
    """The case `case_id` now belongs to (recording the case when first seen)."""
    await conn.execute("INSERT INTO case_links (case_id, root_id) VALUES ($1, $1) ON CONFLICT DO NOTHING", case_id)
    return await conn.fetchval("SELECT root_id FROM case_links WHERE case_id = $1", case_id)


async def pay_case_outcome(session: AsyncSession, event: Envelope) -> None:
    """One case, one reward: pay on a paying outcome unless this case, or any merged with it, was paid."""
    outcome = CaseOutcomeRecorded.model_validate(event.data)
    rules = await rules_for(session, event.data, outcome.recorded_at)
    facts = [fact_row(event, event.data, outcome.recorded_at)]
    conn = await raw_connection(session)
    await conn.execute("SELECT pg_advisory_xact_lock($1)", CASE_LOCK)
    root = await _case_root(conn, outcome.case_id)
    paid = await conn.fetchval(
        "SELECT r.case_id FROM case_rewards r JOIN case_links l ON l.case_id = r.case_id WHERE l.root_id = $1 LIMIT 1", root
    )
    lines = [] if paid is not None else _scored(score_case_outcome, rules, event.data)
    if not lines:
        await post_entries(session, [], facts)
        return
    await conn.execute(
        "INSERT INTO case_rewards (case_id, outcome, rule_version, source_event_id) VALUES ($1, $2, $3, $4)",
        outcome.case_id, outcome.outcome, rules.version, event.id,
    )
    await post_entries(session, postings_for(
        lines, source_key=f"case:{outcome.case_id}", rule_version=rules.version, source_event_id=event.id, cause=event,
    ), facts)


async def merge_cases(session: AsyncSession, event: Envelope) -> None:
    """Fold merged cases into the surviving case, so a reward paid to any of them is never paid again."""
    merged = CasesMerged.model_validate(event.data)
    await post_entries(session, [], [fact_row(event, event.data, event.time)])
    conn = await raw_connection(session)
    await conn.execute("SELECT pg_advisory_xact_lock($1)", CASE_LOCK)
    target = await _case_root(conn, merged.case_id)
    for case_id in merged.merged_case_ids:
        root = await _case_root(conn, case_id)
        if root != target:
            await conn.execute("UPDATE case_links SET root_id = $1 WHERE root_id = $2", target, root)


async def record_no_shows(session: AsyncSession, events: list[Envelope]) -> None:
    """Count each no-show once per assignment (it lowers reliability, hence the star)."""
    rows = []
    for event in events:
        attendance = AssignmentAttendance.model_validate(event.data)
        if attendance.action == "no_show":
            rows.append((attendance.assignment_id, attendance.volunteer_id, attendance.at))
    if not rows:
        return
    conn = await raw_connection(session)
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
