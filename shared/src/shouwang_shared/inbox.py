"""Idempotent consumers: inbox + effect in one transaction, manual offsets, dead letters.

A `ConsumerRunner` reads its topics as one consumer group. For each fetched batch of a
partition it records the event ids in the `inbox` table and runs the handler of each new event,
all in one database transaction; the offsets are committed to Kafka only after that commit, so a
crash in between re-reads the batch and the inbox makes the replay change nothing. Offsets are committed in the
background, at most every `commit_interval_s` (and at once when partitions are revoked or the runner stops): the next
batch does not wait for the broker's answer, and a busy group sends a few commits a second, not one per batch. A crash
re-reads at most that interval's batches, which the inbox absorbs like any replay.

A busy group batches: while records come faster than `busy_records_per_s`, the broker holds each fetch until
`fetch_max_wait_ms` passes (or 64 KB are there), so a batch carries what arrived meanwhile instead of one or two
records, each batch's fixed cost (a fetch naming every partition, a transaction) paid a few dozen times a second, not
hundreds. That costs a record up to `fetch_max_wait_ms` more on a machine with cores to spare and saves far more on
a saturated one (docs/performance.md, "fetches held while busy"); below that rate a fetch returns as soon as one
record is there: quiet hours wait for nothing. 0 turns it off. A fetch that names every partition and returns on
the first record is held up to `quiet_fetch_max_wait_ms` (500 ms, the Java consumer's default): it ends as soon as a
record comes, so an idle group polls twice a second, not fifty times, at no cost in latency. Transient
failures (database or broker away) are retried with bounded backoff and then the partition is
rewound to its committed offset and tried again later. Any other failure isolates the message: it
is retried alone, then written to the group's dead-letter topic with the reason, and the partition
moves on.

Events are trusted by (topic, type, source), never by type alone. `handlers` is keyed by `(topic, type)` (catalog topic
names; `route(Model)` gives a contract's key). An event whose type this consumer handles on another topic, or whose
envelope `source` is not the producer the catalog names for its topic, is dead-lettered with the reason and never
reaches a handler; an event of a type this consumer does not handle anywhere is skipped, as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from shouwang_shared.db import is_transient_db_error, raw_connection
from shouwang_shared.envelope import Envelope, EventMeta
from shouwang_shared.kafka import make_consumer
from shouwang_shared.logs import reset_correlation_id, set_correlation_id
from shouwang_shared.metrics import CONSUMER_LAG, DEAD_LETTERS, EVENTS_CONSUMED, EVENTS_DUPLICATE, EVENTS_FAILED
from shouwang_shared.topics import dead_letter_topic, spec_of, topic_name

log = logging.getLogger(__name__)

EventHandler = Callable[[AsyncSession, Envelope], Awaitable[None]]
BatchEventHandler = Callable[[AsyncSession, list[Envelope]], Awaitable[None]]
TypedHandler = Callable[[AsyncSession, Any, EventMeta], Awaitable[None]]
HandlerKey = tuple[str, str]  # (catalog topic name, event type)


def route(model: Any) -> HandlerKey:
    """The handler key of a payload contract: the topic it travels on and its event type."""
    return (model.TOPIC, model.TYPE)


def typed_handlers(handlers: dict[Any, TypedHandler]) -> dict[HandlerKey, EventHandler]:
    """Routes for handlers that take the validated contract payload and the event's metadata, never the envelope.

    A payload that does not validate against its contract raises `ValidationError`: the message is isolated and
    dead-lettered with the reason, like any other poison message.
    """

    def typed(model: Any, fn: TypedHandler) -> EventHandler:
        async def handle(session: AsyncSession, event: Envelope) -> None:
            await fn(session, model.model_validate(event.data), EventMeta.of(event))

        handle.__name__ = handle.__qualname__ = fn.__name__
        return handle

    return {route(model): typed(model, fn) for model, fn in handlers.items()}


def batch_handler(fn: BatchEventHandler) -> BatchEventHandler:
    """Mark a handler that takes every new event of its type(s) in a fetched batch at once (for bulk writes)."""
    fn.takes_batch = True  # type: ignore[attr-defined]
    return fn


BUSY_FETCH_MIN_BYTES = 64 * 1024  # what a busy group's fetch waits for, up to `fetch_max_wait_ms`


def set_fetch_min_bytes(consumer: AIOKafkaConsumer, min_bytes: int) -> None:
    """Change what the consumer's next fetches wait for (aiokafka reads it each time it builds a fetch request)."""
    consumer._fetcher._fetch_min_bytes = min_bytes  # noqa: SLF001 - no public setter; tests/shared/test_inbox.py pins it


def hold_quiet_fetches(consumer: AIOKafkaConsumer, quiet_wait_ms: int) -> None:
    """Let the broker hold a fetch up to `quiet_wait_ms` when it names every partition and returns on the first record.

    Such a fetch ends the moment any of its partitions has a record, so waiting longer for nothing costs no latency;
    an idle consumer then polls twice a second instead of fifty times. The short wait stays for the fetches that
    leave a partition out (its records handed over but not yet taken, or paused: aiokafka fetches it again only
    when the fetch in flight returns) and for a busy group's held fetches (`set_fetch_min_bytes`), whose wait is
    the batching window. Reads aiokafka's fetcher state as `set_fetch_min_bytes` does (pinned by
    tests/shared/test_inbox.py).
    """
    fetcher = consumer._fetcher  # noqa: SLF001 - no public hook on how a fetch request is built
    short_wait_ms, build = fetcher._fetch_max_wait_ms, fetcher._get_actions_per_node  # noqa: SLF001

    def actions_per_node(assignment):
        every_partition = not fetcher._records and not consumer.paused()  # noqa: SLF001
        quiet = every_partition and fetcher._fetch_min_bytes == 1  # noqa: SLF001
        fetcher._fetch_max_wait_ms = quiet_wait_ms if quiet else short_wait_ms  # noqa: SLF001
        return build(assignment)

    fetcher._get_actions_per_node = actions_per_node  # noqa: SLF001


class PoisonMessage(Exception):
    """Raised by a handler for an event that can never be processed; it is dead-lettered with this reason."""


class TransientFailure(Exception):
    """A batch could not be processed because a dependency is away; it will be retried from its offset."""


def is_transient(exc: BaseException) -> bool:
    """True for failures that retrying may cure (database or broker unreachable)."""
    return is_transient_db_error(exc) or isinstance(exc, (KafkaError, TimeoutError, ConnectionError))


@dataclass
class ConsumerRunner:
    """Runs one consumer group over `topics`, calling `handlers[(topic, event.type)]` exactly once per event id."""

    name: str
    topics: list[str]
    handlers: dict[HandlerKey, EventHandler | BatchEventHandler]
    sessions: async_sessionmaker[AsyncSession]
    producer: AIOKafkaProducer
    bootstrap_servers: str
    service: str
    topic_prefix: str = ""
    fetch_max_wait_ms: int = 20
    quiet_fetch_max_wait_ms: int = 500
    max_records: int = 500
    retry_attempts: int = 4
    commit_interval_s: float = 0.2
    busy_records_per_s: float = 50.0
    group_id: str | None = None
    healthy: bool = False
    last_error: str | None = None
    processed: int = 0
    _consumer: AIOKafkaConsumer | None = field(default=None, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    _stopping: bool = False
    _handled_types: frozenset[str] = field(default=frozenset(), repr=False)
    _processed: dict[TopicPartition, int] = field(default_factory=dict, repr=False)  # next offset per partition, applied
    _uncommitted: dict[TopicPartition, int] = field(default_factory=dict, repr=False)  # of those, not yet sent to commit
    _committing: asyncio.Task | None = field(default=None, repr=False)
    _last_commit: float = field(default=0.0, repr=False)
    _rate_since: float = field(default=0.0, repr=False)
    _records_since: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        for key in self.handlers:
            if not (isinstance(key, tuple) and len(key) == 2):
                raise TypeError(f"consumer {self.name}: handlers are keyed by (topic, type), got {key!r}")
            if key[0] not in self.topics:
                raise ValueError(f"consumer {self.name}: a handler for topic {key[0]}, which it does not read")
        self._handled_types = frozenset(event_type for _, event_type in self.handlers)

    @property
    def group(self) -> str:
        """The Kafka consumer group id (isolated by the topic prefix)."""
        return f"{self.topic_prefix}{self.group_id or self.name}"

    @property
    def dead_letter_topic(self) -> str:
        """Physical name of this group's dead-letter topic."""
        return topic_name(dead_letter_topic(self.group_id or self.name), self.topic_prefix)

    async def run(self) -> None:
        """Consume until stopped; reconnects with backoff while the broker is away."""
        backoff = 0.5
        while not self._stopping:
            try:
                await self._run_consumer()
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the consumer is rebuilt after any failure
                self.healthy = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("consumer %s failed, restarting in %.1fs: %s", self.name, backoff, self.last_error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def stop(self) -> None:
        """Ask the runner to finish the batch in progress and leave the group."""
        self._stopping = True

    async def _run_consumer(self) -> None:
        physical = [topic_name(t, self.topic_prefix) for t in self.topics]
        consumer = make_consumer(
            self.bootstrap_servers, group_id=self.group, fetch_max_wait_ms=self.fetch_max_wait_ms,
            client_id=f"{self.service}-{self.name}",
        )
        self._consumer = consumer
        self._processed, self._uncommitted, self._committing = {}, {}, None
        self._rate_since, self._records_since = time.monotonic(), 0
        await consumer.start()
        if self.quiet_fetch_max_wait_ms > self.fetch_max_wait_ms:
            hold_quiet_fetches(consumer, self.quiet_fetch_max_wait_ms)
        consumer.subscribe(physical, listener=_CommitOnRevoke(self, consumer))
        try:
            self.healthy = True
            self.last_error = None
            while not self._stopping:
                batch = await consumer.getmany(timeout_ms=200, max_records=self.max_records)
                self._pace_fetches(consumer, sum(len(messages) for messages in batch.values()))
                if not batch:
                    self.healthy = True
                    self._commit_when_due(consumer)
                    continue
                async with self._lock:
                    await self._handle_fetch(consumer, batch)
        finally:
            self._consumer = None
            try:
                await self.commit_applied(consumer)
            except Exception:  # noqa: BLE001 - the broker is away: the inbox absorbs the re-read
                pass
            try:
                await consumer.stop()
            except Exception:  # noqa: BLE001 - leaving the group while the broker is away
                pass

    async def _handle_fetch(self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Apply a whole fetch (every assigned partition) in one transaction, then commit the offsets."""
        assigned = consumer.assignment()
        live = {tp: messages for tp, messages in batch.items() if tp in assigned and messages}
        offsets: dict[TopicPartition, int] = {}
        try:
            parsed: list[tuple[ConsumerRecord, Envelope]] = []
            for messages in live.values():
                parsed.extend(await self._parse(messages))
            await self._apply_isolating(parsed)
            offsets = {tp: messages[-1].offset + 1 for tp, messages in live.items()}
        except TransientFailure as exc:
            self.healthy = False
            self.last_error = str(exc)
            log.warning("consumer %s: %s; rewinding to committed offsets", self.name, exc)
            for tp in live:
                if tp not in consumer.assignment():
                    continue
                applied = self._processed.get(tp)
                committed = applied if applied is not None else await consumer.committed(tp)
                if committed is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, committed)
            await asyncio.sleep(1.0)
        if offsets:
            self._processed.update(offsets)
            self._uncommitted.update(offsets)
            self._commit_when_due(consumer)
        self.healthy = self.last_error is None or bool(offsets)
        if offsets:
            self.last_error = None
        for tp in offsets:
            high = consumer.highwater(tp)
            if high is not None:
                CONSUMER_LAG.labels(self.service, self.name, tp.topic, str(tp.partition)).set(max(0, high - offsets[tp]))

    def _pace_fetches(self, consumer: AIOKafkaConsumer, records: int) -> None:
        """Every half second: let the broker hold fetches while records come faster than `busy_records_per_s`."""
        now = time.monotonic()
        self._records_since += records
        if now - self._rate_since < 0.5:
            return
        rate = self._records_since / (now - self._rate_since)
        busy = 0 < self.busy_records_per_s <= rate
        set_fetch_min_bytes(consumer, BUSY_FETCH_MIN_BYTES if busy else 1)
        self._rate_since, self._records_since = now, 0

    def _commit_when_due(self, consumer: AIOKafkaConsumer) -> None:
        """Start committing the applied offsets in the background, unless a commit is on its way or one was sent
        less than `commit_interval_s` ago."""
        if not self._uncommitted or (self._committing is not None and not self._committing.done()):
            return
        if time.monotonic() - self._last_commit < self.commit_interval_s:
            return
        assigned = consumer.assignment()
        offsets = {tp: offset for tp, offset in self._uncommitted.items() if tp in assigned}
        self._uncommitted = {}
        self._last_commit = time.monotonic()
        if not offsets:
            return
        self._committing = asyncio.ensure_future(self._commit(consumer, offsets))

    async def commit_applied(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition] | None = None) -> None:
        """Commit every applied offset now (of `partitions` only, when given), after the commit on its way."""
        if self._committing is not None:
            await asyncio.gather(self._committing, return_exceptions=True)
        wanted = set(self._uncommitted) if partitions is None else set(self._uncommitted) & partitions
        offsets = {tp: self._uncommitted.pop(tp) for tp in wanted}
        if offsets:
            await self._commit(consumer, offsets)

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        """Commit `offsets`; when the broker is away they wait for the next commit (the inbox absorbs any re-read)."""
        try:
            await consumer.commit(offsets)
        except CommitFailedError as exc:
            log.warning("consumer %s: offset commit lost to a rebalance (the inbox absorbs the replay): %s", self.name, exc)
        except Exception as exc:  # noqa: BLE001 - retried with the next commit
            log.warning("consumer %s: offset commit failed, retried with the next one: %s", self.name, _short(exc))
            for tp, offset in offsets.items():
                if tp in consumer.assignment():
                    self._uncommitted[tp] = max(offset, self._uncommitted.get(tp, offset))

    async def _parse(self, messages: list[ConsumerRecord]) -> list[tuple[ConsumerRecord, Envelope]]:
        """Envelopes this consumer handles; a malformed or misplaced one is dead-lettered on the spot."""
        parsed: list[tuple[ConsumerRecord, Envelope]] = []
        for msg in messages:
            try:
                event = Envelope.from_bytes(msg.value)
            except (ValueError, ValidationError) as exc:
                await self._dead_letter(msg, f"malformed envelope: {_short(exc)}")
                continue
            refusal = self._refusal(msg, event)
            if refusal:
                await self._dead_letter(msg, refusal, event)
            elif self._key(msg, event) in self.handlers:
                parsed.append((msg, event))
        return parsed

    def _key(self, msg: ConsumerRecord, event: Envelope) -> HandlerKey:
        """The handler key of a message: its catalog topic (without the isolation prefix) and event type."""
        return (msg.topic.removeprefix(self.topic_prefix), event.type)

    def _refusal(self, msg: ConsumerRecord, event: Envelope) -> str | None:
        """Why an event this consumer would act on cannot be trusted here, or None."""
        topic, event_type = self._key(msg, event)
        if (topic, event_type) not in self.handlers:
            if event_type in self._handled_types:
                return f"event type {event_type} does not travel on {topic}"
            return None
        spec = spec_of(topic)
        if not spec.accepts_source(event.source):
            return f"source {event.source[:100]!r} may not publish on {topic} (its producer is {spec.source})"
        return None

    async def _apply_isolating(self, parsed: list[tuple[ConsumerRecord, Envelope]]) -> None:
        """Apply `parsed` in one transaction; if that fails for a non-transient reason, apply each alone."""
        if not parsed:
            return
        try:
            await self._with_retries(lambda: self._apply(parsed))
        except TransientFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - isolate the failing message below
            log.info("consumer %s: batch of %d failed (%s); isolating", self.name, len(parsed), _short(exc))
            for msg, event in parsed:
                try:
                    await self._with_retries(lambda m=msg, e=event: self._apply([(m, e)]))
                except TransientFailure:
                    raise
                except Exception as single_exc:  # noqa: BLE001 - poison: dead-letter and move on
                    await self._dead_letter(msg, _reason(single_exc), event)

    async def _with_retries(self, attempt: Callable[[], Awaitable[None]]) -> None:
        """Retry transient failures a bounded number of times, then signal a rewind."""
        try:
            async for trying in AsyncRetrying(
                stop=stop_after_attempt(self.retry_attempts),
                wait=wait_exponential(multiplier=0.1, max=2),
                retry=retry_if_exception(is_transient),
                reraise=True,
            ):
                with trying:
                    await attempt()
        except Exception as exc:
            if is_transient(exc):
                raise TransientFailure(f"dependency unavailable: {_short(exc)}") from exc
            raise

    async def _apply(self, items: list[tuple[ConsumerRecord, Envelope]]) -> None:
        """Record the events in the inbox and run the handlers of the new ones, in one transaction."""
        async with self.sessions() as session:
            async with session.begin():
                conn = await raw_connection(session)
                ids = [event.id for _, event in items]
                rows = await conn.fetch(
                    "INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::text[]) "
                    "ON CONFLICT DO NOTHING RETURNING event_id",
                    self.name, ids,
                )
                fresh = {r["event_id"] for r in rows}
                new_events: list[tuple[HandlerKey, Envelope]] = []
                for msg, event in items:
                    if event.id in fresh:
                        fresh.discard(event.id)
                        new_events.append((self._key(msg, event), event))
                duplicates = len(items) - len(new_events)
                await self._run_handlers(session, new_events)
        for topic, count in Counter(msg.topic for msg, _ in items).items():
            EVENTS_CONSUMED.labels(self.service, self.name, topic).inc(count)
        if duplicates:
            EVENTS_DUPLICATE.labels(self.service, self.name).inc(duplicates)
        self.processed += len(items)

    async def _run_handlers(self, session: AsyncSession, events: list[tuple[HandlerKey, Envelope]]) -> None:
        """Run each event's handler in order; a batch handler gets each run of consecutive events it handles.

        A batch handler registered for several (topic, type) keys receives their events mixed, in order, in one call.
        """
        i = 0
        while i < len(events):
            handler = self.handlers[events[i][0]]
            if getattr(handler, "takes_batch", False):
                j = i
                while j < len(events) and self.handlers[events[j][0]] is handler:
                    j += 1
                await handler(session, [event for _, event in events[i:j]])
                i = j
                continue
            event = events[i][1]
            token = set_correlation_id(event.correlationid)
            try:
                await handler(session, event)
            finally:
                reset_correlation_id(token)
            i += 1

    async def _dead_letter(self, msg: ConsumerRecord, reason: str, event: Envelope | None = None) -> None:
        """Write the message, untouched, to the dead-letter topic with the reason in headers."""
        headers = list(msg.headers or []) + [
            ("dlq_reason", reason[:2000].encode()),
            ("dlq_consumer", self.name.encode()),
            ("dlq_source_topic", msg.topic.encode()),
            ("dlq_source_partition", str(msg.partition).encode()),
            ("dlq_source_offset", str(msg.offset).encode()),
            ("dlq_time", datetime.now(UTC).isoformat().encode()),
        ]
        try:
            await self.producer.send_and_wait(self.dead_letter_topic, value=msg.value, key=msg.key, headers=headers)
        except KafkaError as exc:
            raise TransientFailure(f"dead-letter topic unavailable: {_short(exc)}") from exc
        DEAD_LETTERS.labels(self.service, self.name).inc()
        EVENTS_FAILED.labels(self.service, self.name, msg.topic).inc()
        log.warning(
            "consumer %s dead-lettered %s@%s/%s (%s): %s",
            self.name, event.type if event else "?", msg.topic, msg.offset, event.id if event else "-", reason,
        )


class _CommitOnRevoke(ConsumerRebalanceListener):
    """Waits for the batch in progress and commits what was applied before partitions are handed over."""

    def __init__(self, runner: ConsumerRunner, consumer: AIOKafkaConsumer) -> None:
        self._runner = runner
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._runner._lock:  # noqa: SLF001 - the runner's own batch lock
            try:
                await self._runner.commit_applied(self._consumer, set(revoked))
            except Exception as exc:  # noqa: BLE001 - the next owner re-reads from the last commit; the inbox absorbs it
                log.warning("consumer %s: offsets not committed before a rebalance: %s", self._runner.name, _short(exc))
            for tp in revoked:
                self._runner._processed.pop(tp, None)  # noqa: SLF001
                self._runner._uncommitted.pop(tp, None)  # noqa: SLF001 - not ours to commit any more

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) < 500 else text[:500] + "…"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, PoisonMessage):
        return str(exc)
    if isinstance(exc, ValidationError):
        fields = ", ".join(".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in exc.errors()[:5])
        return f"invalid payload: {fields}"
    return f"handler failed: {_short(exc)}"


async def replay_dead_letters(
    *,
    bootstrap_servers: str,
    group: str,
    producer: AIOKafkaProducer,
    topic_prefix: str = "",
    max_messages: int | None = None,
    idle_timeout_s: float = 3.0,
) -> int:
    """Re-publish the dead letters of `group` to their source topics; returns how many were replayed."""
    dlq = topic_name(dead_letter_topic(group), topic_prefix)
    consumer = make_consumer(bootstrap_servers, dlq, group_id=f"{topic_prefix}{group}.dlq-replay")
    await consumer.start()
    replayed = 0
    last_seen = time.monotonic()
    try:
        while max_messages is None or replayed < max_messages:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            if not batch:
                if time.monotonic() - last_seen > idle_timeout_s:
                    break
                continue
            last_seen = time.monotonic()
            offsets = {}
            for tp, messages in batch.items():
                for msg in messages:
                    headers = dict(msg.headers or [])
                    source = headers.get("dlq_source_topic")
                    if source:
                        kept = [(k, v) for k, v in (msg.headers or []) if not k.startswith("dlq_")]
                        kept.append(("dlq_replayed", b"1"))
                        await producer.send_and_wait(source.decode(), value=msg.value, key=msg.key, headers=kept)
                        replayed += 1
                    offsets[tp] = msg.offset + 1
            await consumer.commit(offsets)
    finally:
        await consumer.stop()
    return replayed
