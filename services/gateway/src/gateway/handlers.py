"""Kafka handlers of the gateway service: translate an event and call one service function."""

from __future__ import annotations

from shouwang_shared.app import ConsumerSpec


def consumer_specs() -> list[ConsumerSpec]:
    """The consumer groups this service runs."""
    return []
