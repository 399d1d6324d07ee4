"""QR registration invites: issue for a grid, render as PNG or SVG, and register a volunteer with one."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import qrcode
import qrcode.image.pure
import qrcode.image.svg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal, Role
from shouwang_shared.errors import AppError, Forbidden, NotFound, Unprocessable
from shouwang_shared.pii import PiiCipher

from registry.access import INVITE_ISSUERS, ensure_covers
from registry.invite_token import BadInviteToken, open_invite, sign_invite
from registry.orgs import get_grid
from registry.schemas import InviteCreate, RegistrationCreate
from registry.volunteers import check_teams, insert_volunteer, public_view, seal_identity, utcnow

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
    try:
        uuid.UUID(invite_id)
    except ValueError as exc:
        raise NotFound("邀请不存在", field=field) from exc
    row = (await session.execute(
        text(f"SELECT {INVITE_COLUMNS} FROM invites WHERE id = CAST(:id AS uuid){' FOR UPDATE' if lock else ''}"), {"id": invite_id}
    )).mappings().first()
    if row is None:
        raise NotFound("邀请不存在", field=field)
    return row


def qr_image(payload: str, *, fmt: str) -> tuple[bytes, str]:
    """The QR code of `payload` as PNG or SVG bytes, with its media type."""
    factory = qrcode.image.svg.SvgPathImage if fmt == "svg" else qrcode.image.pure.PyPNGImage
    image = qrcode.make(payload, image_factory=factory, box_size=8, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue(), "image/svg+xml" if fmt == "svg" else "image/png"


async def invite_qr(*, sessions: Sessions, key: bytes, registration_url: str, principal: Principal, invite_id: str, fmt: str) -> tuple[bytes, str]:
    """The QR image of an invite in scope."""
    invite = await get_invite(sessions=sessions, key=key, registration_url=registration_url, principal=principal, invite_id=invite_id)
    return qr_image(invite["registration_url"], fmt=fmt)


async def register_with_invite(*, sessions: Sessions, cipher: PiiCipher, key: bytes, data: RegistrationCreate) -> dict:
    """A person registers themself through a QR invite: an applicant tied to the invite's grid and station."""
    try:
        invite_id = open_invite(key, data.invite_token)
    except BadInviteToken as exc:
        raise Unprocessable(str(exc), field="invite_token", code="bad_invite") from exc
    identity = seal_identity(cipher, real_name=data.real_name, national_id=data.national_id, phone=data.phone)
    async with sessions() as session, session.begin():
        invite = (await session.execute(
            text(f"SELECT {', '.join('i.' + c.strip() for c in INVITE_COLUMNS.split(','))}, g.station_id, g.org_path AS grid_path "
                 f"FROM invites i JOIN grids g ON g.id = i.grid_id WHERE i.id = CAST(:id AS uuid)"), {"id": invite_id},
        )).mappings().first()
        if invite is None:
            raise NotFound("邀请不存在", field="invite_token")
        _ensure_usable(invite)
        await check_teams(session, data.teams)
        row = await insert_volunteer(
            session, identity=identity, profile=data, org_unit_id=str(invite["station_id"]), org_path=invite["grid_path"],
            grid_id=str(invite["grid_id"]), recruited_by=str(invite["recruiter_id"]) if invite["recruiter_id"] else None,
            status="applicant", changed_by=f"invite:{invite_id}",
        )
        # Counted last, with the limits re-checked atomically, so the invite row is locked only for the commit.
        counted = (await session.execute(
            text(f"UPDATE invites SET uses = uses + 1 WHERE id = :id AND NOT revoked AND expires_at > now() "
                 f"AND uses < max_uses RETURNING {INVITE_COLUMNS}"), {"id": invite["id"]},
        )).mappings().first()
        if counted is None:
            _ensure_usable(await _load_invite(session, invite_id, field="invite_token"))
            raise Gone("邀请已失效", field="invite_token", code="invite_unusable")
    view = public_view(row)
    return {"volunteer_id": view["id"], "status": view["status"], "display_name": view["display_name"],
            "national_id_masked": view["national_id_masked"], "phone_masked": view["phone_masked"], "grid_id": view["grid_id"]}


def _ensure_usable(invite: Any) -> None:
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
