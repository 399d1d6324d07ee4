"""Prometheus metrics shared by every service (one process, one registry; labelled by service)."""

from __future__ import annotations

import asyncio
import gc
import time

from prometheus_client import Counter, Gauge, Histogram

HTTP_LATENCY = Histogram(
    "shouwang_http_request_seconds",
    "HTTP request latency",
    ["service", "method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_PUBLISHED = Counter("shouwang_events_published_total", "Events published by the outbox relay", ["service", "topic"])
EVENTS_CONSUMED = Counter("shouwang_events_consumed_total", "Events consumed and committed", ["service", "consumer", "topic"])
EVENTS_DUPLICATE = Counter("shouwang_events_duplicate_total", "Events skipped by the inbox as already seen", ["service", "consumer"])
EVENTS_FAILED = Counter("shouwang_events_failed_total", "Events that failed and were dead-lettered", ["service", "consumer", "topic"])
DEAD_LETTERS = Counter("shouwang_dead_letters_total", "Messages written to a dead-letter topic", ["service", "consumer"])
OUTBOX_BACKLOG = Gauge("shouwang_outbox_backlog", "Outbox rows not yet published (counted up to 100,000)", ["service"])
OUTBOX_OLDEST_SECONDS = Gauge("shouwang_outbox_oldest_pending_seconds", "Age of the oldest unpublished outbox row", ["service"])
CONSUMER_LAG = Gauge("shouwang_consumer_lag", "Messages behind the log end, per consumer and partition", ["service", "consumer", "topic", "partition"])
READY = Gauge("shouwang_ready", "1 when the service is ready", ["service"])
GC_PAUSE = Histogram(
    "shouwang_gc_pause_seconds", "Pauses of Python's cyclic garbage collector", ["service", "generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)
LOOP_LAG = Histogram(
    "shouwang_event_loop_lag_seconds", "How late the event loop woke a timer: time requests waited behind work holding the loop",
    ["service"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def watch_gc_pauses(service: str) -> None:
    """Observe every collector pause of this process in `GC_PAUSE` (installed once per process)."""
    if any(getattr(cb, "shouwang_gc_watch", False) for cb in gc.callbacks):
        return
    started: list[float] = [0.0]
    pauses = [GC_PAUSE.labels(service, str(generation)) for generation in range(3)]  # looked up once, not per collection

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses[info["generation"]].observe(time.perf_counter() - started[0])

    on_gc.shouwang_gc_watch = True  # type: ignore[attr-defined]
    gc.callbacks.append(on_gc)


async def watch_loop_lag(service: str, interval_s: float = 0.1) -> None:
    """Observe in `LOOP_LAG` how late a timer of `interval_s` fires, for as long as the task runs."""
    lag = LOOP_LAG.labels(service)
    while True:
        before = time.perf_counter()
        await asyncio.sleep(interval_s)
        lag.observe(max(0.0, time.perf_counter() - before - interval_s))
