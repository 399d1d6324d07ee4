"""Consumer use cases: score each fact by the rule in force and post its credits, once.

Each function runs inside the inbox transaction of the batch it is given (it never commits). The
fact is journalled in `scored_facts` (what a re-score replays) and its credits posted with effect
keys, so a duplicate fact with a new event id still credits nothing twice.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time

import orjson
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from shouwang_shared.contracts.dispatch import AssignmentAttendance, ServiceHoursRecorded
from shouwang_shared.contracts.intel import CaseOutcomeRecorded, CasesMerged, TipReviewed, TipSubmitted
from shouwang_shared.contracts.registry import TrainingAttended, VolunteerState
from shouwang_shared.db import raw_connection
from shouwang_shared.envelope import Envelope
from shouwang_shared.inbox import PoisonMessage

from rewards.ledger import Posting, post_entries, postings_for
from rewards.rules import rules_for
from rewards.scoring import (
    BadFact, Line, RuleSet, score_case_outcome, score_service_hours, score_tip_reviewed, score_tip_submitted,
    score_training,
)

CASE_LOCK = 7_246_601


def fact_data(event: Envelope, payload: BaseModel) -> dict:
    """The fact as journalled and scored: the validated payload, plus a rule version the event names."""
    data = payload.model_dump(mode="json")
    if "rule_version" in event.data:
        data["rule_version"] = str(event.data["rule_version"])
    return data


async def journal(session: AsyncSession, facts: list[tuple[Envelope, dict, datetime]]) -> None:
    """Append facts to the replay journal in one statement."""
    if not facts:
        return
    conn = await raw_connection(session)
    records = [(ev.id, ev.type, when, orjson.dumps(data).decode()) for ev, data, when in facts]
    if len(records) < 8:
        await conn.executemany(
            "INSERT INTO scored_facts (event_id, event_type, occurred_at, data) VALUES ($1, $2, $3, $4::jsonb)", records
        )
    else:
        await conn.copy_records_to_table("scored_facts", records=records, columns=["event_id", "event_type", "occurred_at", "data"])


def _scored(score, rules: RuleSet, *args) -> list[Line]:
    try:
        return score(rules, *args)
    except BadFact as exc:
        raise PoisonMessage(str(exc)) from exc


async def _credit_simple(session: AsyncSession, events: list[Envelope], model, when_of, key_of, score) -> list[Posting]:
    facts, postings = [], []
    for event in events:
        payload = model.model_validate(event.data)
        data = fact_data(event, payload)
        when = when_of(payload)
        rules = await rules_for(session, data, when)
        lines = _scored(score, rules, data)
        facts.append((event, data, when))
        postings += postings_for(lines, source_key=key_of(payload), rule_version=rules.version, source_event_id=event.id, cause=event)
    await journal(session, facts)
    return await post_entries(session, postings)


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


async def review_tip(session: AsyncSession, event: Envelope) -> None:
    """A verified tip earns its quality bonus; a rejected one has its provisional points reversed."""
    review = TipReviewed.model_validate(event.data)
    data = fact_data(event, review)
    rules = await rules_for(session, data, event.time)
    conn = await raw_connection(session)
    provisional = await conn.fetchrow(
        "SELECT entry_id::text, amount FROM ledger_entries WHERE effect_key = $1", f"tip:{review.tip_id}|tip.report"
    )
    lines = _scored(score_tip_reviewed, rules, data, provisional["amount"] if provisional else None)
    await journal(session, [(event, data, event.time)])
    corrects = {"tip.report.revoked": provisional["entry_id"]} if provisional else {}
    await post_entries(session, postings_for(
        lines, source_key=f"tip:{review.tip_id}", rule_version=rules.version, source_event_id=event.id, cause=event, corrects=corrects,
    ))


async def _case_root(conn, case_id: str) -> str:
    """The case `case_id` now belongs to (recording the case when first seen)."""
    await conn.execute("INSERT INTO case_links (case_id, root_id) VALUES ($1, $1) ON CONFLICT DO NOTHING", case_id)
    return await conn.fetchval("SELECT root_id FROM case_links WHERE case_id = $1", case_id)


async def pay_case_outcome(session: AsyncSession, event: Envelope) -> None:
    """One case, one reward: pay on a paying outcome unless this case, or any merged with it, was paid."""
    outcome = CaseOutcomeRecorded.model_validate(event.data)
    data = fact_data(event, outcome)
    rules = await rules_for(session, data, outcome.recorded_at)
    await journal(session, [(event, data, outcome.recorded_at)])
    conn = await raw_connection(session)
    await conn.execute("SELECT pg_advisory_xact_lock($1)", CASE_LOCK)
    root = await _case_root(conn, outcome.case_id)
    paid = await conn.fetchval(
        "SELECT r.case_id FROM case_rewards r JOIN case_links l ON l.case_id = r.case_id WHERE l.root_id = $1 LIMIT 1", root
    )
    if paid is not None:
        return
    lines = _scored(score_case_outcome, rules, data)
    if not lines:
        return
    await conn.execute(
        "INSERT INTO case_rewards (case_id, outcome, rule_version, source_event_id) VALUES ($1, $2, $3, $4)",
        outcome.case_id, outcome.outcome, rules.version, event.id,
    )
    await post_entries(session, postings_for(
        lines, source_key=f"case:{outcome.case_id}", rule_version=rules.version, source_event_id=event.id, cause=event,
    ))


async def merge_cases(session: AsyncSession, event: Envelope) -> None:
    """Fold merged cases into the surviving case, so a reward paid to any of them is never paid again."""
    merged = CasesMerged.model_validate(event.data)
    data = fact_data(event, merged)
    await journal(session, [(event, data, event.time)])
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
