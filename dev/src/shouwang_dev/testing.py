"""Test support: a real PostgreSQL and Kafka for the test session, isolated databases and topics.

Used as a pytest plugin by `tests/conftest.py`. When `STACK_PG_ADMIN_URL` and
`KAFKA_BOOTSTRAP_SERVERS` are set (e.g. from a running `make infra`), those servers are used;
otherwise the session starts its own under a temporary folder and stops them at the end. Every
test session gets its own topic prefix and databases, so parallel runs on one broker never meet.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from shouwang_dev.stack.infra import KafkaBroker, PostgresServer, free_port
from shouwang_shared.auth import Role, TokenSigner, generate_keypair
from shouwang_shared.envelope import Envelope
from shouwang_shared.topics import CATALOG, ensure_topics

TEST_VAPID_KEY = base64.urlsafe_b64encode(bytes(range(1, 33))).rstrip(b"=").decode()  # a P-256 private scalar, fixed for tests
# The registry's volunteer card signing key (Ed25519, PEM), fixed for tests.
TEST_CARD_KEY = Ed25519PrivateKey.from_private_bytes(b"c" * 32).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()


@dataclass
class TestStack:
    """The servers of a test session and helpers to carve isolated pieces out of them."""

    pg_admin_url: str
    bootstrap_servers: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    pg: PostgresServer | None = None
    kafka: KafkaBroker | None = None
    root: Path | None = None  # the temporary directory of the servers this stack started (removed when stopped)
    jwt_private_pem: str = ""
    jwt_public_pem: str = ""
    jwt_kid: str = "test-key"

    def __post_init__(self) -> None:
        if not self.jwt_private_pem:
            self.jwt_private_pem, self.jwt_public_pem = generate_keypair()

    @property
    def topic_prefix(self) -> str:
        """The session's topic prefix."""
        return f"t{self.run_id}."

    def database_url(self, name: str) -> str:
        """URL of the session's database `name` (see `create_database`)."""
        base = self.pg_admin_url.rsplit("/", 1)[0]
        return f"{base}/t{self.run_id}_{name}"

    async def create_database(self, name: str, *, fresh: bool = True) -> str:
        """Create (or re-create when `fresh`) the session database `name`; returns its URL."""
        db = f"t{self.run_id}_{name}"
        conn = await asyncpg.connect(self.pg_admin_url.replace("+asyncpg", ""))
        try:
            if fresh:
                await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", db)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{db}"')
        finally:
            await conn.close()
        return self.database_url(name)

    def new_prefix(self) -> str:
        """A topic prefix of its own, for a test that must not see other tests' events."""
        return f"t{self.run_id}{uuid.uuid4().hex[:6]}."

    async def ensure_topics(self, prefix: str | None = None) -> None:
        """Create the catalog's topics under `prefix` (the session prefix by default)."""
        await ensure_topics(self.bootstrap_servers, CATALOG, prefix=self.topic_prefix if prefix is None else prefix)

    def signer(self) -> TokenSigner:
        """Signs tokens the services of this session accept."""
        return TokenSigner(self.jwt_private_pem, self.jwt_kid, issuer="shouwang", audience="shouwang")

    def token(self, role: Role | str, *, sub: str = "tester", scope_path: str = "", volunteer_id: str | None = None, ttl_s: int = 900) -> str:
        """A bearer token for a principal of `role`."""
        return self.signer().issue(sub=sub, role=role, scope_path=scope_path, volunteer_id=volunteer_id, ttl_s=ttl_s)

    @property
    def service_keys(self) -> dict[str, dict[str, str]]:
        """Each service's own secret keys (fixed for tests), as `make_secrets` lays them out: none shared."""
        return {
            "registry": {"PII_KEY": _test_key(b"k"), "PII_INDEX_KEY": _test_key(b"i"), "CARD_SIGNING_KEY": TEST_CARD_KEY},
            "dispatch": {"PII_KEY": _test_key(b"b")},
            "intel": {"PII_KEY": _test_key(b"d"), "RECEIPT_KEY": _test_key(b"r"), "PSEUDONYM_KEY": _test_key(b"p")},
            "rewards": {"PAYOUT_KEY": _test_key(b"o")},
            "gateway": {"LOGIN_CODE_KEY": _test_key(b"l"), "VAPID_PRIVATE_KEY": TEST_VAPID_KEY},
        }

    def service_env(self, service: str, database_url: str, prefix: str | None = None, **extra: str) -> dict[str, str]:
        """Settings (as environment names) for a service under test: only its own keys."""
        import json

        env = {
            "SERVICE_NAME": service,
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "TOPIC_PREFIX": self.topic_prefix if prefix is None else prefix,
            "JWT_PUBLIC_KEYS": json.dumps({self.jwt_kid: self.jwt_public_pem}),
            **self.service_keys.get(service, {}),
            "OUTBOX_POLL_INTERVAL_S": "0.02",
        }
        env.update({k.upper(): str(v) for k, v in extra.items()})
        return env


def _test_key(fill: bytes) -> str:
    return base64.b64encode(fill * 32).decode()


def start_test_stack(*, private: bool = False, kafka_scram_users: dict[str, str] | None = None, durable: bool = False) -> TestStack:
    """Use the servers named in the environment, or (always when `private` or SCRAM users are asked for) start a
    PostgreSQL and Kafka of its own; with `kafka_scram_users` the broker also has an ACL-enforcing SASL listener.
    Tests run PostgreSQL without fsync for speed; benchmarks ask for `durable` (fsync and synchronous commit on),
    so a commit they time is one that would survive a power cut."""
    admin = os.environ.get("STACK_PG_ADMIN_URL")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if admin and bootstrap and not private and not kafka_scram_users:
        return TestStack(pg_admin_url=admin, bootstrap_servers=bootstrap)
    root = Path(tempfile.mkdtemp(prefix="shouwang-test-"))
    pg = PostgresServer(root / "pgdata", free_port(), durable=durable)
    kafka = KafkaBroker(root / "kafka", free_port(), free_port(), scram_users=kafka_scram_users)
    pg.start()
    kafka.start()
    return TestStack(pg_admin_url=pg.admin_url, bootstrap_servers=kafka.bootstrap_servers, pg=pg, kafka=kafka, root=root)


def stop_test_stack(stack: TestStack) -> None:
    """Stop what `start_test_stack` started and remove its data (each run left a PostgreSQL and a Kafka log behind).

    Data about to be removed needs no controlled shutdown: the servers get 3 s before they are killed (Kafka's
    controlled shutdown alone took most of a minute at the end of every `make test`)."""
    patience = 3 if stack.root is not None else None
    for server in (stack.kafka, stack.pg):
        if server:
            server.stop() if patience is None else server.stop(timeout_s=patience)
    if stack.root is not None:
        # Removed in the background: a whole test run's databases and topic logs are hundreds of thousands of files.
        subprocess.Popen(["rm", "-rf", str(stack.root)], start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@asynccontextmanager
async def running_app(app: FastAPI, *, wait_ready: bool = True, timeout_s: float = 60) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan (relay and consumers included) and yield an HTTP client bound to it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            if wait_ready:
                await wait_until_ready(client, timeout_s=timeout_s)
            yield client


async def wait_until_ready(client: httpx.AsyncClient, *, timeout_s: float = 60) -> None:
    """Poll `/readyz` until it answers 200."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await client.get("/readyz")
        if last.status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"service not ready: {last.text if last else 'no answer'}")


async def eventually(predicate, *, timeout_s: float = 20, interval_s: float = 0.05, message: str = "condition"):
    """Await `predicate()` (sync or async) until it returns a truthy value; returns that value."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out waiting for {message}")
        await asyncio.sleep(interval_s)


async def read_topic(bootstrap_servers: str, topic: str, *, timeout_s: float = 3.0) -> list[tuple[bytes | None, Envelope | bytes, dict]]:
    """Every message currently on `topic` (from the beginning): (key, envelope or raw value, headers)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out = []
    try:
        await consumer.seek_to_beginning()
        partitions = list(consumer.assignment())
        ends = await consumer.end_offsets(list(partitions))
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            positions = [await consumer.position(tp) for tp in partitions]
            if all(pos >= ends[tp] for pos, tp in zip(positions, partitions, strict=True)):
                break
            batch = await consumer.getmany(timeout_ms=200)
            for msgs in batch.values():
                for m in msgs:
                    try:
                        value: Envelope | bytes = Envelope.from_bytes(m.value)
                    except Exception:  # noqa: BLE001 - raw bytes for non-envelopes
                        value = m.value
                    out.append((m.key, value, dict(m.headers or [])))
    finally:
        await consumer.stop()
    return out


async def consumer_positions(bootstrap_servers: str, prefix: str) -> tuple[dict, dict]:
    """(committed offsets, log-end offsets) per (group, partition), for every group whose name starts with `prefix`."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10000)
    await admin.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        groups = [g[0] for g in await admin.list_consumer_groups() if g[0].startswith(prefix) and "dlq-replay" not in g[0]]
        committed, ends = {}, {}
        for group in groups:
            offsets = await admin.list_consumer_group_offsets(group)
            if not offsets:
                continue
            end = await consumer.end_offsets(list(offsets))
            for tp, meta in offsets.items():
                if meta.offset >= 0:
                    committed[(group, tp)] = meta.offset
                    ends[(group, tp)] = end[tp]
        return committed, ends
    finally:
        await consumer.stop()
        await admin.close()


async def total_consumer_lag(bootstrap_servers: str, prefix: str) -> int:
    """Messages not yet consumed, summed over every consumer group and partition whose group starts with `prefix`."""
    committed, ends = await consumer_positions(bootstrap_servers, prefix)
    return sum(max(0, ends[key] - committed[key]) for key in committed)


async def fetch_rows(database_url: str, query: str, *args) -> list:
    """Rows of one query on a service's database (its SQLAlchemy URL), over a short-lived connection."""
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()
