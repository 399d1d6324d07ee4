"""Placing accepted tips in cases: a worker in the intel process clusters tips that have no case yet, in batches.

Intake only stores a tip; this worker picks tips without a case in accepted order (`FOR UPDATE SKIP LOCKED`,
one clustering transaction at a time across replicas), decides with the pure `clustering` module which case each
joins or opens, and writes the cases, the tips' case and reasons and the case priorities in one transaction.
It is woken by every intake commit, in its own process or any other (PostgreSQL NOTIFY on
`TIPS_WAITING_CHANNEL`, so the worker may run in a process of its own), and polls as a fallback, so a crash
between intake and clustering only delays a tip: it is clustered, once, by whichever worker runs next.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
from prometheus_client import Counter, Histogram
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shouwang_shared.db import StatementPool, is_transient_db_error
from shouwang_shared.logs import log_fields

from intel.cases import clustering, triage
from intel.cases.history import SYSTEM, note_in_history
from intel.cases.urgent import open_urgent_alert
from intel.context import TIPS_WAITING_CHANNEL, IntelContext

log = logging.getLogger(__name__)

URGENT_CASES = Counter("shouwang_intel_urgent_cases_total", "Cases that became urgent (alerted at once)", ["category"])
TIPS_CLUSTERED = Counter("shouwang_intel_tips_clustered_total", "Tips placed in a case by the clustering worker", ["outcome"])
TIPS_SET_ASIDE = Counter(
    "shouwang_intel_tips_set_aside_total", "Tips the clustering worker could not place and set aside (see clustering_error)"
)
CLUSTERING_LAG = Histogram(
    "shouwang_intel_clustering_lag_seconds", "From a tip's acceptance to its placement in a case",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

CANDIDATE_STATUSES = ["new", "triaged", "verified", "forwarded"]
NEIGHBOURHOOD_DEG = 0.12  # candidate cases lie within ~12 km (twice the widest clustering radius)
# One writer per category at a time, whatever the replicas: an advisory lock (space, hashtext(category)) held for the
# batch's transaction. Tips of different categories never share a case (but for one photo, see `_place_batch`), so
# replicas clustering different categories at once reach the outcomes one writer would.
CATEGORY_LOCK_SPACE = 7246200
LOCK_CATEGORY = "SELECT pg_try_advisory_xact_lock($1, hashtext($2))"
WAITING_BY_CATEGORY = (  # categories with tips waiting, the one waiting longest first
    "SELECT t.category, count(*) AS waiting FROM tips t WHERE t.case_id IS NULL AND t.clustering_failed_at IS NULL"
    " GROUP BY t.category ORDER BY min(t.submitted_at)"
)
PENDING_TIPS = (
    "SELECT t.id, t.category, t.text, coalesce(t.seen_at, t.submitted_at) AS at, t.lat, t.lon, t.place_text, t.org_path,"
    " t.submitted_at, coalesce((SELECT array_agg(a.sha256) FROM tip_attachments a WHERE a.tip_id = t.id), '{}') AS hashes"
    " FROM tips t WHERE t.case_id IS NULL AND t.clustering_failed_at IS NULL AND t.category = ANY($2::text[])"
    " ORDER BY t.submitted_at, t.id LIMIT $1 FOR UPDATE OF t SKIP LOCKED"
)
SET_ASIDE = "UPDATE tips SET clustering_failed_at = now(), clustering_error = $1 WHERE id = $2 AND case_id IS NULL RETURNING id"
ATTEMPTS_BEFORE_SETTING_ASIDE = 3  # failures of the oldest tip alone before it is set aside
FIRST_BACKOFF_S = 0.2  # after a database failure; doubling up to 5 s
RELOOK_S = 0.05  # after a batch shorter than the limit, or when other replicas hold every category with tips waiting
CANDIDATES = (
    "SELECT p.tip_id, c.id AS case_id FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::float8[], $5::timestamptz[])"
    "   AS p(tip_id, category, lat, lon, since)"
    " CROSS JOIN LATERAL (SELECT id FROM cases WHERE merged_into IS NULL AND status = ANY($6::text[]) AND category = p.category"
    "   AND last_submitted_at >= p.since AND (p.lat IS NULL OR p.lon IS NULL OR lat IS NULL"
    "   OR (abs(lat - p.lat) < $7 AND abs(lon - p.lon) < $7)) ORDER BY last_submitted_at DESC LIMIT $8) c"
    " UNION"
    " SELECT x.tip_id, t.case_id FROM unnest($9::uuid[], $10::text[]) AS x(tip_id, sha256)"
    " JOIN tip_attachments a ON a.sha256 = x.sha256 JOIN tips t ON t.id = a.tip_id JOIN cases c ON c.id = t.case_id"
    " WHERE c.merged_into IS NULL AND c.status = ANY($6::text[])"
)
CASE_PROFILES = (  # each candidate with its most recent tips (a large case is compared by what was reported lately)
    "SELECT c.id AS case_id, c.category AS case_category, c.last_submitted_at, c.lat AS case_lat, c.lon AS case_lon,"
    " c.place_text AS case_place, c.tip_count AS case_tip_count, t.id, t.category, t.text, t.at, t.lat, t.lon, t.place_text,"
    " coalesce((SELECT array_agg(a.sha256) FROM tip_attachments a WHERE a.tip_id = t.id), '{}') AS hashes"
    " FROM cases c CROSS JOIN LATERAL (SELECT t.id, t.category, t.text, coalesce(t.seen_at, t.submitted_at) AS at, t.lat, t.lon,"
    "   t.place_text, t.submitted_at FROM tips t WHERE t.case_id = c.id ORDER BY t.submitted_at DESC, t.id DESC LIMIT $2) t"
    " WHERE c.id = ANY($1::uuid[]) ORDER BY t.submitted_at, t.id"
)
INSERT_CASES = (
    "INSERT INTO cases (id, reference, category, first_tip_id, first_submitted_at, last_submitted_at, tip_count, lat, lon, place_text,"
    " org_path, summary, priority, priority_score, priority_reasons, created_at, updated_at)"
    " SELECT n.id, 'SW-' || n.year || '-' || lpad(nextval('case_reference_seq')::text, 6, '0'), n.category, n.first_tip_id,"
    " n.first_at, n.last_at, n.tip_count, n.lat, n.lon, n.place_text, n.org_path, n.summary, n.priority, n.score, n.reasons::jsonb,"
    " n.first_at, $15"
    " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::timestamptz[], $6::timestamptz[], $7::int[], $8::float8[],"
    "   $9::float8[], $10::text[], $11::text[], $12::text[], $13::text[], $14::int[], $16::text[])"
    "   AS n(id, year, category, first_tip_id, first_at, last_at, tip_count, lat, lon, place_text, org_path, summary, priority, score, reasons)"
    " ORDER BY n.first_at, n.id"
    " RETURNING id, reference"
)
UPDATE_JOINED_CASES = (
    "UPDATE cases c SET tip_count = c.tip_count + u.added, last_submitted_at = greatest(c.last_submitted_at, u.last_at),"
    " lat = coalesce(c.lat, u.lat), lon = coalesce(c.lon, u.lon), place_text = coalesce(c.place_text, u.place_text),"
    " first_tip_id = CASE WHEN u.first_at < c.first_submitted_at THEN u.first_tip_id ELSE c.first_tip_id END,"
    " first_submitted_at = least(c.first_submitted_at, u.first_at),"
    " priority = CASE WHEN u.score >= c.priority_score THEN u.priority ELSE c.priority END,"
    " priority_reasons = CASE WHEN u.score >= c.priority_score THEN u.reasons::jsonb ELSE c.priority_reasons END,"
    " priority_score = greatest(c.priority_score, u.score), updated_at = $12"
    " FROM unnest($1::uuid[], $2::int[], $3::timestamptz[], $4::float8[], $5::float8[], $6::text[], $7::uuid[], $8::timestamptz[],"
    "   $9::text[], $10::int[], $11::text[]) AS u(id, added, last_at, lat, lon, place_text, first_tip_id, first_at, priority, score, reasons),"
    " (SELECT id, priority FROM cases WHERE id = ANY($1::uuid[])) old"
    " WHERE c.id = u.id AND old.id = u.id"
    " RETURNING c.id, c.reference, c.category, old.priority AS previous"
)
LOCK_JOINED_CASES = (  # the same order as a merge locks cases in, so the two never deadlock
    "SELECT id FROM cases WHERE id = ANY($1::uuid[]) AND merged_into IS NULL AND status = ANY($2::text[]) ORDER BY id FOR UPDATE"
)
# The cases of a batch that became urgent, in one statement: each noted in its history and its alert queued for the
# sweep (once per case). One case at a time under a session is `_alert_urgent` (history + `urgent.open_urgent_alert`).
OPEN_URGENT_ALERTS = (
    "WITH noted AS (INSERT INTO case_history (case_id, action, actor, detail, at)"
    "   SELECT u.case_id, 'urgent_alert', 'system', u.detail::jsonb, $3 FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS u(case_id, detail, n)"
    "   ORDER BY u.n)"
    " INSERT INTO urgent_alerts (case_id, case_org_path, alerted_path, level, raised_at, due_at)"
    " SELECT id, org_path, org_path, -1, $3, $3 FROM cases WHERE id = ANY($1::uuid[]) ON CONFLICT (case_id) DO NOTHING"
)
PLACE_TIPS = (
    "UPDATE tips t SET case_id = p.case_id, cluster_reasons = p.reasons::jsonb, cluster_score = p.score, clustered_at = $5"
    " FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::float8[]) AS p(tip_id, case_id, reasons, score) WHERE t.id = p.tip_id"
)


_SET_PRIORITY = text(  # answers the priority before the change: only a case that becomes urgent alerts
    "UPDATE cases c SET priority = :p, priority_score = :s, priority_reasons = CAST(:r AS jsonb)"
    " FROM (SELECT id, priority FROM cases WHERE id = :id) old WHERE c.id = old.id"
    " RETURNING old.priority AS previous, c.category, c.reference"
)


class CasesChangedMeanwhile(Exception):
    """A case the batch joined tips to was merged away or closed before the batch could write: cluster the batch again."""


@dataclass
class _Case:
    """A case as one clustering batch sees and changes it."""

    profile: clustering.CaseProfile
    last_at: datetime | None
    lat: float | None
    lon: float | None
    place_text: str | None
    is_new: bool = False
    org_path: str = ""
    stored_tips: int = 0  # tips the case held before this batch (its profile may load only the recent ones)
    added: list[tuple[clustering.TipFeatures, datetime]] = field(default_factory=list)


def _near(case: _Case, tip: clustering.TipFeatures, since: datetime) -> bool:
    """The candidate rule of the SQL above, for cases this batch opened or joined."""
    if case.profile.category != tip.category or case.last_at is None or case.last_at < since:
        return False
    if tip.lat is None or tip.lon is None or case.lat is None or case.lon is None:
        return True
    return abs(case.lat - tip.lat) < NEIGHBOURHOOD_DEG and abs(case.lon - tip.lon) < NEIGHBOURHOOD_DEG


async def assign_pending_tips(
    *, statements: StatementPool, ctx: IntelContext, limit: int, taken: list[str] | None = None
) -> int | None:
    """Place up to `limit` tips without a case in cases, oldest first, in the categories no other writer holds; None
    when tips wait only in categories other writers hold. `taken` (cleared, then filled) names the tips the batch took."""
    for attempt in range(3):
        if taken is not None:
            taken.clear()
        try:
            async with statements.connection() as conn, conn.transaction():
                categories = await _claim_categories(conn, limit)
                if not categories:
                    return None if categories is None else 0
                pending = await conn.fetch(PENDING_TIPS, limit, categories)
                if taken is not None:
                    taken.extend(str(r["id"]) for r in pending)
                if not pending:
                    return 0
                now = datetime.now(UTC)
                placed = await _place_batch(conn, ctx=ctx, pending=pending, categories=frozenset(categories), now=now)
            break
        except CasesChangedMeanwhile:
            if attempt == 2:
                raise
    for tip in placed:
        CLUSTERING_LAG.observe(max(0.0, (now - tip["submitted_at"]).total_seconds()))
    return len(placed)


async def _claim_categories(conn: asyncpg.Connection, limit: int) -> list[str] | None:
    """Lock categories, the one waiting longest first, until they hold `limit` tips; [] when no tip waits, None when
    every category with tips waiting is held by another writer (a second replica takes the categories the first left)."""
    waiting = await conn.fetch(WAITING_BY_CATEGORY)
    claimed, count = [], 0
    for row in waiting:
        if await conn.fetchval(LOCK_CATEGORY, CATEGORY_LOCK_SPACE, row["category"]):
            claimed.append(row["category"])
            count += row["waiting"]
            if count >= limit:
                break
    return claimed if claimed or not waiting else None


def _features(row: asyncpg.Record) -> clustering.TipFeatures:
    """What clustering compares of a tip row (`PENDING_TIPS` and `CASE_PROFILES` select the same columns)."""
    return clustering.TipFeatures(
        str(row["id"]), row["category"], row["text"], row["at"], row["lat"], row["lon"], row["place_text"], frozenset(row["hashes"])
    )


async def _place_batch(
    conn: asyncpg.Connection, *, ctx: IntelContext, pending: list, categories: frozenset[str], now: datetime
) -> list:
    """Place the batch's tips in order and store it; the rows placed. A tip whose photo points to a case of a category
    another writer holds waits for the next batch, and the later tips of its category with it (their order kept)."""
    window = timedelta(days=ctx.settings.cluster_window_days)
    tips = [_features(r) for r in pending]
    with_hashes = [(r["id"], h) for r in pending for h in r["hashes"]]
    pairs = await conn.fetch(
        CANDIDATES,
        [r["id"] for r in pending], [r["category"] for r in pending], [r["lat"] if r["lon"] is not None else None for r in pending],
        [r["lon"] for r in pending], [r["submitted_at"] - window for r in pending], CANDIDATE_STATUSES, NEIGHBOURHOOD_DEG,
        ctx.settings.cluster_max_candidates, [t for t, _ in with_hashes], [h for _, h in with_hashes],
    )
    candidates: dict[str, set[str]] = {}
    for p in pairs:
        candidates.setdefault(str(p["tip_id"]), set()).add(str(p["case_id"]))
    cases: dict[str, _Case] = {}
    profiles = await conn.fetch(CASE_PROFILES, list({p["case_id"] for p in pairs}), ctx.settings.cluster_profile_tips) if pairs else []
    for r in profiles:
        case = cases.get(str(r["case_id"]))
        if case is None:
            case = cases[str(r["case_id"])] = _Case(
                clustering.CaseProfile(str(r["case_id"]), r["case_category"], []), r["last_submitted_at"], r["case_lat"], r["case_lon"],
                r["case_place"], stored_tips=r["case_tip_count"],
            )
        case.profile.tips.append(_features(r))
    held = set(categories)
    for category in sorted({c.profile.category for c in cases.values()} - held):  # reached through a shared photo only
        if await conn.fetchval(LOCK_CATEGORY, CATEGORY_LOCK_SPACE, category):
            held.add(category)
    out_of_reach = {cid for cid, c in cases.items() if c.profile.category not in held}
    touched: dict[str, _Case] = {}
    placements, placed_rows, halted = [], [], set()
    for tip, row in zip(tips, pending, strict=True):
        since = row["submitted_at"] - window
        wanted = candidates.get(tip.tip_id, set())
        if tip.category in halted or wanted & out_of_reach:
            halted.add(tip.category)
            continue
        shared = tip.attachment_hashes
        profiles = [
            c.profile for cid, c in cases.items()
            if cid in wanted or (cid in touched and (_near(c, tip, since) or (shared and any(shared & m.attachment_hashes for m in c.profile.tips))))
        ]
        match = clustering.best_case(tip, profiles)
        if match is None:
            case = _Case(clustering.CaseProfile(str(uuid.uuid4()), tip.category, []), None, tip.lat, tip.lon, tip.place_text,
                         is_new=True, org_path=row["org_path"])
            cases[case.profile.case_id] = case
            reasons, score = ["new_case"], None
        else:
            case = cases[match.case_id]
            reasons, score = [*match.reasons, f"matched_tip:{match.matched_tip_id}"], match.score
        case.profile.tips.append(tip)
        case.added.append((tip, row["submitted_at"]))
        case.last_at = max(case.last_at, row["submitted_at"]) if case.last_at else row["submitted_at"]
        case.lat = case.lat if case.lat is not None else tip.lat
        case.lon = case.lon if case.lon is not None else tip.lon
        case.place_text = case.place_text if case.place_text is not None else tip.place_text
        touched[case.profile.case_id] = case
        placements.append((uuid.UUID(tip.tip_id), uuid.UUID(case.profile.case_id), orjson.dumps(reasons).decode(), score))
        placed_rows.append(row)
        TIPS_CLUSTERED.labels("new_case" if match is None else "joined").inc()
        await asyncio.sleep(0)  # let requests in between tips: a large batch must not hold the event loop
    await _write(conn, touched=list(touched.values()), placements=placements, now=now)
    return placed_rows


async def _write(conn: asyncpg.Connection, *, touched: list[_Case], placements: list, now: datetime) -> None:
    """Store the batch: new cases, joined cases (count, place, first tip, priority), the tips' case and reasons."""
    assessed = {
        c.profile.case_id: triage.assess(
            category=c.profile.category, texts=[m.text for m in c.profile.tips], places=[m.place_text or "" for m in c.profile.tips],
            tip_count=c.stored_tips + len(c.added),
        )
        for c in touched
    }
    urgent: list[tuple[uuid.UUID, str, str]] = []
    new = [c for c in touched if c.is_new]
    if new:
        cols = [
            [uuid.UUID(c.profile.case_id) for c in new], [str(c.added[0][1].year) for c in new], [c.profile.category for c in new],
            [uuid.UUID(c.added[0][0].tip_id) for c in new], [c.added[0][1] for c in new], [c.last_at for c in new],
            [len(c.added) for c in new], [c.lat for c in new], [c.lon for c in new], [c.place_text for c in new],
            [c.org_path for c in new], [c.added[0][0].text[:200] for c in new],
            [assessed[c.profile.case_id].priority for c in new], [assessed[c.profile.case_id].score for c in new], now,
            [orjson.dumps(list(assessed[c.profile.case_id].reasons)).decode() for c in new],
        ]
        for r in await conn.fetch(INSERT_CASES, *cols):
            if assessed[str(r["id"])].priority == "urgent":
                urgent.append((r["id"], r["reference"], next(c.profile.category for c in new if c.profile.case_id == str(r["id"]))))
    joined = sorted((c for c in touched if not c.is_new), key=lambda c: c.profile.case_id)
    if joined:
        ids = [uuid.UUID(c.profile.case_id) for c in joined]
        still_open = await conn.fetch(LOCK_JOINED_CASES, ids, CANDIDATE_STATUSES)
        if len(still_open) != len(ids):  # merged, rejected or closed since the batch read it: decide again
            raise CasesChangedMeanwhile(f"{len(ids) - len(still_open)} candidate cases changed during clustering")
        firsts = [min(c.added, key=lambda a: a[1]) for c in joined]
        rows = await conn.fetch(
            UPDATE_JOINED_CASES,
            [uuid.UUID(c.profile.case_id) for c in joined], [len(c.added) for c in joined], [c.last_at for c in joined],
            [c.lat for c in joined], [c.lon for c in joined], [c.place_text for c in joined],
            [uuid.UUID(f[0].tip_id) for f in firsts], [f[1] for f in firsts],
            [assessed[c.profile.case_id].priority for c in joined], [assessed[c.profile.case_id].score for c in joined],
            [orjson.dumps(list(assessed[c.profile.case_id].reasons)).decode() for c in joined], now,
        )
        urgent += [(r["id"], r["reference"], r["category"]) for r in rows if assessed[str(r["id"])].priority == "urgent" and r["previous"] != "urgent"]
    await conn.execute(
        PLACE_TIPS, [p[0] for p in placements], [p[1] for p in placements], [p[2] for p in placements], [p[3] for p in placements], now,
    )
    if urgent:
        await conn.execute(
            OPEN_URGENT_ALERTS, [u[0] for u in urgent], [orjson.dumps(_urgent_detail(assessed[str(u[0])])).decode() for u in urgent], now,
        )
    for case_id, reference, category in urgent:
        _report_urgent(case_id=case_id, reference=reference, category=category, assessment=assessed[str(case_id)])


def _urgent_detail(assessment: triage.Assessment) -> dict:
    """What the case history keeps of the assessment that made a case urgent."""
    return {"score": assessment.score, "reasons": list(assessment.reasons)}


def _report_urgent(*, case_id, reference: str, category: str, assessment: triage.Assessment) -> None:
    """Count a case that just became urgent and log its alert."""
    URGENT_CASES.labels(category).inc()
    log.warning(
        "urgent case %s (%s): %s", reference, category, ", ".join(assessment.reasons),
        extra=log_fields(alert="urgent_case", case_id=str(case_id), reference=reference, category=category),
    )


async def _alert_urgent(session: AsyncSession, *, case_id, reference: str, category: str, assessment: triage.Assessment, now: datetime) -> None:
    """A case just became urgent: count it, log the alert, note it in the case history and queue the push to the staff on duty."""
    _report_urgent(case_id=case_id, reference=reference, category=category, assessment=assessment)
    await note_in_history(session, case_id, "urgent_alert", SYSTEM, _urgent_detail(assessment), now)
    await open_urgent_alert(session, case_id=case_id, now=now)


async def reassess_priority(
    session: AsyncSession, *, case_id: uuid.UUID, category: str, members: list[clustering.TipFeatures], now: datetime
) -> None:
    """Recompute a case's priority from its tips (after a merge or split); a case that becomes urgent alerts at once."""
    assessment = triage.assess(
        category=category, texts=[m.text for m in members], places=[m.place_text or "" for m in members], tip_count=len(members),
    )
    row = (
        await session.execute(
            _SET_PRIORITY,
            {"p": assessment.priority, "s": assessment.score, "r": orjson.dumps(list(assessment.reasons)).decode(), "id": case_id},
        )
    ).one()
    if assessment.priority == "urgent" and row.previous != "urgent":
        await _alert_urgent(session, case_id=case_id, reference=row.reference, category=row.category,
                            assessment=assessment, now=now)


class ClusteringWorker:
    """Runs `assign_pending_tips` `linger_s` after an intake commit in any process (NOTIFY), and every `poll_interval_s` regardless."""

    def __init__(self, *, statements: StatementPool, ctx: IntelContext, database_ready: Callable[[], bool]) -> None:
        self.statements = statements
        self.ctx = ctx
        self.database_ready = database_ready
        self.batch_size = ctx.settings.cluster_batch_size
        self.poll_interval_s = ctx.settings.cluster_poll_interval_s
        self.linger_s = ctx.settings.cluster_linger_s
        self.last_error: str | None = None
        self.limit = self.batch_size  # halved after a failed batch, doubled back after each one that works
        self._stopping = False
        self._listener: asyncpg.Connection | None = None
        self._backoff = FIRST_BACKOFF_S
        self._failures_alone = 0
        self._taken: list[str] = []  # the tips the last batch took (a batch of one that keeps failing sets its tip aside)

    def stop(self) -> None:
        """End the loop after the batch in progress."""
        self._stopping = True
        self.ctx.tips_waiting.set()

    async def run(self) -> None:
        """Cluster until stopped; a failed batch is rolled back whole and tried again (see `_after_failure`)."""
        await asyncio.to_thread(clustering.warm_up)  # the segmenter's dictionary loads in ~1 s: not on the first tip
        try:
            while not self._stopping:
                if not self.database_ready():
                    await self._sleep(0.1)
                    continue
                await self._listen()
                limit = self.limit
                try:
                    placed = await assign_pending_tips(statements=self.statements, ctx=self.ctx, limit=limit, taken=self._taken)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - nothing was written (one transaction); narrowed and retried
                    await self._after_failure(exc)
                    continue
                self.last_error, self._backoff, self._failures_alone = None, FIRST_BACKOFF_S, 0
                self.limit = min(self.batch_size, self.limit * 2)
                if placed is None:  # other replicas hold every category with tips waiting: look again shortly
                    await self._sleep(RELOOK_S)
                elif placed < limit:
                    # a short batch may have left tips in categories another replica held (no NOTIFY comes for those)
                    await self._sleep(RELOOK_S if placed else self.poll_interval_s)
        finally:
            if self._listener is not None:
                with suppress(Exception):
                    await self._listener.close(timeout=2)

    async def _after_failure(self, exc: Exception) -> None:
        """Retry: the same batch after a backoff when the database failed; otherwise a batch half as large at once,
        down to the oldest tip alone, which is set aside after `ATTEMPTS_BEFORE_SETTING_ASIDE` failures, so one tip
        that cannot be placed never holds up the tips accepted after it."""
        self.last_error = f"{type(exc).__name__}: {exc}"
        transient = is_transient_db_error(exc) or isinstance(exc, asyncpg.PostgresConnectionError)  # OSError covers timeouts
        if not transient and self.limit > 1:
            self.limit = max(1, self.limit // 2)
            log.warning("clustering batch failed, retrying %d tips: %s", self.limit, self.last_error)
            return
        if not transient:
            self._failures_alone += 1
            if self._failures_alone >= ATTEMPTS_BEFORE_SETTING_ASIDE and await self._set_aside_failing_tip():
                return
        log.warning("clustering batch failed, retrying in %.1fs: %s", self._backoff, self.last_error)
        await asyncio.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, 5.0)

    async def _set_aside_failing_tip(self) -> bool:
        """Mark the tip that keeps failing alone (its category's oldest waiting) with its error, so the next batches go on;
        False when the failing batch held no single tip (the failure is not one tip's: back off instead)."""
        if len(self._taken) != 1:
            return False
        try:
            tip_id = await self.statements.fetchval(SET_ASIDE, self.last_error, uuid.UUID(self._taken[0]))
        except Exception as exc:  # noqa: BLE001 - the database failed too: the next round tries again
            log.warning("could not set a tip aside: %s: %s", type(exc).__name__, exc)
            return False
        self._failures_alone, self._backoff, self.limit = 0, FIRST_BACKOFF_S, self.batch_size
        if tip_id is not None:
            TIPS_SET_ASIDE.inc()
            log.error("tip set aside: clustering failed %d times on it alone", ATTEMPTS_BEFORE_SETTING_ASIDE,
                      extra=log_fields(tip_id=str(tip_id), error=self.last_error))
        return True

    async def _listen(self) -> None:
        """Hold a connection LISTENing for intake commits of any process (re-opened when lost; polling covers the gap)."""
        if self._listener is not None and not self._listener.is_closed():
            return
        try:
            self._listener = await asyncpg.connect(self.statements.dsn, timeout=5)
            await self._listener.add_listener(TIPS_WAITING_CHANNEL, lambda *_: self.ctx.tips_waiting.set())
        except (OSError, asyncpg.PostgresError) as exc:  # a timeout is an OSError
            log.warning("cannot listen for new tips, polling every %.1fs: %s: %s", self.poll_interval_s, type(exc).__name__, exc)
            self._listener = None

    async def _sleep(self, seconds: float) -> None:
        """Wait for intake to announce tips (then a moment more, so a busy minute clusters in batches) or for `seconds`."""
        try:
            await asyncio.wait_for(self.ctx.tips_waiting.wait(), timeout=seconds)
            if not self._stopping:
                await asyncio.sleep(self.linger_s)
        except TimeoutError:
            pass
        self.ctx.tips_waiting.clear()
