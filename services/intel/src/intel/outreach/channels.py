"""Publication channels of bulletins (WeChat public account, SMS, radio, ...): one adapter interface, a logging adapter for now."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, get_args

from prometheus_client import Counter

from intel.schemas import BulletinChannelName

log = logging.getLogger(__name__)

CHANNELS: tuple[str, ...] = get_args(BulletinChannelName)
BULLETIN_DELIVERIES = Counter(
    "shouwang_intel_bulletin_deliveries_total", "Bulletin deliveries to a publication channel, once per bulletin and channel",
    ["channel", "outcome"],
)


@dataclass(frozen=True)
class BulletinMessage:
    """What a channel publishes; `delivery_id` (bulletin id + channel) is the idempotency key a real channel should pass on."""

    delivery_id: str
    bulletin_id: str
    channel: str
    serial_label: str | None
    title: str
    body: str
    case_type: str
    audience_org_paths: list[str]


class BulletinChannel(Protocol):
    """A publication channel: `send` returns once the channel has accepted the bulletin, and raises if it did not."""

    name: str

    async def send(self, message: BulletinMessage) -> None:
        """Hand the bulletin to the channel."""
        ...


@dataclass
class LoggingChannel:
    """Stands in for a channel not connected yet: writes the bulletin to the log and accepts it."""

    name: str

    async def send(self, message: BulletinMessage) -> None:
        """Log the bulletin as the channel would publish it."""
        log.info(
            "bulletin to %s: %s %s (%d characters) for %s [delivery %s]", self.name, message.serial_label or "", message.title,
            len(message.body), ",".join(message.audience_org_paths), message.delivery_id,
        )


def default_channels() -> dict[str, BulletinChannel]:
    """The adapter of every channel a bulletin may name (all logging adapters until a channel is connected)."""
    return {name: LoggingChannel(name) for name in CHANNELS}
