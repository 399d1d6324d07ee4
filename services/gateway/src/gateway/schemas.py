"""Request bodies and answers of the gateway's own API (sign-in, notifications, push, home, sync, reward claims).

Names follow docs/conventions.md (XCreate / XPublic / XPage); the sign-in family (StaffLogin, CodeRequest, CodeLogin,
RefreshRequest, CodeSent, TokenPair) and Home keep their names: phone clients generated from the contract use them
(tests/e2e/test_typed_client.py pins CodeRequest, CodeLogin, CodeSent, TokenPair and Home).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, field_validator
from pydantic import Field as PydanticField


class NotificationPublic(BaseModel):
    """A notification as a client sees it."""

    id: str
    kind: str
    title: str
    data: dict[str, Any]
    created_at: datetime


class NotificationPage(BaseModel):
    """Notifications after a cursor, and the cursor to ask from next time."""

    items: list[NotificationPublic]
    next_cursor: str


class PushSubscriptionKeys(BaseModel):
    """The subscription's keys, as PushSubscription.toJSON() gives them."""

    model_config = ConfigDict(extra="forbid")

    p256dh: str = PydanticField(min_length=20, max_length=200, pattern=r"^[A-Za-z0-9_-]+=*$")
    auth: str = PydanticField(min_length=8, max_length=100, pattern=r"^[A-Za-z0-9_-]+=*$")


class PushDeviceCreate(BaseModel):
    """A phone's Web Push subscription, as PushSubscription.toJSON() gives it (the phone's own id for itself is in the path)."""

    model_config = ConfigDict(extra="ignore")  # toJSON() also carries expirationTime

    endpoint: str = PydanticField(min_length=10, max_length=1000, description="the push service's URL for this subscription")
    keys: PushSubscriptionKeys


class PushKeyPublic(BaseModel):
    """What a phone needs to subscribe: the VAPID public key (applicationServerKey)."""

    public_key: str = PydanticField(description="uncompressed P-256 point, base64url")


class StaffLogin(BaseModel):
    """Staff credentials."""

    username: str = PydanticField(min_length=1, max_length=64)
    password: str = PydanticField(min_length=1, max_length=128)


PHONE_PATTERN = r"^(\+?86)?1[3-9]\d{9}$"


class CodeRequest(BaseModel):
    """A volunteer asks for a one-time login code."""

    phone: str = PydanticField(pattern=PHONE_PATTERN, description="中国大陆手机号")


class CodeLogin(BaseModel):
    """A volunteer logs in with the phone and the code received."""

    phone: str = PydanticField(pattern=PHONE_PATTERN)
    code: str = PydanticField(pattern=r"^\d{6}$")


class RefreshRequest(BaseModel):
    """A refresh token to exchange for new tokens."""

    refresh_token: str = PydanticField(min_length=10, max_length=200)


class TokenPair(BaseModel):
    """Tokens handed to a client at login or refresh."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    role: str
    scope_path: str = ""
    volunteer_id: str | None = None
    display_name: str | None = None


class CodeSent(BaseModel):
    """The answer to a code request (the same whether or not the phone is registered)."""

    sent: bool = True
    expires_in: int


class HomePartPublic(BaseModel):
    """One part of the home screen: `ok`, `timeout`, `unavailable` or `error`, with its data when ok."""

    status: str
    data: Any = None
    service: str
    http_status: int | None = None


class Home(BaseModel):
    """A volunteer's home screen in one call; parts that missed the time budget are marked."""

    profile: HomePartPublic
    offers: HomePartPublic
    shifts: HomePartPublic
    points: HomePartPublic
    star: HomePartPublic
    complete: bool
    elapsed_ms: float


class RewardClaimCreate(BaseModel):
    """Where an anonymous reporter wants the held reward paid when not claiming into a volunteer account."""

    model_config = ConfigDict(extra="forbid")
    payout_target: str | None = PydanticField(default=None, min_length=2, max_length=200, description="领取方式，例如联系人与支付账号")


class RewardClaimPublic(BaseModel):
    """A claim of an anonymous reporter's held rewards, as rewards answered it: where they went and how much (pending points stay)."""

    claim_id: str
    target: str
    points: float
    hours: float
    pending_points: float


class DevCodePublic(BaseModel):
    """The code last sent to a phone (DEV_MODE only)."""

    phone: str
    code: str


SyncKind = Literal["tip", "need", "accept", "decline", "check_in", "check_out", "redemption"]


class SyncActionCreate(BaseModel):
    """One thing a volunteer did on the phone, possibly offline, with the phone's own id for it."""

    model_config = ConfigDict(extra="forbid")

    id: str = PydanticField(min_length=8, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$",
                            description="the phone's id for this action (a UUID); the same id is the same action")
    kind: SyncKind
    at: AwareDatetime = PydanticField(description="when the volunteer did it, by the phone's clock")
    assignment_id: str | None = PydanticField(default=None, max_length=100, pattern=r"^[A-Za-z0-9-]+$",
                                              description="for accept, decline, check_in, check_out")
    body: dict[str, Any] = PydanticField(default_factory=dict, description="what the online call takes (a tip, a check-in's position and QR token, ...)")

    @field_validator("body")
    @classmethod
    def _passable(cls, body: dict[str, Any]) -> dict[str, Any]:
        try:
            orjson.dumps(body)
        except TypeError as exc:  # e.g. an integer beyond 64 bits: no service could read it
            raise ValueError(f"无法转交给服务的内容 (cannot be passed on): {exc}") from None
        return body


class SyncBatchCreate(BaseModel):
    """Actions queued on the phone, in the order they were done."""

    model_config = ConfigDict(extra="forbid")

    actions: list[SyncActionCreate] = PydanticField(min_length=1, max_length=100)


class SyncResultPublic(BaseModel):
    """What became of one action: done, duplicate (sent before; the first answer again), rejected with the reason, or retry."""

    id: str
    kind: str
    outcome: Literal["done", "duplicate", "rejected", "retry"]
    status: int | None = None
    result: Any = None
    reason: dict[str, Any] | None = None


class SyncBatchPublic(BaseModel):
    """One result per action, in the order sent."""

    results: list[SyncResultPublic]
