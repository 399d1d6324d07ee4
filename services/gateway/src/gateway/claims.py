"""An anonymous reporter claims the rewards held for their receipt: intel checks the secret, rewards pays out."""

from __future__ import annotations

from urllib.parse import quote

from fastapi.responses import JSONResponse

from shouwang_shared.auth import Principal, Role
from shouwang_shared.errors import NotFound, Unprocessable

from gateway.upstream import Upstreams


async def claim_receipt_reward(
    *, upstreams: Upstreams, code: str, secret: str, principal: Principal | None, payout_target: str | None,
) -> dict | JSONResponse:
    """Verify `code` + `secret` with intel, then move what rewards holds for it to the caller or a payout target."""
    receipt = await upstreams.send("intel", "GET", f"/v1/receipts/{quote(code[:64], safe='')}", headers={"X-Receipt-Secret": secret})
    if receipt.status_code != 200:
        headers = {k: v for k, v in receipt.headers.items() if k.lower() == "retry-after"}
        return JSONResponse(receipt.json(), status_code=receipt.status_code, headers=headers)
    claim_ref = receipt.json()["claim_ref"]
    if principal is not None and principal.role == Role.VOLUNTEER and principal.volunteer_id:
        target = {"volunteer_id": principal.volunteer_id}
    elif payout_target:
        target = {"payout_target": payout_target}
    else:
        raise Unprocessable("请登录志愿者账号领取，或填写领取方式 payout_target", field="payout_target")
    paid = await upstreams.call_internal("rewards", "POST", "/internal/v1/claims", json={"claim_ref": claim_ref, **target})
    if paid.status_code == 404:
        raise NotFound("该回执暂无可领取的奖励", field="code", code="nothing_held")
    if paid.status_code != 201:
        return JSONResponse(paid.json(), status_code=502 if paid.status_code >= 500 else paid.status_code)
    return paid.json()
