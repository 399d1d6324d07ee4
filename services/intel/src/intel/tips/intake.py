"""Tip intake: accept a tip with its attachments and announce it — one lean transaction; `placement` places it in a case."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import uuid
from datetime import UTC, datetime

import asyncpg
from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.contracts.intel import Reporter, TipSubmitted
from shouwang_shared.db import StatementPool
from shouwang_shared.errors import AppError, Conflict, NotFound, TooManyRequests, Unprocessable
from shouwang_shared.outbox import OUTBOX_COLUMNS, outbox_row, wake_relays

from intel.context import TIPS_WAITING_CHANNEL, IntelContext
from intel.idempotency import checked_key
from intel.idempotency import request_hash as fingerprint
from intel.orgunits import ORG_UNIT_ROWS
from intel.schemas import MyTipPublic, ReceiptStatus, TipAccepted, TipCreate

log = logging.getLogger(__name__)

TIPS_ACCEPTED = Counter("shouwang_intel_tips_accepted_total", "Tips accepted", ["category", "reporter_kind"])



class PayloadTooLarge(AppError):
    status_code = 413
    code = "too_large"


def _checked_attachments(body: TipCreate, max_bytes: int) -> list[tuple[str, int, str, bytes | None]]:
    """(type, size, sha256, bytes) per attachment; raises a 4xx naming the attachment field at fault."""
    out = []
    for i, att in enumerate(body.attachments):
        where = f"attachments.{i}"
        if att.size_bytes > max_bytes:
            raise PayloadTooLarge(f"附件超过大小上限 {max_bytes} 字节", field=f"{where}.size_bytes")
        content = None
        if att.content_base64 is not None:
            if len(att.content_base64) > (max_bytes * 4) // 3 + 8:
                raise PayloadTooLarge(f"附件超过大小上限 {max_bytes} 字节", field=f"{where}.content_base64")
            try:
                content = base64.b64decode(att.content_base64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise Unprocessable("附件内容不是有效的 base64", field=f"{where}.content_base64") from exc
            if len(content) != att.size_bytes:
                raise Unprocessable("附件大小与内容不符", field=f"{where}.size_bytes")
            if hashlib.sha256(content).hexdigest() != att.sha256.lower():
                raise Unprocessable("附件 sha256 与内容不符", field=f"{where}.sha256")
        out.append((att.content_type, att.size_bytes, att.sha256.lower(), content))
    return out


INSERT_TIP = (
    "WITH tip AS ("
    "  INSERT INTO tips (id, idempotency_hash, request_hash, reporter_kind, volunteer_id, receipt_code_hash, receipt_secret_hash,"
    "   claim_ref, category, text, lat, lon, place_text, seen_at, channel, org_path, submitted_at)"
    "  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT DO NOTHING RETURNING id),"
    " attached AS ("
    "  INSERT INTO tip_attachments (id, tip_id, content_type, size_bytes, sha256, content)"
    "  SELECT a.id, tip.id, a.content_type, a.size_bytes, a.sha256, a.content FROM tip,"
    "   unnest($18::uuid[], $19::text[], $20::bigint[], $21::text[], $22::bytea[]) AS a(id, content_type, size_bytes, sha256, content)),"
    " announced AS ("
    f"  INSERT INTO outbox ({', '.join(OUTBOX_COLUMNS)}) SELECT $23, $24, $25, $26, $27 FROM tip),"  # an outbox_row
    f" notified AS (SELECT pg_notify('{TIPS_WAITING_CHANNEL}', '') FROM tip)"  # wakes a clustering worker in another process
    " SELECT tip.id FROM tip, notified"
)
REPLAYED_TIP = "SELECT id, request_hash, status, submitted_at FROM tips WHERE idempotency_hash = $1"  # a resent idempotency key's tip


async def _routed_place(conn: asyncpg.Connection, ctx: IntelContext, body: TipCreate) -> tuple[str | None, str]:
    """(org unit id, org path) the tip is filed under; 422 for an `org_path` no org unit has (a stale snapshot reloads first)."""
    units = ctx.org_units
    if units.stale(body.org_path):
        units.load(await conn.fetch(ORG_UNIT_ROWS))
    if body.org_path and not units.knows(body.org_path):
        raise Unprocessable("没有这个组织单位，请从组织架构中选择", field="org_path", code="unknown_org_path")
    org_unit_id, org_path, _ = units.covering(lat=body.lat, lon=body.lon, fallback_path=body.org_path or ctx.settings.default_org_path)
    return org_unit_id, org_path


async def submit_tip(
    *, statements: StatementPool, ctx: IntelContext, body: TipCreate,
    volunteer_id: str | None, idempotency_key: str | None,
) -> TipAccepted:
    """Accept a tip: store it with its attachments and `TipSubmitted` in one statement; the clustering worker places it in a case."""
    if idempotency_key and body.idempotency_key and idempotency_key != body.idempotency_key:
        raise Unprocessable("请求头与请求体中的幂等键不一致", field="Idempotency-Key")
    idem = checked_key(idempotency_key or body.idempotency_key, anonymous=volunteer_id is None)
    attachments = _checked_attachments(body, ctx.settings.attachment_max_bytes)
    keys = ctx.keys
    scope = f"volunteer:{volunteer_id}" if volunteer_id else "anonymous"
    request_hash = fingerprint(body, scope, exclude={"idempotency_key"})
    idem_hash = keys.idempotency_hash(scope, idem) if idem else None
    code = secret = claim_ref = None
    if volunteer_id is None:
        code, secret = keys.new_receipt(idem)
        claim_ref = keys.claim_ref(code)
    tip_id = uuid.uuid4()
    now = datetime.now(UTC)
    kind = "volunteer" if volunteer_id else "anonymous"

    async with statements.connection() as conn:  # one statement, so one round trip: the tip, its attachments, its event
        org_unit_id, org_path = await _routed_place(conn, ctx, body)
        submitted = TipSubmitted(
            tip_id=str(tip_id), category=body.category, channel=body.channel,
            reporter=Reporter(kind=kind, volunteer_id=volunteer_id, claim_ref=claim_ref), submitted_at=now,
            org_unit_id=org_unit_id, has_attachment=bool(attachments), text_length=len(body.text),
        )
        inserted = await conn.fetchval(
            INSERT_TIP, tip_id, idem_hash, request_hash, kind, volunteer_id, keys.code_hash(code) if code else None,
            keys.secret_hash(secret) if secret else None, claim_ref, body.category, body.text, body.lat, body.lon,
            body.place_text, body.seen_at, body.channel, org_path, now,
            [uuid.uuid4() for _ in attachments], [a[0] for a in attachments], [a[1] for a in attachments],
            [a[2] for a in attachments], [a[3] for a in attachments],
            *outbox_row(submitted, subject=str(tip_id), at=now),
        )
        if inserted is None:
            return await _replayed_submission(conn, idem_hash, request_hash, code, secret, claim_ref)
    wake_relays()
    ctx.tips_waiting.set()
    TIPS_ACCEPTED.labels(body.category, kind).inc()
    return TipAccepted(tip_id=str(tip_id), status="submitted", submitted_at=now, receipt_code=code, receipt_secret=secret, claim_ref=claim_ref)


async def _replayed_submission(
    conn: asyncpg.Connection, idem_hash: str | None, request_hash: str, code: str | None, secret: str | None, claim_ref: str | None
) -> TipAccepted:
    """The answer already given to an earlier submission with the same idempotency key."""
    row = await conn.fetchrow(REPLAYED_TIP, idem_hash)
    if row is None:  # a clash on something other than the idempotency key (a receipt code): vanishingly rare
        raise Conflict("提交冲突，请重试", field="Idempotency-Key")
    if row["request_hash"] != request_hash:
        raise Conflict("该幂等键已用于另一条不同的线索", field="Idempotency-Key", code="idempotency_key_reused")
    return TipAccepted(
        tip_id=str(row["id"]), status=row["status"], submitted_at=row["submitted_at"],
        receipt_code=code, receipt_secret=secret, claim_ref=claim_ref,
    )


_MY_TIPS = text(
    "SELECT t.id, t.category, t.text, t.channel, t.status, t.submitted_at, c.status AS case_status, c.outcome"
    " FROM tips t LEFT JOIN cases c ON c.id = t.case_id WHERE t.volunteer_id = :vid"
    " ORDER BY t.submitted_at DESC LIMIT :n"
)


async def my_tips(*, sessions: async_sessionmaker[AsyncSession], volunteer_id: str, limit: int = 100) -> list[MyTipPublic]:
    """A volunteer's own tips, newest first, with how their cases are going."""
    async with sessions() as session:
        rows = (await session.execute(_MY_TIPS, {"vid": volunteer_id, "n": limit})).all()
    return [
        MyTipPublic(tip_id=str(r.id), category=r.category, text=r.text, channel=r.channel, status=r.status,
                case_status=r.case_status, case_outcome=r.outcome, submitted_at=r.submitted_at)
        for r in rows
    ]


# Seconds a receipt code stays locked: none unless its current window already holds `limit` failures.
RECEIPT_LOCK_LEFT = text(
    "SELECT CEIL(EXTRACT(EPOCH FROM window_started_at + make_interval(secs => :window_s) - now()))::int AS left_s"
    " FROM receipt_failures WHERE code_hash = :h AND failures >= :limit"
    " AND window_started_at > now() - make_interval(secs => :window_s)"
)
# One more failure for a code; a window that has run out starts again at this failure.
RECEIPT_FAILURE_COUNTED = text(
    "INSERT INTO receipt_failures AS f (code_hash, failures, window_started_at) VALUES (:h, 1, now())"
    " ON CONFLICT (code_hash) DO UPDATE SET"
    " failures = CASE WHEN f.window_started_at <= now() - make_interval(secs => :window_s) THEN 1 ELSE f.failures + 1 END,"
    " window_started_at = CASE WHEN f.window_started_at <= now() - make_interval(secs => :window_s)"
    " THEN now() ELSE f.window_started_at END"
)
EXPIRED_RECEIPT_FAILURES_FORGOTTEN = text(
    "DELETE FROM receipt_failures WHERE window_started_at <= now() - make_interval(secs => :window_s)"
)
_RECEIPT_TIP = text(
    "SELECT t.category, t.status, t.submitted_at, t.receipt_secret_hash, t.claim_ref, c.status AS case_status, c.outcome"
    " FROM tips t LEFT JOIN cases c ON c.id = t.case_id WHERE t.receipt_code_hash = :h"
)


async def receipt_status(
    *, sessions: async_sessionmaker[AsyncSession], ctx: IntelContext, code: str, secret: str
) -> ReceiptStatus:
    """Progress of an anonymous tip for whoever holds its receipt code and secret; wrong secrets limited per code.

    The failures are counted in the database, shared by every replica.
    """
    keys, s = ctx.keys, ctx.settings
    code_hash = keys.code_hash(code)
    window = {"h": code_hash, "window_s": float(s.receipt_lockout_s)}
    async with sessions() as session:
        locked_s = (await session.execute(RECEIPT_LOCK_LEFT, {**window, "limit": s.receipt_failures_per_code})).scalar()
        if locked_s:
            raise TooManyRequests("查询过于频繁，请稍后再试", retry_after_s=max(1, locked_s))
        row = (await session.execute(_RECEIPT_TIP, {"h": code_hash})).first()
        if not keys.secret_matches(secret, row.receipt_secret_hash if row else None):
            await session.execute(EXPIRED_RECEIPT_FAILURES_FORGOTTEN, window)
            await session.execute(RECEIPT_FAILURE_COUNTED, window)
            await session.commit()
            raise NotFound("回执码或密钥不正确", field="receipt", code="receipt_not_found")
    return ReceiptStatus(
        receipt_code=code.strip().upper(), category=row.category, status=row.status, case_status=row.case_status,
        case_outcome=row.outcome, submitted_at=row.submitted_at, claim_ref=row.claim_ref,
    )
