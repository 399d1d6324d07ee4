"""The public card check `/verify`: an officer pastes (or a scanner types) a card's QR text and sees whether the card
is genuine, current and unrevoked, with what it says about its holder. Nothing is written; the page needs no login."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from shouwang_shared.contracts.card import MAX_QR_CHARS, CardStatus

from gateway.console.session import csrf_of
from gateway.console.views import COUNTY_TIME
from gateway.security import Context, caller_ip, enforce_limit

HERE = Path(__file__).parent

VERDICTS: dict[CardStatus, tuple[str, str]] = {  # status → (headline, what the officer should make of it)
    CardStatus.VALID: ("有效", "本证由守望平台签发，持证人为在册志愿者。请核对证上信息与持证人是否一致。"),
    CardStatus.EXPIRED: ("已过期", "证件已超过有效期。志愿者证每日更新，请持证人在手机上刷新后重新出示。"),
    CardStatus.NOT_YET_VALID: ("尚未生效", "证件的签发时间晚于本机时间，请检查本机时钟。"),
    CardStatus.REVOKED: ("已吊销", "该志愿者已被暂停或退出，证件作废。"),
    CardStatus.BAD_SIGNATURE: ("签名无效", "二维码内容被篡改或伪造，不是守望平台签发的证件。"),
    CardStatus.UNKNOWN_KEY: ("签发密钥未知", "无法确认签发方：可能是伪造的证件，或本机尚未取得最新的签发公钥。"),
    CardStatus.MALFORMED: ("无法识别", "这不是守望志愿者证的二维码。"),
}


def verify_router() -> APIRouter:
    """The /verify page (left out of the API's OpenAPI document)."""
    router = APIRouter(include_in_schema=False)
    templates = Jinja2Templates(directory=HERE / "templates")

    def page(request: Request, *, status: int = 200, **context) -> HTMLResponse:
        return templates.TemplateResponse(request, "verify.html", {"user": None, "csrf": csrf_of(request), "tz": COUNTY_TIME, **context}, status_code=status)

    @router.get("/verify")
    async def verify_page(request: Request) -> HTMLResponse:
        return page(request, qr="", check=None)

    @router.post("/verify")
    async def verify_card(request: Request, ctx: Context) -> HTMLResponse:
        await enforce_limit(ctx, ctx.limits.ip, f"verify:{caller_ip(request)}")
        qr = str((await request.form()).get("qr", ""))[: MAX_QR_CHARS + 1]
        check = await ctx.cards.check(qr)
        headline, advice = VERDICTS[check.verification.status]
        return page(request, qr=qr, check=check, headline=headline, advice=advice, team_names=ctx.cards.team_names)

    return router
