"""Kafka handlers of the gateway: events addressed to a volunteer become their notifications; registry's volunteer
and staff state decide who may hold a session (a suspended, retired or deactivated person's sessions are revoked)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession

from shouwang_shared.app import ConsumerSpec
from shouwang_shared.contracts.dispatch import AssignmentAnswered, AssignmentOffered, ShiftSignupChanged
from shouwang_shared.contracts.intel import BulletinPublished, TipReviewed, TipSubmitted, UrgentCaseAlert
from shouwang_shared.contracts.registry import StaffAccountState, VolunteerState
from shouwang_shared.contracts.rewards import LedgerEntryPosted, StarChanged, StarChangeWithdrawn
from shouwang_shared.envelope import Envelope, EventMeta
from shouwang_shared.inbox import batch_handler, route, typed_handlers

from gateway.accounts import SESSION_VOLUNTEER_STATUS, PersonStatus, SessionCheckCache, apply_person_statuses
from gateway.notifications import NewNotification, NotificationHub, notify_area, record_notification, record_notifications, staff_feed

ANSWER_TITLES = {"accepted": "已接受任务", "declined": "已拒绝任务", "expired": "任务邀请已过期", "cancelled": "任务已取消"}
UNIT_NAMES = {"points": "积分", "hours": "服务时长"}
CATEGORY_NAMES = {"fugitive": "在逃人员", "drugs": "涉毒", "fraud": "诈骗", "counterfeit": "假冒伪劣", "public_order": "治安",
                  "dispute": "矛盾纠纷", "missing_person": "走失人员", "other": "其他"}
REJECTION_REASONS = {"unfounded": "查无实据", "prank": "内容不实", "duplicate": "与已有线索重复"}
BEIJING = ZoneInfo("Asia/Shanghai")  # dates in titles are the county's
SIGNUP_TITLES = {"promoted": "候补转正：{when} {project}（{place}）", "confirmed": "报名已确认：{when} {project}（{place}）",
                 "shift_cancelled": "班次已取消：{when} {project}（{place}）"}  # sign-up changes the volunteer did not make


def consumer_specs(hub: NotificationHub, session_cache: SessionCheckCache) -> list[ConsumerSpec]:
    """The gateway's one consumer group: offers and answers, project sign-up changes, ledger entries, star changes, tip
    reviews, bulletins, urgent-case alerts for staff, people's state."""

    @batch_handler
    async def on_person_states(session: AsyncSession, events: list[Envelope]) -> None:
        revoked = await apply_person_statuses(session, [_person_status(event) for event in events])

        def evict(_session) -> None:  # this process refuses them at once; other replicas within their session check
            for session_id in revoked:
                session_cache.put(session_id, False)

        if revoked:
            sa_event.listen(session.sync_session, "after_commit", evict, once=True)

    @batch_handler
    async def on_offered(session: AsyncSession, events: list[Envelope]) -> None:
        """Every offer of a fetched batch into its volunteer's feed with one statement (a summit sends 10,800 at once)."""
        items = []
        for event in events:
            offer = AssignmentOffered.model_validate(event.data)
            items.append(NewNotification(offer.volunteer_id, event.id, "assignment_offered",
                                         f"新的值守任务：{offer.operation_name}（{offer.place.name}）", offer.model_dump(mode="json")))
        await record_notifications(session, hub=hub, items=items)

    async def on_answered(session: AsyncSession, answer: AssignmentAnswered, event: EventMeta) -> None:
        await record_notification(
            session, hub=hub, volunteer_id=answer.volunteer_id, event_id=event.id, kind="assignment_answered",
            title=ANSWER_TITLES[answer.answer], data=answer.model_dump(mode="json"),
        )

    async def on_signup_changed(session: AsyncSession, change: ShiftSignupChanged, event: EventMeta) -> None:
        title = SIGNUP_TITLES.get(change.reason)
        if title is None:
            return  # the volunteer's own sign-up or cancellation: their phone has the answer already
        when = change.starts_at.astimezone(BEIJING).strftime("%m月%d日 %H:%M")
        await record_notification(
            session, hub=hub, volunteer_id=change.volunteer_id, event_id=event.id, kind=f"shift_signup_{change.reason}",
            title=title.format(when=when, project=change.project_name, place=change.place.name), data=change.model_dump(mode="json"),
        )

    async def on_ledger(session: AsyncSession, entry: LedgerEntryPosted, event: EventMeta) -> None:
        if entry.volunteer_id is None:
            return  # an anonymous reporter's held reward: nobody to notify
        sign = "+" if entry.amount >= 0 else ""
        await record_notification(
            session, hub=hub, volunteer_id=entry.volunteer_id, event_id=event.id, kind="ledger_entry_posted",
            title=f"{UNIT_NAMES[entry.unit]} {sign}{entry.amount:g}：{entry.reason}", data=entry.model_dump(mode="json"),
        )

    async def on_star(session: AsyncSession, change: StarChanged, event: EventMeta) -> None:
        when = change.effective_at.astimezone(BEIJING).strftime("%m月%d日")
        await record_notification(
            session, hub=hub, volunteer_id=change.volunteer_id, event_id=event.id, kind="star_changed",
            title=f"星级将于{when}由{change.old_star}星变为{change.new_star}星：{change.reason}", data=change.model_dump(mode="json"),
        )

    async def on_star_withdrawn(session: AsyncSession, withdrawn: StarChangeWithdrawn, event: EventMeta) -> None:
        await record_notification(
            session, hub=hub, volunteer_id=withdrawn.volunteer_id, event_id=event.id, kind="star_change_withdrawn",
            title=f"星级保持{withdrawn.star}星（原定变为{withdrawn.withdrawn_star}星已撤回）：{withdrawn.reason}",
            data=withdrawn.model_dump(mode="json"),
        )

    async def on_tip_reviewed(session: AsyncSession, review: TipReviewed, event: EventMeta) -> None:
        if review.reporter.kind != "volunteer" or not review.reporter.volunteer_id:
            return  # an anonymous reporter follows their tip with the receipt; nobody to notify
        title = "您的线索已核实，感谢！" if review.verdict == "verified" else f"您的线索未被采纳：{REJECTION_REASONS.get(review.reason or '', '经核查')}"
        await record_notification(
            session, hub=hub, volunteer_id=review.reporter.volunteer_id, event_id=event.id, kind="tip_reviewed", title=title,
            data={"tip_id": review.tip_id, "verdict": review.verdict, "reason": review.reason, "category": review.category},
        )

    async def on_tip_submitted(session: AsyncSession, event: Envelope) -> None:
        """Nothing to tell: the phone that sent the tip has its answer already (the envelope is not even parsed into its payload)."""

    async def on_bulletin(session: AsyncSession, bulletin: BulletinPublished, event: EventMeta) -> None:
        await notify_area(session, hub=hub, event_id=event.id, paths=bulletin.audience_org_paths, kind="bulletin_published",
                          title=f"平安提示：{bulletin.title}", data=bulletin.model_dump(mode="json"))

    async def on_urgent_case(session: AsyncSession, alert: UrgentCaseAlert, event: EventMeta) -> None:
        """An urgent case waits for a claim: each on-duty staff member it names gets it in their feed and on their phone."""
        due = alert.claim_due_at.astimezone(BEIJING).strftime("%H:%M")
        title = (f"紧急案件{'（上级转来，下级未认领）' if alert.escalated else ''}：{alert.reference} "
                 f"{CATEGORY_NAMES.get(alert.category, alert.category)}，请在 {due} 前认领")
        for sub in dict.fromkeys(alert.recipients):
            await record_notification(session, hub=hub, volunteer_id=staff_feed(sub), event_id=f"{event.id}:{sub}", kind="urgent_case_alert",
                                      title=title, data=alert.model_dump(mode="json", exclude={"recipients"}))

    return [ConsumerSpec(
        name="gateway",
        topics=[AssignmentOffered.TOPIC, LedgerEntryPosted.TOPIC, StarChanged.TOPIC, TipReviewed.TOPIC, BulletinPublished.TOPIC,
                UrgentCaseAlert.TOPIC, VolunteerState.TOPIC, StaffAccountState.TOPIC],
        handlers={route(AssignmentOffered): on_offered, route(TipSubmitted): on_tip_submitted,
                  route(VolunteerState): on_person_states, route(StaffAccountState): on_person_states,
                  **typed_handlers({AssignmentAnswered: on_answered, ShiftSignupChanged: on_signup_changed, LedgerEntryPosted: on_ledger,
                                    StarChanged: on_star, StarChangeWithdrawn: on_star_withdrawn, BulletinPublished: on_bulletin,
                                    TipReviewed: on_tip_reviewed, UrgentCaseAlert: on_urgent_case})},
    )]


def _person_status(event: Envelope) -> PersonStatus:
    """Whether the volunteer or staff member of a state event may hold a session."""
    if event.type == StaffAccountState.TYPE:
        staff = StaffAccountState.model_validate(event.data)
        return PersonStatus(staff.staff_id, "staff", "active" if staff.active else "inactive", staff.active, event.time)
    volunteer = VolunteerState.model_validate(event.data)
    return PersonStatus(volunteer.volunteer_id, "volunteer", volunteer.status, volunteer.status == SESSION_VOLUNTEER_STATUS,
                        event.time, volunteer.version, volunteer.org_path)
