"""Typed settings read from the environment; each service subclasses `ServiceSettings`."""

from __future__ import annotations

import json

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shouwang_shared.pii import PiiCipher


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
    db_pool_size: int = Field(
        default=20, description="connections kept open per process (each opened when first needed; a burst may open as"
        " many again, closed when returned): at 10, the e2e storm's 20 disputes at once plus the tips opened and closed"
        " a PostgreSQL backend per request beyond 10 (docs/performance.md, 'connections opened per request')"
    )

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = Field(default="", description="prefix for every topic name (test isolation)")
    consumer_fetch_max_wait_ms: int = Field(
        default=20, description="how long the broker holds a fetch without new records: each idle consumer polls this"
        " often (20 ms costs 6 % of a core per consumer and 7-11 % of the broker's, `python -m bench.fetch_wait`), but"
        " aiokafka re-fetches a partition just handed over only after the fetch in flight returns, so this bounds that"
        " wait (at 50 ms rewards' hops grew in the e2e storm: docs/performance.md, 'what an idle platform burns')"
    )
    consumer_quiet_fetch_max_wait_ms: int = Field(
        default=500, description="how long the broker may hold a fetch that names every partition and returns on the"
        " first record (it ends when one comes, so an idle consumer polls this often at no cost in latency); a fetch"
        " leaving a partition out, or a busy group's, waits consumer_fetch_max_wait_ms. Not above it: off"
    )
    consumer_busy_records_per_s: float = Field(
        default=50.0, description="above this many records a second a consumer group lets the broker hold each fetch"
        " for up to consumer_fetch_max_wait_ms (fewer, larger batches: on 2 cores the e2e storm's p50 fell 115-127 →"
        " 64-78 ms, while a quiet machine's tip → ledger p50 at 100/s rose 25 → 34 ms); 0: never hold"
    )
    producer_linger_ms: int = 2
    outbox_batch_size: int = 1000
    outbox_poll_interval_s: float = Field(default=0.05, description="relay poll interval while rows keep coming")
    outbox_idle_poll_interval_s: float = Field(default=1.0, description="longest relay poll interval when idle (own rows wake it at once)")
    run_relay: bool = True
    relay_in_thread: bool = Field(
        default=False, description="run the outbox relay on an event loop and connections of its own, in a thread: its"
        " picks no longer wait behind the requests in flight (storm: intel's API relay pick p99 44-156 ms against 142-275),"
        " but the GIL hand-overs cost the service's own loop (intel +12 % CPU, disputes slower; e2e p99 not better)"
    )
    run_consumers: bool = True

    jwt_issuer: str = "shouwang"
    jwt_audience: str = "shouwang"
    jwt_public_keys: str = Field(default="", description='JSON object {"kid": "PEM public key"}')


class PiiKeySettings(BaseSettings):
    """The personal-data keys of a service that keeps personal data (mixed into that service's settings only).

    Rotation: set the new key in PII_KEY with a higher PII_KEY_VERSION and keep the retired one in PII_OLD_KEYS
    (`{"1": "<old key>"}`) until every row sealed under it has been re-sealed. The blind index key cannot rotate
    this way (a look-up needs the one hash the row was stored under): it stays one key.
    """

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    pii_key: str = Field(default="", description="base64 32-byte AES-GCM key that seals new PII (version PII_KEY_VERSION)")
    pii_key_version: int = Field(default=1, ge=1, le=255, description="version byte written before every new ciphertext")
    pii_old_keys: dict[int, str] = Field(default_factory=dict, description='retired keys that only decrypt, JSON {"1": "<base64 key>"}')
    pii_index_key: str = Field(default="", description="base64 key for the HMAC blind index")

    @field_validator("pii_old_keys", mode="before")
    @classmethod
    def _old_keys_from_json(cls, value: object) -> object:
        """PII_OLD_KEYS given as a JSON string (as the environment and secrets hold it) or as a mapping."""
        return json.loads(value or "{}") if isinstance(value, str) else value

    def pii_cipher(self) -> PiiCipher:
        """The cipher of these keys: seals under the current version, opens every version configured."""
        return PiiCipher(self.pii_key, self.pii_index_key, key_version=self.pii_key_version, old_keys=self.pii_old_keys)
