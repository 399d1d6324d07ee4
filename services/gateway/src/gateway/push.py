"""Web Push to phones whose app is closed: devices registered per volunteer, pushes queued with the notification.

A notification stored for a volunteer who has registered devices also gets a `push_queue` row in the same transaction
(`record_notifications`), so a push is never lost to a crash between storing and sending. `PushDelivery` takes queued
rows (FOR UPDATE SKIP LOCKED, so replicas share the work), sends each device the notification through a `PushSender`
and deletes the row; a device the push service no longer knows (404/410) is forgotten; a push service that is away
gets the row again later, up to MAX_ATTEMPTS. A push is a wake-up call: the feed (`/notifications`) stays the record,
and the payload carries the notification id so the phone shows one alert for a push sent twice.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, Protocol
from urllib.parse import urlsplit

import aiohttp
import orjson
from cryptography.hazmat.primitives import serialization
from prometheus_client import Counter
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush_async
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.errors import NotFound, Unprocessable

log = logging.getLogger(__name__)

PushOutcome = Literal["sent", "gone", "retry"]
MAX_ATTEMPTS = 5
BATCH = 50
PUSHES = Counter("shouwang_gateway_pushes_total", "Web Push deliveries by outcome", ["outcome"])

_UPSERT_DEVICE = text("""
INSERT INTO push_devices (volunteer_id, device_id, endpoint, p256dh, auth) VALUES (:v, :d, :e, :p, :a)
ON CONFLICT (volunteer_id, device_id) DO UPDATE SET endpoint = excluded.endpoint, p256dh = excluded.p256dh, auth = excluded.auth,
    registered_at = now()
""")
_FORGET_DEVICE = text("DELETE FROM push_devices WHERE volunteer_id = :v AND device_id = :d RETURNING device_id")
_TAKE_DUE = text("""
SELECT q.notification_id, q.volunteer_id, q.attempts, n.kind, n.title, n.data
FROM push_queue q JOIN notifications n ON n.id = q.notification_id
WHERE q.not_before <= now() ORDER BY q.notification_id LIMIT :n FOR UPDATE OF q SKIP LOCKED
""")
_DEVICES_OF = text("SELECT volunteer_id, device_id, endpoint, p256dh, auth FROM push_devices WHERE volunteer_id = ANY(:vs) ORDER BY device_id")
_RETRY_LATER = text("UPDATE push_queue SET attempts = attempts + 1, not_before = now() + :wait WHERE notification_id = :id")
_DEQUEUE = text("DELETE FROM push_queue WHERE notification_id = :id")  # sent, or given up after MAX_ATTEMPTS


@dataclass(frozen=True)
class PushDevice:
    """A phone's push subscription: where its push service takes messages, and the keys the phone decrypts with."""

    device_id: str
    endpoint: str
    p256dh: str
    auth: str


class PushSender(Protocol):
    """Sends one encrypted message to one device through its push service."""

    async def send(self, device: PushDevice, payload: bytes, *, ttl_s: int) -> PushOutcome:
        """sent, gone (the push service no longer knows the device) or retry (the push service is away)."""
        ...


class WebPushSender:
    """RFC 8030 Web Push with VAPID (RFC 8292) and aes128gcm payload encryption (RFC 8188), through pywebpush."""

    def __init__(self, *, private_key: str, subject: str, timeout_s: float = 10) -> None:
        self._vapid = Vapid02.from_string(private_key=private_key)
        self._subject = subject
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def send(self, device: PushDevice, payload: bytes, *, ttl_s: int) -> PushOutcome:
        """Encrypt `payload` for the device and post it to its endpoint."""
        self._session = self._session or aiohttp.ClientSession()
        try:
            await webpush_async(
                {"endpoint": device.endpoint, "keys": {"p256dh": device.p256dh, "auth": device.auth}}, payload.decode(),
                vapid_private_key=self._vapid, vapid_claims={"sub": self._subject}, ttl=ttl_s, timeout=self._timeout_s,
                aiohttp_session=self._session,
            )
        except WebPushException as exc:
            status = getattr(exc.response, "status", None) or getattr(exc.response, "status_code", None)
            return "gone" if status in (404, 410) else "retry"
        except (aiohttp.ClientError, TimeoutError, OSError):
            return "retry"
        return "sent"

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()


def public_key_of(private_key: str) -> str:
    """The VAPID public key (uncompressed P-256 point, base64url) that a phone passes to PushManager.subscribe."""
    raw = Vapid02.from_string(private_key=private_key).public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def check_endpoint(endpoint: str, allowed_hosts: list[str]) -> None:
    """Refuse an endpoint that is not a push service this deployment trusts (the gateway would post to it)."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    trusted = any(host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in allowed_hosts)
    local = host in ("127.0.0.1", "localhost") and host in allowed_hosts
    if not trusted or (parts.scheme != "https" and not local):
        raise Unprocessable("不支持的推送服务地址 (not a push service this deployment trusts)", field="endpoint")


async def register_device(
    *, sessions: async_sessionmaker[AsyncSession], volunteer_id: str, device: PushDevice, allowed_hosts: list[str],
) -> None:
    """Keep (or replace) one device's subscription for the volunteer."""
    check_endpoint(device.endpoint, allowed_hosts)
    async with sessions() as session, session.begin():
        await session.execute(_UPSERT_DEVICE, {
            "v": volunteer_id, "d": device.device_id, "e": device.endpoint, "p": device.p256dh, "a": device.auth,
        })


async def forget_device(*, sessions: async_sessionmaker[AsyncSession], volunteer_id: str, device_id: str) -> None:
    """Stop pushing to a device (the phone signed out or turned notifications off)."""
    async with sessions() as session, session.begin():
        gone = (await session.execute(_FORGET_DEVICE, {"v": volunteer_id, "d": device_id})).first()
    if gone is None:
        raise NotFound("没有这个设备的推送登记", field="device_id")


def payload_of(notification_id: int, kind: str, title: str, data: dict) -> bytes:
    """What a phone's service worker receives: the notification as the feed shows it (its id is the alert's tag)."""
    return orjson.dumps({"id": str(notification_id), "kind": kind, "title": title, "data": data})


class PushDelivery:
    """Sends queued pushes: wakes when a notification is stored here, else looks every `idle_s` (other replicas' rows)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], sender: PushSender, *, wake: asyncio.Event,
                 idle_s: float = 1.0, ttl_s: int = 3600) -> None:
        self._sessions = sessions
        self._sender = sender
        self._idle_s = idle_s
        self._ttl_s = ttl_s
        self.wake = wake

    async def run(self) -> None:
        """Deliver until cancelled."""
        while True:
            try:
                if await self.deliver_due() == BATCH:
                    continue
            except Exception:  # the database is away: try again on the next turn
                log.exception("push delivery failed; retrying")
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=self._idle_s)
            except TimeoutError:
                pass
            self.wake.clear()

    async def deliver_due(self) -> int:
        """Send one batch of due pushes; how many queued rows were taken."""
        async with self._sessions() as session, session.begin():
            rows = (await session.execute(_TAKE_DUE, {"n": BATCH})).all()
            if not rows:
                return 0
            devices: dict[str, list[PushDevice]] = {}
            for d in (await session.execute(_DEVICES_OF, {"vs": list({r.volunteer_id for r in rows})})).all():
                devices.setdefault(d.volunteer_id, []).append(PushDevice(d.device_id, d.endpoint, d.p256dh, d.auth))
            for row in rows:
                await self._deliver(session, row, devices.get(row.volunteer_id, []))
        return len(rows)

    async def _deliver(self, session: AsyncSession, row, devices: list[PushDevice]) -> None:
        """Push one notification to every device of its volunteer; keep the row for later if a push service was away."""
        payload = payload_of(row.notification_id, row.kind, row.title, row.data)
        outcomes = await asyncio.gather(*(self._sender.send(d, payload, ttl_s=self._ttl_s) for d in devices))
        for device, outcome in zip(devices, outcomes, strict=True):
            PUSHES.labels(outcome).inc()
            if outcome == "gone":
                await session.execute(_FORGET_DEVICE, {"v": row.volunteer_id, "d": device.device_id})
        if "retry" in outcomes and row.attempts + 1 < MAX_ATTEMPTS:
            await session.execute(_RETRY_LATER, {"id": row.notification_id, "wait": timedelta(seconds=5 * 2 ** row.attempts)})
        else:
            await session.execute(_DEQUEUE, {"id": row.notification_id})
