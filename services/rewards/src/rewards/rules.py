"""Rule-set use cases: the cached rule book, drafts, the re-score preview, adoption."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.db import raw_connection
from shouwang_shared.errors import Conflict, NotFound
from shouwang_shared.inbox import PoisonMessage

from rewards.ledger import post_entries, postings_for
from rewards.scoring import BadFact, Line, Replay, RuleBook, RuleSet

CACHE_TTL_S = 5.0
MANUAL_RULE_LINES = ("redemption", "claim.transfer")
_books: dict[int, tuple[float, RuleBook]] = {}


def _cache_key(session: AsyncSession) -> int:
    return id(session.bind)


async def rule_book(session: AsyncSession, *, refresh: bool = False) -> RuleBook:
    """The adopted rule sets, cached in memory for a few seconds (dropped at once on adoption here)."""
    key = _cache_key(session)
    hit = _books.get(key)
    if hit and not refresh and time.monotonic() - hit[0] < CACHE_TTL_S:
        return hit[1]
    conn = await raw_connection(session)
    rows = await conn.fetch("SELECT body::text FROM rule_sets WHERE status = 'adopted'")
    book = RuleBook(RuleSet.model_validate_json(r["body"]) for r in rows)
    _books[key] = (time.monotonic(), book)
    return book


async def rules_for(session: AsyncSession, data: dict, when: datetime, book: RuleBook | None = None) -> RuleSet:
    """The rule set that scores a fact (from `book` if given); PoisonMessage naming why when there is none."""
    try:
        return (book or await rule_book(session)).pick(when, data.get("rule_version"))
    except BadFact:
        try:
            return (await rule_book(session, refresh=True)).pick(when, data.get("rule_version"))
        except BadFact as exc:
            raise PoisonMessage(str(exc)) from exc


def _public(row) -> dict:
    return {
        "version": row["version"], "status": row["status"], "effective_from": row["effective_from"],
        "created_by": row["created_by"], "created_at": row["created_at"], "adopted_at": row["adopted_at"],
        "rules": orjson.loads(row["body"]),
    }


async def list_rule_sets(*, sessions: async_sessionmaker[AsyncSession]) -> list[dict]:
    """Every rule version, newest first."""
    async with sessions() as session:
        conn = await raw_connection(session)
        rows = await conn.fetch("SELECT *, body::text AS body FROM rule_sets ORDER BY effective_from DESC, created_at DESC")
    return [_public(r) for r in rows]


async def get_rule_set(*, sessions: async_sessionmaker[AsyncSession], version: str) -> dict:
    """One rule version (`current` names the one in force now)."""
    async with sessions() as session:
        conn = await raw_connection(session)
        if version == "current":
            row = await conn.fetchrow(
                "SELECT *, body::text AS body FROM rule_sets WHERE status = 'adopted' AND effective_from <= now() "
                "ORDER BY effective_from DESC LIMIT 1"
            )
        else:
            row = await conn.fetchrow("SELECT *, body::text AS body FROM rule_sets WHERE version = $1", version)
    if row is None:
        raise NotFound(f"没有规则版本 {version}", field="version")
    return _public(row)


async def create_draft(*, sessions: async_sessionmaker[AsyncSession], rules: RuleSet, created_by: str) -> dict:
    """Store a new rule version as a draft (previewable, not yet scoring anything)."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await conn.fetchrow(
            "INSERT INTO rule_sets (version, effective_from, body, status, created_by) VALUES ($1, $2, $3::jsonb, 'draft', $4) "
            "ON CONFLICT (version) DO NOTHING RETURNING *, body::text AS body",
            rules.version, rules.effective_from, rules.model_dump_json(), created_by,
        )
    if row is None:
        raise Conflict(f"规则版本 {rules.version} 已存在", field="version")
    return _public(row)


async def _replay_totals(session: AsyncSession, book: RuleBook) -> tuple[dict[tuple[str, str], Decimal], int]:
    """Re-score the whole journal of facts under `book`, in consumption order."""
    conn = await raw_connection(session)
    replay = Replay(book)
    count, last = 0, 0
    while True:
        rows = await conn.fetch(
            "SELECT seq, event_type, occurred_at, data::text AS data FROM scored_facts WHERE seq > $1 ORDER BY seq LIMIT 5000", last
        )
        if not rows:
            break
        for r in rows:
            try:
                replay.apply(r["event_type"], orjson.loads(r["data"]), r["occurred_at"])
            except BadFact:
                pass  # a fact no rule of this book can score posts nothing, as live
            count += 1
        last = rows[-1]["seq"]
    return replay.balances(), count


async def _scored_totals(session: AsyncSession) -> dict[tuple[str, str], Decimal]:
    """What the ledger holds per account from scored facts (redemptions and claim transfers left out)."""
    conn = await raw_connection(session)
    rows = await conn.fetch(
        """
        SELECT account, unit, sum(delta) AS total FROM (
            SELECT credit_account AS account, unit, amount AS delta FROM ledger_entries WHERE NOT (rule_line = ANY($1::text[]))
            UNION ALL
            SELECT debit_account, unit, -amount FROM ledger_entries WHERE NOT (rule_line = ANY($1::text[]))
        ) legs WHERE account NOT LIKE 'alliance:%' GROUP BY account, unit
        """,
        list(MANUAL_RULE_LINES),
    )
    return {(r["account"], r["unit"]): r["total"] for r in rows if r["total"] != 0}


async def _draft(conn, version: str) -> RuleSet:
    row = await conn.fetchrow("SELECT body::text AS body, status FROM rule_sets WHERE version = $1", version)
    if row is None:
        raise NotFound(f"没有规则版本 {version}", field="version")
    return RuleSet.model_validate_json(row["body"]), row["status"]


def _diff(current: dict, preview: dict) -> list[dict]:
    keys = sorted(set(current) | set(preview))
    return [
        {"account": a, "unit": u, "current": float(current.get((a, u), 0)), "preview": float(preview.get((a, u), 0)),
         "delta": float(preview.get((a, u), 0) - current.get((a, u), 0))}
        for a, u in keys
    ]


async def preview_rescore(*, sessions: async_sessionmaker[AsyncSession], version: str) -> dict:
    """Replay every scored fact with `version` added to the adopted rules; per account: now, under the preview, and the change."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        draft, _ = await _draft(conn, version)
        book = (await rule_book(session, refresh=True)).with_version(draft)
        preview, replayed = await _replay_totals(session, book)
        current = await _scored_totals(session)
    accounts = _diff(current, preview)
    totals: dict[str, dict[str, float]] = defaultdict(lambda: {"current": 0.0, "preview": 0.0})
    for row in accounts:
        totals[row["unit"]]["current"] += row["current"]
        totals[row["unit"]]["preview"] += row["preview"]
    return {"version": version, "facts_replayed": replayed, "accounts": accounts, "totals": dict(totals),
            "changed_accounts": sum(1 for r in accounts if r["delta"] != 0)}


async def adopt_rule_set(*, sessions: async_sessionmaker[AsyncSession], version: str, rescore: bool, adopted_by: str) -> dict:
    """Adopt a draft; with `rescore`, post one adjusting entry per account to what the preview says, in the same transaction."""
    adjusted = 0
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        await conn.execute("SELECT pg_advisory_xact_lock(7246600)")
        draft, status = await _draft(conn, version)
        if status == "adopted":
            raise Conflict(f"规则版本 {version} 已启用", field="version")
        if rescore:
            book = (await rule_book(session, refresh=True)).with_version(draft)
            preview, _ = await _replay_totals(session, book)
            current = await _scored_totals(session)
            lines = []
            for row in _diff(current, preview):
                delta = Decimal(str(row["delta"]))
                if delta != 0:
                    vid = row["account"].split(":", 1)[1] if row["account"].startswith("volunteer:") else None
                    lines.append(Line(f"rescore.{row['account']}.{row['unit']}", row["account"], row["unit"], delta,
                                      f"规则 {version} 重新计分调整", vid))
            postings = postings_for(lines, source_key=f"rescore:{version}", rule_version=version, source_event_id=f"rescore:{version}")
            adjusted = len(await post_entries(session, postings))
        await conn.execute("UPDATE rule_sets SET status = 'adopted', adopted_at = now() WHERE version = $1", version)
    _books.clear()
    result = await get_rule_set(sessions=sessions, version=version)
    result["adjusting_entries"] = adjusted
    return result


def now_utc() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)
