"""The alliance bank's double-entry ledger: bulk posting in the caller's transaction, and its audit.

Every entry moves a positive `amount` from `debit_account` to `credit_account`; an account's balance
is its credits minus its debits, so all balances of a unit sum to zero. Credits come from the
issuing accounts `alliance:points_issued` / `alliance:hours_issued`; a reversal is an entry the other
way that names the entry it corrects. `effect_key` (source fact + rule line) is unique, so an effect
is posted once however often its event arrives. Balances are kept in `balances`, updated in the same
transaction as the entries; `check_ledger` proves they equal the sums of the entries.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.contracts.rewards import SOURCE, LedgerEntryPosted
from shouwang_shared.db import raw_connection
from shouwang_shared.envelope import Envelope, new_event
from shouwang_shared.outbox import enqueue_many

from rewards.scoring import ISSUED, Line


@dataclass(frozen=True)
class Posting:
    """An entry ready to insert: who is debited and credited, how much, why and from which fact."""

    effect_key: str
    debit_account: str
    credit_account: str
    volunteer_id: str | None
    unit: str
    amount: Decimal
    reason: str
    rule_version: str
    rule_line: str
    source_event_id: str
    corrects_entry_id: str | None = None
    cause: Envelope | None = None
    entry_id: str = ""


def postings_for(
    lines: list[Line], *, source_key: str, rule_version: str, source_event_id: str,
    cause: Envelope | None = None, corrects: dict[str, str] | None = None,
) -> list[Posting]:
    """Turn scored lines into postings: a positive line is a credit from the issuing account, a negative one a reversal."""
    out = []
    for line in lines:
        if line.amount == 0:
            continue
        issued = ISSUED[line.unit]
        debit, credit = (issued, line.account) if line.amount > 0 else (line.account, issued)
        out.append(Posting(
            effect_key=f"{source_key}|{line.rule_line}", debit_account=debit, credit_account=credit,
            volunteer_id=line.volunteer_id, unit=line.unit, amount=abs(line.amount), reason=line.reason,
            rule_version=rule_version, rule_line=line.rule_line, source_event_id=source_event_id,
            corrects_entry_id=(corrects or {}).get(line.rule_line), cause=cause, entry_id=str(uuid.uuid4()),
        ))
    return out


INSERT_ENTRIES = """
INSERT INTO ledger_entries (entry_id, effect_key, debit_account, credit_account, volunteer_id, unit, amount,
                            reason, rule_version, rule_line, source_event_id, corrects_entry_id)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::numeric[],
                     $8::text[], $9::text[], $10::text[], $11::text[], $12::uuid[])
ON CONFLICT (effect_key) DO NOTHING
RETURNING entry_id::text, posted_at
"""

UPSERT_BALANCES = """
INSERT INTO balances (account, unit, balance)
SELECT * FROM unnest($1::text[], $2::text[], $3::numeric[])
ON CONFLICT (account, unit) DO UPDATE SET balance = balances.balance + excluded.balance, updated_at = now()
RETURNING account, unit, balance
"""

MARK_FOR_STAR_REVIEW = """
INSERT INTO volunteer_standing (volunteer_id, needs_review)
SELECT unnest($1::text[]), TRUE
ON CONFLICT (volunteer_id) DO UPDATE SET needs_review = TRUE WHERE NOT volunteer_standing.needs_review
"""


async def post_entries(session: AsyncSession, postings: list[Posting]) -> list[Posting]:
    """Insert postings not yet posted, move balances, flag stars for review and emit `LedgerEntryPosted`; returns those posted."""
    if not postings:
        return []
    unique: dict[str, Posting] = {}
    for p in postings:
        unique.setdefault(p.effect_key, p)
    postings = list(unique.values())
    conn = await raw_connection(session)
    rows = await conn.fetch(
        INSERT_ENTRIES,
        [p.entry_id for p in postings], [p.effect_key for p in postings], [p.debit_account for p in postings],
        [p.credit_account for p in postings], [p.volunteer_id for p in postings], [p.unit for p in postings],
        [p.amount for p in postings], [p.reason for p in postings], [p.rule_version for p in postings],
        [p.rule_line for p in postings], [p.source_event_id for p in postings], [p.corrects_entry_id for p in postings],
    )
    if not rows:
        return []
    posted_at = {r["entry_id"]: r["posted_at"] for r in rows}
    posted = [p for p in postings if p.entry_id in posted_at]
    await _move_balances_and_announce(session, conn, posted, posted_at)
    return posted


async def _move_balances_and_announce(session: AsyncSession, conn: asyncpg.Connection, posted: list[Posting], posted_at: dict) -> None:
    deltas: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for p in posted:
        deltas[(p.credit_account, p.unit)] += p.amount
        deltas[(p.debit_account, p.unit)] -= p.amount
    keys = sorted(deltas)  # a fixed order, so concurrent transactions never deadlock on balance rows
    rows = await conn.fetch(UPSERT_BALANCES, [k[0] for k in keys], [k[1] for k in keys], [deltas[k] for k in keys])
    running = {(r["account"], r["unit"]): r["balance"] - deltas[(r["account"], r["unit"])] for r in rows}
    volunteers = sorted({p.volunteer_id for p in posted if p.volunteer_id})
    if volunteers:
        await conn.execute(MARK_FOR_STAR_REVIEW, volunteers)
    events = []
    for p in posted:
        for account, sign in ((p.debit_account, -1), (p.credit_account, 1)):
            if account.startswith("alliance:"):
                continue
            running[(account, p.unit)] += sign * p.amount
            payload = LedgerEntryPosted(
                entry_id=p.entry_id, account=account, volunteer_id=p.volunteer_id if account.startswith("volunteer:") else None,
                unit=p.unit, amount=float(sign * p.amount), balance_after=float(running[(account, p.unit)]), reason=p.reason,
                rule_version=p.rule_version, source_event_id=p.source_event_id, posted_at=posted_at[p.entry_id],
            )
            event = new_event(source=SOURCE, type=LedgerEntryPosted.TYPE, subject=account, data=payload, caused_by=p.cause)
            events.append((LedgerEntryPosted.TOPIC, account, event))
    await enqueue_many(session, events)


async def ledger_mismatches(session: AsyncSession) -> list[dict]:
    """Accounts whose stored balance differs from the sum of their entries, plus any unit whose total is not zero."""
    conn = await raw_connection(session)
    rows = await conn.fetch(
        """
        WITH sums AS (
            SELECT account, unit, sum(delta) AS total FROM (
                SELECT credit_account AS account, unit, amount AS delta FROM ledger_entries
                UNION ALL
                SELECT debit_account, unit, -amount FROM ledger_entries
            ) legs GROUP BY account, unit
        )
        SELECT coalesce(s.account, b.account) AS account, coalesce(s.unit, b.unit) AS unit,
               coalesce(s.total, 0) AS from_entries, coalesce(b.balance, 0) AS stored
        FROM sums s FULL JOIN balances b ON b.account = s.account AND b.unit = s.unit
        WHERE coalesce(s.total, 0) <> coalesce(b.balance, 0)
        """
    )
    problems = [{"account": r["account"], "unit": r["unit"], "from_entries": float(r["from_entries"]), "stored": float(r["stored"])} for r in rows]
    for r in await conn.fetch("SELECT unit, sum(balance) AS total FROM balances GROUP BY unit HAVING sum(balance) <> 0"):
        problems.append({"account": "*", "unit": r["unit"], "from_entries": 0.0, "stored": float(r["total"])})
    return problems


async def check_ledger(*, sessions: async_sessionmaker[AsyncSession]) -> dict:
    """Audit the ledger: every balance equals the sum of its entries and each unit nets to zero."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        problems = await ledger_mismatches(session)
        entries = await conn.fetchval("SELECT count(*) FROM ledger_entries")
        accounts = await conn.fetchval("SELECT count(*) FROM balances")
    return {"ok": not problems, "entries": entries, "accounts": accounts, "problems": problems}
