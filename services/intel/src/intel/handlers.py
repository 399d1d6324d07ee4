"""Kafka handlers of the intel service: translate an event and call one service function."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from shouwang_shared.app import ConsumerSpec
from shouwang_shared.contracts.police import DispositionRecorded, DispositionRecordedV2
from shouwang_shared.contracts.registry import OrgUnitUpserted
from shouwang_shared.envelope import EventMeta
from shouwang_shared.inbox import typed_handlers

from intel.cases.casework import record_disposition
from intel.orgunits import OrgUnitDirectory, upsert_org_unit


async def on_disposition(session: AsyncSession, answer: DispositionRecorded | DispositionRecordedV2, event: EventMeta) -> None:
    """A police answer to a forwarded case (v1, or v2 with outcome counts)."""
    await record_disposition(session, answer=answer, cause=event)


def consumer_specs(org_units: OrgUnitDirectory | None = None) -> list[ConsumerSpec]:
    """The consumer groups this service runs; org unit changes also refresh the process's `org_units` directory."""

    async def on_org_unit(session: AsyncSession, unit: OrgUnitUpserted, _event: EventMeta) -> None:
        """An org unit of the registry changed: keep the local routing model current."""
        await upsert_org_unit(session, unit=unit, directory=org_units)

    return [
        ConsumerSpec("intel", [DispositionRecorded.TOPIC, OrgUnitUpserted.TOPIC],
                     typed_handlers({DispositionRecorded: on_disposition, DispositionRecordedV2: on_disposition,
                                     OrgUnitUpserted: on_org_unit})),
    ]
