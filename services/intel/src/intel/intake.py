"""Tip intake: accept a tip with its attachments, place it in a case, and announce it — one transaction."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import uuid
from datetime import UTC, datetime, timedelta

import orjson
from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.contracts.intel import Reporter, TipSubmitted
from shouwang_shared.envelope import new_event
from shouwang_shared.errors import AppError, Conflict, NotFound, TooManyRequests, Unprocessable
from shouwang_shared.logs import log_fields
from shouwang_shared.outbox import enqueue

from intel import clustering, triage
from intel.context import IntelContext
from intel.orgunits import covering_unit
from intel.schemas import ReceiptStatus, TipAccepted, TipCreate, TipMine

log = logging.getLogger(__name__)

URGENT_CASES = Counter("shouwang_intel_urgent_cases_total", "Cases that became urgent (alerted at once)", ["category"])
TIPS_ACCEPTED = Counter("shouwang_intel_tips_accepted_total", "Tips accepted", ["category", "reporter_kind"])

CANDIDATE_STATUSES = ("new", "triaged", "verified", "forwarded")
ANONYMOUS_KEY_MIN = 16
NEIGHBOURHOOD_DEG = 0.12  # candidate cases lie within ~12 km (twice the widest clustering radius)


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


def _request_hash(body: TipCreate, scope: str) -> str:
    """Fingerprint of a submission, to tell a retry from a different tip reusing an idempotency key."""
    dumped = body.model_dump(mode="json", exclude={"idempotency_key"})
    return hashlib.sha256(scope.encode() + orjson.dumps(dumped, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def submit_tip(
    *, sessions: async_sessionmaker[AsyncSession], ctx: IntelContext, body: TipCreate,
    volunteer_id: str | None, idempotency_key: str | None,
) -> TipAccepted:
    """Accept a tip: store it, cluster it into a case and enqueue `TipSubmitted`, all in one commit."""
    if idempotency_key and body.idempotency_key and idempotency_key != body.idempotency_key:
        raise Unprocessable("请求头与请求体中的幂等键不一致", field="Idempotency-Key")
    idem = idempotency_key or body.idempotency_key
    if idem is not None and not 8 <= len(idem) <= 200:
        raise Unprocessable("幂等键长度应为8到200个字符", field="Idempotency-Key")
    if idem and volunteer_id is None and len(idem) < ANONYMOUS_KEY_MIN:
        raise Unprocessable(f"匿名提交的幂等键至少 {ANONYMOUS_KEY_MIN} 个字符（建议使用 UUID）", field="Idempotency-Key")
    attachments = _checked_attachments(body, ctx.settings.attachment_max_bytes)
    keys = ctx.keys
    scope = f"volunteer:{volunteer_id}" if volunteer_id else "anonymous"
    request_hash = _request_hash(body, scope)
    idem_hash = keys.idempotency_hash(scope, idem) if idem else None
    code = secret = claim_ref = None
    if volunteer_id is None:
        code, secret = keys.new_receipt(idem)
        claim_ref = keys.claim_ref(code)
    tip_id = uuid.uuid4()
    now = datetime.now(UTC)

    async with sessions() as session, session.begin():
        org_unit_id, org_path, _ = await covering_unit(
            session, lat=body.lat, lon=body.lon, fallback_path=body.org_path or ctx.settings.default_org_path
        )
        inserted = (
            await session.execute(
                text(
                    "INSERT INTO tips (id, idempotency_hash, request_hash, reporter_kind, volunteer_id, receipt_code_hash,"
                    " receipt_secret_hash, claim_ref, category, text, lat, lon, place_text, seen_at, channel, org_path,"
                    " submitted_at) VALUES (:id, :idem, :rh, :kind, :vid, :code_hash, :secret_hash, :claim_ref, :category,"
                    " :text, :lat, :lon, :place_text, :seen_at, :channel, :org_path, :now)"
                    " ON CONFLICT DO NOTHING RETURNING id"
                ),
                {
                    "id": tip_id, "idem": idem_hash, "rh": request_hash, "kind": "volunteer" if volunteer_id else "anonymous",
                    "vid": volunteer_id, "code_hash": keys.code_hash(code) if code else None,
                    "secret_hash": keys.secret_hash(secret) if secret else None, "claim_ref": claim_ref,
                    "category": body.category, "text": body.text, "lat": body.lat, "lon": body.lon,
                    "place_text": body.place_text, "seen_at": body.seen_at, "channel": body.channel,
                    "org_path": org_path, "now": now,
                },
            )
        ).first()
        if inserted is None:
            return await _replayed_submission(session, idem_hash, request_hash, code, secret, claim_ref)
        for content_type, size, sha, content in attachments:
            await session.execute(
                text(
                    "INSERT INTO tip_attachments (id, tip_id, content_type, size_bytes, sha256, content)"
                    " VALUES (:id, :tip, :ct, :size, :sha, :content)"
                ),
                {"id": uuid.uuid4(), "tip": tip_id, "ct": content_type, "size": size, "sha": sha, "content": content},
            )
        features = clustering.TipFeatures(
            tip_id=str(tip_id), category=body.category, text=body.text, at=body.seen_at or now,
            lat=body.lat, lon=body.lon, place_text=body.place_text,
            attachment_hashes=frozenset(a[2] for a in attachments),
        )
        await place_in_case(session, ctx=ctx, tip=features, org_path=org_path, now=now)
        reporter = Reporter(kind="volunteer", volunteer_id=volunteer_id) if volunteer_id else Reporter(kind="anonymous", claim_ref=claim_ref)
        event = new_event(
            source=TipSubmitted.SOURCE, type=TipSubmitted.TYPE, subject=str(tip_id),
            data=TipSubmitted(
                tip_id=str(tip_id), category=body.category, channel=body.channel, reporter=reporter, submitted_at=now,
                org_unit_id=org_unit_id, has_attachment=bool(attachments), text_length=len(body.text),
            ),
        )
        await enqueue(session, event, topic=TipSubmitted.TOPIC)
    TIPS_ACCEPTED.labels(body.category, reporter.kind).inc()
    return TipAccepted(tip_id=str(tip_id), status="submitted", submitted_at=now, receipt_code=code, receipt_secret=secret, claim_ref=claim_ref)


async def _replayed_submission(
    session: AsyncSession, idem_hash: str | None, request_hash: str, code: str | None, secret: str | None, claim_ref: str | None
) -> TipAccepted:
    """The answer already given to an earlier submission with the same idempotency key."""
    row = (
        await session.execute(
            text("SELECT id, request_hash, status, submitted_at FROM tips WHERE idempotency_hash = :h"), {"h": idem_hash}
        )
    ).first()
    if row is None:  # a clash on something other than the idempotency key (a receipt code): vanishingly rare
        raise Conflict("提交冲突，请重试", field="Idempotency-Key")
    if row.request_hash != request_hash:
        raise Conflict("该幂等键已用于另一条不同的线索", field="Idempotency-Key", code="idempotency_key_reused")
    return TipAccepted(
        tip_id=str(row.id), status=row.status, submitted_at=row.submitted_at,
        receipt_code=code, receipt_secret=secret, claim_ref=claim_ref,
    )


async def load_case_profiles(session: AsyncSession, case_ids: list) -> list[clustering.CaseProfile]:
    """The tips of the given cases as clustering sees them."""
    if not case_ids:
        return []
    rows = (
        await session.execute(
            text(
                "SELECT t.id, t.case_id, c.category AS case_category, t.category, t.text, coalesce(t.seen_at, t.submitted_at) AS at,"
                " t.lat, t.lon, t.place_text, coalesce(array_agg(a.sha256) FILTER (WHERE a.sha256 IS NOT NULL), '{}') AS hashes"
                " FROM tips t JOIN cases c ON c.id = t.case_id LEFT JOIN tip_attachments a ON a.tip_id = t.id"
                " WHERE t.case_id = ANY(:ids) GROUP BY t.id, c.category ORDER BY t.submitted_at"
            ),
            {"ids": case_ids},
        )
    ).all()
    profiles: dict[str, clustering.CaseProfile] = {}
    for r in rows:
        profile = profiles.setdefault(str(r.case_id), clustering.CaseProfile(str(r.case_id), r.case_category, []))
        profile.tips.append(
            clustering.TipFeatures(str(r.id), r.category, r.text, r.at, r.lat, r.lon, r.place_text, frozenset(r.hashes))
        )
    return list(profiles.values())


async def place_in_case(
    session: AsyncSession, *, ctx: IntelContext, tip: clustering.TipFeatures, org_path: str, now: datetime
) -> tuple[uuid.UUID, clustering.ClusterMatch | None]:
    """Join the tip to the case it belongs to, or open a new case; recompute the case priority."""
    # one clustering decision at a time per category, so two reports of one incident cannot open two cases
    await session.execute(text("SELECT pg_advisory_xact_lock(7246200, hashtext(:c))"), {"c": tip.category})
    since = now - timedelta(days=ctx.settings.cluster_window_days)
    candidate_ids = [
        r.id for r in (
            await session.execute(
                text(
                    "SELECT id FROM cases WHERE merged_into IS NULL AND status = ANY(:st) AND category = :cat"
                    " AND last_submitted_at >= :since AND (CAST(:lat AS double precision) IS NULL OR lat IS NULL"
                    "   OR (abs(lat - :lat) < :d AND abs(lon - :lon) < :d))"
                    " ORDER BY last_submitted_at DESC LIMIT :n"
                ),
                {"st": list(CANDIDATE_STATUSES), "cat": tip.category, "since": since, "n": ctx.settings.cluster_max_candidates,
                 "lat": tip.lat if tip.lon is not None else None, "lon": tip.lon, "d": NEIGHBOURHOOD_DEG},
            )
        ).all()
    ]
    if tip.attachment_hashes:
        candidate_ids += [
            r.case_id for r in (
                await session.execute(
                    text(
                        "SELECT DISTINCT t.case_id FROM tip_attachments a JOIN tips t ON t.id = a.tip_id"
                        " JOIN cases c ON c.id = t.case_id WHERE a.sha256 = ANY(:h) AND c.merged_into IS NULL"
                        " AND c.status = ANY(:st)"
                    ),
                    {"h": list(tip.attachment_hashes), "st": list(CANDIDATE_STATUSES)},
                )
            ).all()
            if r.case_id not in candidate_ids
        ]
    profiles = await load_case_profiles(session, candidate_ids)
    match = clustering.best_case(tip, profiles)
    if match is None:
        case_id = uuid.uuid4()
        await session.execute(
            text(
                "INSERT INTO cases (id, reference, category, first_tip_id, first_submitted_at, last_submitted_at, tip_count,"
                " lat, lon, place_text, org_path, summary, created_at, updated_at)"
                " VALUES (:id, 'SW-' || :year || '-' || lpad(nextval('case_reference_seq')::text, 6, '0'), :cat, :tip, :now, :now, 1,"
                " :lat, :lon, :place, :org, :summary, :now, :now)"
            ),
            {
                "id": case_id, "year": str(now.year), "cat": tip.category, "tip": uuid.UUID(tip.tip_id),
                "now": now, "lat": tip.lat, "lon": tip.lon, "place": tip.place_text, "org": org_path, "summary": tip.text[:200],
            },
        )
        members = [tip]
        reasons: list[str] = ["new_case"]
        score = None
    else:
        case_id = uuid.UUID(match.case_id)
        await session.execute(
            text(
                "UPDATE cases SET tip_count = tip_count + 1, last_submitted_at = :now, updated_at = :now,"
                " lat = coalesce(lat, :lat), lon = coalesce(lon, :lon), place_text = coalesce(place_text, :place) WHERE id = :id"
            ),
            {"now": now, "lat": tip.lat, "lon": tip.lon, "place": tip.place_text, "id": case_id},
        )
        members = next(p.tips for p in profiles if p.case_id == match.case_id) + [tip]
        reasons = [*match.reasons, f"matched_tip:{match.matched_tip_id}"]
        score = match.score
    await session.execute(
        text("UPDATE tips SET case_id = :case, cluster_reasons = CAST(:reasons AS jsonb), cluster_score = :score WHERE id = :tip"),
        {"case": case_id, "reasons": orjson.dumps(reasons).decode(), "score": score, "tip": uuid.UUID(tip.tip_id)},
    )
    category = tip.category if match is None else next(p.category for p in profiles if p.case_id == match.case_id)
    await reassess_priority(session, case_id=case_id, category=category, members=members, now=now)
    return case_id, match


async def reassess_priority(
    session: AsyncSession, *, case_id: uuid.UUID, category: str, members: list[clustering.TipFeatures], now: datetime
) -> None:
    """Recompute a case's priority from its tips; a case that becomes urgent alerts at once."""
    assessment = triage.assess(
        category=category, texts=[m.text for m in members], places=[m.place_text or "" for m in members], tip_count=len(members),
    )
    row = (
        await session.execute(
            text(
                "UPDATE cases c SET priority = :p, priority_score = :s, priority_reasons = CAST(:r AS jsonb)"
                " FROM (SELECT id, priority FROM cases WHERE id = :id) old WHERE c.id = old.id"
                " RETURNING old.priority AS previous, c.category, c.reference"
            ),
            {"p": assessment.priority, "s": assessment.score, "r": orjson.dumps(list(assessment.reasons)).decode(), "id": case_id},
        )
    ).one()
    if assessment.priority == "urgent" and row.previous != "urgent":
        URGENT_CASES.labels(row.category).inc()
        log.warning(
            "urgent case %s (%s): %s", row.reference, row.category, ", ".join(assessment.reasons),
            extra=log_fields(alert="urgent_case", case_id=str(case_id), reference=row.reference, category=row.category),
        )
        await session.execute(
            text("INSERT INTO case_history (case_id, action, actor, detail, at) VALUES (:id, 'urgent_alert', 'system', CAST(:d AS jsonb), :now)"),
            {"id": case_id, "d": orjson.dumps({"score": assessment.score, "reasons": list(assessment.reasons)}).decode(), "now": now},
        )


async def my_tips(*, sessions: async_sessionmaker[AsyncSession], volunteer_id: str, limit: int = 100) -> list[TipMine]:
    """A volunteer's own tips, newest first, with how their cases are going."""
    async with sessions() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT t.id, t.category, t.text, t.channel, t.status, t.submitted_at, c.status AS case_status, c.outcome"
                    " FROM tips t LEFT JOIN cases c ON c.id = t.case_id WHERE t.volunteer_id = :vid"
                    " ORDER BY t.submitted_at DESC LIMIT :n"
                ),
                {"vid": volunteer_id, "n": limit},
            )
        ).all()
    return [
        TipMine(tip_id=str(r.id), category=r.category, text=r.text, channel=r.channel, status=r.status,
                case_status=r.case_status, case_outcome=r.outcome, submitted_at=r.submitted_at)
        for r in rows
    ]


async def receipt_status(
    *, sessions: async_sessionmaker[AsyncSession], ctx: IntelContext, code: str, secret: str, client_key: str
) -> ReceiptStatus:
    """Progress of an anonymous tip for whoever holds its receipt code and secret; rate-limited."""
    keys = ctx.keys
    code_hash = keys.code_hash(code)
    wait = max(ctx.receipt_clients.retry_after(client_key), ctx.receipt_failures.retry_after(code_hash))
    if wait:
        raise TooManyRequests("查询过于频繁，请稍后再试", retry_after_s=wait)
    ctx.receipt_clients.hit(client_key)
    async with sessions() as session:
        row = (
            await session.execute(
                text(
                    "SELECT t.category, t.status, t.submitted_at, t.receipt_secret_hash, t.claim_ref, c.status AS case_status, c.outcome"
                    " FROM tips t LEFT JOIN cases c ON c.id = t.case_id WHERE t.receipt_code_hash = :h"
                ),
                {"h": code_hash},
            )
        ).first()
    if not keys.secret_matches(secret, row.receipt_secret_hash if row else None):
        ctx.receipt_failures.hit(code_hash)
        raise NotFound("回执码或密钥不正确", field="receipt", code="receipt_not_found")
    return ReceiptStatus(
        receipt_code=code.strip().upper(), category=row.category, status=row.status, case_status=row.case_status,
        case_outcome=row.outcome, submitted_at=row.submitted_at, claim_ref=row.claim_ref,
    )
