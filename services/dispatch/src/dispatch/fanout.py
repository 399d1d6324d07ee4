"""Hierarchical fan-out: a county quota split to towns/branches, then stations and grids; each level accepts and re-splits its share."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal
from shouwang_shared.db import raw_connection
from shouwang_shared.errors import Conflict, Forbidden, NotFound, Unprocessable

from dispatch.access import ensure_staff_covers
from dispatch.operations import operation_or_404
from dispatch.schemas import QuotaAcceptCreate, QuotaShare, QuotaSplitCreate

Sessions = async_sessionmaker[AsyncSession]


def is_below(child: str, parent: str) -> bool:
    """True when `child` is a strict descendant of `parent` in the org path tree."""
    return child.startswith(parent.rstrip("/") + "/")


def check_split(parent_path: str, parent_headcount: int, kept: dict[str, int], shares: list[QuotaShare]) -> None:
    """422 naming the field unless every share lies below the parent, appears once, and all fit in the parent quota."""
    seen = set()
    for i, share in enumerate(shares):
        if not is_below(share.org_path, parent_path):
            raise Unprocessable(f"{share.org_path} 不在 {parent_path} 之下 (a share must go to a lower org unit)", field=f"shares[{i}].org_path")
        if share.org_path in seen:
            raise Unprocessable("同一组织重复分配 (an org unit appears twice)", field=f"shares[{i}].org_path")
        seen.add(share.org_path)
    total = sum(s.headcount for s in shares) + sum(n for path, n in kept.items() if path not in seen)
    if total > parent_headcount:
        raise Unprocessable(f"分配合计 {total} 超过上级名额 {parent_headcount} (shares exceed the parent quota)", field="shares")


async def _root(conn, operation, by: str):
    root = await conn.fetchrow("SELECT * FROM quotas WHERE operation_id = $1 AND parent_id IS NULL", operation["id"])
    if root is None:
        heads = await conn.fetchval("SELECT coalesce(sum(headcount), 0) FROM posts WHERE operation_id = $1", operation["id"])
        root = await conn.fetchrow(
            "INSERT INTO quotas (id, operation_id, org_path, headcount, status, set_by, accepted_by, accepted_at)"
            " VALUES ($1, $2, $3, $4, 'accepted', $5, $5, now()) RETURNING *",
            uuid.uuid4(), operation["id"], operation["org_path"], int(heads), by,
        )
    return root


async def split_quota(*, sessions: Sessions, principal: Principal, operation_id: str, body: QuotaSplitCreate) -> dict:
    """Hand parts of an accepted quota to lower org units (re-splitting replaces shares not yet accepted)."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        operation = await operation_or_404(conn, operation_id, lock=True)
        parent_path = body.parent_org_path or operation["org_path"]
        ensure_staff_covers(principal, parent_path, field="parent_org_path")
        root = await _root(conn, operation, principal.sub)
        parent = root if parent_path == root["org_path"] else await conn.fetchrow(
            "SELECT * FROM quotas WHERE operation_id = $1 AND org_path = $2", operation["id"], parent_path
        )
        if parent is None:
            raise NotFound("该组织没有名额 (no quota for this org unit)", field="parent_org_path")
        if parent["status"] != "accepted":
            raise Conflict("须先接受本级名额再分配 (accept this quota before splitting it)", field="parent_org_path")
        children = await conn.fetch("SELECT org_path, headcount, status FROM quotas WHERE parent_id = $1", parent["id"])
        accepted = {c["org_path"] for c in children if c["status"] == "accepted"}
        for i, share in enumerate(body.shares):
            if share.org_path in accepted:
                raise Conflict("该名额已被接受，不能修改 (that share was already accepted)", field=f"shares[{i}].org_path")
        check_split(parent_path, parent["headcount"], {c["org_path"]: c["headcount"] for c in children}, body.shares)
        for share in body.shares:
            await conn.execute(
                "INSERT INTO quotas (id, operation_id, parent_id, org_path, headcount, set_by) VALUES ($1, $2, $3, $4, $5, $6)"
                " ON CONFLICT (operation_id, org_path) DO UPDATE SET headcount = EXCLUDED.headcount, set_by = EXCLUDED.set_by",
                uuid.uuid4(), operation["id"], parent["id"], share.org_path, share.headcount, principal.sub,
            )
    return await quota_tree(sessions=sessions, principal=principal, operation_id=operation_id)


async def accept_quota(*, sessions: Sessions, principal: Principal, operation_id: str, body: QuotaAcceptCreate) -> dict:
    """The level named takes on its share (and may then split it further)."""
    ensure_staff_covers(principal, body.org_path)
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        operation = await operation_or_404(conn, operation_id)
        row = await conn.fetchrow(
            "UPDATE quotas SET status = 'accepted', accepted_by = $3, accepted_at = $4"
            " WHERE operation_id = $1 AND org_path = $2 AND status = 'proposed' RETURNING id",
            operation["id"], body.org_path, principal.sub, datetime.now(UTC),
        )
        if row is None and not await conn.fetchval(
            "SELECT 1 FROM quotas WHERE operation_id = $1 AND org_path = $2", operation["id"], body.org_path
        ):
            raise NotFound("该组织没有名额 (no quota for this org unit)", field="org_path")
    return await quota_tree(sessions=sessions, principal=principal, operation_id=operation_id)


async def quota_tree(*, sessions: Sessions, principal: Principal, operation_id: str) -> dict:
    """Every quota the caller may see, with what was split further and roll-up counts of the volunteers serving from below it."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        operation = await operation_or_404(conn, operation_id)
        quotas = await conn.fetch("SELECT * FROM quotas WHERE operation_id = $1 ORDER BY org_path", operation["id"])
        served = await conn.fetch(
            "SELECT v.org_path, a.status, count(*) AS n FROM assignments a JOIN volunteers v USING (volunteer_id)"
            " WHERE a.operation_id = $1 GROUP BY v.org_path, a.status",
            operation["id"],
        )
    visible = [q for q in quotas if principal.covers(q["org_path"])]
    if quotas and not visible:
        raise Forbidden("没有可查看的名额 (no quota in your org scope)", code="out_of_scope")
    if not quotas:
        ensure_staff_covers(principal, operation["org_path"])
    split_out = Counter()
    for q in quotas:
        if q["parent_id"] is not None:
            split_out[q["parent_id"]] += q["headcount"]
    nodes = []
    for q in visible:
        counts = Counter()
        for s in served:
            if s["org_path"] == q["org_path"] or is_below(s["org_path"], q["org_path"]):
                counts[s["status"]] += s["n"]
        nodes.append({
            "org_path": q["org_path"], "parent_org_path": next((p["org_path"] for p in quotas if p["id"] == q["parent_id"]), None),
            "quota": q["headcount"], "status": q["status"], "split_out": split_out[q["id"]],
            "unsplit": q["headcount"] - split_out[q["id"]],
            "offered": sum(counts.values()), "accepted": counts["accepted"] + counts["checked_in"] + counts["checked_out"],
            "checked_in": counts["checked_in"] + counts["checked_out"],
        })
    return {"operation_id": str(operation["id"]), "quotas": nodes}
