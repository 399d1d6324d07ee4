"""Staff use case: the check-in token of a post, and its printable QR, for staff whose scope covers the post."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal
from shouwang_shared.db import raw_connection
from shouwang_shared.errors import Conflict, NotFound

from dispatch.access import ensure_staff_covers
from dispatch.attendance import CHECK_IN_EARLY
from dispatch.checkin_qr import IssuedToken, Mode, rotating_token, shift_token
from dispatch.schemas import CheckinTokenPublic

Sessions = async_sessionmaker[AsyncSession]


async def post_checkin_token(
    *, sessions: Sessions, principal: Principal, operation_id: str, post_id: str, mode: Mode, now: datetime | None = None
) -> CheckinTokenPublic:
    """The token a post's QR carries now (rotating) or for its shift (printed); 404 for an unknown post, 403 out of scope."""
    try:
        uuid.UUID(operation_id), uuid.UUID(post_id)
    except ValueError:
        raise NotFound("岗位不存在 (no such post)", field="post_id") from None
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        post = await conn.fetchrow(
            "SELECT p.id, p.name, p.org_path, p.shift_start, p.shift_end, p.checkin_code, o.status AS operation_status"
            " FROM posts p JOIN operations o ON o.id = p.operation_id WHERE p.id = $1::uuid AND p.operation_id = $2::uuid",
            post_id, operation_id,
        )
    if post is None:
        raise NotFound("岗位不存在 (no such post)", field="post_id")
    ensure_staff_covers(principal, post["org_path"])
    if post["operation_status"] == "closed":
        raise Conflict("行动已结束，不再签到 (the operation is closed)", field="operation_id")
    issued = issue_token(mode, place_id=str(post["id"]), secret=post["checkin_code"], shift_start=post["shift_start"],
                         shift_end=post["shift_end"], now=now or datetime.now(UTC))
    return CheckinTokenPublic(
        post_id=str(post["id"]), post_name=post["name"], mode=issued.mode, token=issued.token, valid_from=issued.valid_from,
        valid_until=issued.valid_until, refresh_at=issued.refresh_at, shift_start=post["shift_start"], shift_end=post["shift_end"],
    )


def issue_token(mode: Mode, *, place_id: str, secret: str, shift_start: datetime, shift_end: datetime, now: datetime) -> IssuedToken:
    """The token of a place (a post, or a project's place) for the shift: printed (`shift`) or shown now (`rotating`)."""
    if mode == "shift":
        return shift_token(post_id=place_id, secret=secret, shift_start=shift_start, shift_end=shift_end, opens_before=CHECK_IN_EARLY)
    return rotating_token(post_id=place_id, secret=secret, at=now)
