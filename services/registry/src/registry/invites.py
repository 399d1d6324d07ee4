"""QR registration invites: issue for a grid, render as PNG or SVG, revoke (registering with one: `registrations`)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal, Role
from shouwang_shared.errors import AppError, Forbidden, NotFound, id_or_404

from registry.access import INVITE_ISSUERS, ensure_covers
from registry.invite_token import sign_invite
from registry.orgs import get_grid
from registry.qr import qr_image
from registry.schemas import InviteCreate
from registry.volunteers import utcnow

Sessions = async_sessionmaker[AsyncSession]
INVITE_COLUMNS = "id, grid_id, org_path, issued_by, recruiter_id, max_uses, uses, expires_at, revoked"


class Gone(AppError):
    status_code = 410
    code = "gone"


def invite_view(row: Any, *, key: bytes, registration_url: str) -> dict:
    """An invite as the API returns it, with its signed token and the URL its QR code opens."""
    token = sign_invite(key, str(row["id"]))
    return {
        "id": str(row["id"]), "grid_id": str(row["grid_id"]), "org_path": row["org_path"], "token": token,
        "registration_url": f"{registration_url}?invite={quote(token)}", "max_uses": row["max_uses"], "uses": row["uses"],
        "expires_at": row["expires_at"], "revoked": row["revoked"],
    }


async def issue_invite(*, sessions: Sessions, key: bytes, registration_url: str, principal: Principal, data: InviteCreate) -> dict:
    """A grid worker (their own grid) or an admin (a grid in scope) issues an expiring invite."""
    if principal.role not in INVITE_ISSUERS:
        raise Forbidden("无权签发登记邀请", field="role", code="role_forbidden")
    async with sessions() as session, session.begin():
        grid = await get_grid(session, data.grid_id, status=422)
        ensure_covers(principal, grid["org_path"], field="grid_id")
        if principal.role == Role.GRID_WORKER and str(grid["grid_worker_id"]) != principal.sub:
            raise Forbidden("网格员只能为本人负责的网格签发邀请", field="grid_id", code="not_yours")
        recruiter = principal.sub if principal.role == Role.GRID_WORKER else (str(grid["grid_worker_id"]) if grid["grid_worker_id"] else None)
        row = (await session.execute(
            text(f"INSERT INTO invites (id, grid_id, org_path, issued_by, recruiter_id, max_uses, expires_at) "
                 f"VALUES (:id, :g, :p, :by, CAST(:r AS uuid), :m, :exp) RETURNING {INVITE_COLUMNS}"),
            {"id": uuid.uuid4(), "g": grid["id"], "p": grid["org_path"], "by": principal.sub, "r": recruiter,
             "m": data.max_uses, "exp": utcnow() + timedelta(hours=data.ttl_hours)},
        )).mappings().one()
    return invite_view(row, key=key, registration_url=registration_url)


async def get_invite(*, sessions: Sessions, key: bytes, registration_url: str, principal: Principal, invite_id: str) -> dict:
    """One invite in the principal's scope."""
    async with sessions() as session:
        row = await _load_invite(session, invite_id)
    ensure_covers(principal, row["org_path"], field="invite_id")
    return invite_view(row, key=key, registration_url=registration_url)


async def _load_invite(session: AsyncSession, invite_id: str, *, lock: bool = False, field: str = "invite_id") -> Any:
    id_or_404(invite_id, field=field, message="邀请不存在")
    row = (await session.execute(
        text(f"SELECT {INVITE_COLUMNS} FROM invites WHERE id = CAST(:id AS uuid){' FOR UPDATE' if lock else ''}"), {"id": invite_id}
    )).mappings().first()
    if row is None:
        raise NotFound("邀请不存在", field=field)
    return row


async def invite_qr(*, sessions: Sessions, key: bytes, registration_url: str, principal: Principal, invite_id: str, fmt: str) -> tuple[bytes, str]:
    """The QR image of an invite in scope."""
    invite = await get_invite(sessions=sessions, key=key, registration_url=registration_url, principal=principal, invite_id=invite_id)
    return qr_image(invite["registration_url"], fmt=fmt)


def ensure_usable(invite: Any) -> None:
    """410 naming `invite_token` when the invite is revoked, expired or used up."""
    if invite["revoked"]:
        raise Gone("邀请已被撤销", field="invite_token", code="invite_revoked")
    if invite["expires_at"] <= utcnow():
        raise Gone("邀请已过期", field="invite_token", code="invite_expired")
    if invite["uses"] >= invite["max_uses"]:
        raise Gone("邀请已达到使用次数上限", field="invite_token", code="invite_used_up")


async def revoke_invite(*, sessions: Sessions, key: bytes, registration_url: str, principal: Principal, invite_id: str) -> dict:
    """Stop an invite from being used again."""
    async with sessions() as session, session.begin():
        row = await _load_invite(session, invite_id, lock=True)
        ensure_covers(principal, row["org_path"], field="invite_id")
        row = (await session.execute(
            text(f"UPDATE invites SET revoked = true WHERE id = :id RETURNING {INVITE_COLUMNS}"), {"id": row["id"]}
        )).mappings().one()
    return invite_view(row, key=key, registration_url=registration_url)
