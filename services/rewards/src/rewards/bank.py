"""The alliance bank's use cases: balances and line items, the benefit catalogue, redemptions, claims of held rewards."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.db import raw_connection
from shouwang_shared.errors import Conflict, NotFound, Unprocessable
from shouwang_shared.pii import PiiCipher

from rewards.ledger import Posting, post_entries
from rewards.rules import rule_book
from rewards.scoring import money, pending_account, tip_day

REDEEMED = "alliance:points_redeemed"


def volunteer_account(volunteer_id: str) -> str:
    """The ledger account of a volunteer."""
    return f"volunteer:{volunteer_id}"


def _parsed_uuid(value: str, *, field: str, what: str) -> uuid.UUID:
    """A UUID from a path or body value; a clear 422 naming the field otherwise."""
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise Unprocessable(f"{what}格式不正确", field=field) from exc


async def balances_of(*, sessions: async_sessionmaker[AsyncSession], account: str) -> dict:
    """Points and hours held on an account (spendable), and its tip points still pending review (not spendable)."""
    async with sessions() as session:
        conn = await raw_connection(session)
        rows = await conn.fetch("SELECT account, unit, balance FROM balances WHERE account = ANY($1::text[])", [account, pending_account(account)])
    held = {(r["account"] != account, r["unit"]): float(r["balance"]) for r in rows}
    return {"account": account, "points": held.get((False, "points"), 0.0), "hours": held.get((False, "hours"), 0.0),
            "pending_points": held.get((True, "points"), 0.0)}


async def tips_today(*, sessions: async_sessionmaker[AsyncSession], account: str, now: datetime) -> dict:
    """How many tips the reporter sent today (China time) against the daily cap; tips beyond it earned no points."""
    async with sessions() as session:
        conn = await raw_connection(session)
        tips = await conn.fetchval("SELECT tips FROM tip_days WHERE reporter = $1 AND day = $2", account, tip_day(now)) or 0
        rules = (await rule_book(session)).current(now)
    cap = rules.tip_daily_cap if rules else 0
    return {"tips": tips, "cap": cap, "over_cap": max(tips - cap, 0)}


async def line_items(
    *, sessions: async_sessionmaker[AsyncSession], accounts: list[str], unit: str | None = None, before_seq: int | None = None, limit: int = 50,
) -> dict:
    """The entries behind the accounts' balances, newest first: account, amount (signed), why, rule version and source event."""
    async with sessions() as session:
        conn = await raw_connection(session)
        rows = await conn.fetch(
            """
            SELECT * FROM (
                SELECT seq, entry_id::text, credit_account AS account, unit, amount, reason, rule_version, rule_line, source_event_id,
                       corrects_entry_id::text, posted_at FROM ledger_entries WHERE credit_account = ANY($1::text[])
                UNION ALL
                SELECT seq, entry_id::text, debit_account, unit, -amount, reason, rule_version, rule_line, source_event_id,
                       corrects_entry_id::text, posted_at FROM ledger_entries
                WHERE debit_account = ANY($1::text[]) AND debit_account NOT LIKE 'alliance:%'
            ) e WHERE ($2::text IS NULL OR unit = $2) AND ($3::bigint IS NULL OR seq < $3)
            ORDER BY seq DESC LIMIT $4
            """,
            accounts, unit, before_seq, limit,
        )
    items = [{**dict(r), "amount": float(r["amount"])} for r in rows]
    return {"accounts": accounts, "items": items, "next_before_seq": items[-1]["seq"] if len(items) == limit else None}


async def create_benefit(*, sessions: async_sessionmaker[AsyncSession], name: str, description: str, cost_points: Decimal, stock: int) -> dict:
    """Add a benefit to the catalogue."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await conn.fetchrow(
            "INSERT INTO benefits (benefit_id, name, description, cost_points, stock) VALUES ($1, $2, $3, $4, $5) RETURNING *",
            uuid.uuid4(), name, description, money(cost_points), stock,
        )
    return _benefit(row)


def _benefit(row) -> dict:
    return {**dict(row), "benefit_id": str(row["benefit_id"]), "cost_points": float(row["cost_points"])}


async def list_benefits(*, sessions: async_sessionmaker[AsyncSession]) -> list[dict]:
    """The active catalogue with stock."""
    async with sessions() as session:
        conn = await raw_connection(session)
        rows = await conn.fetch("SELECT * FROM benefits WHERE active ORDER BY cost_points, name")
    return [_benefit(r) for r in rows]


async def redeem(
    *, sessions: async_sessionmaker[AsyncSession], volunteer_id: str, benefit_id: str, quantity: int, idempotency_key: str | None = None,
) -> dict:
    """Spend points on a benefit: stock and balance are checked under row locks, so a redemption never overdraws."""
    account = volunteer_account(volunteer_id)
    benefit_uuid = _parsed_uuid(benefit_id, field="benefit_id", what="权益编号")
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        if idempotency_key:
            done = await conn.fetchrow(
                "SELECT * FROM redemptions WHERE volunteer_id = $1 AND idempotency_key = $2", volunteer_id, idempotency_key
            )
            if done is not None:
                return _redemption(done)
        benefit = await conn.fetchrow(
            "UPDATE benefits SET stock = stock - $2 WHERE benefit_id = $1 AND active AND stock >= $2 RETURNING name, cost_points",
            benefit_uuid, quantity,
        )
        if benefit is None:
            exists = await conn.fetchval("SELECT stock FROM benefits WHERE benefit_id = $1 AND active", benefit_uuid)
            if exists is None:
                raise NotFound("没有该权益", field="benefit_id")
            raise Conflict(f"库存不足：剩余 {exists} 份", field="quantity", code="out_of_stock")
        cost = benefit["cost_points"] * quantity
        held = await conn.fetchval(
            "SELECT balance FROM balances WHERE account = $1 AND unit = 'points' FOR UPDATE", account
        ) or Decimal(0)
        if held < cost:
            raise Conflict(f"积分不足：需要 {cost}，可用 {held}", field="quantity", code="insufficient_points")
        redemption_id = uuid.uuid4()
        entry_id = str(uuid.uuid4())
        await post_entries(session, [Posting(
            effect_key=f"redemption:{redemption_id}|redemption", debit_account=account, credit_account=REDEEMED,
            volunteer_id=volunteer_id, unit="points", amount=cost, reason=f"兑换{benefit['name']} × {quantity}",
            rule_version="-", rule_line="redemption", source_event_id=f"redemption:{redemption_id}", entry_id=entry_id,
        )])
        row = await conn.fetchrow(
            "INSERT INTO redemptions (redemption_id, volunteer_id, benefit_id, quantity, points, entry_id, idempotency_key) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
            redemption_id, volunteer_id, benefit_uuid, quantity, cost, uuid.UUID(entry_id), idempotency_key,
        )
    return _redemption(row)


def _redemption(row) -> dict:
    """A redemption as its volunteer sees it: what, for how many points, and where it stands (a decline with its reason)."""
    return {
        "redemption_id": str(row["redemption_id"]), "volunteer_id": row["volunteer_id"], "benefit_id": str(row["benefit_id"]),
        "quantity": row["quantity"], "points": float(row["points"]), "entry_id": str(row["entry_id"]), "created_at": row["created_at"],
        "status": row["status"], "decided_at": row["decided_at"], "decline_reason": row["decline_reason"],
        "refund_entry_id": str(row["refund_entry_id"]) if row["refund_entry_id"] else None,
    }


async def list_redemptions(*, sessions: async_sessionmaker[AsyncSession], volunteer_id: str) -> list[dict]:
    """A volunteer's redemptions, newest first."""
    async with sessions() as session:
        conn = await raw_connection(session)
        rows = await conn.fetch("SELECT * FROM redemptions WHERE volunteer_id = $1 ORDER BY created_at DESC LIMIT 200", volunteer_id)
    return [_redemption(r) for r in rows]


async def claim_held_rewards(
    *, sessions: async_sessionmaker[AsyncSession], cipher: PiiCipher, claim_ref: str, volunteer_id: str | None, payout_target: str | None,
) -> dict:
    """Move what an anonymous reporter holds (`claim:<claim_ref>`, reviewed points only) to a volunteer or to `payout:<claim_id>`.

    Points still pending review stay where they are. An outside payout target is stored only encrypted.
    """
    source = f"claim:{claim_ref}"
    claim_id = uuid.uuid4()
    target = volunteer_account(volunteer_id) if volunteer_id else f"payout:{claim_id}"
    sealed = cipher.encrypt(payout_target, context=target) if payout_target else None
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        held = await conn.fetch(
            "SELECT unit, balance FROM balances WHERE account = $1 AND balance > 0 ORDER BY unit FOR UPDATE", source
        )
        if not held and not await conn.fetchval(
            "SELECT 1 FROM ledger_entries WHERE credit_account = ANY($1::text[]) LIMIT 1", [source, pending_account(source)]
        ):
            raise NotFound("该回执没有待领取的奖励", field="claim_ref")
        await post_entries(session, [
            Posting(
                effect_key=f"claim:{claim_id}|{r['unit']}", debit_account=source, credit_account=target, volunteer_id=volunteer_id,
                unit=r["unit"], amount=r["balance"], reason="领取匿名举报奖励", rule_version="-", rule_line="claim.transfer",
                source_event_id=f"claim:{claim_id}", entry_id=str(uuid.uuid4()),
            )
            for r in held
        ])
        amounts = {r["unit"]: r["balance"] for r in held}
        await conn.execute(
            "INSERT INTO claims (claim_id, claim_ref, target, target_sealed, points, hours) VALUES ($1, $2, $3, $4, $5, $6)",
            claim_id, claim_ref, target, sealed, amounts.get("points", Decimal(0)), amounts.get("hours", Decimal(0)),
        )
        pending = await conn.fetchval(
            "SELECT balance FROM balances WHERE account = $1 AND unit = 'points'", pending_account(source)
        ) or Decimal(0)
    return {"claim_id": str(claim_id), "target": target, "points": float(amounts.get("points", 0)), "hours": float(amounts.get("hours", 0)),
            "pending_points": float(pending)}


async def reveal_payout_target(
    *, sessions: async_sessionmaker[AsyncSession], cipher: PiiCipher, claim_id: str, reason: str, revealed_by: str,
) -> dict:
    """Decrypt an anonymous claim's payout target for the operator paying it, writing an audit row in the same transaction."""
    claim_uuid = _parsed_uuid(claim_id, field="claim_id", what="领取编号")
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        row = await conn.fetchrow("SELECT target, target_sealed, points, hours FROM claims WHERE claim_id = $1", claim_uuid)
        if row is None or row["target_sealed"] is None:
            raise NotFound("没有该匿名领取记录", field="claim_id")
        await conn.execute(
            "INSERT INTO payout_reveals (claim_id, reason, revealed_by) VALUES ($1, $2, $3)", claim_uuid, reason, revealed_by
        )
    return {"claim_id": claim_id, "account": row["target"], "payout_target": cipher.decrypt(row["target_sealed"], context=row["target"]),
            "points": float(row["points"]), "hours": float(row["hours"])}
