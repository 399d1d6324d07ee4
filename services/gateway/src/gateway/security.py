"""Who is calling: token verification plus the gateway's own check that the session is still live."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from shouwang_shared.auth import STAFF_ROLES, Principal, Role
from shouwang_shared.errors import Forbidden, TooManyRequests, Unauthorized

from gateway.accounts import principal_session_id, session_is_active
from gateway.context import GatewayContext, get_context
from gateway.notifications import staff_feed
from gateway.ratelimit import Limit

STAFF_FEED_ROLES = STAFF_ROLES - {Role.SERVICE}
bearer_scheme = HTTPBearer(auto_error=False, description="网关签发的访问令牌")
Context = Annotated[GatewayContext, Depends(get_context)]


def bearer_token_of(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (parsed as FastAPI's HTTPBearer does), else None."""
    scheme, credentials = get_authorization_scheme_param(header)
    if not (header and scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials


async def resolve_principal(request: Request, ctx: GatewayContext) -> Principal | None:
    """The verified caller, or None without an Authorization header; 401 for a bad, expired or revoked token."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    token = bearer_token_of(header)
    if token is None:
        raise Unauthorized("Authorization 头必须是 Bearer 令牌", field="authorization", code="invalid_token")
    principal = await principal_of_token(request, ctx, token)
    request.state.principal = principal
    return principal


async def principal_of_token(request: Request, ctx: GatewayContext, token: str) -> Principal:
    """The verified holder of an access token (a header's or the console's cookie); 401 if bad, expired or revoked."""
    principal = request.app.state.runtime.verifier.verify(token)
    session_id = principal_session_id(principal)
    if session_id is None:
        # Signed with the platform key but not at a login (ops tooling holding the key): nothing to revoke.
        return principal
    statements = request.app.state.runtime.statements

    def load() -> Awaitable[bool]:
        return session_is_active(statements=statements, session_id=session_id)

    active = ctx.session_cache.get(session_id, refresh=load)
    if active is None:
        active = await ctx.session_cache.check(session_id, load)
    if not active:
        raise Unauthorized("会话已注销或已撤销，请重新登录", field="authorization", code="token_revoked")
    return principal


async def optional_principal(
    request: Request, ctx: Context, _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal | None:
    """FastAPI dependency: `resolve_principal` (the bearer scheme is declared for the OpenAPI document)."""
    return await resolve_principal(request, ctx)


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


async def required_principal(principal: OptionalPrincipal) -> Principal:
    """The verified caller; 401 without a token."""
    if principal is None:
        raise Unauthorized("需要登录", field="authorization", code="missing_token")
    return principal


RequiredPrincipal = Annotated[Principal, Depends(required_principal)]


async def volunteer_principal(principal: RequiredPrincipal, ctx: Context) -> Principal:
    """The calling volunteer (403 for anyone else), within their account's rate limit."""
    if principal.role != Role.VOLUNTEER or not principal.volunteer_id:
        raise Forbidden("仅志愿者可以访问", code="role_forbidden")
    await enforce_limit(ctx, ctx.limits.account, principal.sub)
    return principal


VolunteerPrincipal = Annotated[Principal, Depends(volunteer_principal)]


async def feed_owner(principal: RequiredPrincipal, ctx: Context) -> str:
    """Whose notification feed the caller reads: a volunteer's own, or a staff member's (urgent-case alerts), within the
    account's rate limit; 403 for service tokens."""
    if principal.role == Role.VOLUNTEER and principal.volunteer_id:
        owner = principal.volunteer_id
    elif principal.role in STAFF_FEED_ROLES:
        owner = staff_feed(principal.sub)
    else:
        raise Forbidden("仅志愿者和工作人员有通知", code="role_forbidden")
    await enforce_limit(ctx, ctx.limits.account, principal.sub)
    return owner


FeedOwner = Annotated[str, Depends(feed_owner)]


async def enforce_limit(ctx: GatewayContext, limit: Limit, key: str) -> None:
    """Take a token from `limit`'s shared bucket for `key`; 429 with Retry-After when it is empty."""
    wait = await ctx.limiter.hit(limit, key)
    if wait:
        retry = ctx.limiter.retry_after_header(wait)
        raise TooManyRequests(f"请求过于频繁，请 {retry} 秒后再试", retry_after_s=retry)


def caller_ip(request: Request) -> str:
    """The client IP the edge guard determined."""
    return request.scope.get("state", {}).get("client_ip") or (request.client.host if request.client else "unknown")
