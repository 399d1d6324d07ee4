"""Prometheus metrics of the dispatch service (on the shared registry, scraped at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PLANS = Counter("shouwang_dispatch_plans_total", "Operations planned", ["kind"])
PLAN_SECONDS = Histogram(
    "shouwang_dispatch_plan_seconds", "Activation consumed to offers in the outbox",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30),
)
FILL = Gauge(
    "shouwang_dispatch_fill", "Heads per operation by measure (required, offered, accepted, checked_in, on_post, declined, shortfall)",
    ["operation", "measure"],
)
BACKFILL_OFFERS = Counter("shouwang_dispatch_backfill_offers_total", "Offers sent by backfill waves", ["kind"])
FILL_RATIO = Gauge(
    "shouwang_dispatch_fill_ratio", "Accepted heads / required heads of an activated or running operation", ["operation_id"],
)
NEXT_SHIFT_START = Gauge(
    "shouwang_dispatch_next_shift_start_timestamp_seconds",
    "Start (Unix seconds) of the operation's earliest shift that has not begun yet", ["operation_id"],
)
