"""Web Push: an offer reaches a phone whose app is closed, through the real protocol (VAPID-signed, aes128gcm-encrypted)."""

from __future__ import annotations

import base64
import os
import uuid

import http_ece
import jwt
import orjson
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from multidict import CIMultiDict

from shouwang_dev.stack.infra import free_port
from shouwang_dev.testing import eventually, fetch_rows

from tests.e2e.journey import activated_operation, bearer, build_county, expect, register_volunteer, wait_until_known_to_dispatch

POST_LAT, POST_LON = 30.4700, 120.4700


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class PushService:
    """A push service on this machine, as a browser's would be: takes VAPID-signed posts and hands the body to the 'phone'."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[str, CIMultiDict, bytes]] = []  # (device path, headers, encrypted body)
        self._runner: web.AppRunner | None = None

    def endpoint(self, device: str) -> str:
        return f"http://127.0.0.1:{self.port}/push/{device}"

    async def __aenter__(self) -> PushService:
        app = web.Application()
        app.router.add_post("/push/{device}", self._take)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self._runner.cleanup()

    async def _take(self, request: web.Request) -> web.Response:
        device = request.match_info["device"]
        self.received.append((device, CIMultiDict(request.headers), await request.read()))
        return web.Response(status=410 if device == "gone" else 201)  # 410: the subscription was dropped


class Phone:
    """A browser's push subscription: its own P-256 key pair and auth secret, as PushManager.subscribe makes them."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)

    def keys(self) -> dict:
        point = self.key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return {"p256dh": _b64url(point), "auth": _b64url(self.auth)}

    def read(self, body: bytes) -> dict:
        return orjson.loads(http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"))


def _vapid_claims(headers: CIMultiDict, public_key: str) -> dict:
    """The VAPID JWT's claims, verified with the key the gateway publishes (RFC 8292: `vapid t=<jwt>, k=<key>`)."""
    scheme, _, params = headers["Authorization"].partition(" ")
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert scheme == "vapid" and fields["k"] == public_key
    raw = base64.urlsafe_b64decode(public_key + "=" * (-len(public_key) % 4))
    verifier = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    return jwt.decode(fields["t"], key=verifier, algorithms=["ES256"], options={"verify_aud": False})


async def test_an_offer_reaches_a_registered_phone_through_web_push_and_a_dropped_subscription_is_forgotten(platform):
    async with platform.client() as client, PushService() as push_service:
        county = await build_county(platform, client)
        volunteer = await register_volunteer(client, county, lat=POST_LAT, lon=POST_LON)
        me = bearer(volunteer.token)
        public_key = expect(await client.get("/api/v1/push/key", headers=me), 200)["public_key"]
        phone = Phone()
        device = str(uuid.uuid4())
        subscription = {"endpoint": push_service.endpoint("phone"), "keys": phone.keys(), "expirationTime": None}
        registered = await client.put(f"/api/v1/push/devices/{device}", headers=me, json=subscription)
        assert registered.status_code == 204, registered.text
        old_phone = {"endpoint": push_service.endpoint("gone"), "keys": Phone().keys()}
        assert (await client.put("/api/v1/push/devices/old-phone-1", headers=me, json=old_phone)).status_code == 204
        elsewhere = await client.put(f"/api/v1/push/devices/{device}", headers=me,
                                     json={**subscription, "endpoint": "https://metadata.internal/latest"})
        assert elsewhere.status_code == 422 and elsewhere.json()["detail"]["field"] == "endpoint"
        staff_phone = {**subscription, "endpoint": push_service.endpoint("staff-phone")}
        staff = await client.put(f"/api/v1/push/devices/{device}", headers=bearer(county.town_admin_token), json=staff_phone)
        assert staff.status_code == 204  # staff register their own phone (urgent-case alerts) under their own feed: the volunteer's stays theirs

        await wait_until_known_to_dispatch(platform, [volunteer.volunteer_id])
        op = await activated_operation(client, county, name="元宵灯会", post="东门", lat=POST_LAT, lon=POST_LON)

        def pushed(kind: str):
            async def found():
                messages = [phone.read(body) for device_path, _, body in push_service.received if device_path == "phone"]
                return [m for m in messages if m["kind"] == kind] or None
            return found

        (offer,) = await eventually(pushed("assignment_offered"), timeout_s=30, message="the offer pushed to the phone")
        assert offer["data"]["operation_id"] == op["id"] and "元宵灯会" in offer["title"]
        feed = expect(await client.get("/api/v1/notifications", headers=me), 200)["items"]
        assert offer["id"] in [n["id"] for n in feed], "the push names the notification the feed holds"
        _, headers, _ = next(r for r in push_service.received if r[0] == "phone")
        claims = _vapid_claims(headers, public_key)
        assert claims["aud"] == f"http://127.0.0.1:{push_service.port}" and claims["sub"].startswith("mailto:")
        assert headers["Content-Encoding"] == "aes128gcm" and int(headers["TTL"]) > 0

        async def dropped() -> bool:  # the push service said 410 for the old phone: that subscription is forgotten
            rows = await fetch_rows(platform.database_urls["gateway"], "SELECT device_id FROM push_devices WHERE volunteer_id = $1",
                                    volunteer.volunteer_id)
            return [r["device_id"] for r in rows] == [device]

        await eventually(dropped, timeout_s=10, message="the dropped subscription forgotten")
        assert any(r[0] == "gone" for r in push_service.received)
        assert (await client.delete("/api/v1/push/devices/old-phone-1", headers=me)).status_code == 404
        assert (await client.delete(f"/api/v1/push/devices/{device}", headers=me)).status_code == 204
