"""Transactional outbox: events are written with the business rows and published by a relay.

One way to publish: `outbox_row` takes a contract payload model (`shouwang_shared.contracts.EventPayload`, validated
when it was built), serializes it once in its envelope and returns the row (`OutboxRow`, `OUTBOX_COLUMNS` order).
A hot path that writes its business rows in one statement passes `*row` to its own `INSERT INTO outbox`, then wakes
the relays.

`enqueue` / `enqueue_many` add rows inside the caller's transaction. `OutboxRelay` publishes
pending rows with `acks=all` and marks them sent. Several replicas are safe: rows are spread over
shards by key, a relay owns a shard through a session-level advisory lock (so one key's events
keep their order) and picks rows with `FOR UPDATE SKIP LOCKED`.

Replicas share the shards. Each live relay holds a member slot, the advisory lock
(`MEMBER_LOCK_NAMESPACE`, k) for the lowest free k, on the same connection as its shard locks; every
`SHARD_CLAIM_INTERVAL_S` it reads the held member slots from `pg_locks` (no table, no heartbeat: a slot
lives exactly as long as its relay's session) and keeps its fair share, `fair_share`: OUTBOX_SHARDS / live
relays, the first ranks taking one more when it does not divide. A relay above its share gives up its
highest shards, a relay below it takes free ones; a dead relay's session takes its member slot and shard locks
with it, so the others see fewer members and take its shards at their next claim. A shard is only given up
between two drains, when every row picked from it has been acknowledged and marked sent (or left pending with
its attempt recorded), so one key is never published by two relays at once. Before publishing, a relay records
`attempted_at`; a row found pending with an earlier attempt (the relay died or a send timed out
between publish and mark) is first looked for on the topic, by event id, and only published when it
is not there — so a row is published once even across a crash.

A relay is woken at once by its own process's commits (`wake_relays`) and, through the `outbox_pending` notice every
outbox-writing transaction sends at commit (a platform trigger), by any other process's: its lock connection
LISTENs. Polling (`idle_poll_interval_s`) only finds what no notice announced (a notice lost with a connection).
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from shouwang_shared.contracts import EventPayload
from shouwang_shared.db import StatementPool, raw_connection
from shouwang_shared.envelope import Cause, envelope_bytes, fast_event_id
from shouwang_shared.kafka import make_consumer
from shouwang_shared.logs import current_correlation_id
from shouwang_shared.metrics import EVENTS_PUBLISHED, OUTBOX_BACKLOG, OUTBOX_OLDEST_SECONDS
from shouwang_shared.topics import topic_name

log = logging.getLogger(__name__)

OUTBOX_SHARDS = 16
SHARD_LOCK_NAMESPACE = 7_246_100
MEMBER_LOCK_NAMESPACE = 7_246_101  # (namespace, k): relay k of this database is alive
RELAY_WAKE_CHANNEL = "outbox_pending"  # the notice a platform trigger sends when a transaction adds outbox rows
MAX_RELAYS = 64
SHARD_CLAIM_INTERVAL_S = 1.0
LIVE_MEMBER_SLOTS = (  # the member slots held in this database (advisory locks are per database)
    "SELECT objid::int AS slot FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
    " AND classid::bigint = :ns AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " ORDER BY 1"
)
# The backlog gauge, every few seconds: pending rows counted on the pending index up to a cap (a count of a million-row
# backlog after an outage read the index whole each time; the alert fires at 5,000), and the oldest pending row's age
# from the first row of each shard (ids come in commit order closely enough; `min(created_at)` read every pending row).
BACKLOG_COUNTED_UP_TO = 100_000
PENDING_COUNT = "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE sent_at IS NULL LIMIT :cap) AS pending"
OLDEST_PENDING_AGE = (
    "SELECT extract(epoch FROM now() - min(o.created_at)) FROM generate_series(0, :last) AS s(shard)"
    " CROSS JOIN LATERAL (SELECT created_at FROM outbox WHERE sent_at IS NULL AND shard = s.shard ORDER BY id LIMIT 1) AS o"
)
# One statement, so it commits alone: the rows are marked attempted before anything is sent; $3: rows in flight. Rows
# come in (shard, id) order, the order of the pending index: a key's rows keep their order (a key lives in one shard),
# and the scan skips the rows already sent. (In plain id order the planner walked the primary key over every row sent
# in the last hour, kept for housekeeping: 100,000 of them per pick halfway through a 200,000-row drain.)
PICK_PENDING = (
    "WITH picked AS ("
    "  SELECT id, attempted_at AS previous FROM outbox"
    "  WHERE sent_at IS NULL AND shard = ANY($1::int[]) AND id <> ALL($3::bigint[])"
    "  ORDER BY shard, id LIMIT $2 FOR UPDATE SKIP LOCKED)"
    " UPDATE outbox o SET attempted_at = now(), attempts = o.attempts + 1"
    " FROM picked WHERE o.id = picked.id"
    " RETURNING o.id, o.event_id, o.topic, o.key, o.payload, picked.previous"
)

_wakers: set[OutboxRelay] = set()  # this process's running relays, whatever thread runs each


def shard_of(key: str) -> int:
    """The outbox shard of an aggregate key (stable across processes)."""
    return zlib.crc32(key.encode()) % OUTBOX_SHARDS


def fair_share(live_slots: Iterable[int], slot: int, shards: int = OUTBOX_SHARDS) -> int:
    """How many shards the relay holding member `slot` should own among the relays holding `live_slots`."""
    live = sorted(set(live_slots) | {slot})
    base, extra = divmod(shards, len(live))
    return base + (1 if live.index(slot) < extra else 0)


def wake_relays(*_: object) -> None:
    """Tell this process's relays that outbox rows were just committed (after a `StatementPool` statement that wrote one)."""
    for relay in list(_wakers):
        relay.wake()


def wake_relays_after_commit(session: AsyncSession) -> None:
    """Wake this process's relays when `session` commits (`enqueue_many` does; so must code that COPYs into the outbox)."""
    sync = session.sync_session
    if not sa_event.contains(sync, "after_commit", wake_relays):
        sa_event.listen(sync, "after_commit", wake_relays, once=True)


OUTBOX_COLUMNS = ("event_id", "topic", "key", "shard", "payload")
INSERT_OUTBOX_ROW = f"INSERT INTO outbox ({', '.join(OUTBOX_COLUMNS)}) VALUES ($1, $2, $3, $4, $5)"  # `*row` fills it


class OutboxRow(NamedTuple):
    """One outbox row in `OUTBOX_COLUMNS` order: `*row` fills a caller's `INSERT INTO outbox`, `row` is a COPY record."""

    event_id: str  # asyncpg encodes the uuid column from its text
    topic: str  # catalog name (shouwang_shared.topics), without a prefix
    key: str  # the Kafka message key: events of one key keep their order
    shard: int
    payload: bytes  # the envelope: the Kafka message value (the relay derives the headers from it)


def outbox_row(
    payload: EventPayload, *, subject: str, key: str | None = None, caused_by: Cause | None = None,
    correlation_id: str | None = None, at: datetime | None = None, event_id: str | None = None,
    causation_id: str | None = None,
) -> OutboxRow:
    """The outbox row of one event: `payload` in its envelope on the payload's topic, keyed by `key` (default `subject`).

    Correlation and causation come from `caused_by` (else `correlation_id`/`causation_id` as stored by a caller that
    acts later on an event, else the request's correlation id); `at` is the event time (default now); `event_id` when
    the caller made ids in bulk (`fast_event_ids`), else a fresh time-ordered one.
    """
    if not isinstance(payload, EventPayload):
        raise TypeError(f"outbox rows are made from contract payload models, not {type(payload).__name__}")
    subject = str(subject)
    key = subject if key is None else key
    event_id = event_id or fast_event_id()
    value = envelope_bytes(
        payload, event_id=event_id, subject=subject, time=at or datetime.now(UTC),
        correlation_id=correlation_id or (caused_by.correlationid if caused_by else None) or current_correlation_id(),
        causation_id=caused_by.id if caused_by else causation_id,
    )
    return OutboxRow(event_id, payload.TOPIC, key, shard_of(key), value)


async def enqueue(
    session: AsyncSession, payload: EventPayload, *, subject: str, key: str | None = None,
    caused_by: Cause | None = None, correlation_id: str | None = None,
) -> None:
    """Add one event to the outbox inside the caller's transaction (`outbox_row`'s arguments)."""
    await enqueue_many(session, [outbox_row(payload, subject=subject, key=key, caused_by=caused_by, correlation_id=correlation_id)])


async def enqueue_many(session: AsyncSession, rows: Iterable[OutboxRow]) -> int:
    """Insert `rows` (from `outbox_row`) inside the caller's transaction: one INSERT for a few, one COPY for many."""
    records = list(rows)
    if not records:
        return 0
    if not all(isinstance(row, OutboxRow) for row in records):
        raise TypeError("outbox rows are made by outbox_row from contract payload models")
    conn = await raw_connection(session)
    if len(records) < 20:
        await conn.executemany(INSERT_OUTBOX_ROW, records)
    else:
        await conn.copy_records_to_table("outbox", records=records, columns=OUTBOX_COLUMNS)
    wake_relays_after_commit(session)
    return len(records)


class OutboxRelay:
    """Publishes pending outbox rows of one service database to Kafka."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        producer: AIOKafkaProducer,
        bootstrap_servers: str,
        service: str,
        topic_prefix: str = "",
        batch_size: int = 1000,
        poll_interval_s: float = 0.05,
        idle_poll_interval_s: float = 1.0,
        statements: StatementPool | None = None,
    ) -> None:
        self.engine = engine
        self.statements = statements
        self.producer = producer
        self.bootstrap_servers = bootstrap_servers
        self.service = service
        self.topic_prefix = topic_prefix
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.idle_poll_interval_s = max(idle_poll_interval_s, poll_interval_s)
        self.owned_shards: list[int] = []
        self.member_slot: int | None = None
        self.live_relays = 0
        self._lock_conn: AsyncConnection | None = None
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop `run` runs on (a thread of its own, or the service's)
        self._stopping = False
        self._last_housekeeping = 0.0
        self._last_shard_claim = 0.0
        self.healthy = False
        self.last_error: str | None = None

    async def run(self) -> None:
        """Publish until stopped; failures are logged and retried with backoff."""
        self._loop = asyncio.get_running_loop()
        _wakers.add(self)
        backoff = 0.2
        interval = self.poll_interval_s
        try:
            while not self._stopping:
                try:
                    await self._ensure_shards()
                    published = await self.publish_pending()
                    await self._housekeeping()
                    self.healthy, self.last_error, backoff = True, None, 0.2
                    # Rows enqueued in this process wake the relay at once; polling finds the rest (another replica's
                    # rows in a shard this relay owns, rows left by a crash): often while rows keep coming, then
                    # less and less often, down to `idle_poll_interval_s`, so an idle service costs next to nothing.
                    interval = self.poll_interval_s if published else min(interval * 2, self.idle_poll_interval_s)
                    if published < self.batch_size and not await self._sleep(interval):
                        interval = self.poll_interval_s
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any failure: report, back off, retry
                    self.healthy = False
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("outbox relay of %s failed, retrying in %.1fs: %s", self.service, backoff, self.last_error)
                    await self._drop_lock_conn()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            _wakers.discard(self)
            await self._drop_lock_conn()

    def stop(self) -> None:
        """Ask the relay loop to end after the batch in progress (from any thread)."""
        self._stopping = True
        self.wake()

    def wake(self) -> None:
        """Look for pending rows now; safe to call from any thread (the relay may run on a loop of its own)."""
        loop = self._loop
        if loop is None:
            self._wake.set()
            return
        try:
            same_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            same_loop = False
        if same_loop:
            self._wake.set()
        else:
            try:
                loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # that loop is closed: the relay has ended
                pass

    async def _sleep(self, seconds: float) -> bool:
        """Wait `seconds` or until woken; False when woken (rows were just enqueued here)."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
            timed_out = False
        except TimeoutError:
            timed_out = True
        self._wake.clear()
        return timed_out

    async def _ensure_shards(self) -> None:
        """Hold this relay's fair share of the shards: join as a member, then give up extras or take free shards."""
        if self._lock_conn is None:
            self._lock_conn = await self.engine.connect()
            self.owned_shards = []
            self.member_slot = None
            await self._listen(self._lock_conn)
        if self.owned_shards and time.monotonic() - self._last_shard_claim < SHARD_CLAIM_INTERVAL_S:
            return  # the share changes when a replica comes or goes: look now and then, not on every poll
        self._last_shard_claim = time.monotonic()
        conn = self._lock_conn
        if self.member_slot is None:
            self.member_slot = await self._join(conn)
        if self.member_slot is None:
            await conn.commit()
            return  # MAX_RELAYS relays already: this one stands by
        share, start = await self._share()
        # Nothing is in flight here (publish_pending has settled every batch), so a shard given up has no row on its
        # way: its next owner starts from the first row still pending. The shards farthest from this relay's start go.
        for shard in sorted(self.owned_shards, key=lambda s: (s - start) % OUTBOX_SHARDS)[share:]:
            await conn.scalar(text("SELECT pg_advisory_unlock(:ns, :shard)"), {"ns": SHARD_LOCK_NAMESPACE, "shard": shard})
            self.owned_shards.remove(shard)
        for offset in range(OUTBOX_SHARDS):
            if len(self.owned_shards) >= share:
                break
            shard = (start + offset) % OUTBOX_SHARDS
            if shard in self.owned_shards:
                continue
            got = await conn.scalar(
                text("SELECT pg_try_advisory_lock(:ns, :shard)"), {"ns": SHARD_LOCK_NAMESPACE, "shard": shard}
            )
            if got:
                self.owned_shards.append(shard)
        await conn.commit()

    async def _listen(self, conn: AsyncConnection) -> None:
        """Be woken by the `outbox_pending` notice of any process's commit, on the lock connection."""
        raw = (await conn.get_raw_connection()).driver_connection
        await raw.add_listener(RELAY_WAKE_CHANNEL, self._heard)
        await conn.execute(text(f"LISTEN {RELAY_WAKE_CHANNEL}"))
        await conn.commit()

    def _heard(self, *_: object) -> None:
        """Another process committed outbox rows: look for them now."""
        self._wake.set()

    async def _share(self) -> tuple[int, int]:
        """This relay's fair share of the shards now, and the shard its share begins at (relays read the live members)."""
        rows = await self._lock_conn.execute(text(LIVE_MEMBER_SLOTS), {"ns": MEMBER_LOCK_NAMESPACE})
        live = sorted(set(rows.scalars().all()) | {self.member_slot})
        await self._lock_conn.commit()
        self.live_relays = len(live)
        return fair_share(live, self.member_slot), live.index(self.member_slot) * OUTBOX_SHARDS // len(live)

    async def _share_changed(self) -> bool:
        """Whether a replica came or went since the last claim (looked at once per claim interval)."""
        if self.member_slot is None or time.monotonic() - self._last_shard_claim < SHARD_CLAIM_INTERVAL_S:
            return False
        share, _ = await self._share()
        if share != len(self.owned_shards):
            return True
        self._last_shard_claim = time.monotonic()
        return False

    async def _join(self, conn: AsyncConnection) -> int | None:
        """Take the lowest free member slot on the lock connection; None when all MAX_RELAYS are taken."""
        for slot in range(MAX_RELAYS):
            if await conn.scalar(text("SELECT pg_try_advisory_lock(:ns, :slot)"), {"ns": MEMBER_LOCK_NAMESPACE, "slot": slot}):
                return slot
        log.warning("outbox relay of %s: %d relays already share the outbox, this one stands by", self.service, MAX_RELAYS)
        return None

    async def _drop_lock_conn(self) -> None:
        if self._lock_conn is not None:
            try:
                await self._lock_conn.invalidate()  # really close: the shard locks die with the session
                await self._lock_conn.close()
            except Exception:  # noqa: BLE001 - the connection may already be gone
                pass
        self._lock_conn = None
        self.owned_shards = []
        self.member_slot = None

    async def publish_pending(self) -> int:
        """Publish the pending rows of the owned shards batch by batch until a short batch; returns how many were published or found.

        The next batch is picked and handed to the producer while the broker acknowledges the previous one and the relay
        marks it sent (one batch in flight, never picked twice), so a 10,800-row fan-out does not wait for a database round
        trip and a broker round trip per batch in turn. A quiet outbox costs one pick, as before: nothing waits for a full batch.
        """
        if not self.owned_shards:
            return 0
        total = 0
        in_flight: asyncio.Task | None = None
        in_flight_ids: list[int] = []
        try:
            while True:
                rows = await self._fetch(PICK_PENDING, self.owned_shards, self.batch_size, in_flight_ids)
                if not rows:
                    break
                sent = await self._send(rows)
                if in_flight is not None:
                    await in_flight  # the previous batch is acknowledged and marked (or its failure raised) first
                in_flight, in_flight_ids = asyncio.ensure_future(self._settle(*sent)), [r["id"] for r in rows]
                total += len(rows)
                if len(rows) < self.batch_size or self._stopping:
                    break
                if await self._share_changed():
                    break  # a long drain stops when a replica came or went, so the shares are settled at once
        finally:
            if in_flight is not None:
                await in_flight
        return total

    async def _send(self, rows: list) -> tuple[list, list[int]]:
        """Hand a picked batch to the producer in id order; returns its (row, delivery future)s and the ids of rows
        already on their topics (published before a crash)."""
        rows.sort(key=lambda r: r["id"])
        uncertain = [r for r in rows if r["previous"] is not None]
        already_there: set[str] = set()
        if uncertain:
            already_there = await self._find_published(uncertain)
        futures = []
        found_ids = []
        for row in rows:
            physical = topic_name(row["topic"], self.topic_prefix)
            if str(row["event_id"]) in already_there:
                found_ids.append(row["id"])
                continue
            envelope_headers = _headers_from_payload(row["payload"])
            fut = await self.producer.send(
                physical, value=bytes(row["payload"]), key=row["key"].encode(), headers=envelope_headers
            )
            futures.append((row, fut))
        return futures, found_ids

    async def _settle(self, futures: list, sent_ids: list[int]) -> None:
        """Wait for the broker's acknowledgements of a batch and mark its rows sent; raise when some were not acknowledged."""
        errors = []
        for row, fut in futures:
            try:
                await fut
                sent_ids.append(row["id"])
                EVENTS_PUBLISHED.labels(self.service, row["topic"]).inc()
            except Exception as exc:  # noqa: BLE001 - left pending, retried after a look on the topic
                errors.append((row["id"], f"{type(exc).__name__}: {exc}"))
        await self._mark(sent_ids, errors)
        if errors:
            raise RuntimeError(f"{len(errors)} outbox rows not acknowledged by the broker: {errors[0][1]}")

    async def _mark(self, sent_ids: list[int], errors: list[tuple[int, str]]) -> None:
        """Record which rows the broker acknowledged, and the error of those it did not."""
        if sent_ids:
            await self._fetch("UPDATE outbox SET sent_at = now(), last_error = NULL WHERE id = ANY($1::bigint[])", sent_ids)
        if errors:
            failed = errors[:50]
            await self._fetch(
                "UPDATE outbox o SET last_error = e.error FROM unnest($1::bigint[], $2::text[]) AS e(id, error) WHERE o.id = e.id",
                [row_id for row_id, _ in failed], [err[:500] for _, err in failed],
            )

    async def _fetch(self, query: str, *args: object) -> list:
        """Run one statement in autocommit: on the statement pool when there is one (one round trip), else on the engine."""
        if self.statements is not None and self.statements.started:
            return await self.statements.fetch(query, *args)
        async with self.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            return await driver.fetch(query, *args)

    async def _find_published(self, rows: list) -> set[str]:
        """Event ids among `rows` that are already on their topics (published before a crash)."""
        by_topic: dict[str, list] = defaultdict(list)
        for row in rows:
            by_topic[topic_name(row["topic"], self.topic_prefix)].append(row)
        found: set[str] = set()
        consumer = make_consumer(self.bootstrap_servers, group_id=None, client_id=f"{self.service}-outbox-lookup")
        await consumer.start()
        try:
            for topic, topic_rows in by_topic.items():
                since: datetime = min(r["previous"] for r in topic_rows) - timedelta(seconds=30)
                wanted = {str(r["event_id"]) for r in topic_rows}
                found |= await _scan_topic_for_ids(consumer, topic, int(since.timestamp() * 1000), wanted)
        finally:
            await consumer.stop()
        if found:
            log.info("outbox relay of %s: %d uncertain rows were already published", self.service, len(found))
        return found

    async def _housekeeping(self) -> None:
        """Every few seconds: report the backlog and drop rows sent over an hour ago."""
        now = time.monotonic()
        if now - self._last_housekeeping < 5:
            return
        self._last_housekeeping = now
        async with self.engine.begin() as conn:
            backlog = await conn.scalar(text(PENDING_COUNT), {"cap": BACKLOG_COUNTED_UP_TO})
            oldest = await conn.scalar(text(OLDEST_PENDING_AGE), {"last": OUTBOX_SHARDS - 1})
            OUTBOX_BACKLOG.labels(self.service).set(backlog)
            OUTBOX_OLDEST_SECONDS.labels(self.service).set(float(oldest or 0))
            await conn.execute(text("DELETE FROM outbox WHERE sent_at < now() - interval '1 hour'"))


def _headers_from_payload(payload: bytes) -> list[tuple[str, bytes]]:
    """Kafka headers for a stored envelope (id, type, correlation id)."""
    data = orjson.loads(payload)
    headers = [("ce_id", str(data["id"]).encode()), ("ce_type", str(data["type"]).encode())]
    if data.get("correlationid"):
        headers.append(("correlation_id", str(data["correlationid"]).encode()))
    return headers


async def _scan_topic_for_ids(consumer: AIOKafkaConsumer, topic: str, since_ms: int, wanted: set[str]) -> set[str]:
    """Read `topic` from `since_ms` to its current end and return which `wanted` event ids it holds."""
    partitions = consumer.partitions_for_topic(topic)
    if partitions is None:
        await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public refresh
        partitions = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in partitions]
    if not tps:
        return set()
    consumer.assign(tps)
    ends = await consumer.end_offsets(tps)
    starts = await consumer.offsets_for_times({tp: since_ms for tp in tps})
    active = []
    for tp in tps:
        start = starts.get(tp)
        if start is None or start.offset >= ends[tp]:
            continue
        consumer.seek(tp, start.offset)
        active.append(tp)
    found: set[str] = set()
    remaining = set(active)
    deadline = time.monotonic() + 30
    while remaining and time.monotonic() < deadline:
        batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=5000)
        for tp, messages in batch.items():
            for msg in messages:
                ce_id = dict(msg.headers or []).get("ce_id")
                if ce_id is not None and ce_id.decode() in wanted:
                    found.add(ce_id.decode())
                if msg.offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        for tp in list(remaining):
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
    return found
