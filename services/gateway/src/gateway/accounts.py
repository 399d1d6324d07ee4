"""Login, refresh, logout: the gateway's sessions (refresh tokens stored hashed) and one-time codes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal, Role, TokenSigner
from shouwang_shared.db import StatementPool, raw_connection
from shouwang_shared.errors import AppError, Forbidden, Unauthorized
from shouwang_shared.pii import BlindIndex, mask_phone

from gateway.codes import CodeSender, new_code, normalize_phone
from gateway.ratelimit import Limit, SharedRateLimiter
from gateway.schemas import TokenPair
from gateway.upstream import Upstreams

log = logging.getLogger(__name__)

SESSION_VOLUNTEER_STATUS = "active"  # applicants, suspended and retired volunteers hold no session


@dataclass(frozen=True)
class TokenPolicy:
    """How long tokens live and who signs them."""

    signer: TokenSigner
    access_ttl_s: int = 900
    refresh_ttl_s: int = 30 * 24 * 3600


class UpstreamError(AppError):
    """A service answered in a way the gateway cannot use."""

    status_code = 502
    code = "bad_upstream"


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


_OPEN_SESSION = text(
    "INSERT INTO auth_sessions (id, subject, role, scope_path, volunteer_id, display_name, refresh_hash, created_at, expires_at)"
    " VALUES (:id, :subject, :role, :scope_path, :volunteer_id, :display_name, :refresh_hash, :created_at, :expires_at)"
)


async def open_session(
    *, sessions: async_sessionmaker[AsyncSession], policy: TokenPolicy, subject: str, role: Role | str,
    scope_path: str = "", volunteer_id: str | None = None, display_name: str | None = None,
) -> TokenPair:
    """Record a new session and hand out its access and refresh tokens."""
    session_id = uuid.uuid4()
    secret = secrets.token_urlsafe(32)
    now = _now()
    async with sessions() as session, session.begin():
        await session.execute(_OPEN_SESSION, {
            "id": session_id, "subject": subject, "role": str(role), "scope_path": scope_path, "volunteer_id": volunteer_id,
            "display_name": display_name, "refresh_hash": _hash_secret(secret), "created_at": now,
            "expires_at": now + timedelta(seconds=policy.refresh_ttl_s),
        })
    return _token_pair(policy, session_id, secret, subject=subject, role=str(role), scope_path=scope_path,
                       volunteer_id=volunteer_id, display_name=display_name)


def _token_pair(policy: TokenPolicy, session_id: uuid.UUID, secret: str, *, subject: str, role: str, scope_path: str,
                volunteer_id: str | None, display_name: str | None) -> TokenPair:
    access = policy.signer.issue(
        sub=subject, role=role, scope_path=scope_path, volunteer_id=volunteer_id, ttl_s=policy.access_ttl_s,
        extra={"sid": str(session_id)},
    )
    return TokenPair(
        access_token=access, expires_in=policy.access_ttl_s, refresh_token=f"{session_id}.{secret}",
        refresh_expires_in=policy.refresh_ttl_s, role=role, scope_path=scope_path, volunteer_id=volunteer_id,
        display_name=display_name,
    )


async def login_staff(
    *, sessions: async_sessionmaker[AsyncSession], policy: TokenPolicy, upstreams: Upstreams, username: str, password: str,
) -> TokenPair:
    """Verify a staff member's password with the registry and open a session for them."""
    response = await upstreams.call_internal(
        "registry", "POST", "/internal/v1/staff/verify-password", json={"username": username, "password": password},
    )
    if response.status_code in (401, 403, 404, 422):  # 422: a name or password no account could have
        raise Unauthorized("用户名或密码错误", field="password", code="bad_credentials")
    if response.status_code != 200:
        raise UpstreamError(f"registry 校验密码失败（HTTP {response.status_code}）")
    staff = response.json()
    try:
        role = Role(staff["role"])
        subject = str(staff["staff_id"])
    except (KeyError, ValueError) as exc:
        raise UpstreamError("registry 返回的工作人员信息不完整") from exc
    if role in (Role.VOLUNTEER, Role.SERVICE):
        raise UpstreamError("registry 返回了非工作人员角色")
    return await open_session(
        sessions=sessions, policy=policy, subject=subject, role=role, scope_path=staff.get("scope_path") or "",
        display_name=staff.get("display_name"),
    )


async def _volunteer_by_phone(upstreams: Upstreams, phone: str) -> dict | None:
    response = await upstreams.call_internal("registry", "POST", "/internal/v1/volunteers/by-phone", json={"phone": phone})
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise UpstreamError(f"registry 查询志愿者失败（HTTP {response.status_code}）")
    return response.json()


# A new code resets its own attempts only: the phone's wrong guesses stay in its `guesses` bucket.
_STORE_CODE = text(
    "INSERT INTO login_codes (phone_index, code_hash, expires_at, attempts, created_at)"
    " VALUES (:phone_index, :code_hash, :expires_at, 0, :created_at)"
    " ON CONFLICT (phone_index) DO UPDATE SET code_hash = EXCLUDED.code_hash, expires_at = EXCLUDED.expires_at,"
    " attempts = EXCLUDED.attempts, created_at = EXCLUDED.created_at"
)


async def send_login_code(
    *, sessions: async_sessionmaker[AsyncSession], upstreams: Upstreams, cipher: BlindIndex, sender: CodeSender,
    phone: str, ttl_s: int, limiter: SharedRateLimiter, guesses: Limit,
) -> None:
    """Send a one-time code to a registered volunteer's phone.

    An unknown phone gets a code stored but never sent, so every later guess is answered exactly as for a
    registered phone: neither the request nor a wrong guess tells anyone who is a volunteer.
    """
    phone = normalize_phone(phone)
    volunteer = await _volunteer_by_phone(upstreams, phone)
    code = new_code()
    index = cipher.blind_index(phone, context="phone")
    now = _now()
    async with sessions() as session, session.begin():
        await session.execute(_STORE_CODE, {
            "phone_index": index, "code_hash": cipher.blind_index(f"{phone}:{code}", context="login-code"),
            "expires_at": now + timedelta(seconds=ttl_s), "created_at": now,
        })
    if volunteer is None:
        log.info("login code requested for an unregistered phone %s: stored, not sent", mask_phone(phone))
        return
    if await limiter.wait(guesses, index):
        log.info("login code for %s not sent: too many wrong guesses today", mask_phone(phone))
        return
    await sender.send(phone, code)


_CODE_FOR_UPDATE = text("SELECT code_hash, expires_at, attempts FROM login_codes WHERE phone_index = :phone FOR UPDATE")
_USE_CODE = text("DELETE FROM login_codes WHERE phone_index = :phone")
_COUNT_WRONG_GUESS = text("UPDATE login_codes SET attempts = attempts + 1 WHERE phone_index = :phone")


async def login_with_code(
    *, sessions: async_sessionmaker[AsyncSession], policy: TokenPolicy, upstreams: Upstreams, cipher: BlindIndex,
    phone: str, code: str, max_attempts: int, limiter: SharedRateLimiter, guesses: Limit,
) -> TokenPair:
    """Check a volunteer's one-time code (bounded attempts per code, and per phone by the `guesses` bucket, single use);
    open a session. A wrong guess takes a token from the phone's bucket; an empty bucket refuses every code."""
    phone = normalize_phone(phone)
    index = cipher.blind_index(phone, context="phone")
    expected = cipher.blind_index(f"{phone}:{code}", context="login-code")
    now = _now()
    async with sessions() as session, session.begin():
        row = (await session.execute(_CODE_FOR_UPDATE, {"phone": index})).one_or_none()
        if row is not None and await limiter.wait(guesses, index):  # the row lock keeps one phone's guesses in turn
            outcome = "locked"
        elif row is None or row.expires_at < now or row.attempts >= max_attempts:
            outcome = "expired"
        elif hmac.compare_digest(row.code_hash, expected):
            outcome = "ok"
            await session.execute(_USE_CODE, {"phone": index})
        else:
            outcome = "wrong"
            await session.execute(_COUNT_WRONG_GUESS, {"phone": index})
            await limiter.hit(guesses, index)
    if outcome == "locked":
        raise Unauthorized("今日验证码错误次数过多，请明天再试", field="code", code="code_locked")
    if outcome == "expired":
        raise Unauthorized("验证码无效或已过期，请重新获取", field="code", code="code_expired")
    if outcome == "wrong":
        raise Unauthorized("验证码错误", field="code", code="bad_code")
    volunteer = await _volunteer_by_phone(upstreams, phone)
    if volunteer is None:
        raise Unauthorized("该手机号未注册为志愿者", field="phone", code="not_registered")
    status = str(volunteer.get("status", "")).lower()
    if status == "applicant":
        raise Forbidden("该志愿者尚未通过审核，暂不能登录", field="phone", code="volunteer_not_approved")
    if status != SESSION_VOLUNTEER_STATUS:
        raise Forbidden("该志愿者账号已停用", field="phone", code="volunteer_blocked")
    volunteer_id = str(volunteer["volunteer_id"])
    return await open_session(
        sessions=sessions, policy=policy, subject=volunteer_id, role=Role.VOLUNTEER, volunteer_id=volunteer_id,
        display_name=volunteer.get("display_name"),
    )


# The one rule for whether a session's subject may still hold it: unknown subjects may (a login checks registry's
# live status), the allowed may, and the barred may keep only a session opened after registry barred them.
SUBJECT_MAY_HOLD = "coalesce(p.allowed OR s.created_at >= p.updated_at, true)"
SESSION_AND_SUBJECT = "FROM auth_sessions s LEFT JOIN subject_status p ON p.subject = s.subject"

_SESSION_FOR_UPDATE = text(
    "SELECT subject, role, scope_path, volunteer_id, display_name, refresh_hash, expires_at, revoked_at"
    " FROM auth_sessions WHERE id = :sid FOR UPDATE"
)
_MAY_HOLD_SESSION = text(f"SELECT {SUBJECT_MAY_HOLD} {SESSION_AND_SUBJECT} WHERE s.id = :sid")  # false: registry barred the holder since
_ROTATE_REFRESH = text("UPDATE auth_sessions SET refresh_hash = :refresh_hash, refreshed_at = :at WHERE id = :sid")
_REVOKE_SESSION = text("UPDATE auth_sessions SET revoked_at = :at, revoked_reason = :reason WHERE id = :sid AND revoked_at IS NULL")


def _parse_refresh(refresh_token: str) -> tuple[uuid.UUID, str]:
    head, _, secret = refresh_token.partition(".")
    try:
        return uuid.UUID(head), secret
    except ValueError as exc:
        raise Unauthorized("刷新令牌无效", field="refresh_token", code="invalid_refresh_token") from exc


async def refresh_session(*, sessions: async_sessionmaker[AsyncSession], policy: TokenPolicy, refresh_token: str) -> TokenPair:
    """Rotate a session's refresh token and issue a new access token; a reused old token revokes the session."""
    session_id, secret = _parse_refresh(refresh_token)
    new_secret = secrets.token_urlsafe(32)
    now = _now()
    async with sessions() as session, session.begin():
        row = (await session.execute(_SESSION_FOR_UPDATE, {"sid": session_id})).one_or_none()
        if row is None or row.revoked_at is not None or row.expires_at < now:
            outcome = "invalid"
        elif not hmac.compare_digest(row.refresh_hash, _hash_secret(secret)):
            outcome = "reused"
            await session.execute(_REVOKE_SESSION, {"sid": session_id, "at": now, "reason": "refresh token reused"})
        elif not await session.scalar(_MAY_HOLD_SESSION, {"sid": session_id}):
            outcome = "disabled"
            await session.execute(_REVOKE_SESSION, {"sid": session_id, "at": now, "reason": "account suspended or deactivated"})
        else:
            outcome = "ok"
            await session.execute(_ROTATE_REFRESH, {"sid": session_id, "refresh_hash": _hash_secret(new_secret), "at": now})
            claims = dict(subject=row.subject, role=row.role, scope_path=row.scope_path, volunteer_id=row.volunteer_id,
                          display_name=row.display_name)
    if outcome == "reused":
        log.warning("refresh token of session %s reused; session revoked", session_id)
    if outcome == "disabled":
        raise Unauthorized("账号已暂停或停用，请联系管理员", field="refresh_token", code="account_disabled")
    if outcome != "ok":
        raise Unauthorized("刷新令牌无效或已撤销，请重新登录", field="refresh_token", code="invalid_refresh_token")
    return _token_pair(policy, session_id, new_secret, **claims)


async def revoke_session(*, sessions: async_sessionmaker[AsyncSession], session_id: str, reason: str) -> None:
    """Revoke a session: its refresh token stops working and its access tokens are refused at the gateway."""
    async with sessions() as session, session.begin():
        await session.execute(_REVOKE_SESSION, {"sid": uuid.UUID(session_id), "at": _now(), "reason": reason})


@dataclass(frozen=True)
class PersonStatus:
    """Registry's word on one person who may log in: volunteer or staff, their status, whether they may hold a session."""

    subject: str
    kind: str
    status: str
    allowed: bool
    as_of: datetime  # when registry changed the state (the event's time)
    version: int | None = None  # the volunteer state's version; staff state is applied in topic order
    org_path: str | None = None  # a volunteer's org unit path (bulletins for an area reach the volunteers in it)


# One statement: record each person's status unless an older version, and revoke the live sessions of the barred
# that were opened before the state changed. A session opened after it passed registry's live check at login, so a
# state consumed late (an applicant's, after their approval and first login) does not end it.
APPLY_STATUSES = (
    "WITH applied AS ("
    " INSERT INTO subject_status AS p (subject, kind, status, allowed, version, updated_at, org_path)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::bigint[], $6::timestamptz[], $7::text[])"
    " ON CONFLICT (subject) DO UPDATE SET kind = EXCLUDED.kind, status = EXCLUDED.status, allowed = EXCLUDED.allowed,"
    "  version = EXCLUDED.version, updated_at = EXCLUDED.updated_at, org_path = EXCLUDED.org_path"
    " WHERE p.version IS NULL OR EXCLUDED.version IS NULL OR p.version <= EXCLUDED.version"
    " RETURNING subject, kind, status, allowed, updated_at)"
    " UPDATE auth_sessions s SET revoked_at = now(), revoked_reason = a.kind || ' ' || a.status"
    " FROM applied a WHERE s.subject = a.subject AND NOT a.allowed AND s.revoked_at IS NULL AND s.created_at < a.updated_at"
    " RETURNING s.id"
)


async def apply_person_statuses(session: AsyncSession, statuses: list[PersonStatus]) -> list[str]:
    """Record registry's latest status of each person in the caller's transaction; revoke the sessions of the barred.

    The last status given for a subject wins. Returns the ids of the sessions revoked now (the caller evicts them
    from this process's session cache once committed).
    """
    latest = {s.subject: s for s in statuses}
    columns = list(zip(*((s.subject, s.kind, s.status, s.allowed, s.version, s.as_of, s.org_path) for s in latest.values()), strict=True))
    conn = await raw_connection(session)
    revoked = [str(r["id"]) for r in await conn.fetch(APPLY_STATUSES, *[list(c) for c in columns])]
    if revoked:
        log.info("%d session(s) of suspended, retired or deactivated people revoked", len(revoked))
    return revoked


# A session is live while not revoked, not expired and its subject not barred by a registry state newer than it.
SESSION_STATE = f"SELECT s.revoked_at IS NULL AND s.expires_at > now() AND {SUBJECT_MAY_HOLD} {SESSION_AND_SUBJECT} WHERE s.id = $1"


async def session_is_active(*, statements: StatementPool, session_id: str) -> bool:
    """True when the session exists, has not expired and is not revoked (one statement, one round trip)."""
    try:
        sid = uuid.UUID(session_id)
    except ValueError:
        return False
    return bool(await statements.fetchval(SESSION_STATE, sid))


@dataclass
class SessionCheckCache:
    """Remembers recent session checks so most requests skip the database; logout evicts at once.

    An answer is fresh for `ttl_s`. After that, and up to `stale_for_s`, the remembered answer is still
    given while one check runs in the background (refresh-ahead): a busy client never waits on its
    session's re-check, and a session revoked elsewhere is refused `ttl_s` plus one query after the fact.
    Older than that (an idle client), callers wait for the check; concurrent callers share one query.
    """

    ttl_s: float = 2.0
    stale_for_s: float = 30.0
    _entries: dict[str, tuple[bool, float]] | None = None
    _pending: dict[str, asyncio.Future[bool]] = field(default_factory=dict)

    def get(self, session_id: str, refresh: Callable[[], Awaitable[bool]] | None = None) -> bool | None:
        """The remembered answer while usable (a stale one starts `refresh` in the background), else None."""
        entry = (self._entries or {}).get(session_id)
        if entry is None:
            return None
        age = time.monotonic() - entry[1]
        if age <= self.ttl_s:
            return entry[0]
        if refresh is None or age > self.stale_for_s:
            return None
        self._start(session_id, refresh)
        return entry[0]

    def put(self, session_id: str, active: bool) -> None:
        """Remember an answer."""
        if self._entries is None or len(self._entries) > 50_000:
            self._entries = {}
        self._entries[session_id] = (active, time.monotonic())

    async def check(self, session_id: str, load: Callable[[], Awaitable[bool]]) -> bool:
        """The answer of `load()`, run once for all concurrent callers; remembered unless `put` was told newer news."""
        return await asyncio.shield(self._start(session_id, load))

    def _start(self, session_id: str, load: Callable[[], Awaitable[bool]]) -> asyncio.Future[bool]:
        """The check in flight for `session_id`, started now if none is."""
        pending = self._pending.get(session_id)
        if pending is None:
            started = time.monotonic()
            pending = self._pending[session_id] = asyncio.ensure_future(load())

            def remember(done: asyncio.Future[bool]) -> None:
                self._pending.pop(session_id, None)
                if done.cancelled() or done.exception() is not None:  # retrieved, so a failed background refresh is not logged as lost
                    return
                entry = (self._entries or {}).get(session_id)
                if entry is None or entry[1] <= started:
                    self.put(session_id, done.result())

            pending.add_done_callback(remember)
        return pending


def principal_session_id(principal: Principal) -> str | None:
    """The session id a gateway-issued access token carries."""
    sid = principal.claims.get("sid")
    return str(sid) if sid else None
