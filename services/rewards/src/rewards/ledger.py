"""The alliance bank's double-entry ledger: bulk posting in the caller's transaction, and its audit.

Every entry moves a positive `amount` from `debit_account` to `credit_account`; an account's balance
is its credits minus its debits, so all balances of a unit sum to zero. Credits come from the
issuing accounts `alliance:points_issued` / `alliance:hours_issued`; a reversal is an entry the other
way that names the entry it corrects. `effect_key` (source fact + rule line) is unique, so an effect
is posted once however often its event arrives. Balances are kept in `balances`, updated in the same
transaction as the entries; `check_ledger` proves they equal the sums of the entries.

The alliance's own accounts (`alliance:…`) are on nearly every entry, so each keeps its balance in several slot rows
(migration 0006): a posting moves the first slot no other transaction holds (FOR UPDATE SKIP LOCKED), so concurrent
consumers never queue on them. Their balance is the sum of their slots; every other account has one row (slot 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.contracts.rewards import LedgerEntryPosted
from shouwang_shared.db import raw_connection
from shouwang_shared.envelope import Cause, fast_event_id, fast_event_ids
from shouwang_shared.outbox import enqueue_many, outbox_row

from rewards.scoring import ISSUED, PENDING, Line

ANNOUNCED_ACCOUNTS = ("volunteer:", f"{PENDING}volunteer:")  # never an anonymous reporter's claim, pending or payout account


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
    cause: Cause | None = None
    entry_id: str = ""


def postings_for(
    lines: list[Line], *, source_key: str, rule_version: str, source_event_id: str,
    cause: Cause | None = None, corrects: dict[str, str] | None = None,
) -> list[Posting]:
    """Turn scored lines into postings: a positive line is a credit from the issuing account (or from its `from_account`),
    a negative one a reversal."""
    out = []
    for line in lines:
        if line.amount == 0:
            continue
        issued = line.from_account or ISSUED[line.unit]
        debit, credit = (issued, line.account) if line.amount > 0 else (line.account, issued)
        out.append(Posting(
            effect_key=f"{line.key or source_key}|{line.rule_line}", debit_account=debit, credit_account=credit,
            volunteer_id=line.volunteer_id, unit=line.unit, amount=abs(line.amount), reason=line.reason,
            rule_version=rule_version, rule_line=line.rule_line, source_event_id=source_event_id,
            corrects_entry_id=(corrects or {}).get(line.rule_line), cause=cause, entry_id=fast_event_id(),
        ))
    return out


POST = """
WITH facts AS (
    INSERT INTO scored_facts (event_id, event_type, occurred_at, data)
    SELECT e, t, o, d::jsonb FROM unnest($13::text[], $14::text[], $15::timestamptz[], $16::text[]) AS f(e, t, o, d)
), ins AS (
    INSERT INTO ledger_entries (entry_id, effect_key, debit_account, credit_account, volunteer_id, unit, amount,
                                reason, rule_version, rule_line, source_event_id, corrects_entry_id)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::numeric[],
                         $8::text[], $9::text[], $10::text[], $11::text[], $12::uuid[])
    ON CONFLICT (effect_key) DO NOTHING
    RETURNING entry_id, seq, debit_account, credit_account, volunteer_id, unit, amount, posted_at
), legs AS (
    SELECT entry_id, seq, credit_account AS account, unit, amount AS delta FROM ins
    UNION ALL
    SELECT entry_id, seq, debit_account, unit, -amount FROM ins
), slots AS MATERIALIZED (
    SELECT a.account, a.unit, free.slot
    FROM (SELECT DISTINCT account, unit FROM legs WHERE account LIKE 'alliance:%') a
    CROSS JOIN LATERAL (
        SELECT slot FROM balances s WHERE s.account = a.account AND s.unit = a.unit ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED
    ) free
), moved AS (
    INSERT INTO balances AS b (account, unit, slot, balance)
    SELECT l.account, l.unit, coalesce(s.slot, 0), sum(l.delta) FROM legs l LEFT JOIN slots s USING (account, unit)
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (account, unit, slot) DO UPDATE SET balance = b.balance + excluded.balance, updated_at = now()
    RETURNING account, unit, balance
), marked AS (
    INSERT INTO volunteer_standing AS s (volunteer_id, needs_review)
    SELECT DISTINCT volunteer_id, TRUE FROM ins WHERE volunteer_id IS NOT NULL ORDER BY 1
    ON CONFLICT (volunteer_id) DO UPDATE SET needs_review = TRUE WHERE NOT s.needs_review
)
SELECT l.entry_id::text AS entry_id, l.account, l.delta, i.posted_at,
       m.balance - coalesce(sum(l.delta) OVER (PARTITION BY l.account, l.unit ORDER BY l.seq DESC
                                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS balance_after
FROM legs l JOIN moved m USING (account, unit) JOIN ins i USING (entry_id)
WHERE l.account NOT LIKE 'alliance:%'
ORDER BY l.seq
"""


async def post_entries(
    session: AsyncSession, postings: list[Posting], facts: list[tuple[str, str, datetime, str]] = (),
) -> list[Posting]:
    """Journal `facts`, insert postings not yet posted, move balances, flag stars and emit `LedgerEntryPosted`, in one statement.

    Only the legs of a volunteer's own accounts (spendable and pending) are announced: an anonymous reporter's
    `claim:`, `pending:claim:` and `payout:` legs are never published, so nothing on Kafka links a claim to a tip.
    Returns the postings actually posted (a posting whose effect key exists already is skipped).
    """
    if not postings and not facts:
        return []
    unique: dict[str, Posting] = {}
    for p in postings:
        unique.setdefault(p.effect_key, p)
    postings = list(unique.values())
    conn = await raw_connection(session)
    rows = await conn.fetch(
        POST,
        [p.entry_id for p in postings], [p.effect_key for p in postings], [p.debit_account for p in postings],
        [p.credit_account for p in postings], [p.volunteer_id for p in postings], [p.unit for p in postings],
        [p.amount for p in postings], [p.reason for p in postings], [p.rule_version for p in postings],
        [p.rule_line for p in postings], [p.source_event_id for p in postings], [p.corrects_entry_id for p in postings],
        [f[0] for f in facts], [f[1] for f in facts], [f[2] for f in facts], [f[3] for f in facts],
    )
    if not rows:
        return []
    by_id = {p.entry_id: p for p in postings}
    events, posted = [], {}
    event_ids = iter(fast_event_ids(len(rows)))  # one draw of randomness for the batch's events, not one per event
    for r in rows:
        p = by_id[r["entry_id"]]
        posted[p.entry_id] = p
        account = r["account"]
        if not account.startswith(ANNOUNCED_ACCOUNTS):
            continue
        entry = LedgerEntryPosted(
            entry_id=p.entry_id, account=account, volunteer_id=p.volunteer_id, unit=p.unit, amount=float(r["delta"]),
            balance_after=float(r["balance_after"]), reason=p.reason, rule_version=p.rule_version, rule_line=p.rule_line,
            source_event_id=p.source_event_id, posted_at=r["posted_at"],
        )
        events.append(outbox_row(entry, subject=account, caused_by=p.cause, event_id=next(event_ids)))
    await enqueue_many(session, events)
    return list(posted.values())


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
        FROM sums s FULL JOIN (SELECT account, unit, sum(balance) AS balance FROM balances GROUP BY account, unit) b
          ON b.account = s.account AND b.unit = s.unit
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
        accounts = await conn.fetchval("SELECT count(*) FROM (SELECT DISTINCT account, unit FROM balances) a")
    return {"ok": not problems, "entries": entries, "accounts": accounts, "problems": problems}
