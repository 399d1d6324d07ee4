"""Per-person notifications (a volunteer's, or a staff member's under `staff_feed`): stored from events (inbox-idempotent),
listed after a cursor, pushed live."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shouwang_shared.db import StatementPool, raw_connection

from gateway.schemas import NotificationPage, NotificationPublic

log = logging.getLogger(__name__)


def staff_feed(sub: str) -> str:
    """The feed key of a staff member (the column is named for volunteers, whose feed key is their volunteer id)."""
    return f"staff:{sub}"


FEEDS_CHANNEL = "gateway_feeds"  # migration 0008: a trigger NOTIFYs the feed keys each INSERT into notifications stored
IDLE_REREAD_S = 5.0  # an open stream re-reads its feed this often when nothing wakes it and no notices are heard
IDLE_REREAD_LISTENING_S = 60.0  # … and this often while this process hears every replica's notices (a safety net)


class NotificationHub:
    """Wakes the live streams of a volunteer when something new was stored for them (by any gateway process)."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self.stored = asyncio.Event()  # set on every commit: wakes the push delivery
        self.listening = False  # hearing the feed notices of every process (`listen_for_feed_notices`)

    @property
    def idle_reread_s(self) -> float:
        """How long an open stream waits for a wake before it re-reads its feed anyway."""
        return IDLE_REREAD_LISTENING_S if self.listening else IDLE_REREAD_S

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

    def wake_many(self, volunteer_ids: Iterable[str]) -> None:
        """Wake every stream of each of `volunteer_ids`, and the push delivery."""
        for volunteer_id in volunteer_ids:
            for wake in self._waiters.get(volunteer_id, ()):
                wake.set()
        self.stored.set()

    def wake_everyone(self) -> None:
        """Wake every open stream of this process (after a gap in hearing the notices)."""
        self.wake_many(list(self._waiters))

    def stored_here(self, volunteer_ids: Iterable[str]) -> None:
        """This process committed notifications for `volunteer_ids`: wake their streams unless the notice will."""
        if self.listening:
            self.stored.set()  # the streams are woken by the notice, once, as for any other process's commit
        else:
            self.wake_many(volunteer_ids)

    def heard(self, payload: str) -> None:
        """A feed notice (the feed keys one per line): wake those streams."""
        self.wake_many(payload.split("\n"))

    def connected(self, volunteer_id: str) -> int:
        """How many live streams `volunteer_id` has here."""
        return len(self._waiters.get(volunteer_id, ()))


async def listen_for_feed_notices(hub: NotificationHub, dsn: str, *, retry_s: float = 2.0) -> None:
    """Hold a connection LISTENing to the feed notices of every gateway process, for the life of the runtime.

    While it listens, a commit here wakes streams through its notice too (once), and idle streams re-read rarely;
    when the connection is lost, streams re-read every IDLE_REREAD_S until it is back, then all re-read once.
    """
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:  # a timeout is an OSError
            log.warning("cannot listen for feed notices, streams poll every %.0fs: %s: %s", IDLE_REREAD_S, type(exc).__name__, exc)
            await asyncio.sleep(retry_s)
            continue
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
        try:
            await conn.add_listener(FEEDS_CHANNEL, lambda _conn, _pid, _channel, payload: hub.heard(payload))
            hub.listening = True
            hub.wake_everyone()  # what was stored while nobody here listened
            await lost.wait()
            log.warning("lost the feed notices connection; streams poll every %.0fs until it is back", IDLE_REREAD_S)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("cannot listen for feed notices: %s: %s", type(exc).__name__, exc)
        finally:
            hub.listening = False
            if not conn.is_closed():
                await conn.close(timeout=2)
        await asyncio.sleep(retry_s)


# The notifications a statement stored (CTE `stored`) are queued for push when their volunteer has a registered phone.
QUEUE_PUSHES = """
INSERT INTO push_queue (notification_id, volunteer_id)
SELECT id, volunteer_id FROM stored WHERE EXISTS (SELECT 1 FROM push_devices d WHERE d.volunteer_id = stored.volunteer_id)
"""
RECORD_MANY = """
WITH stored AS (
    INSERT INTO notifications (volunteer_id, event_id, kind, title, data, created_at)
    SELECT v, e, k, t, CAST(d AS jsonb), now() FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS n(v, e, k, t, d)
    ON CONFLICT (event_id) DO NOTHING RETURNING id, volunteer_id
)""" + QUEUE_PUSHES


@dataclass(frozen=True, slots=True)
class NewNotification:
    """A notification to store for one person's feed, from the event `event_id`."""

    volunteer_id: str
    event_id: str
    kind: str
    title: str
    data: dict[str, Any]


async def record_notifications(session: AsyncSession, *, hub: NotificationHub, items: list[NewNotification]) -> None:
    """Store many notifications (and their pushes) with one statement in the caller's transaction; wake their streams after commit."""
    if not items:
        return
    conn = await raw_connection(session)
    await conn.execute(
        RECORD_MANY, [n.volunteer_id for n in items], [n.event_id for n in items], [n.kind for n in items],
        [n.title for n in items], [orjson.dumps(n.data).decode() for n in items],
    )
    _wake_after_commit(session, hub, {n.volunteer_id for n in items})


def _wake_after_commit(session: AsyncSession, hub: NotificationHub, volunteer_ids: set[str]) -> None:
    """Wake `volunteer_ids`' streams when `session` commits: one listener per transaction gathers every feed it wrote."""
    info = session.sync_session.info
    pending = info.get(_PENDING_WAKES)
    if pending is None:
        pending = info[_PENDING_WAKES] = set()

        def wake(sync_session) -> None:
            hub.stored_here(sync_session.info.pop(_PENDING_WAKES, ()))

        def forget(sync_session) -> None:  # nothing was stored: the next transaction starts with no one to wake
            sync_session.info.pop(_PENDING_WAKES, None)

        sa_event.listen(session.sync_session, "after_commit", wake, once=True)
        sa_event.listen(session.sync_session, "after_rollback", forget, once=True)
    pending.update(volunteer_ids)


_PENDING_WAKES = "gateway.notifications.pending_wakes"


_NOTIFY_AREA = text("""
WITH stored AS (
    INSERT INTO notifications (volunteer_id, event_id, kind, title, data, created_at)
    SELECT s.subject, :e || ':' || s.subject, :k, :t, CAST(:d AS jsonb), now() FROM subject_status s
    WHERE s.kind = 'volunteer' AND s.allowed
      AND EXISTS (SELECT 1 FROM unnest(CAST(:paths AS text[])) p WHERE s.org_path = p OR left(s.org_path, length(p) + 1) = p || '/')
    ON CONFLICT (event_id) DO NOTHING RETURNING id, volunteer_id
)""" + QUEUE_PUSHES)


async def notify_area(
    session: AsyncSession, *, hub: NotificationHub, event_id: str, paths: list[str], kind: str, title: str, data: dict[str, Any],
) -> None:
    """One notification for every active volunteer under any of `paths` (a bulletin for an area), pushed like any other.

    Open streams are woken by the feed notices of the insert; the push delivery is woken at commit.
    """
    await session.execute(_NOTIFY_AREA, {"e": event_id, "k": kind, "t": title, "d": orjson.dumps(data).decode(),
                                       "paths": [p.rstrip("/") for p in paths]})
    sa_event.listen(session.sync_session, "after_commit", lambda _s: hub.stored.set(), once=True)


# `data` as the text PostgreSQL stored: the stream passes it through untouched, the list parses it once.
FEED_AFTER = "SELECT id, kind, title, data::text AS data, created_at FROM notifications WHERE volunteer_id = $1 AND id > $2 ORDER BY id LIMIT $3"


async def list_notifications(*, feeds: StatementPool, volunteer_id: str, since: int, limit: int = 100) -> NotificationPage:
    """The volunteer's notifications after cursor `since`, oldest first (one statement on the feed pool)."""
    rows = await feeds.fetch(FEED_AFTER, volunteer_id, since, limit)
    items = [NotificationPublic(id=str(r["id"]), kind=r["kind"], title=r["title"], data=orjson.loads(r["data"]),
                                created_at=r["created_at"]) for r in rows]
    return NotificationPage(items=items, next_cursor=items[-1].id if items else str(since))


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One notification ready for a live stream: its cursor, its kind and its JSON as `NotificationPublic` renders it."""

    id: int
    kind: str
    data: str


async def feed_events(*, feeds: StatementPool, volunteer_id: str, since: int, limit: int = 100) -> list[FeedEvent]:
    """The volunteer's notifications after cursor `since` as stream events, oldest first.

    One statement on the feed pool, a pool of its own: every open stream re-reads on each wake (300 at once when a
    bulletin reaches a town), which must neither wait behind nor hold up the statement pool every request's rate
    limit and session check need, nor pay the engine's pre-ping and rollback (three round trips, not one). The stored
    `data` is spliced into the event's JSON as PostgreSQL returns it, never parsed and encoded again.
    """
    rows = await feeds.fetch(FEED_AFTER, volunteer_id, since, limit)
    return [FeedEvent(r["id"], r["kind"], orjson.dumps(
        {"id": str(r["id"]), "kind": r["kind"], "title": r["title"], "data": orjson.Fragment(r["data"]), "created_at": r["created_at"]},
        option=orjson.OPT_UTC_Z).decode()) for r in rows]
