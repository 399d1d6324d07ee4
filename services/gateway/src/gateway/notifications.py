"""Per-person notifications (a volunteer's, or a staff member's under `staff_feed`): stored from events (inbox-idempotent),
listed after a cursor, pushed live."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import orjson
from sqlalchemy import event as sa_event
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.models import Notification, NotificationPage, NotificationPublic


def staff_feed(sub: str) -> str:
    """The feed key of a staff member (the column is named for volunteers, whose feed key is their volunteer id)."""
    return f"staff:{sub}"


class NotificationHub:
    """Wakes the live streams of a volunteer when something new was stored for them (in this process)."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self.stored = asyncio.Event()  # set on every commit: wakes the push delivery

    def subscribe(self, volunteer_id: str) -> asyncio.Event:
        """An event set whenever a notification for `volunteer_id` is committed."""
        wake = asyncio.Event()
        self._waiters[volunteer_id].add(wake)
        return wake

    def unsubscribe(self, volunteer_id: str, wake: asyncio.Event) -> None:
        """Stop waking `wake`."""
        waiters = self._waiters.get(volunteer_id)
        if waiters is not None:
            waiters.discard(wake)
            if not waiters:
                del self._waiters[volunteer_id]

    def wake(self, volunteer_id: str) -> None:
        """Wake every stream of `volunteer_id`, and the push delivery."""
        for wake in self._waiters.get(volunteer_id, ()):
            wake.set()
        self.stored.set()

    def connected(self, volunteer_id: str) -> int:
        """How many live streams `volunteer_id` has here."""
        return len(self._waiters.get(volunteer_id, ()))


# The notifications a statement stored (CTE `stored`) are queued for push when their volunteer has a registered phone.
QUEUE_PUSHES = """
INSERT INTO push_queue (notification_id, volunteer_id)
SELECT id, volunteer_id FROM stored WHERE EXISTS (SELECT 1 FROM push_devices d WHERE d.volunteer_id = stored.volunteer_id)
"""
RECORD = """
WITH stored AS (
    INSERT INTO notifications (volunteer_id, event_id, kind, title, data, created_at) VALUES (:v, :e, :k, :t, CAST(:d AS jsonb), now())
    ON CONFLICT (event_id) DO NOTHING RETURNING id, volunteer_id
)""" + QUEUE_PUSHES


async def record_notification(
    session: AsyncSession, *, hub: NotificationHub, volunteer_id: str, event_id: str, kind: str, title: str,
    data: dict[str, Any],
) -> None:
    """Store a notification (and its push, when the volunteer has a registered phone) in the caller's transaction; wake streams after commit."""
    await session.execute(text(RECORD), {"v": volunteer_id, "e": event_id, "k": kind, "t": title, "d": orjson.dumps(data).decode()})
    sa_event.listen(session.sync_session, "after_commit", lambda _s: hub.wake(volunteer_id), once=True)


AREA = """
WITH stored AS (
    INSERT INTO notifications (volunteer_id, event_id, kind, title, data, created_at)
    SELECT s.subject, :e || ':' || s.subject, :k, :t, CAST(:d AS jsonb), now() FROM subject_status s
    WHERE s.kind = 'volunteer' AND s.allowed
      AND EXISTS (SELECT 1 FROM unnest(CAST(:paths AS text[])) p WHERE s.org_path = p OR left(s.org_path, length(p) + 1) = p || '/')
    ON CONFLICT (event_id) DO NOTHING RETURNING id, volunteer_id
)""" + QUEUE_PUSHES


async def notify_area(
    session: AsyncSession, *, hub: NotificationHub, event_id: str, paths: list[str], kind: str, title: str, data: dict[str, Any],
) -> None:
    """One notification for every active volunteer under any of `paths` (a bulletin for an area), pushed like any other.

    Open streams pick it up on their next re-read (within 5 s); the push delivery is woken at commit.
    """
    await session.execute(text(AREA), {"e": event_id, "k": kind, "t": title, "d": orjson.dumps(data).decode(),
                                       "paths": [p.rstrip("/") for p in paths]})
    sa_event.listen(session.sync_session, "after_commit", lambda _s: hub.stored.set(), once=True)


def _public(row: Notification) -> NotificationPublic:
    return NotificationPublic(id=str(row.id), kind=row.kind, title=row.title, data=row.data, created_at=row.created_at)


async def list_notifications(
    *, sessions: async_sessionmaker[AsyncSession], volunteer_id: str, since: int, limit: int = 100,
) -> NotificationPage:
    """The volunteer's notifications after cursor `since`, oldest first."""
    async with sessions() as session:
        rows = (await session.execute(
            select(Notification).where(Notification.volunteer_id == volunteer_id, Notification.id > since)
            .order_by(Notification.id).limit(limit)
        )).scalars().all()
    items = [_public(r) for r in rows]
    return NotificationPage(items=items, next_cursor=items[-1].id if items else str(since))
