"""Case work: the triage queue, edit locks, verify / reject / forward / close, merge and split, police answers and their confirmation."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal
from shouwang_shared.contracts.intel import (
    CaseForwarded,
    CaseOutcomeRecorded,
    CasesMerged,
    EscalationRaised,
    LiaisonPlace,
    Reporter,
    TipReviewed,
)
from shouwang_shared.contracts.police import DispositionRecorded, DispositionRecordedV2, OutcomeCounts
from shouwang_shared.envelope import EventMeta
from shouwang_shared.errors import Conflict, NotFound, Unprocessable, id_or_404
from shouwang_shared.inbox import PoisonMessage
from shouwang_shared.outbox import enqueue, enqueue_many, outbox_row

from intel.access import found_in_scope, scope_clause
from intel.cases import clustering, police_summary, workflow
from intel.cases.clustering import TipFeatures
from intel.cases.escalation import escalation_need
from intel.cases.history import note_in_history
from intel.cases.placement import CANDIDATE_STATUSES, NEIGHBOURHOOD_DEG, reassess_priority
from intel.cases.urgent import open_urgent_alert
from intel.context import IntelContext
from intel.schemas import AnalystTipPublic, CaseDetailPublic, CaseSummaryPublic, LiaisonCasePublic, PairDecisionPublic, PoliceDraftPublic, SimilarCasePublic

log = logging.getLogger(__name__)

CASE_COLUMNS = (
    "id, reference, category, status, priority, priority_score, priority_reasons, first_tip_id, tip_count, lat, lon,"
    " place_text, org_path, summary, rejection_reason, locked_by, locked_until, forwarded_at, sla_due_at, outcome,"
    " outcome_at, merged_into, created_at, first_submitted_at, last_submitted_at"
)
_CASE = text(f"SELECT {CASE_COLUMNS} FROM cases WHERE id = :id")
_CASE_FOR_UPDATE = text(f"SELECT {CASE_COLUMNS} FROM cases WHERE id = :id FOR UPDATE")
_TIPS_OF_CASE = text(
    "SELECT id, reporter_kind, volunteer_id, claim_ref, category, text, channel, lat, lon, place_text, seen_at,"
    " submitted_at, cluster_reasons FROM tips WHERE case_id = :id ORDER BY submitted_at, id"
)
_SET_TIP_STATUS = text("UPDATE tips SET status = :s WHERE case_id = :id")
_OPEN_ESCALATION = text(  # once per case
    "INSERT INTO escalations (id, case_id, kind, headcount, raised_by, raised_at) VALUES (:id, :case, :k, :h, :by, :now)"
    " ON CONFLICT (case_id) DO NOTHING RETURNING id"
)
_DISPOSITIONS = text(
    "SELECT id, disposition, note, officer_unit, recorded_at, received_at, confirmed_at, counts FROM dispositions WHERE case_id = :id"
    " ORDER BY recorded_at, received_at"
)
_KEEP_DISPOSITION = text(  # once per police event
    "INSERT INTO dispositions (id, event_id, case_id, disposition, note, officer_unit, police_source, recorded_at, received_at, counts)"
    " VALUES (:id, :eid, :case, :d, :note, :unit, :src, :at, :now, CAST(:counts AS jsonb)) ON CONFLICT (event_id) DO NOTHING RETURNING id"
)
_DISPOSITION_FOR_UPDATE = text(  # an answer to the case, or to a case merged into it
    "SELECT d.id, d.disposition, d.recorded_at, d.confirmed_by, d.counts FROM dispositions d JOIN cases c ON c.id = d.case_id"
    " WHERE d.id = :did AND (d.case_id = :case OR c.merged_into = :case) FOR UPDATE OF d"
)
_CONFIRM_DISPOSITION = text("UPDATE dispositions SET confirmed_by = :by, confirmed_at = :now WHERE id = :id")
_SET_OUTCOME = text(
    "UPDATE cases SET outcome = :o, outcome_at = :at, status = CASE WHEN :final THEN 'closed' ELSE status END,"
    " updated_at = :now WHERE id = :id"
)
_SET_MEMBERSHIP = text(
    "UPDATE cases SET first_tip_id = :first, first_submitted_at = :fa, last_submitted_at = :la, tip_count = :n,"
    " updated_at = :now WHERE id = :id"
)
_MOVE_TIPS = text("UPDATE tips SET case_id = :t WHERE case_id = ANY(:ids)")
_MARK_MERGED = text("UPDATE cases SET merged_into = :t, tip_count = 0, updated_at = :now WHERE id = ANY(:ids)")
_INSERT_SPLIT_CASE = text(
    "INSERT INTO cases (id, reference, category, status, first_tip_id, first_submitted_at, last_submitted_at, tip_count,"
    " lat, lon, place_text, org_path, summary, created_at, updated_at)"
    " VALUES (:id, :ref, :cat, :status, :tip, :fa, :fa, 0, :lat, :lon, :place, :org, :summary, :now, :now)"
)
_SPLIT_TIPS = text("UPDATE tips SET case_id = :new, cluster_reasons = CAST(:r AS jsonb) WHERE id = ANY(:ids)")
_ATTACHMENTS = text(
    "SELECT tip_id, content_type, size_bytes, sha256, content IS NOT NULL AS stored FROM tip_attachments WHERE tip_id = ANY(:ids)"
)
_HISTORY = text("SELECT action, actor, detail, at FROM case_history WHERE case_id = :id ORDER BY id")


def _case_uuid(case_id: str, field: str = "case_id") -> uuid.UUID:
    """The case id a caller names; 404 naming `field` when it is not a UUID."""
    return id_or_404(case_id, field=field, message="案件不存在")


def _summary(r) -> CaseSummaryPublic:
    return CaseSummaryPublic(
        case_id=str(r.id), reference=r.reference, category=r.category, status=r.status, priority=r.priority,
        priority_score=r.priority_score, tip_count=r.tip_count, org_path=r.org_path, summary=r.summary,
        place_text=r.place_text, lat=r.lat, lon=r.lon, first_tip_id=str(r.first_tip_id) if r.first_tip_id else None,
        created_at=r.created_at, locked_by=r.locked_by, locked_until=r.locked_until, outcome=r.outcome, sla_due_at=r.sla_due_at,
    )


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def triage_queue(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, limit: int = 100) -> list[CaseSummaryPublic]:
    """Open cases to triage in the principal's scope: most urgent first, then oldest first."""
    where, params = scope_clause(principal)
    async with sessions() as session:
        rows = (
            await session.execute(
                text(
                    f"SELECT {CASE_COLUMNS} FROM cases WHERE merged_into IS NULL AND status IN ('new', 'triaged') AND {where}"
                    " ORDER BY CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END,"
                    " created_at, id LIMIT :n"
                ),
                {**params, "n": limit},
            )
        ).all()
    return [_summary(r) for r in rows]


async def _cases_where(session: AsyncSession, clauses: list[str], params: dict, *, newest_by: str, limit: int) -> list:
    """Case rows meeting every one of `clauses`, newest by the `newest_by` column first, at most `limit`."""
    sql = f"SELECT {CASE_COLUMNS} FROM cases WHERE {' AND '.join(clauses)} ORDER BY {newest_by} DESC LIMIT :n"
    return (await session.execute(text(sql), {**params, "n": limit})).all()


async def list_cases(
    *, sessions: async_sessionmaker[AsyncSession], principal: Principal, status: str | None, category: str | None, limit: int = 100
) -> list[CaseSummaryPublic]:
    """Cases in the principal's scope, newest first, optionally by status and category."""
    where, params = scope_clause(principal)
    clauses = ["merged_into IS NULL", where]
    for column, wanted in (("status", status), ("category", category)):
        if wanted:
            clauses.append(f"{column} = :{column}")
            params[column] = wanted
    async with sessions() as session:
        rows = await _cases_where(session, clauses, params, newest_by="created_at", limit=limit)
    return [_summary(r) for r in rows]


async def _case_for_update(session: AsyncSession, principal: Principal, case_id: str, *, field: str = "case_id"):
    """The case row locked for this transaction; 404 when absent, merged away or outside the principal's scope."""
    row = (
        await session.execute(_CASE_FOR_UPDATE, {"id": _case_uuid(case_id, field)})
    ).first()
    return _live_case(principal, row, field=field)


def _live_case(principal: Principal, row, *, field: str = "case_id"):
    """The case row unless it is absent, merged into another or outside the principal's scope (404 naming `field`)."""
    return found_in_scope(principal, None if row is not None and row.merged_into is not None else row, field=field, message="案件不存在")


def _ensure_not_locked_by_other(row, principal: Principal, now: datetime) -> None:
    if row.locked_by and row.locked_by != principal.sub and row.locked_until and row.locked_until > now:
        raise Conflict(f"案件正由 {row.locked_by} 处理，锁定至 {row.locked_until.isoformat()}", field="lock", code="case_locked")


@dataclass
class CaseEdit:
    """A case locked for one analyst's change inside its transaction: the row as read, the time and the status it moves to."""

    session: AsyncSession
    principal: Principal
    row: Any
    now: datetime
    status: str
    summary: CaseSummaryPublic | None = None  # the case as it stands after the change, once the transaction commits

    async def update(self, sets: str, **values: object) -> None:
        """`UPDATE cases SET <sets>` for this case (`:id` and `:now` are bound)."""
        await self.session.execute(text(f"UPDATE cases SET {sets} WHERE id = :id"), {"now": self.now, **values, "id": self.row.id})

    async def history(self, action: str, detail: dict) -> None:
        """Record `action` by the analyst in the case's history."""
        await note_in_history(self.session, self.row.id, action, self.principal.sub, detail, self.now)


@asynccontextmanager
async def _editing_case(
    sessions: async_sessionmaker[AsyncSession], principal: Principal, case_id: str, *, action: str | None = None,
) -> AsyncIterator[CaseEdit]:
    """One transaction over a case: locked (404 outside scope or merged, 409 while another analyst holds it), moved by the
    workflow `action` when given (409 when the status does not allow it); the summary is read back before the commit."""
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        row = await _case_for_update(session, principal, case_id)
        _ensure_not_locked_by_other(row, principal, now)
        edit = CaseEdit(session, principal, row, now, _transition(row, action) if action else row.status)
        yield edit
        edit.summary = _summary(await _case_for_update(session, principal, case_id))


async def claim_case(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, case_id: str, minutes: int) -> CaseSummaryPublic:
    """Take the edit lock of a case for `minutes`; 409 while another analyst holds it."""
    async with _editing_case(sessions, principal, case_id) as edit:
        until = edit.now + timedelta(minutes=minutes)
        await edit.update("locked_by = :by, locked_until = :until", by=principal.sub, until=until)
        await edit.history("claimed", {"until": until.isoformat()})
    return edit.summary


async def release_case(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, case_id: str) -> CaseSummaryPublic:
    """Give the edit lock back."""
    async with _editing_case(sessions, principal, case_id) as edit:
        await edit.update("locked_by = NULL, locked_until = NULL")
        await edit.history("released", {})
    return edit.summary


async def _tips_of(session: AsyncSession, case_id) -> list:
    """The case's tips in the order they were submitted."""
    return (await session.execute(_TIPS_OF_CASE, {"id": case_id})).all()


def _reporter(tip) -> Reporter:
    if tip.volunteer_id:
        return Reporter(kind="volunteer", volunteer_id=tip.volunteer_id)
    return Reporter(kind="anonymous", claim_ref=tip.claim_ref)


def _transition(row, action: str) -> str:
    try:
        return workflow.next_status(row.status, action)
    except workflow.InvalidTransition as exc:
        raise Conflict(f"案件当前状态为 {row.status}，不能执行 {action}", field="status", code="invalid_transition") from exc


async def triage_case(
    *, sessions: async_sessionmaker[AsyncSession], principal: Principal, case_id: str, priority: str | None, note: str | None
) -> CaseSummaryPublic:
    """Mark a case triaged, keeping the computed priority unless the analyst overrides it."""
    async with _editing_case(sessions, principal, case_id, action="triage") as edit:
        row = edit.row
        await edit.update("status = :s, priority = coalesce(:p, priority), updated_at = :now", s=edit.status, p=priority)
        await edit.history("triaged", {"priority": priority or row.priority, "note": note})
        if priority == "urgent" and row.priority != "urgent":  # raised by hand: the staff on duty hear of it as of a computed one;
            # the alert follows the triage that set it, so the triage itself is not taken for someone claiming the alert
            await open_urgent_alert(edit.session, case_id=row.id, now=edit.now + timedelta(microseconds=1))
    return edit.summary


async def review_case(
    *, sessions: async_sessionmaker[AsyncSession], principal: Principal, case_id: str, verdict: str,
    reason: str | None = None, quality: int = 1, note: str | None = None,
) -> CaseSummaryPublic:
    """Verify or reject a case: `TipReviewed` for each of its tips; a verified case needing people escalates."""
    async with _editing_case(sessions, principal, case_id, action="verify" if verdict == "verified" else "reject") as edit:
        session, row, now = edit.session, edit.row, edit.now
        await edit.update("status = :s, rejection_reason = :r, updated_at = :now", s=edit.status, r=reason if verdict == "rejected" else None)
        await session.execute(_SET_TIP_STATUS, {"s": verdict, "id": row.id})
        tips = await _tips_of(session, row.id)
        events = []
        for tip in tips:
            payload = TipReviewed(
                tip_id=str(tip.id), case_id=str(row.id), verdict=verdict, reason=reason, quality=quality,
                category=tip.category, reporter=_reporter(tip), first_tip_id=str(row.first_tip_id) if row.first_tip_id else None,
            )
            events.append(outbox_row(payload, subject=str(tip.id)))
        await enqueue_many(session, events)
        await edit.history(verdict, {"reason": reason, "quality": quality, "note": note})
        if verdict == "verified":
            await _escalate_if_needed(session, row=row, tips=tips, actor=principal.sub, now=now)
    return edit.summary


async def _escalate_if_needed(session: AsyncSession, *, row, tips: list, actor: str, now: datetime) -> None:
    """Raise `EscalationRaised` (once per case) when the verified case needs people on the ground."""
    need = escalation_need(category=row.category, texts=[t.text for t in tips], tip_count=len(tips))
    if need is None:
        return
    lat = row.lat if row.lat is not None else next((t.lat for t in tips if t.lat is not None), None)
    lon = row.lon if row.lon is not None else next((t.lon for t in tips if t.lon is not None), None)
    if lat is None or lon is None:
        await note_in_history(session, row.id, "escalation_skipped", actor, {"kind": need.kind, "why": "no coordinates"}, now)
        return
    escalation_id = uuid.uuid4()
    inserted = (
        await session.execute(
            _OPEN_ESCALATION,
            {"id": escalation_id, "case": row.id, "k": need.kind, "h": need.headcount, "by": actor, "now": now},
        )
    ).first()
    if inserted is None:
        return
    payload = EscalationRaised(
        escalation_id=str(escalation_id), case_id=str(row.id), kind=need.kind, name=f"{need.name}（{row.reference}）",
        lat=lat, lon=lon, headcount=need.headcount, radius_km=need.radius_km, skills=list(need.skills), teams=list(need.teams),
        starts_at=now, ends_at=now + timedelta(hours=need.hours), org_path=row.org_path or None,
    )
    await enqueue(session, payload, subject=str(row.id))
    await note_in_history(session, row.id, "escalated", actor, {"kind": need.kind, "headcount": need.headcount, "escalation_id": str(escalation_id)}, now)


def _sla_hours(ctx: IntelContext, priority: str) -> int:
    s = ctx.settings
    return {"urgent": s.liaison_sla_hours_urgent, "high": s.liaison_sla_hours_high}.get(priority, s.liaison_sla_hours_normal)


def liaison_pseudonyms(ctx: IntelContext, case_id: str, tips: list) -> list[str]:
    """The case's informants as the police see them: one stable pseudonym each, in reporting order."""
    names: list[str] = []
    for tip in tips:
        name = ctx.keys.liaison_pseudonym(case_id, volunteer_id=tip.volunteer_id, claim_ref=tip.claim_ref)
        if name not in names:
            names.append(name)
    return names


def _police_draft(row, tips: list) -> police_summary.PoliceDraft:
    """The police summary the pure module drafts from the case's tips."""
    return police_summary.draft(row.category, [police_summary.TipText(t.text, t.place_text, t.seen_at) for t in tips])


def _liaison_place(row, draft: police_summary.PoliceDraft) -> LiaisonPlace:
    """Where the incident was, as the police get it: ~100 m (3 decimals), nothing when the place is the reporter's home."""
    if row.lat is None or row.lon is None or (row.place_text and draft.place_text is None):
        return LiaisonPlace(lat=None, lon=None, text=draft.place_text)
    return LiaisonPlace(lat=round(row.lat, 3), lon=round(row.lon, 3), text=draft.place_text)


async def police_draft(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, case_id: str) -> PoliceDraftPublic:
    """The police summary the system drafts for a case, with each removal and its reason, for the analyst to review."""
    async with sessions() as session:
        row = (await session.execute(_CASE, {"id": _case_uuid(case_id)})).first()
        _live_case(principal, row)
        tips = await _tips_of(session, row.id)
    draft = _police_draft(row, tips)
    return PoliceDraftPublic(
        case_id=str(row.id), category=row.category, summary=draft.summary, place=_liaison_place(row, draft).model_dump(),
        removals=[{"kind": r.kind, "text": r.text, "reason": r.reason} for r in draft.removals],
    )


def _checked_summary(row, tips: list, edited: str | None) -> str:
    """The draft, or the analyst's text once the informant check passes (422 naming each kind that would leak)."""
    draft = _police_draft(row, tips)
    if edited is None:
        return draft.summary
    leaks = police_summary.informant_leaks(edited, row.category, draft.reporter_values, draft.reporter_names, draft.suspect_values)
    if leaks:
        named = "、".join(f"{k}（{police_summary.KIND_NAMES.get(k, k)}）" for k in leaks)
        raise Unprocessable(f"摘要会暴露举报人：{named}", field="summary", code="informant_identifier")
    return edited.strip()


async def forward_case(
    *, sessions: async_sessionmaker[AsyncSession], ctx: IntelContext, principal: Principal, case_id: str,
    sla_hours: int | None, summary: str | None,
) -> CaseSummaryPublic:
    """Hand a verified case to the police: the reviewed police summary in `CaseForwarded` on the liaison feed, with an SLA."""
    async with _editing_case(sessions, principal, case_id, action="forward") as edit:
        session, row, now = edit.session, edit.row, edit.now
        tips = await _tips_of(session, row.id)
        due = now + timedelta(hours=sla_hours or _sla_hours(ctx, row.priority))
        clean_summary = _checked_summary(row, tips, summary)
        await edit.update("status = :s, forwarded_at = :now, sla_due_at = :due, summary = :sum, updated_at = :now",
                          s=edit.status, due=due, sum=clean_summary)
        await session.execute(_SET_TIP_STATUS, {"s": "forwarded", "id": row.id})
        seen = [t.seen_at for t in tips if t.seen_at]
        payload = CaseForwarded(
            case_id=str(row.id), reference=row.reference, category=row.category, priority=row.priority, summary=clean_summary,
            place=_liaison_place(row, _police_draft(row, tips)), first_seen_at=min(seen) if seen else None,
            tip_count=len(tips), informant_pseudonyms=liaison_pseudonyms(ctx, str(row.id), tips), forwarded_at=now, sla_due_at=due,
        )
        await enqueue(session, payload, subject=str(row.id))
        await edit.history("forwarded", {"sla_due_at": due.isoformat(), "edited_summary": summary is not None})
    return edit.summary


async def close_case(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, case_id: str) -> CaseSummaryPublic:
    """Close a case."""
    async with _editing_case(sessions, principal, case_id, action="close") as edit:
        await edit.update("status = :s, locked_by = NULL, locked_until = NULL, updated_at = :now", s=edit.status)
        await edit.history("closed", {})
    return edit.summary


async def _refresh_membership(session: AsyncSession, case_id, now: datetime) -> list:
    """Recompute a case's first tip, count, times and priority from the tips it now holds."""
    tips = await _tips_of(session, case_id)
    if not tips:
        return tips
    first = tips[0]
    await session.execute(
        _SET_MEMBERSHIP,
        {"first": first.id, "fa": first.submitted_at, "la": tips[-1].submitted_at, "n": len(tips), "now": now, "id": case_id},
    )
    members = [TipFeatures(str(t.id), t.category, t.text, t.seen_at or t.submitted_at, t.lat, t.lon, t.place_text) for t in tips]
    category = (await session.execute(text("SELECT category FROM cases WHERE id = :id"), {"id": case_id})).scalar_one()
    await reassess_priority(session, case_id=case_id, category=category, members=members, now=now)
    return tips


async def merge_cases(
    *, sessions: async_sessionmaker[AsyncSession], principal: Principal, target_case_id: str, case_ids: list[str]
) -> CaseSummaryPublic:
    """Merge cases into the target: their tips move over, the earliest tip stays first; `CasesMerged` is announced."""
    now = datetime.now(UTC)
    others = [c for c in dict.fromkeys(case_ids) if c != target_case_id]
    if not others:
        raise Unprocessable("至少需要一个不同于目标的案件", field="case_ids")
    await asyncio.to_thread(clustering.warm_up)  # the merged pairs are scored; the segmenter loads once, off the event loop
    async with sessions() as session, session.begin():
        rows = {}
        for cid in sorted([target_case_id, *others]):  # lock in a fixed order: no deadlock between two merges
            field = "target_case_id" if cid == target_case_id else "case_ids"
            rows[cid] = await _case_for_update(session, principal, cid, field=field)
            _ensure_not_locked_by_other(rows[cid], principal, now)
        target = rows[target_case_id]
        if target.status in ("rejected", "closed"):
            raise Conflict("不能合并到已驳回或已关闭的案件", field="target_case_id", code="invalid_transition")
        other_ids = [rows[c].id for c in others]
        profiles = await _case_profiles(session, [target.id, *other_ids])
        for oid in other_ids:  # every merged pair is a labelled "same incident" pair, scored as clustering saw it
            match = clustering.case_similarity_of_cases(profiles[str(target.id)], profiles[str(oid)])
            await _record_pair(session, target.id, oid, "accepted", match, target.category, principal.sub, now)
        await session.execute(_MOVE_TIPS, {"t": target.id, "ids": other_ids})
        await session.execute(_MARK_MERGED, {"t": target.id, "ids": other_ids, "now": now})
        tips = await _refresh_membership(session, target.id, now)
        payload = CasesMerged(
            case_id=str(target.id), merged_case_ids=[str(i) for i in other_ids], first_tip_id=str(tips[0].id), first_reporter=_reporter(tips[0]),
        )
        await enqueue(session, payload, subject=str(target.id))
        await note_in_history(session, target.id, "merged", principal.sub, {"merged_case_ids": [str(i) for i in other_ids]}, now)
        for oid in other_ids:
            await note_in_history(session, oid, "merged_into", principal.sub, {"target_case_id": str(target.id)}, now)
        row = await _case_for_update(session, principal, target_case_id)
    return _summary(row)


async def split_case(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, case_id: str, tip_ids: list[str]) -> CaseSummaryPublic:
    """Move some tips of a case into a new case (same category and scope); both keep their own first tip."""
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        row = await _case_for_update(session, principal, case_id)
        _ensure_not_locked_by_other(row, principal, now)
        if row.status in ("rejected", "closed"):
            raise Conflict("不能拆分已驳回或已关闭的案件", field="status", code="invalid_transition")
        held = {str(t.id): t for t in await _tips_of(session, row.id)}
        wanted = list(dict.fromkeys(tip_ids))
        missing = [t for t in wanted if t not in held]
        if missing:
            raise Unprocessable(f"线索不属于该案件：{missing[0]}", field="tip_ids")
        if len(wanted) == len(held):
            raise Unprocessable("不能把全部线索拆出，至少保留一条", field="tip_ids")
        moved = sorted((held[t] for t in wanted), key=lambda t: (t.submitted_at, str(t.id)))
        new_id = uuid.uuid4()
        seq = (await session.execute(text("SELECT nextval('case_reference_seq')"))).scalar_one()
        first = moved[0]
        await session.execute(
            _INSERT_SPLIT_CASE,
            {
                "id": new_id, "ref": f"SW-{now.year}-{seq:06d}", "cat": first.category, "status": "new" if row.status == "new" else "triaged",
                "tip": first.id, "fa": first.submitted_at, "lat": first.lat, "lon": first.lon, "place": first.place_text,
                "org": row.org_path, "summary": first.text[:200], "now": now,
            },
        )
        await session.execute(
            _SPLIT_TIPS,
            {"new": new_id, "r": orjson.dumps([f"split_from:{row.reference}"]).decode(), "ids": [t.id for t in moved]},
        )
        await _refresh_membership(session, row.id, now)
        await _refresh_membership(session, new_id, now)
        await note_in_history(session, row.id, "split", principal.sub, {"new_case_id": str(new_id), "tip_ids": wanted}, now)
        await note_in_history(session, new_id, "split_from", principal.sub, {"case_id": str(row.id)}, now)
        new_row = (await session.execute(_CASE, {"id": new_id})).one()
    return _summary(new_row)


async def case_detail(*, sessions: async_sessionmaker[AsyncSession], ctx: IntelContext, principal: Principal, case_id: str) -> CaseDetailPublic:
    """A case with its tips (reporters as pseudonyms), reasons, police dispositions and history."""
    async with sessions() as session:
        row = (await session.execute(_CASE, {"id": _case_uuid(case_id)})).first()
        found_in_scope(principal, row, field="case_id", message="案件不存在")
        tips = await _tips_of(session, row.id)
        attachments = (await session.execute(_ATTACHMENTS, {"ids": [t.id for t in tips]})).all()
        dispositions = await _dispositions(session, row.id)
        history = (await session.execute(_HISTORY, {"id": row.id})).all()
    by_tip: dict = {}
    for a in attachments:
        by_tip.setdefault(a.tip_id, []).append({"content_type": a.content_type, "size_bytes": a.size_bytes, "sha256": a.sha256, "stored": a.stored})
    base = _summary(row).model_dump()
    return CaseDetailPublic(
        **base, priority_reasons=list(row.priority_reasons or []), rejection_reason=row.rejection_reason,
        tips=[
            AnalystTipPublic(
                tip_id=str(t.id), reporter=ctx.keys.analyst_pseudonym(volunteer_id=t.volunteer_id, claim_ref=t.claim_ref),
                reporter_kind=t.reporter_kind, category=t.category, text=t.text, channel=t.channel, lat=t.lat, lon=t.lon,
                place_text=t.place_text, seen_at=t.seen_at, submitted_at=t.submitted_at, cluster_reasons=list(t.cluster_reasons or []),
                attachments=by_tip.get(t.id, []),
            )
            for t in tips
        ],
        dispositions=dispositions,
        history=[{"action": h.action, "actor": h.actor, "detail": h.detail, "at": h.at.isoformat()} for h in history],
    )


async def _dispositions(session: AsyncSession, case_id) -> list[dict]:
    rows = (await session.execute(_DISPOSITIONS, {"id": case_id})).all()
    return [
        {
            "disposition_id": str(r.id), "disposition": r.disposition, "note": r.note, "officer_unit": r.officer_unit,
            "recorded_at": r.recorded_at.isoformat(), "received_at": r.received_at.isoformat(), "confirmed": r.confirmed_at is not None,
            "confirmed_at": r.confirmed_at.isoformat() if r.confirmed_at else None, "counts": r.counts,
        }
        for r in rows
    ]


async def liaison_cases(
    *, sessions: async_sessionmaker[AsyncSession], ctx: IntelContext, principal: Principal, case_id: str | None = None, limit: int = 100
) -> list[LiaisonCasePublic]:
    """Forwarded cases as the police liaison may see them: sanitized, informants as pseudonyms."""
    where, params = scope_clause(principal)
    clauses = ["forwarded_at IS NOT NULL", "merged_into IS NULL", where]
    if case_id is not None:
        clauses.append("id = :id")
        params["id"] = _case_uuid(case_id)
    async with sessions() as session:
        rows = await _cases_where(session, clauses, params, newest_by="forwarded_at", limit=limit)
        out = []
        for r in rows:
            tips = await _tips_of(session, r.id)
            out.append(
                LiaisonCasePublic(
                    case_id=str(r.id), reference=r.reference, category=r.category, priority=r.priority, summary=r.summary,
                    place=_liaison_place(r, _police_draft(r, tips)).model_dump(), tip_count=len(tips),
                    informant_pseudonyms=liaison_pseudonyms(ctx, str(r.id), tips), forwarded_at=r.forwarded_at,
                    sla_due_at=r.sla_due_at, outcome=r.outcome, dispositions=await _dispositions(session, r.id),
                )
            )
    if case_id is not None and not out:
        raise NotFound("案件不存在或尚未移交", field="case_id")
    return out


async def record_disposition(session: AsyncSession, *, answer: DispositionRecorded | DispositionRecordedV2, cause: EventMeta) -> None:
    """Keep a police answer (v1, or v2 with outcome counts) as received, for an analyst to confirm (runs in the inbox transaction)."""
    counts = answer.counts if isinstance(answer, DispositionRecordedV2) else None
    try:
        case_uuid = uuid.UUID(answer.case_id)
    except ValueError as exc:
        raise PoisonMessage(f"case_id is not a case id: {answer.case_id[:60]!r}") from exc
    row = (await session.execute(_CASE_FOR_UPDATE, {"id": case_uuid})).first()
    while row is not None and row.merged_into is not None:
        row = (await session.execute(_CASE_FOR_UPDATE, {"id": row.merged_into})).first()
    if row is None:
        raise PoisonMessage(f"unknown case {answer.case_id}")
    if row.forwarded_at is None:
        raise PoisonMessage(f"case {answer.case_id} was never forwarded to the police")
    now = datetime.now(UTC)
    try:
        recorded_at = workflow.police_answer_time(answer.recorded_at, forwarded_at=row.forwarded_at, now=now)
    except workflow.ImplausibleAnswer as exc:
        raise PoisonMessage(str(exc)) from exc
    held = (await session.execute(text("SELECT count(*) FROM dispositions WHERE case_id = :id"), {"id": row.id})).scalar_one()
    if held >= workflow.MAX_DISPOSITIONS_PER_CASE:
        raise PoisonMessage(f"case {row.id} already holds {held} police answers")
    inserted = (
        await session.execute(
            _KEEP_DISPOSITION,
            {
                "id": uuid.uuid4(), "eid": cause.id, "case": row.id, "d": answer.disposition, "note": answer.note,
                "unit": answer.officer_unit, "src": cause.source, "at": recorded_at, "now": now,
                "counts": counts.model_dump_json() if counts is not None else None,
            },
        )
    ).first()
    if inserted is None:
        return
    await note_in_history(
        session, row.id, "disposition_received", cause.source,
        {"disposition_id": str(inserted.id), "disposition": answer.disposition, "officer_unit": answer.officer_unit}, now,
    )


async def confirm_disposition(
    *, sessions: async_sessionmaker[AsyncSession], principal: Principal, case_id: str, disposition_id: str
) -> CaseSummaryPublic:
    """Confirm a received police answer: it becomes the case's outcome (when latest) and `CaseOutcomeRecorded` is announced, once."""
    async with _editing_case(sessions, principal, case_id) as edit:
        session, row, now = edit.session, edit.row, edit.now
        answer = None if (did := _uuid_or_none(disposition_id)) is None else (
            await session.execute(_DISPOSITION_FOR_UPDATE, {"did": did, "case": row.id})
        ).first()
        if answer is None:
            raise NotFound("处置结果不存在", field="disposition_id")
        if answer.confirmed_by is not None:
            raise Conflict(f"该处置结果已由 {answer.confirmed_by} 确认", field="disposition_id", code="already_confirmed")
        await session.execute(_CONFIRM_DISPOSITION, {"by": principal.sub, "now": now, "id": answer.id})
        if row.outcome_at is None or answer.recorded_at >= row.outcome_at:
            await session.execute(
                _SET_OUTCOME,
                {"o": answer.disposition, "at": answer.recorded_at, "final": answer.disposition in workflow.FINAL_OUTCOMES, "now": now, "id": row.id},
            )
        await edit.history("disposition_confirmed", {"disposition_id": str(answer.id), "disposition": answer.disposition})
        await _announce_outcome(
            session, row=row, outcome=answer.disposition, recorded_at=answer.recorded_at,
            counts=OutcomeCounts.model_validate(answer.counts) if answer.counts is not None else None,
        )
    return edit.summary


async def _announce_outcome(session: AsyncSession, *, row, outcome: str, recorded_at: datetime, counts: OutcomeCounts | None) -> None:
    """`CaseOutcomeRecorded` for a confirmed police answer, with the first tip's reporter, all reporters and any outcome counts."""
    tips = await _tips_of(session, row.id)
    first = next((t for t in tips if t.id == row.first_tip_id), tips[0])
    reporters: list[Reporter] = []
    for tip in tips:
        rep = _reporter(tip)
        if rep not in reporters:
            reporters.append(rep)
    payload = CaseOutcomeRecorded(
        case_id=str(row.id), outcome=outcome, category=row.category, first_tip_id=str(first.id),
        first_reporter=_reporter(first), reporters=reporters, recorded_at=recorded_at, counts=counts,
    )
    await enqueue(session, payload, subject=str(row.id))



SIMILAR_CANDIDATES = 100  # open cases of the category within ~12 km a case is compared with, most recently active first
PROFILE_TIPS = 20  # most recent tips of each case compared
_CASE_PROFILE_TIPS = text(
    "SELECT t.case_id, t.id, t.category, t.text, coalesce(t.seen_at, t.submitted_at) AS at, t.lat, t.lon, t.place_text,"
    " coalesce((SELECT array_agg(a.sha256) FROM tip_attachments a WHERE a.tip_id = t.id), '{}') AS hashes"
    " FROM unnest(CAST(:ids AS uuid[])) AS c(id) CROSS JOIN LATERAL (SELECT * FROM tips WHERE case_id = c.id"
    "   ORDER BY submitted_at DESC, id DESC LIMIT :n) t ORDER BY t.submitted_at, t.id"
)
_RECORD_PAIR = text(  # one row per pair, the latest decision wins
    "INSERT INTO case_pair_decisions (case_low, case_high, decision, score, reasons, category, decided_by, decided_at)"
    " VALUES (:low, :high, :d, :score, CAST(:reasons AS jsonb), :cat, :by, :now) ON CONFLICT (case_low, case_high) DO UPDATE"
    " SET decision = EXCLUDED.decision, score = EXCLUDED.score, reasons = EXCLUDED.reasons, decided_by = EXCLUDED.decided_by,"
    " decided_at = EXCLUDED.decided_at"
)


async def _case_profiles(session: AsyncSession, case_ids: list) -> dict[str, clustering.CaseProfile]:
    """The cases as clustering compares them: each with its most recent tips."""
    rows = (await session.execute(_CASE_PROFILE_TIPS, {"ids": case_ids, "n": PROFILE_TIPS})).all()
    profiles: dict[str, clustering.CaseProfile] = {}
    for r in rows:
        profile = profiles.setdefault(str(r.case_id), clustering.CaseProfile(str(r.case_id), r.category, []))
        profile.tips.append(TipFeatures(str(r.id), r.category, r.text, r.at, r.lat, r.lon, r.place_text, frozenset(r.hashes)))
    return profiles


async def _record_pair(
    session: AsyncSession, case_id, other_id, decision: str, match: clustering.ClusterMatch | None, category: str, actor: str,
    now: datetime,
) -> None:
    """Keep an analyst's decision on a pair of cases (one row per pair, the latest decision wins) and note it in both histories."""
    low, high = sorted((case_id, other_id), key=str)
    await session.execute(
        _RECORD_PAIR,
        {
            "low": low, "high": high, "d": decision, "score": match.score if match else None,
            "reasons": orjson.dumps(list(match.reasons) if match else []).decode(), "cat": category, "by": actor, "now": now,
        },
    )
    for this, that in ((case_id, other_id), (other_id, case_id)):
        await note_in_history(session, this, f"suggestion_{decision}", actor, {"other_case_id": str(that), "score": match.score if match else None}, now)


async def similar_cases(
    *, sessions: async_sessionmaker[AsyncSession], ctx: IntelContext, principal: Principal, case_id: str
) -> list[SimilarCasePublic]:
    """The open cases in the principal's scope most like this one (same category, active within the clustering window,
    within ~12 km or without place), best first, at most `clustering.SUGGESTIONS`; a rejected pair is not suggested again."""
    await asyncio.to_thread(clustering.warm_up)
    where, params = scope_clause(principal)
    async with sessions() as session:
        row = (await session.execute(_CASE, {"id": _case_uuid(case_id)})).first()
        _live_case(principal, row)
        window = timedelta(days=ctx.settings.cluster_window_days)
        others = (
            await session.execute(
                text(
                    "SELECT id, reference, tip_count, summary FROM cases WHERE merged_into IS NULL AND status = ANY(:open)"
                    f" AND category = :cat AND id <> :id AND last_submitted_at >= :since AND first_submitted_at <= :until AND {where}"
                    " AND (CAST(:lat AS float8) IS NULL OR lat IS NULL OR (abs(lat - :lat) < :box AND abs(lon - :lon) < :box))"
                    " AND NOT EXISTS (SELECT 1 FROM case_pair_decisions d WHERE d.decision = 'rejected'"
                    "   AND d.case_low = least(cases.id, CAST(:id AS uuid)) AND d.case_high = greatest(cases.id, CAST(:id AS uuid)))"
                    " ORDER BY last_submitted_at DESC LIMIT :n"
                ),
                {
                    **params, "open": CANDIDATE_STATUSES, "cat": row.category, "id": row.id, "n": SIMILAR_CANDIDATES,
                    "since": row.first_submitted_at - window, "until": row.last_submitted_at + window,
                    "lat": row.lat if row.lon is not None else None, "lon": row.lon, "box": NEIGHBOURHOOD_DEG,
                },
            )
        ).all()
        profiles = await _case_profiles(session, [row.id, *(o.id for o in others)])
    if str(row.id) not in profiles:
        return []
    by_id = {str(o.id): o for o in others}
    matches = clustering.similar_cases(profiles[str(row.id)], [p for cid, p in profiles.items() if cid in by_id])
    return [
        SimilarCasePublic(case_id=m.case_id, reference=by_id[m.case_id].reference, score=round(m.score, 3), reasons=list(m.reasons),
                    tip_count=by_id[m.case_id].tip_count, summary=by_id[m.case_id].summary)
        for m in matches
    ]


async def reject_suggestion(
    *, sessions: async_sessionmaker[AsyncSession], principal: Principal, case_id: str, other_case_id: str, note: str | None
) -> PairDecisionPublic:
    """Record that a suggested case reports another incident: a labelled pair for calibration; no longer suggested."""
    await asyncio.to_thread(clustering.warm_up)
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        rows = {}
        for cid in sorted([case_id, other_case_id]):
            rows[cid] = await _case_for_update(session, principal, cid, field="case_id" if cid == case_id else "other_case_id")
        this, other = rows[case_id], rows[other_case_id]
        if this.id == other.id:
            raise Unprocessable("不能与自身比较", field="other_case_id")
        profiles = await _case_profiles(session, [this.id, other.id])
        match = clustering.case_similarity_of_cases(profiles.get(str(this.id)), profiles.get(str(other.id)))
        await _record_pair(session, this.id, other.id, "rejected", match, this.category, principal.sub, now)
        if note:
            await note_in_history(session, this.id, "suggestion_note", principal.sub, {"other_case_id": str(other.id), "note": note}, now)
    return PairDecisionPublic(case_id=str(this.id), other_case_id=str(other.id), decision="rejected", score=match.score if match else None,
                        decided_by=principal.sub, decided_at=now)
