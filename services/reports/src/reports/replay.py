"""Wipe the report store and read every topic again from its first retained offset: `python -m reports.replay`
(with the service's environment, while no reports process runs). The journal rebuild (`POST /v1/reports/rebuild`)
is the everyday tool; this one is for a store lost or corrupted, within the topics' retention (14 days on most)."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import TopicPartition

from shouwang_shared.db import make_engine
from shouwang_shared.kafka import make_consumer
from shouwang_shared.topics import topic_name

from reports.config import ReportsSettings, get_settings
from reports.handlers import CONSUMER, consumer_specs
from reports.projections import PROJECTED_TABLES

log = logging.getLogger(__name__)


async def wipe_store(database_url: str) -> None:
    """Empty the journal, the projections and this consumer's inbox (the record of pushed service records stays)."""
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f"TRUNCATE facts, {', '.join(PROJECTED_TABLES)}")
            await conn.exec_driver_sql(f"DELETE FROM inbox WHERE consumer = '{CONSUMER}'")
    finally:
        await engine.dispose()


async def rewind_consumer_group(settings: ReportsSettings) -> int:
    """Set the reports group's committed offsets to the first retained offset of every partition it reads; returns how
    many partitions. Fails if a reports process is still a member of the group."""
    [spec] = consumer_specs()
    topics = [topic_name(t, settings.topic_prefix) for t in spec.topics]
    consumer = make_consumer(settings.kafka_bootstrap_servers, group_id=f"{settings.topic_prefix}{CONSUMER}")
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ()) ]
        if not partitions:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - a fresh client may not know the topics yet
            partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(partitions)
        earliest = await consumer.beginning_offsets(partitions)
        await consumer.commit({tp: offset for tp, offset in earliest.items()})
        return len(partitions)
    finally:
        await consumer.stop()


async def replay(settings: ReportsSettings) -> int:
    """Wipe the store and rewind the group: the next reports process rebuilds everything from the topics."""
    await wipe_store(settings.database_url)
    return await rewind_consumer_group(settings)


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    partitions = asyncio.run(replay(get_settings()))
    log.info("reports: store wiped, %d partitions rewound; start the service to read them again", partitions)


if __name__ == "__main__":
    main()
