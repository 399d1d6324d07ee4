"""Kafka producer, consumer and admin factories with the platform's delivery and security settings."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSecurity(BaseSettings):
    """How this process's Kafka clients authenticate: `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*`, `KAFKA_SSL_*`."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore", case_sensitive=False)

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_ca_file: str = ""  # CA bundle the brokers' certificates are checked against
    ssl_cert_file: str = ""  # client certificate, for mutual TLS
    ssl_key_file: str = ""

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments every aiokafka client of the process gets (none for PLAINTEXT)."""
        if self.security_protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL_"):
            if not (self.sasl_username and self.sasl_password):
                raise ValueError("KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required with SASL")
            options |= {"sasl_mechanism": self.sasl_mechanism, "sasl_plain_username": self.sasl_username,
                        "sasl_plain_password": self.sasl_password}
        if self.security_protocol.endswith("SSL"):
            options["ssl_context"] = create_ssl_context(
                cafile=self.ssl_ca_file or None, certfile=self.ssl_cert_file or None, keyfile=self.ssl_key_file or None)
        return options


@lru_cache(maxsize=1)
def client_security() -> dict[str, Any]:
    """This process's Kafka security options, read once from the environment."""
    return KafkaSecurity().client_options()


def make_admin(bootstrap_servers: str, *, request_timeout_ms: int = 30000) -> AIOKafkaAdminClient:
    """An admin client (topic creation and listing) with the process's security settings."""
    return AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=request_timeout_ms, **client_security())


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
        **client_security(),
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
        **client_security(),
    )
