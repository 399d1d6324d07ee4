"""Prometheus metrics shared by every service (one process, one registry; labelled by service)."""

from __future__ import annotations

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
OUTBOX_BACKLOG = Gauge("shouwang_outbox_backlog", "Outbox rows not yet published", ["service"])
OUTBOX_OLDEST_SECONDS = Gauge("shouwang_outbox_oldest_pending_seconds", "Age of the oldest unpublished outbox row", ["service"])
CONSUMER_LAG = Gauge("shouwang_consumer_lag", "Messages behind the log end, per consumer and partition", ["service", "consumer", "topic", "partition"])
READY = Gauge("shouwang_ready", "1 when the service is ready", ["service"])
