"""Kafka handlers of the reports service: every event a figure needs goes into the journal and the projections."""

from __future__ import annotations

from shouwang_shared.app import ConsumerSpec
from shouwang_shared.inbox import batch_handler, route

from reports import journal
from reports.facts import READERS

CONSUMER = "reports"


def consumer_specs() -> list[ConsumerSpec]:
    """One consumer group over every topic a figure is built from; a fetch is journalled and projected at once."""
    take_in = batch_handler(journal.take_in)
    return [
        ConsumerSpec(
            name=CONSUMER,
            topics=sorted({model.TOPIC for model in READERS}),
            handlers=dict.fromkeys((route(model) for model in READERS), take_in),
            max_records=2000,
        )
    ]
