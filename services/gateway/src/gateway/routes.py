"""HTTP routes of the gateway: auth, notifications, the home screen, and the proxied path families."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Header, Path, Query, Request, Response
from sse_starlette import EventSourceResponse

from shouwang_shared.auth import Principal
from shouwang_shared.errors import NotFound, ServiceUnavailable, Unprocessable

from gateway import accounts
from gateway.claims import claim_receipt_reward
from gateway.codes import DevCodeSender, normalize_phone
from gateway.config import GatewaySettings
from gateway.context import GatewayContext
from gateway.home import gather_home
from gateway.notifications import feed_events, list_notifications
from gateway.push import PushDevice, forget_device, public_key_of, register_device
from gateway.routing import API_PREFIX, LOOKUP_LIMITED, PROXIED_METHODS, READ_METHODS, authorize, check_scope_param, resolve
from gateway.schemas import (
    CodeLogin,
    CodeRequest,
    CodeSent,
    DevCodePublic,
    Home,
    NotificationPage,
    PushDeviceCreate,
    PushKeyPublic,
    RefreshRequest,
    RewardClaimCreate,
    RewardClaimPublic,
    StaffLogin,
    SyncBatchCreate,
    SyncBatchPublic,
    TokenPair,
)
from gateway.security import (
    Context,
    FeedOwner,
    OptionalPrincipal,
    RequiredPrincipal,
    VolunteerPrincipal,
    bearer_token_of,
    caller_ip,
    enforce_limit,
)
from gateway.sync import sync_actions


def _vapid_key(ctx) -> str:
    """The deployment's VAPID key, or a 503 saying push is not set up here."""
    if not ctx.settings.vapid_private_key:
        raise ServiceUnavailable("本部署未配置推送（VAPID_PRIVATE_KEY）", field="push")
    return ctx.settings.vapid_private_key


ERRORS = {
    401: {"description": "未登录、令牌无效、过期或已撤销"},
    403: {"description": "角色或管辖范围不允许"},
    422: {"description": "参数不合法（指明字段）"},
    429: {"description": "请求过于频繁（带 Retry-After）"},
}
UPSTREAM_ERRORS = {**ERRORS, 503: {"description": "上游服务不可用（指明服务）"}, 504: {"description": "上游服务超时"}}

DROP_REQUEST_HEADERS = frozenset({
    "host", "content-length", "connection", "keep-alive", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "cookie", "forwarded", "x-forwarded-for", "x-forwarded-host",
    "x-forwarded-proto", "x-real-ip", "accept-encoding",
})
DROP_RESPONSE_HEADERS = frozenset({
    b"content-length", b"connection", b"keep-alive", b"transfer-encoding", b"content-encoding", b"server", b"date",
    b"x-correlation-id", b"set-cookie",
})



def _cipher(ctx):
    if ctx.cipher is None:
        raise ServiceUnavailable("网关未配置验证码密钥（LOGIN_CODE_KEY），暂不能用验证码登录", code="login_code_key_missing")
    return ctx.cipher


def auth_router(settings: GatewaySettings) -> APIRouter:
    """Login, code delivery, refresh and logout (and, in DEV_MODE only, the codes sent)."""
    router = APIRouter(prefix=f"{API_PREFIX}/auth", tags=["auth"])

    @router.post("/login", response_model=TokenPair, responses=ERRORS, summary="工作人员用户名密码登录")
    async def staff_login(body: StaffLogin, request: Request, ctx: Context) -> TokenPair:
        await enforce_limit(ctx, ctx.limits.login, f"ip:{caller_ip(request)}")
        await enforce_limit(ctx, ctx.limits.login, f"user:{body.username}")
        return await accounts.login_staff(
            sessions=request.app.state.runtime.sessions, policy=ctx.require_policy(), upstreams=ctx.upstreams,
            username=body.username, password=body.password,
        )

    @router.post("/codes", response_model=CodeSent, status_code=202, responses=ERRORS, summary="志愿者获取手机验证码")
    async def request_code(body: CodeRequest, request: Request, ctx: Context) -> CodeSent:
        await enforce_limit(ctx, ctx.limits.login, f"ip:{caller_ip(request)}")
        await enforce_limit(ctx, ctx.limits.login, f"phone:{normalize_phone(body.phone)}")
        await accounts.send_login_code(
            sessions=request.app.state.runtime.sessions, upstreams=ctx.upstreams, cipher=_cipher(ctx),
            sender=ctx.sender, phone=body.phone, ttl_s=ctx.settings.login_code_ttl_s,
            limiter=ctx.limiter, guesses=ctx.limits.code_guesses,
        )
        return CodeSent(expires_in=ctx.settings.login_code_ttl_s)

    @router.post("/code-login", response_model=TokenPair, responses=ERRORS, summary="志愿者手机号 + 验证码登录")
    async def code_login(body: CodeLogin, request: Request, ctx: Context) -> TokenPair:
        await enforce_limit(ctx, ctx.limits.login, f"ip:{caller_ip(request)}")
        await enforce_limit(ctx, ctx.limits.login, f"phone:{normalize_phone(body.phone)}")
        return await accounts.login_with_code(
            sessions=request.app.state.runtime.sessions, policy=ctx.require_policy(), upstreams=ctx.upstreams,
            cipher=_cipher(ctx), phone=body.phone, code=body.code, max_attempts=ctx.settings.login_code_max_attempts,
            limiter=ctx.limiter, guesses=ctx.limits.code_guesses,
        )

    @router.post("/refresh", response_model=TokenPair, responses=ERRORS, summary="用刷新令牌换新令牌（刷新令牌轮换）")
    async def refresh(body: RefreshRequest, request: Request, ctx: Context) -> TokenPair:
        await enforce_limit(ctx, ctx.limits.login, f"ip:{caller_ip(request)}")
        return await accounts.refresh_session(
            sessions=request.app.state.runtime.sessions, policy=ctx.require_policy(), refresh_token=body.refresh_token,
        )

    @router.post("/logout", status_code=204, responses=ERRORS, summary="注销：撤销本会话的刷新令牌和访问令牌")
    async def logout(principal: RequiredPrincipal, request: Request, ctx: Context) -> Response:
        session_id = accounts.principal_session_id(principal)
        await accounts.revoke_session(sessions=request.app.state.runtime.sessions, session_id=session_id, reason="logout")
        ctx.session_cache.put(session_id, False)
        return Response(status_code=204)

    if settings.dev_mode:
        @router.get("/dev/codes/{phone}", response_model=DevCodePublic, responses=ERRORS, summary="仅开发环境：查看最近发送的验证码")
        async def dev_code(phone: str, ctx: Context) -> dict:
            sender = ctx.sender
            code = sender.latest.get(normalize_phone(phone)) if isinstance(sender, DevCodeSender) else None
            if code is None:
                raise NotFound("该手机号没有已发送的验证码", field="phone")
            return {"phone": normalize_phone(phone), "code": code}

    return router


def me_router() -> APIRouter:
    """A volunteer's notifications (list after a cursor, or a live stream) and home screen."""
    router = APIRouter(prefix=API_PREFIX, tags=["me"])

    def _cursor(since: str | None, last_event_id: str | None) -> int:
        raw = since if since is not None else last_event_id
        if raw is None or raw == "":
            return 0
        if not raw.isdigit() or len(raw) > 18:
            raise Unprocessable("since 必须是上次返回的游标（非负整数）", field="since")
        return int(raw)

    @router.post("/sync", response_model=SyncBatchPublic, responses=UPSTREAM_ERRORS, summary="志愿者离线操作补传：按顺序逐条执行，重复提交不重复生效")
    async def sync(body: SyncBatchCreate, principal: VolunteerPrincipal, request: Request, ctx: Context) -> SyncBatchPublic:
        results = await sync_actions(
            sessions=request.app.state.runtime.sessions, upstreams=ctx.upstreams, volunteer_id=principal.volunteer_id,
            token=bearer_token_of(request.headers.get("authorization", "")) or "", actions=body.actions,
        )
        return SyncBatchPublic(results=results)

    @router.get("/push/key", response_model=PushKeyPublic, responses=ERRORS, summary="Web Push 的 VAPID 公钥（手机订阅推送时使用）")
    async def push_key(owner: FeedOwner, ctx: Context) -> PushKeyPublic:
        return PushKeyPublic(public_key=public_key_of(_vapid_key(ctx)))

    @router.put("/push/devices/{device_id}", status_code=204, responses=ERRORS, summary="登记（或更换）本机的推送订阅")
    async def push_register(device_id: Annotated[str, Path(min_length=8, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")],
                            body: PushDeviceCreate, owner: FeedOwner, request: Request, ctx: Context) -> Response:
        _vapid_key(ctx)
        device = PushDevice(device_id=device_id, endpoint=body.endpoint, p256dh=body.keys.p256dh, auth=body.keys.auth)
        await register_device(sessions=request.app.state.runtime.sessions, volunteer_id=owner, device=device,
                              allowed_hosts=ctx.settings.push_endpoint_host_list)
        return Response(status_code=204)

    @router.delete("/push/devices/{device_id}", status_code=204, responses=ERRORS, summary="不再向本机推送")
    async def push_forget(device_id: str, owner: FeedOwner, request: Request) -> Response:
        await forget_device(sessions=request.app.state.runtime.sessions, volunteer_id=owner, device_id=device_id)
        return Response(status_code=204)

    @router.get("/notifications", response_model=NotificationPage, responses=ERRORS, summary="本人通知（since 游标之后）：志愿者的，或工作人员的（紧急案件提醒）")
    async def notifications(
        owner: FeedOwner, ctx: Context,
        since: Annotated[str | None, Query(description="上次返回的 next_cursor")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> NotificationPage:
        return await list_notifications(feeds=ctx.feeds, volunteer_id=owner, since=_cursor(since, None), limit=limit)

    @router.get("/notifications/stream", summary="本人通知实时推送（Server-Sent Events）", response_class=EventSourceResponse,
                responses={**ERRORS, 200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                                           "description": "每条通知一个事件：id 为游标，event 为通知类型，data 为 NotificationPublic 的 JSON"}})
    async def notification_stream(
        owner: FeedOwner, principal: RequiredPrincipal, request: Request, ctx: Context,
        since: Annotated[str | None, Query(description="从此游标之后开始推送")] = None,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> EventSourceResponse:
        cursor = _cursor(since, last_event_id)
        volunteer_id = owner
        expires_at = float(principal.claims.get("exp", 0))

        async def events():
            nonlocal cursor
            wake = ctx.hub.subscribe(volunteer_id)
            try:
                while time.time() < expires_at:
                    page = await feed_events(feeds=ctx.feeds, volunteer_id=volunteer_id, since=cursor)
                    for item in page:
                        yield {"id": str(item.id), "event": item.kind, "data": item.data}
                    cursor = page[-1].id if page else cursor
                    if len(page) == 100:
                        continue
                    try:
                        await asyncio.wait_for(wake.wait(), timeout=ctx.hub.idle_reread_s)
                    except TimeoutError:
                        pass
                    wake.clear()
            finally:
                ctx.hub.unsubscribe(volunteer_id, wake)

        return EventSourceResponse(events(), ping=15)

    @router.post("/receipts/{code}/reward-claim", status_code=201, response_model=RewardClaimPublic, responses=UPSTREAM_ERRORS,
                 summary="匿名举报人凭回执码和密钥领取奖励（登录志愿者则记入本人账户）", tags=["receipts"])
    async def reward_claim(
        code: str, request: Request, ctx: Context, principal: OptionalPrincipal,
        receipt_secret: Annotated[str, Header(alias="X-Receipt-Secret", min_length=1, max_length=100)],
        body: RewardClaimCreate | None = None,
    ) -> dict:
        await enforce_limit(ctx, ctx.limits.anonymous_write, f"reward-claim:{caller_ip(request)}")
        return await claim_receipt_reward(
            upstreams=ctx.upstreams, code=code, secret=receipt_secret, principal=principal,
            payout_target=body.payout_target if body else None,
        )

    @router.get("/me/home", response_model=Home, responses=ERRORS, summary="志愿者首页：资料、待答复任务、近期班次、积分和星级")
    async def home(principal: VolunteerPrincipal, request: Request, ctx: Context) -> Home:
        return await gather_home(
            upstreams=ctx.upstreams, authorization=request.headers["authorization"], budget_s=ctx.settings.home_budget_s,
        )

    return router


def _forward_headers(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k not in DROP_REQUEST_HEADERS}


def _upstream_path(resource: str, subpath: str) -> str:
    if not subpath:
        return f"/v1/{resource}"
    segments = subpath.split("/")
    if any(s in (".", "..") for s in segments):
        raise NotFound("路径不合法", field="path", code="unknown_route")
    return f"/v1/{resource}/" + "/".join(quote(s, safe="!$&'()*+,;=:@-._~") for s in segments)


async def proxy(request: Request, ctx: Context, principal: OptionalPrincipal, resource: str, path: str = "") -> Response:
    """Forward `/api/v1/<resource>/<path>` to its service's `/v1/<resource>/<path>` with the caller's token."""
    return await forward(request, ctx, principal, resource, path)


async def forward(request: Request, ctx: GatewayContext, principal: Principal | None, resource: str, path: str) -> Response:
    """Authorize, rate-limit and send one proxied call; the service's answer as the response (a 500 becomes 502)."""
    route = resolve(resource)
    if route is None:
        raise NotFound(f"没有这个接口：{API_PREFIX}/{resource}", field="path", code="unknown_route")
    upstream_path = _upstream_path(route.resource, path)  # a path that climbs out ("..") is refused before anything else
    method = request.method
    authorize(route, method, path, principal)
    check_scope_param(principal, request.query_params.get("org_path"))
    if principal is not None:
        await enforce_limit(ctx, ctx.limits.account, principal.sub)
    elif method not in READ_METHODS:
        await enforce_limit(ctx, ctx.limits.anonymous_write, f"{route.resource}:{caller_ip(request)}")
    elif route.resource in LOOKUP_LIMITED:
        await enforce_limit(ctx, ctx.limits.receipt_lookup, caller_ip(request))
    body = await request.body() if method not in READ_METHODS else None
    upstream = await ctx.upstreams.send(
        route.service, method, upstream_path, headers=_forward_headers(request),
        content=body, params=list(request.query_params.multi_items()),
    )
    status = 502 if upstream.status_code == 500 else upstream.status_code
    response = Response(content=upstream.content, status_code=status)
    response.raw_headers.extend(
        (name, value) for name, value in ((k.lower(), v) for k, v in upstream.raw_headers) if name not in DROP_RESPONSE_HEADERS
    )
    response.raw_headers.append((UPSTREAM_HEADER_RAW, route.service.encode()))
    return response


UPSTREAM_HEADER = "X-Upstream-Service"
UPSTREAM_HEADER_RAW = UPSTREAM_HEADER.lower().encode()


def proxy_router() -> APIRouter:
    """Two catch-all routes for every proxied resource (one table look-up, not hundreds of route matches)."""
    router = APIRouter(prefix=API_PREFIX)
    router.add_api_route("/{resource}", proxy, methods=list(PROXIED_METHODS), include_in_schema=False)
    router.add_api_route("/{resource}/{path:path}", proxy, methods=list(PROXIED_METHODS), include_in_schema=False)
    return router
