"""The console's browser session: the API's tokens in HttpOnly cookies, and a CSRF token on every write.

Cookies are `SameSite=Strict`, `HttpOnly`, path `/console`, and `Secure` unless the gateway runs in DEV_MODE
(plain http on a laptop). The CSRF token is a random value kept in its own cookie and rendered into each page;
a write must send it back (form field `csrf_token`, or header `X-CSRF-Token` from htmx), which a page of another
site cannot read. An expired access token is renewed with the refresh token (rotated, like `POST /auth/refresh`).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request, Response

from shouwang_shared.auth import Principal, Role
from shouwang_shared.errors import Forbidden, Unauthorized

from gateway import accounts
from gateway.context import GatewayContext
from gateway.schemas import TokenPair
from gateway.security import principal_of_token

ACCESS_COOKIE, REFRESH_COOKIE, CSRF_COOKIE = "sw_access", "sw_refresh", "sw_csrf"
CSRF_HEADER, CSRF_FIELD = "x-csrf-token", "csrf_token"
COOKIE_PATH = "/console"
NOT_STAFF = (Role.VOLUNTEER, Role.SERVICE)


class LoginRequired(Exception):
    """No usable console session: the browser is sent to the sign-in page."""


@dataclass
class ConsoleUser:
    """Who is signed in to this page, their access token for upstream calls, and their CSRF token."""

    principal: Principal
    access_token: str
    csrf: str
    renewed: TokenPair | None = None


def csrf_of(request: Request) -> str:
    """The session's CSRF token, or a new one (set by `keep_session`)."""
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


async def check_csrf(request: Request) -> None:
    """403 unless a write carries the CSRF token of its session (header from htmx, else the form field)."""
    expected = request.cookies.get(CSRF_COOKIE)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        sent = (await request.form()).get(CSRF_FIELD)
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(expected, sent):
        raise Forbidden("页面已过期或来源不明，请刷新页面后重试", field=CSRF_FIELD, code="csrf_failed")


async def console_user(request: Request, ctx: GatewayContext, *, renew: bool = True) -> ConsoleUser:
    """The signed-in staff member (their access token renewed when it expired); LoginRequired otherwise.

    A response that cannot set cookies (an event stream) must not renew: the rotated refresh token would be lost.
    """
    token, renewed, principal = request.cookies.get(ACCESS_COOKIE), None, None
    if token:
        try:
            principal = await principal_of_token(request, ctx, token)
        except Unauthorized as exc:
            if exc.code != "token_expired":
                raise LoginRequired from exc
    if principal is None:
        refresh = request.cookies.get(REFRESH_COOKIE)
        if not refresh or not renew:
            raise LoginRequired
        try:
            renewed = await accounts.refresh_session(
                sessions=request.app.state.runtime.sessions, policy=ctx.require_policy(), refresh_token=refresh,
            )
            principal = await principal_of_token(request, ctx, renewed.access_token)
        except Unauthorized as exc:
            raise LoginRequired from exc
        token = renewed.access_token
    if principal.role in NOT_STAFF:
        raise LoginRequired
    return ConsoleUser(principal, token, csrf_of(request), renewed)


def keep_session(response: Response, *, csrf: str, tokens: TokenPair | None, secure: bool) -> Response:
    """Set the CSRF cookie and, after a sign-in or a renewal, the token cookies."""
    common = {"path": COOKIE_PATH, "httponly": True, "samesite": "strict", "secure": secure}
    response.set_cookie(CSRF_COOKIE, csrf, **common)
    if tokens is not None:
        response.set_cookie(ACCESS_COOKIE, tokens.access_token, max_age=tokens.expires_in, **common)
        response.set_cookie(REFRESH_COOKIE, tokens.refresh_token, max_age=tokens.refresh_expires_in, **common)
    return response


def end_session(response: Response, *, secure: bool) -> Response:
    """Drop the session's cookies."""
    for name in (ACCESS_COOKIE, REFRESH_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="strict", secure=secure)
    return response
