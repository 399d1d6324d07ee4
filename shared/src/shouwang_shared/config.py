"""Typed settings read from the environment; each service subclasses `ServiceSettings`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """What every service needs: where its database and the broker are, how it signs and logs."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    service_name: str = "service"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    log_level: str = "INFO"

    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
        description="SQLAlchemy URL of this service's own database (asyncpg driver)",
    )
    db_pool_size: int = 10

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = Field(default="", description="prefix for every topic name (test isolation)")
    consumer_fetch_max_wait_ms: int = Field(
        default=20, description="how long the broker holds a fetch without new records (aiokafka re-fetches a partition"
        " whose records were just handed over only after the fetch in flight returns, so this bounds that wait)"
    )
    producer_linger_ms: int = 2
    outbox_batch_size: int = 1000
    outbox_poll_interval_s: float = Field(default=0.05, description="relay poll interval while rows keep coming")
    outbox_idle_poll_interval_s: float = Field(default=1.0, description="longest relay poll interval when idle (own rows wake it at once)")
    run_relay: bool = True
    run_consumers: bool = True

    jwt_issuer: str = "shouwang"
    jwt_audience: str = "shouwang"
    jwt_public_keys: str = Field(default="", description='JSON object {"kid": "PEM public key"}')

    pii_key: str = Field(default="", description="base64 32-byte AES-GCM key for PII at rest")
    pii_index_key: str = Field(default="", description="base64 key for the HMAC blind index")
