"""What the intel edges hand to service functions: settings, keys, cipher and caches."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from shouwang_shared.pii import PiiCipher

from intel.config import IntelSettings
from intel.orgunits import OrgUnitDirectory
from intel.outreach.channels import BulletinChannel, default_channels
from intel.outreach.violations import ViolationLookup, violation_system
from intel.tips.identity import ReceiptKeys

TIPS_WAITING_CHANNEL = "intel_tips_waiting"  # PostgreSQL NOTIFY channel: an intake commit wakes clustering workers anywhere


@dataclass
class IntelContext:
    """Per-process helpers of the intel service; `tips_waiting` is set after an intake commit to wake the clustering worker;
    `channels` are the bulletins' publication channel adapters."""

    settings: IntelSettings
    keys: ReceiptKeys = field(init=False)
    cipher: PiiCipher = field(init=False)
    org_units: OrgUnitDirectory = field(init=False)
    tips_waiting: asyncio.Event = field(default_factory=asyncio.Event)
    channels: dict[str, BulletinChannel] = field(default_factory=default_channels)
    violations: ViolationLookup | None = field(init=False)  # the police traffic system's adapter, None when not connected

    def __post_init__(self) -> None:
        s = self.settings
        self.keys = ReceiptKeys(s.receipt_key, s.pseudonym_key)
        self.cipher = s.pii_cipher()  # seals dispute parties' phones; intel keeps no blind index
        self.org_units = OrgUnitDirectory(max_age_s=s.org_unit_cache_s)
        self.violations = violation_system(s.violation_lookup)


async def get_context(request: Request) -> IntelContext:
    """FastAPI dependency: the intel context of the app (async, so FastAPI does not hop to a worker thread per request)."""
    return request.app.state.intel


Context = Annotated[IntelContext, Depends(get_context)]
