"""Public needs (routed to the org unit covering the place) and mediation cases for disputes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal
from shouwang_shared.contracts.intel import DisputeRecorded, NeedRecorded
from shouwang_shared.errors import Conflict, id_or_404
from shouwang_shared.outbox import enqueue
from shouwang_shared.pii import mask_phone

from intel.access import ensure_in_scope, found_in_scope, scope_clause
from intel.context import IntelContext
from intel.idempotency import checked_key, request_hash
from intel.orgunits import fresh_directory
from intel.schemas import DisputeCreate, NeedCreate

NEED_COLUMNS = "id, category, description, lat, lon, place_text, org_unit_id, org_path, routed_by, status, created_at, updated_at"
_INSERT_NEED = text(  # once per idempotency key
    f"INSERT INTO needs ({NEED_COLUMNS}, volunteer_id, idempotency_hash, request_hash) VALUES (:id, :cat, :d, :lat, :lon,"
    " :place, :unit, :path, :how, 'open', :now, :now, :vid, :idem, :rh) ON CONFLICT DO NOTHING RETURNING id"
)
_NEED = text(f"SELECT {NEED_COLUMNS} FROM needs WHERE id = :id")
_NEED_FOR_UPDATE = text(f"SELECT {NEED_COLUMNS} FROM needs WHERE id = :id FOR UPDATE")
_DISPUTE_STATE = text(  # what intel.community.v1 carries of a dispute
    "SELECT d.id, d.category, d.status, d.outcome, d.org_path, d.created_at, d.closed_at, now() AS updated_at,"
    " (SELECT count(*) FROM mediation_sessions m WHERE m.dispute_id = d.id) AS held FROM disputes d WHERE d.id = :id"
)
_INSERT_DISPUTE = text(  # once per idempotency key; returns the new row, which is the whole answer (no party, no session yet)
    "INSERT INTO disputes (id, summary, category, org_path, case_id, created_by, idempotency_hash, request_hash)"
    " VALUES (:id, :s, :c, :p, :case, :by, :idem, :rh) ON CONFLICT DO NOTHING RETURNING *"
)
_INSERT_PARTIES = text(  # all of a new dispute's parties in one statement, answered in the detail's order (the database's collation)
    "WITH added AS (INSERT INTO dispute_parties (id, dispute_id, name, role, phone_cipher, phone_masked)"
    " SELECT id, :d, n, r, pc, pm FROM unnest(CAST(:ids AS uuid[]), CAST(:names AS text[]), CAST(:roles AS text[]),"
    " CAST(:ciphers AS bytea[]), CAST(:masks AS text[])) AS p(id, n, r, pc, pm) RETURNING name, role, phone_masked)"
    " SELECT role, name, phone_masked FROM added ORDER BY role, name"
)


def _need(r) -> dict:
    return {
        "need_id": str(r.id), "category": r.category, "description": r.description, "lat": r.lat, "lon": r.lon,
        "place_text": r.place_text, "org_unit_id": r.org_unit_id, "org_path": r.org_path, "routed_by": r.routed_by,
        "status": r.status, "created_at": r.created_at.isoformat(), "updated_at": r.updated_at.isoformat(),
    }


async def submit_need(
    *, sessions: async_sessionmaker[AsyncSession], ctx: IntelContext, body: NeedCreate, volunteer_id: str | None,
    idempotency_key: str | None = None,
) -> dict:
    """Record a public need, routed to the org unit nearest its place (else the county); a resent key answers the first need."""
    now = datetime.now(UTC)
    need_id = uuid.uuid4()
    key = checked_key(idempotency_key, anonymous=volunteer_id is None)
    scope = f"need:volunteer:{volunteer_id}" if volunteer_id else "need:anonymous"
    idem_hash, body_hash = (ctx.keys.idempotency_hash(scope, key), request_hash(body, scope)) if key else (None, None)
    async with sessions() as session, session.begin():
        units = await fresh_directory(session, ctx.org_units)
        unit_id, path, how = units.covering(lat=body.lat, lon=body.lon, fallback_path=ctx.settings.default_org_path)
        inserted = (await session.execute(
            _INSERT_NEED,
            {"id": need_id, "cat": body.category, "d": body.description, "lat": body.lat, "lon": body.lon, "place": body.place_text,
             "unit": unit_id, "path": path, "how": how, "now": now, "vid": volunteer_id, "idem": idem_hash, "rh": body_hash},
        )).first()
        where, params = ("id = :id", {"id": need_id}) if inserted else ("idempotency_hash = :idem", {"idem": idem_hash})
        row = (await session.execute(text(f"SELECT {NEED_COLUMNS}, request_hash FROM needs WHERE {where}"), params)).one()
        if inserted:
            await _announce_need(session, row)
    if row.request_hash != body_hash:
        raise Conflict("该幂等键已用于另一条不同的需求", field="Idempotency-Key", code="idempotency_key_reused")
    return _need(row)


def _in_scope_with_status(principal: Principal, status: str | None) -> tuple[str, dict]:
    """SQL restricting rows to the principal's scope and, when given, to one status; with its parameters."""
    where, params = scope_clause(principal)
    if status:
        where += " AND status = :status"
        params["status"] = status
    return where, params


async def list_needs(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, status: str | None, limit: int = 100) -> list[dict]:
    """Needs routed into the principal's scope, newest first."""
    where, params = _in_scope_with_status(principal, status)
    async with sessions() as session:
        rows = (await session.execute(text(f"SELECT {NEED_COLUMNS} FROM needs WHERE {where} ORDER BY created_at DESC LIMIT :n"), {**params, "n": limit})).all()
    return [_need(r) for r in rows]


async def set_need_status(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, need_id: str, status: str) -> dict:
    """Move a need in the principal's scope to `status`."""
    async with sessions() as session, session.begin():
        row = (await session.execute(_NEED_FOR_UPDATE, {"id": id_or_404(need_id, field="need_id")})).first()
        found_in_scope(principal, row, field="need_id", message="需求不存在")
        await session.execute(text("UPDATE needs SET status = :s, updated_at = now() WHERE id = :id"), {"s": status, "id": row.id})
        row = (await session.execute(_NEED, {"id": row.id})).one()
        await _announce_need(session, row)
    return _need(row)


async def _announce_need(session: AsyncSession, row) -> None:
    """Put the need's latest state on intel.community.v1 (for the county's figures), in the caller's transaction."""
    payload = NeedRecorded(
        need_id=str(row.id), category=row.category, status=row.status, org_path=row.org_path,
        created_at=row.created_at, updated_at=row.updated_at,
    )
    await enqueue(session, payload, subject=str(row.id))


async def _announce_dispute(session: AsyncSession, dispute_id: uuid.UUID, row=None) -> None:
    """Put the dispute's latest state on intel.community.v1 (for the county's figures), in the caller's transaction;
    `row`: the state when the caller has it already (its columns and `held`, `updated_at`), else it is read."""
    if row is None:
        row = (await session.execute(_DISPUTE_STATE, {"id": dispute_id})).one()
    payload = DisputeRecorded(
        dispute_id=str(row.id), category=row.category, status=row.status, outcome=row.outcome, org_path=row.org_path,
        sessions_held=row.held, created_at=row.created_at, closed_at=row.closed_at, updated_at=row.updated_at,
    )
    await enqueue(session, payload, subject=str(row.id))


async def open_dispute(
    *, sessions: async_sessionmaker[AsyncSession], ctx: IntelContext, principal: Principal, body: DisputeCreate,
    idempotency_key: str | None = None,
) -> dict:
    """Open a mediation case with its parties (phones encrypted, shown masked); a resent key answers the first case."""
    ensure_in_scope(principal, body.org_path)
    dispute_id = uuid.uuid4()
    key = checked_key(idempotency_key, anonymous=False)
    scope = f"dispute:{principal.sub}"
    idem_hash, body_hash = (ctx.keys.idempotency_hash(scope, key), request_hash(body, scope)) if key else (None, None)
    parties = [(uuid.uuid4(), p.name, p.role, ctx.cipher.encrypt(p.phone, context="dispute_party.phone") if p.phone else None,
                mask_phone(p.phone) if p.phone else None) for p in body.parties]
    async with sessions() as session, session.begin():
        inserted = (await session.execute(
            _INSERT_DISPUTE,
            {"id": dispute_id, "s": body.summary, "c": body.category, "p": body.org_path,
             "case": id_or_404(body.case_id, field="case_id") if body.case_id else None, "by": principal.sub, "idem": idem_hash, "rh": body_hash},
        )).first()
        if inserted is None:
            first = (await session.execute(text("SELECT id, request_hash FROM disputes WHERE idempotency_hash = :idem"), {"idem": idem_hash})).one()
            if first.request_hash != body_hash:
                raise Conflict("该幂等键已用于另一件不同的调解案件", field="Idempotency-Key", code="idempotency_key_reused")
        else:
            await _announce_dispute(session, dispute_id, _NewDisputeState(inserted))
            added = []
            if parties:
                ids, names, roles, ciphers, masks = (list(column) for column in zip(*parties, strict=True))
                added = (await session.execute(
                    _INSERT_PARTIES, {"d": dispute_id, "ids": ids, "names": names, "roles": roles, "ciphers": ciphers, "masks": masks},
                )).all()
    if inserted is None:  # a resent key: the first case as it is now
        return await dispute_detail(sessions=sessions, principal=principal, dispute_id=str(first.id))
    return _dispute(inserted, [tuple(p) for p in added], sessions_=[])


async def list_disputes(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, status: str | None, limit: int = 100) -> list[dict]:
    """Mediation cases in the principal's scope, newest first, with how many sessions each has had (no parties: see the detail)."""
    where, params = _in_scope_with_status(principal, status)
    async with sessions() as session:
        rows = (await session.execute(text(
            "SELECT d.id, d.summary, d.category, d.org_path, d.status, d.outcome, d.mediator_volunteer_id, d.created_at, d.closed_at,"
            " (SELECT count(*) FROM mediation_sessions m WHERE m.dispute_id = d.id) AS held"
            f" FROM disputes d WHERE {where} ORDER BY d.created_at DESC LIMIT :n"
        ), {**params, "n": limit})).all()
    return [{
        "dispute_id": str(r.id), "summary": r.summary, "category": r.category, "org_path": r.org_path, "status": r.status,
        "outcome": r.outcome, "mediator_volunteer_id": r.mediator_volunteer_id, "sessions_held": r.held,
        "created_at": r.created_at.isoformat(), "closed_at": r.closed_at.isoformat() if r.closed_at else None,
    } for r in rows]


async def dispute_detail(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, dispute_id: str) -> dict:
    """A dispute with its parties (masked phones), mediator, sessions and outcome."""
    async with sessions() as session:
        row = (await session.execute(text("SELECT * FROM disputes WHERE id = :id"), {"id": id_or_404(dispute_id, field="dispute_id")})).first()
        found_in_scope(principal, row, field="dispute_id", message="调解案件不存在")
        parties = (await session.execute(text("SELECT name, role, phone_masked FROM dispute_parties WHERE dispute_id = :id ORDER BY role, name"), {"id": row.id})).all()
        sessions_ = (await session.execute(
            text("SELECT id, held_at, place, notes, recorded_by FROM mediation_sessions WHERE dispute_id = :id ORDER BY held_at"), {"id": row.id},
        )).all()
    return _dispute(row, [(p.role, p.name, p.phone_masked) for p in parties], sessions_)


class _NewDisputeState:
    """A just-inserted dispute row as `_announce_dispute` reads a dispute's state: no session held yet."""

    def __init__(self, row) -> None:
        self.id, self.category, self.status, self.outcome = row.id, row.category, row.status, row.outcome
        self.org_path, self.created_at, self.closed_at = row.org_path, row.created_at, row.closed_at
        self.updated_at, self.held = row.created_at, 0


def _dispute(row, parties: list[tuple[str, str, str | None]], sessions_) -> dict:
    """The console's view of a dispute: its row, its parties as (role, name, masked phone) in that order, its sessions."""
    return {
        "dispute_id": str(row.id), "summary": row.summary, "category": row.category, "org_path": row.org_path,
        "case_id": str(row.case_id) if row.case_id else None, "mediator_volunteer_id": row.mediator_volunteer_id,
        "status": row.status, "outcome": row.outcome, "outcome_note": row.outcome_note, "created_at": row.created_at.isoformat(),
        "closed_at": row.closed_at.isoformat() if row.closed_at else None,
        "parties": [{"name": name, "role": role, "phone": masked} for role, name, masked in parties],
        "sessions": [{"session_id": str(s.id), "held_at": s.held_at.isoformat(), "place": s.place, "notes": s.notes, "recorded_by": s.recorded_by} for s in sessions_],
    }


async def _open_dispute_for_update(session: AsyncSession, principal: Principal, dispute_id: str):
    row = (await session.execute(text("SELECT id, org_path, status FROM disputes WHERE id = :id FOR UPDATE"), {"id": id_or_404(dispute_id, field="dispute_id")})).first()
    found_in_scope(principal, row, field="dispute_id", message="调解案件不存在")
    if row.status == "closed":
        raise Conflict("调解案件已结案", field="status", code="dispute_closed")
    return row


async def _change_open_dispute(
    *, sessions: async_sessionmaker[AsyncSession], principal: Principal, dispute_id: str, statement: str, values: dict,
) -> dict:
    """Lock an open dispute in the principal's scope, run `statement` on it (`:id` is the dispute), announce its new
    state in the same transaction and return it."""
    async with sessions() as session, session.begin():
        row = await _open_dispute_for_update(session, principal, dispute_id)
        await session.execute(text(statement), {**values, "id": row.id})
        await _announce_dispute(session, row.id)
    return await dispute_detail(sessions=sessions, principal=principal, dispute_id=dispute_id)


async def assign_mediator(*, sessions: async_sessionmaker[AsyncSession], principal: Principal, dispute_id: str, volunteer_id: str) -> dict:
    """Assign the mediator volunteer of a dispute."""
    return await _change_open_dispute(
        sessions=sessions, principal=principal, dispute_id=dispute_id,
        statement="UPDATE disputes SET mediator_volunteer_id = :v, status = 'mediating' WHERE id = :id", values={"v": volunteer_id},
    )


async def record_session(
    *, sessions: async_sessionmaker[AsyncSession], principal: Principal, dispute_id: str, held_at: datetime, place: str | None, notes: str
) -> dict:
    """Record a mediation session."""
    return await _change_open_dispute(
        sessions=sessions, principal=principal, dispute_id=dispute_id,
        statement="INSERT INTO mediation_sessions (id, dispute_id, held_at, place, notes, recorded_by) VALUES (:sid, :id, :h, :p, :n, :by)",
        values={"sid": uuid.uuid4(), "h": held_at, "p": place, "n": notes, "by": principal.sub},
    )


async def close_dispute(
    *, sessions: async_sessionmaker[AsyncSession], principal: Principal, dispute_id: str, outcome: str, note: str | None
) -> dict:
    """Close a dispute as settled, referred to court or withdrawn."""
    return await _change_open_dispute(
        sessions=sessions, principal=principal, dispute_id=dispute_id,
        statement="UPDATE disputes SET status = 'closed', outcome = :o, outcome_note = :n, closed_at = now() WHERE id = :id",
        values={"o": outcome, "n": note},
    )
