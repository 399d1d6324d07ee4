"""The one catalog of Kafka topics, and the idempotent step that creates them at start."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shouwang_shared.kafka import make_admin

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000


SYSTEM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class TopicSpec:
    """A topic: its name `<producer>.<stream>.v<major>`, partitions, retention or compaction, and who may publish on it.

    `producer` is the envelope `source` every event on the topic must carry: by default `/services/<producer>` of the
    name; one ending in `/` names a family of outside systems (`/police/` accepts `/police/county-bureau`).
    """

    name: str
    partitions: int = 6
    compacted: bool = False
    retention_ms: int = 14 * DAY_MS
    description: str = ""
    config: dict[str, str] = field(default_factory=dict)
    producer: str = ""

    @property
    def source(self) -> str:
        """The envelope `source` (or, ending in `/`, the source family) of the one producer of this topic."""
        return self.producer or f"/services/{self.name.split('.', 1)[0]}"

    def accepts_source(self, source: str) -> bool:
        """True when an event with this envelope `source` may travel on this topic."""
        if not self.source.endswith("/"):
            return source == self.source
        return source.startswith(self.source) and SYSTEM_NAME.fullmatch(source[len(self.source):]) is not None

    def kafka_config(self) -> dict[str, str]:
        """Topic-level broker configuration for this spec."""
        cfg = {"cleanup.policy": "compact" if self.compacted else "delete"}
        if not self.compacted:
            cfg["retention.ms"] = str(self.retention_ms)
        else:
            cfg["min.cleanable.dirty.ratio"] = "0.1"
            cfg["segment.ms"] = str(3600 * 1000)
        cfg.update(self.config)
        return cfg


# Consumer groups, one per consuming service; each owns a dead-letter topic `<group>.dlq.v1`.
CONSUMER_GROUPS = ("registry", "dispatch", "intel", "rewards", "gateway", "reports")


def dead_letter_topic(group: str) -> str:
    """Name of the dead-letter topic of a consumer group."""
    return f"{group}.dlq.v1"


CATALOG: tuple[TopicSpec, ...] = (
    TopicSpec("registry.volunteers.v1", partitions=6, compacted=True,
              description="volunteer state, keyed by volunteer id; latest state per volunteer, no plain PII"),
    TopicSpec("registry.orgunits.v1", partitions=1, compacted=True,
              description="org units (id, type, parent, path), keyed by org unit id"),
    TopicSpec("registry.staff.v1", partitions=3, compacted=True,
              description="staff account state (role, scope, active), keyed by staff id; never the password hash"),
    TopicSpec("registry.training.v1", partitions=3, description="training attendance records"),
    TopicSpec("dispatch.operations.v1", partitions=3, description="operation lifecycle (activated, running, closed)"),
    TopicSpec("dispatch.assignments.v1", partitions=6, description="assignment lifecycle: offered, accepted, declined, expired, checked in/out"),
    TopicSpec("dispatch.hours.v1", partitions=6, description="service hours credited after check-out"),
    TopicSpec("intel.tips.v1", partitions=6, description="tip lifecycle (submitted, triaged, verified, rejected)"),
    TopicSpec("intel.cases.v1", partitions=6, description="case lifecycle and outcomes (what rewards pays on)"),
    TopicSpec("intel.liaison.v1", partitions=3, retention_ms=30 * DAY_MS,
              description="sanitized cases forwarded to police liaison systems (public contract)"),
    TopicSpec("intel.escalations.v1", partitions=3, description="verified cases needing people on the ground"),
    TopicSpec("intel.bulletins.v1", partitions=3, description="safety bulletins for publication channels"),
    TopicSpec("intel.community.v1", partitions=3,
              description="public needs and disputes: the latest state of each (category, status, org path), never who or what"),
    TopicSpec("police.dispositions.v1", partitions=3, retention_ms=30 * DAY_MS, producer="/police/",
              description="police answers to forwarded cases (public contract)"),
    TopicSpec("rewards.ledger.v1", partitions=6, description="ledger entries credited or debited"),
    TopicSpec("rewards.stars.v1", partitions=3, description="star rating changes"),
) + tuple(
    TopicSpec(dead_letter_topic(group), partitions=1, retention_ms=30 * DAY_MS,
              description=f"dead letters of consumer group {group}, with the reason in headers")
    for group in CONSUMER_GROUPS
)

CATALOG_BY_NAME = {spec.name: spec for spec in CATALOG}


@lru_cache(maxsize=1024)
def spec_of(name: str) -> TopicSpec:
    """The catalog entry of a topic (a topic outside the catalog, as in tests and benchmarks, gets the defaults)."""
    return CATALOG_BY_NAME.get(name) or TopicSpec(name)


def topic_name(name: str, prefix: str = "") -> str:
    """The physical topic name: the catalog name behind an optional isolation prefix."""
    return f"{prefix}{name}"


async def ensure_topics(
    bootstrap_servers: str,
    specs: tuple[TopicSpec, ...] | list[TopicSpec] = CATALOG,
    *,
    prefix: str = "",
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create every missing topic of `specs`; existing topics are left as they are. Returns the names created."""
    admin = make_admin(bootstrap_servers, request_timeout_ms=int(timeout_s * 1000))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=topic_name(spec.name, prefix),
                num_partitions=spec.partitions,
                replication_factor=replication_factor,
                topic_configs=spec.kafka_config(),
            )
            for spec in specs
            if topic_name(spec.name, prefix) not in existing
        ]
        created: list[str] = []
        for topic in missing:
            try:
                await admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        if created:
            log.info("created topics: %s", ", ".join(created))
            await _wait_for_metadata(admin, set(created))
        return created
    finally:
        await admin.close()


async def _wait_for_metadata(admin: AIOKafkaAdminClient, names: set[str]) -> None:
    """Wait until the broker lists every freshly created topic."""
    for _ in range(50):
        if names <= set(await admin.list_topics()):
            return
        await asyncio.sleep(0.1)
