"""Kafka producer and consumer factories with the platform's delivery settings."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer



def make_producer(bootstrap_servers: str, *, linger_ms: int = 2, client_id: str | None = None) -> AIOKafkaProducer:
    """A producer that waits for all in-sync replicas (`acks=all`); correctness never needs idempotence."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        request_timeout_ms=15000,
        retry_backoff_ms=200,
        client_id=client_id,
        enable_idempotence=False,
    )


def make_consumer(
    bootstrap_servers: str,
    *topics: str,
    group_id: str,
    fetch_max_wait_ms: int = 20,
    client_id: str | None = None,
) -> AIOKafkaConsumer:
    """A consumer with manual offset commits that starts from the earliest offset of a new group."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms,
        max_poll_records=1000,
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
        max_poll_interval_ms=300000,
        client_id=client_id,
        isolation_level="read_uncommitted",
    )
