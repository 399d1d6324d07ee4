"""Public registration through a QR invite: the lean hot path (raw asyncpg, one write statement, cached look-ups).

Round trips in the transaction: the invite's target (only when not cached), then one statement that counts the invite
use (limits, expiry, revocation and the invite's org path re-checked under the row lock), inserts the volunteer
(`ON CONFLICT DO NOTHING` on the blind indexes), their status history and their `VolunteerState` outbox row.
A person or phone already registered gets the very answer a new person gets (201, same body) and the invite use is
counted as well, so whoever holds an invite cannot learn who is a volunteer; nothing is stored, nobody is told (only a
log line without personal data). Staff registering someone (`volunteers.register_volunteer`) are still told.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg

from shouwang_shared.db import StatementPool
from shouwang_shared.errors import Conflict, NotFound, Unprocessable
from shouwang_shared.outbox import OUTBOX_COLUMNS, outbox_row, wake_relays
from shouwang_shared.pii import PiiCipher

from registry.invite_token import BadInviteToken, open_invite
from registry.invites import ensure_usable
from registry.reference_cache import TtlCache
from registry.schemas import RegistrationCreate
from registry.tables import INSERT_COLUMNS, NEXT_NUMBERS_SQL
from registry.volunteers import first_state, profile_values, seal_identity

INVITE_TARGET_TTL_S = 30.0
TEAM_CODES_TTL_S = 300.0


@dataclass(frozen=True)
class InviteTarget:
    """Where an invite's registrations go: the grid, its station and path, and the recruiting grid worker."""

    grid_id: uuid.UUID
    station_id: uuid.UUID
    org_path: str
    recruiter_id: uuid.UUID | None


# Both caches are only a short cut: the write statement re-checks the invite's path (a move in between makes it
# refetch), and an unknown team code re-reads the table before it is refused.
invite_targets: TtlCache[InviteTarget] = TtlCache(ttl_s=INVITE_TARGET_TTL_S)
team_codes: TtlCache[frozenset[str]] = TtlCache(ttl_s=TEAM_CODES_TTL_S, max_entries=1)

_COLUMNS = (*INSERT_COLUMNS, "updated_at", "volunteer_number")
_CASTS = {"certificates": "::jsonb", "availability": "::jsonb"}
_n = len(_COLUMNS)
_PLACEHOLDERS = ", ".join(f"${i + 1}{_CASTS.get(c, '')}" for i, c in enumerate(_COLUMNS))
REGISTER_SQL = (
    f"WITH counted AS (UPDATE invites SET uses = uses + 1 WHERE id = ${_n + 1} AND NOT revoked AND expires_at > now() "
    f"AND uses < max_uses AND org_path = ${_n + 2} RETURNING id), "
    f"inserted AS (INSERT INTO volunteers ({', '.join(_COLUMNS)}) "
    f"SELECT {_PLACEHOLDERS} FROM counted "
    f"ON CONFLICT DO NOTHING RETURNING id), "
    f"history AS (INSERT INTO volunteer_status_changes (volunteer_id, from_status, to_status, reason, changed_by) "
    f"SELECT id, NULL, 'applicant', '登记', ${_n + 3} FROM inserted), "
    f"published AS (INSERT INTO outbox ({', '.join(OUTBOX_COLUMNS)}) "
    f"SELECT ${_n + 4}, ${_n + 5}, ${_n + 6}, ${_n + 7}, ${_n + 8} FROM inserted) "
    f"SELECT EXISTS (SELECT 1 FROM counted), EXISTS (SELECT 1 FROM inserted)"
)
TARGET_SQL = ("SELECT i.org_path, i.recruiter_id, g.id AS grid_id, g.station_id FROM invites i JOIN grids g ON g.id = i.grid_id "
              "WHERE i.id = $1")
INVITE_SQL = "SELECT revoked, expires_at, uses, max_uses FROM invites WHERE id = $1"

log = logging.getLogger(__name__)


async def _target(conn: asyncpg.Connection, invite_id: uuid.UUID) -> InviteTarget:
    """The invite's target, from the cache or the database; 404 naming `invite_token` when there is no such invite."""
    cached = invite_targets.get(invite_id)
    if cached is not None:
        return cached
    row = await conn.fetchrow(TARGET_SQL, invite_id)
    if row is None:
        raise NotFound("邀请不存在", field="invite_token")
    target = InviteTarget(row["grid_id"], row["station_id"], row["org_path"], row["recruiter_id"])
    invite_targets.put(invite_id, target)
    return target


async def _check_teams(conn: asyncpg.Connection, teams: list[str]) -> None:
    """Every team code must be a seeded team (422 naming `teams`); the codes are cached, re-read before refusing."""
    if not teams:
        return
    known = team_codes.get("codes")
    if known is None or not known.issuperset(teams):
        known = frozenset(r[0] for r in await conn.fetch("SELECT code FROM teams"))
        team_codes.put("codes", known)
    unknown = [t for t in teams if t not in known]
    if unknown:
        raise Unprocessable(f"未知的专业队伍：{', '.join(unknown)}", field="teams", code="unknown_team")


async def register_with_invite(*, statements: StatementPool, cipher: PiiCipher, key: bytes, data: RegistrationCreate) -> dict:
    """A person registers themself through a QR invite: an applicant tied to the invite's grid and station."""
    try:
        invite_id = uuid.UUID(open_invite(key, data.invite_token))
    except BadInviteToken as exc:
        raise Unprocessable(str(exc), field="invite_token", code="bad_invite") from exc
    identity = seal_identity(cipher, real_name=data.real_name, national_id=data.national_id, phone=data.phone)
    profile = profile_values(data)
    volunteer_id, at = uuid.uuid4(), datetime.now(UTC)
    # A transaction of its own, not the session machinery: a refused person must not use the invite up (rolled back).
    async with statements.connection() as conn, conn.transaction():
        await _check_teams(conn, profile["teams"])
        number = await conn.fetchval(NEXT_NUMBERS_SQL, 1)  # taken now: the first state event carries it
        for attempt in range(2):
            target = await _target(conn, invite_id)
            values = {
                "id": volunteer_id, **identity._asdict(), "org_unit_id": target.station_id, "org_path": target.org_path,
                "grid_id": target.grid_id, "recruited_by": target.recruiter_id, **profile, "status": "applicant",
                "status_reason": "", "joined_on": date.today(), "updated_at": at, "volunteer_number": number,
            }
            state = first_state(values, certificates=data_list(data.certificates), availability=data_list(data.availability))
            counted, inserted = await conn.fetchrow(
                REGISTER_SQL, *(values[c] for c in _COLUMNS), invite_id, target.org_path, f"invite:{invite_id}",
                *outbox_row(state, subject=str(volunteer_id), at=at),
            )
            if counted:
                break
            invite_targets.forget(invite_id)
            invite = await conn.fetchrow(INVITE_SQL, invite_id)
            if invite is None:
                raise NotFound("邀请不存在", field="invite_token")
            ensure_usable(invite)
            if attempt:  # usable, yet its path moved twice under us
                raise Conflict("邀请所在网格正在调整，请稍后重试", field="invite_token", code="invite_moving")
    if inserted:
        wake_relays()
    else:  # already registered: answered like a new person (no oracle), the invite use kept, nothing stored
        log.info("registration through invite %s matched an identity number or phone already registered; nothing stored", invite_id)
    return {"volunteer_id": str(volunteer_id), "status": "applicant", "display_name": identity.display_name,
            "national_id_masked": identity.national_id_masked, "phone_masked": identity.phone_masked, "grid_id": str(target.grid_id)}


def data_list(items: list) -> list[dict]:
    """Profile sub-items as JSON-ready dicts."""
    return [item.model_dump(mode="json") for item in items]

