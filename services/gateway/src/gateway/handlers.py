"""Kafka handlers of the gateway: events addressed to a volunteer become their notifications."""

from __future__ import annotations

from shouwang_shared.app import ConsumerSpec
from shouwang_shared.contracts.dispatch import AssignmentAnswered, AssignmentOffered
from shouwang_shared.contracts.rewards import LedgerEntryPosted
from shouwang_shared.envelope import Envelope
from shouwang_shared.inbox import route

from gateway.notifications import NotificationHub, record_notification

ANSWER_TITLES = {"accepted": "已接受任务", "declined": "已拒绝任务", "expired": "任务邀请已过期", "cancelled": "任务已取消"}
UNIT_NAMES = {"points": "积分", "hours": "服务时长"}


def consumer_specs(hub: NotificationHub) -> list[ConsumerSpec]:
    """The gateway's one consumer group: assignment offers and answers, and ledger entries."""

    async def on_offered(session, event: Envelope) -> None:
        offer = AssignmentOffered.model_validate(event.data)
        await record_notification(
            session, hub=hub, volunteer_id=offer.volunteer_id, event_id=event.id, kind="assignment_offered",
            title=f"新的值守任务：{offer.operation_name}（{offer.place.name}）", data=offer.model_dump(mode="json"),
        )

    async def on_answered(session, event: Envelope) -> None:
        answer = AssignmentAnswered.model_validate(event.data)
        await record_notification(
            session, hub=hub, volunteer_id=answer.volunteer_id, event_id=event.id, kind="assignment_answered",
            title=ANSWER_TITLES[answer.answer], data=answer.model_dump(mode="json"),
        )

    async def on_ledger(session, event: Envelope) -> None:
        entry = LedgerEntryPosted.model_validate(event.data)
        if entry.volunteer_id is None:
            return  # an anonymous reporter's held reward: nobody to notify
        sign = "+" if entry.amount >= 0 else ""
        await record_notification(
            session, hub=hub, volunteer_id=entry.volunteer_id, event_id=event.id, kind="ledger_entry_posted",
            title=f"{UNIT_NAMES[entry.unit]} {sign}{entry.amount:g}：{entry.reason}", data=entry.model_dump(mode="json"),
        )

    return [ConsumerSpec(
        name="gateway",
        topics=[AssignmentOffered.TOPIC, LedgerEntryPosted.TOPIC],
        handlers={route(AssignmentOffered): on_offered, route(AssignmentAnswered): on_answered, route(LedgerEntryPosted): on_ledger},
    )]
