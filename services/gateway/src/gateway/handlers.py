"""Kafka handlers of the gateway: events addressed to a volunteer become their notifications; registry's volunteer
and staff state decide who may hold a session (a suspended, retired or deactivated person's sessions are revoked)."""

from __future__ import annotations

from collections.abc import Callable
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
from gateway.notifications import NewNotification, NotificationHub, notify_area, record_notifications, staff_feed

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
    async def on_personal(session: AsyncSession, events: list[Envelope]) -> None:
        """Every event of a fetched batch addressed to one person (an offer, a ledger entry, a review …) into their feed
        with one statement: a summit sends 10,800 offers at once, a tip storm a ledger entry per tip, and a statement
        each was a database round trip each inside the batch's transaction, so a batch's last entry waited for all."""
        await record_notifications(session, hub=hub, items=[n for event in events for n in personal_notifications(event)])

    async def on_bulletin(session: AsyncSession, bulletin: BulletinPublished, event: EventMeta) -> None:
        """A bulletin, into the feed of everyone in its audience's org units."""
        await notify_area(session, hub=hub, event_id=event.id, paths=bulletin.audience_org_paths, kind="bulletin_published",
                          title=f"平安提示：{bulletin.title}", data=bulletin.model_dump(mode="json"))

    return [ConsumerSpec(
        name="gateway",
        topics=[AssignmentOffered.TOPIC, LedgerEntryPosted.TOPIC, StarChanged.TOPIC, TipReviewed.TOPIC, BulletinPublished.TOPIC,
                UrgentCaseAlert.TOPIC, VolunteerState.TOPIC, StaffAccountState.TOPIC],
        handlers={**dict.fromkeys((route(model) for model in PERSONAL), on_personal), **typed_handlers({BulletinPublished: on_bulletin}),
                  route(VolunteerState): on_person_states, route(StaffAccountState): on_person_states},
    )]


def _offered(event: Envelope) -> list[NewNotification]:
    """An offer, into the volunteer's feed."""
    offer = AssignmentOffered.model_validate(event.data)
    return [NewNotification(offer.volunteer_id, event.id, "assignment_offered", f"新的值守任务：{offer.operation_name}（{offer.place.name}）",
                            offer.model_dump(mode="json"))]


def _answered(event: Envelope) -> list[NewNotification]:
    """An answered, expired or cancelled offer, into the volunteer's feed."""
    answer = AssignmentAnswered.model_validate(event.data)
    return [NewNotification(answer.volunteer_id, event.id, "assignment_answered", ANSWER_TITLES[answer.answer], answer.model_dump(mode="json"))]


def _signup_changed(event: Envelope) -> list[NewNotification]:
    """A project sign-up change the volunteer did not make, into their feed."""
    change = ShiftSignupChanged.model_validate(event.data)
    title = SIGNUP_TITLES.get(change.reason)
    if title is None:
        return []  # the volunteer's own sign-up or cancellation: their phone has the answer already
    when = change.starts_at.astimezone(BEIJING).strftime("%m月%d日 %H:%M")
    return [NewNotification(change.volunteer_id, event.id, f"shift_signup_{change.reason}",
                            title.format(when=when, project=change.project_name, place=change.place.name), change.model_dump(mode="json"))]


def _ledger(event: Envelope) -> list[NewNotification]:
    """A ledger entry (points or hours), into its volunteer's feed."""
    entry = LedgerEntryPosted.model_validate(event.data)
    if entry.volunteer_id is None:
        return []  # an anonymous reporter's held reward: nobody to notify
    sign = "+" if entry.amount >= 0 else ""
    return [NewNotification(entry.volunteer_id, event.id, "ledger_entry_posted", f"{UNIT_NAMES[entry.unit]} {sign}{entry.amount:g}：{entry.reason}",
                            entry.model_dump(mode="json"))]


def _star(event: Envelope) -> list[NewNotification]:
    """A coming star change, into the volunteer's feed."""
    change = StarChanged.model_validate(event.data)
    when = change.effective_at.astimezone(BEIJING).strftime("%m月%d日")
    return [NewNotification(change.volunteer_id, event.id, "star_changed",
                            f"星级将于{when}由{change.old_star}星变为{change.new_star}星：{change.reason}", change.model_dump(mode="json"))]


def _star_withdrawn(event: Envelope) -> list[NewNotification]:
    """A withdrawn star change, into the volunteer's feed."""
    withdrawn = StarChangeWithdrawn.model_validate(event.data)
    return [NewNotification(withdrawn.volunteer_id, event.id, "star_change_withdrawn",
                            f"星级保持{withdrawn.star}星（原定变为{withdrawn.withdrawn_star}星已撤回）：{withdrawn.reason}",
                            withdrawn.model_dump(mode="json"))]


def _tip_reviewed(event: Envelope) -> list[NewNotification]:
    """A review of a volunteer's tip, into the reporter's feed."""
    review = TipReviewed.model_validate(event.data)
    if review.reporter.kind != "volunteer" or not review.reporter.volunteer_id:
        return []  # an anonymous reporter follows their tip with the receipt; nobody to notify
    title = "您的线索已核实，感谢！" if review.verdict == "verified" else f"您的线索未被采纳：{REJECTION_REASONS.get(review.reason or '', '经核查')}"
    return [NewNotification(review.reporter.volunteer_id, event.id, "tip_reviewed", title,
                            {"tip_id": review.tip_id, "verdict": review.verdict, "reason": review.reason, "category": review.category})]


def _tip_submitted(event: Envelope) -> list[NewNotification]:
    """Nothing to tell: the phone that sent the tip has its answer already."""
    return []


def _urgent_case(event: Envelope) -> list[NewNotification]:
    """An urgent case waits for a claim: each on-duty staff member it names gets it in their feed and on their phone."""
    alert = UrgentCaseAlert.model_validate(event.data)
    due = alert.claim_due_at.astimezone(BEIJING).strftime("%H:%M")
    title = (f"紧急案件{'（上级转来，下级未认领）' if alert.escalated else ''}：{alert.reference} "
             f"{CATEGORY_NAMES.get(alert.category, alert.category)}，请在 {due} 前认领")
    data = alert.model_dump(mode="json", exclude={"recipients"})
    return [NewNotification(staff_feed(sub), f"{event.id}:{sub}", "urgent_case_alert", title, data) for sub in dict.fromkeys(alert.recipients)]


# The events addressed to one person (or to each staff member an alert names), and the notifications each becomes.
PERSONAL: dict[type, Callable[[Envelope], list[NewNotification]]] = {
    AssignmentOffered: _offered, AssignmentAnswered: _answered, ShiftSignupChanged: _signup_changed, LedgerEntryPosted: _ledger,
    StarChanged: _star, StarChangeWithdrawn: _star_withdrawn, TipReviewed: _tip_reviewed, TipSubmitted: _tip_submitted,
    UrgentCaseAlert: _urgent_case,
}
_PERSONAL_BY_TYPE = {model.TYPE: build for model, build in PERSONAL.items()}


def personal_notifications(event: Envelope) -> list[NewNotification]:
    """The notifications an event addressed to people becomes (none for some: a tip's own reporter, an anonymous reward)."""
    return _PERSONAL_BY_TYPE[event.type](event)


def _person_status(event: Envelope) -> PersonStatus:
    """Whether the volunteer or staff member of a state event may hold a session."""
    if event.type == StaffAccountState.TYPE:
        staff = StaffAccountState.model_validate(event.data)
        return PersonStatus(staff.staff_id, "staff", "active" if staff.active else "inactive", staff.active, event.time)
    volunteer = VolunteerState.model_validate(event.data)
    return PersonStatus(volunteer.volunteer_id, "volunteer", volunteer.status, volunteer.status == SESSION_VOLUNTEER_STATUS,
                        event.time, volunteer.version, volunteer.org_path)
