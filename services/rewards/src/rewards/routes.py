"""HTTP routes of the rewards service: thin edges that call one service function each."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from shouwang_shared.app import Sessions
from shouwang_shared.auth import CurrentPrincipal, Principal, Role, require_roles
from shouwang_shared.errors import NotFound

from rewards import access, bank, desk, ledger, rules, standings, stars
from rewards.schemas import (
    AdoptionCreate,
    AdoptionPublic,
    BalancesPublic,
    BenefitCreate,
    BenefitPublic,
    ClaimCreate,
    ClaimPublic,
    CommendationCreate,
    CommendationPublic,
    HeldRewardsPublic,
    LeaderboardPublic,
    LedgerCheckPublic,
    LedgerPagePublic,
    ModelVolunteersCreate,
    MyBalancesPublic,
    PayoutRevealCreate,
    PayoutTargetPublic,
    PendingTipPointsPublic,
    PreviewPublic,
    RedemptionCreate,
    RedemptionDeclineCreate,
    RedemptionPublic,
    RuleVersionPublic,
    StaffRedemptionPublic,
    StarPublic,
    StarSweepPublic,
    StarThresholdsPublic,
)
from rewards.scoring import RuleSet, pending_account

router = APIRouter()
internal = APIRouter(prefix="/internal/v1", tags=["internal"])

Volunteer = Annotated[Principal, require_roles(Role.VOLUNTEER)]
Staff = Annotated[Principal, require_roles(*access.STAFF_ROLES)]
Desk = Annotated[Principal, require_roles(*access.DESK_ROLES)]
RuleAdmin = Annotated[Principal, require_roles(*access.RULE_ADMINS)]
Commender = Annotated[Principal, require_roles(*access.COMMENDERS)]
Service = Annotated[Principal, require_roles(Role.SERVICE, Role.OPERATOR)]
Operator = Annotated[Principal, require_roles(Role.OPERATOR)]
Period = Query(default=None, pattern=r"^\d{4}(-\d{2})?$")


def desk_listing(
    principal: Desk, org_path: str | None = Query(default=None, max_length=500), period: str | None = Period,
    limit: int = Query(default=200, ge=1, le=1000),
) -> dict:
    """A desk list's filters: the org unit (the caller's scope when not given, refused outside it), the period and how many."""
    return {"org_path": access.listing_path(principal, org_path), "period": period, "limit": limit}


DeskListing = Annotated[dict, Depends(desk_listing)]


async def _check_staff_scope(sessions, principal: Principal, volunteer_id: str) -> None:
    """A staff member sees a volunteer only inside their org scope (404 when rewards does not know the volunteer)."""
    access.ensure_covers_volunteer(principal, await desk.standing_org_path(sessions=sessions, volunteer_id=volunteer_id))


@router.get("/v1/ledger/mine", response_model=LedgerPagePublic, summary="My ledger line items: what each point and hour came from")
async def my_ledger(
    principal: Volunteer, sessions: Sessions, unit: Literal["points", "hours"] | None = None,
    before_seq: int | None = Query(default=None, ge=1), limit: int = Query(default=50, ge=1, le=500),
) -> dict:
    account = bank.volunteer_account(access.volunteer_id_of(principal))
    return await bank.line_items(
        sessions=sessions, accounts=[account, pending_account(account)], unit=unit, before_seq=before_seq, limit=limit,
    )


@router.get("/v1/balances/me", response_model=MyBalancesPublic, summary="My points (spendable and pending review), hours, today's tips and star, with why")
async def my_balances(principal: Volunteer, sessions: Sessions) -> dict:
    vid = access.volunteer_id_of(principal)
    held = await bank.balances_of(sessions=sessions, account=bank.volunteer_account(vid))
    held["tips_today"] = await bank.tips_today(sessions=sessions, account=bank.volunteer_account(vid), now=rules.now_utc())
    try:
        held["star"] = await stars.star_of(sessions=sessions, volunteer_id=vid)
    except NotFound:
        held["star"] = None
    return held


@router.get("/v1/balances/{volunteer_id}", response_model=BalancesPublic, summary="A volunteer's points and hours (staff, within scope)")
async def volunteer_balances(volunteer_id: str, principal: Staff, sessions: Sessions) -> dict:
    await _check_staff_scope(sessions, principal, volunteer_id)
    return await bank.balances_of(sessions=sessions, account=bank.volunteer_account(volunteer_id))


@router.get("/v1/ledger/pending", response_model=list[PendingTipPointsPublic], summary="Volunteers' tip points and their review in my scope (read-only)")
async def pending_tip_points(listing: DeskListing, sessions: Sessions, status: Literal["pending", "released", "revoked"] | None = None) -> list[dict]:
    return await desk.pending_tip_points(sessions=sessions, status=status, **listing)


@router.get("/v1/stars/me", response_model=StarPublic, summary="My star, any announced change, and what the next star needs")
async def my_star(principal: Volunteer, sessions: Sessions) -> dict:
    return await stars.star_of(sessions=sessions, volunteer_id=access.volunteer_id_of(principal))


@router.get("/v1/stars/{volunteer_id}", response_model=StarPublic, summary="A volunteer's star with why (staff, within scope)")
async def volunteer_star(volunteer_id: str, principal: Staff, sessions: Sessions) -> dict:
    await _check_staff_scope(sessions, principal, volunteer_id)
    return await stars.star_of(sessions=sessions, volunteer_id=volunteer_id)


@router.get("/v1/rules", response_model=list[RuleVersionPublic], summary="Every scoring rule version")
async def list_rules(_: CurrentPrincipal, sessions: Sessions) -> list[dict]:
    return await rules.list_rule_sets(sessions=sessions)


@router.get("/v1/rules/{version}", response_model=RuleVersionPublic, summary="One rule version (`current` = in force now)")
async def get_rules(version: str, _: CurrentPrincipal, sessions: Sessions) -> dict:
    return await rules.get_rule_set(sessions=sessions, version=version)


@router.get("/v1/rules/{version}/stars", response_model=StarThresholdsPublic, summary="The star thresholds of a rule version (`current` = in force now)")
async def get_star_thresholds(version: str, _: CurrentPrincipal, sessions: Sessions) -> dict:
    found = await rules.get_rule_set(sessions=sessions, version=version)
    return {"version": found["version"], "effective_from": found["effective_from"], "stars": found["rules"]["stars"],
            "notice_days": found["rules"]["star_notice_days"]}


@router.post("/v1/rules", response_model=RuleVersionPublic, status_code=201, summary="Store a new rule version as a draft")
async def create_rules(body: RuleSet, principal: RuleAdmin, sessions: Sessions) -> dict:
    return await rules.create_draft(sessions=sessions, rules=body, created_by=principal.sub)


@router.post("/v1/rules/{version}/preview", response_model=PreviewPublic, summary="Re-score history with a draft version, without posting anything")
async def preview_rules(version: str, _: RuleAdmin, sessions: Sessions) -> dict:
    return await rules.preview_rescore(sessions=sessions, version=version)


@router.post("/v1/rules/{version}/adopt", response_model=AdoptionPublic, summary="Adopt a draft version (optionally re-scoring history)")
async def adopt_rules(version: str, body: AdoptionCreate, principal: RuleAdmin, sessions: Sessions) -> dict:
    return await rules.adopt_rule_set(sessions=sessions, version=version, rescore=body.rescore, adopted_by=principal.sub)


@router.get("/v1/leaderboards", response_model=LeaderboardPublic, summary="Ranking of volunteers under an org unit for a period")
async def get_leaderboard(
    _: CurrentPrincipal, sessions: Sessions, period: str = Query(pattern=r"^\d{4}(-\d{2})?$"),
    org_path: str = Query(default="", max_length=500), unit: Literal["points", "hours"] = "points",
    limit: int = Query(default=20, ge=1, le=200),
) -> dict:
    return await standings.leaderboard(sessions=sessions, org_path=org_path, period=period, unit=unit, limit=limit)


@router.get("/v1/benefits", response_model=list[BenefitPublic], summary="The benefit catalogue")
async def get_benefits(_: CurrentPrincipal, sessions: Sessions) -> list[dict]:
    return await bank.list_benefits(sessions=sessions)


@router.post("/v1/benefits", response_model=BenefitPublic, status_code=201, summary="Add a benefit to the catalogue")
async def add_benefit(body: BenefitCreate, _: RuleAdmin, sessions: Sessions) -> dict:
    return await bank.create_benefit(sessions=sessions, name=body.name, description=body.description, cost_points=body.cost_points, stock=body.stock)


@router.post("/v1/redemptions", response_model=RedemptionPublic, status_code=201, summary="Spend my points on a benefit (never overdraws)")
async def add_redemption(body: RedemptionCreate, principal: Volunteer, sessions: Sessions) -> dict:
    return await bank.redeem(
        sessions=sessions, volunteer_id=access.volunteer_id_of(principal), benefit_id=body.benefit_id, quantity=body.quantity,
        idempotency_key=body.idempotency_key,
    )


@router.get("/v1/redemptions/mine", response_model=list[RedemptionPublic], summary="My redemptions")
async def my_redemptions(principal: Volunteer, sessions: Sessions) -> list[dict]:
    return await bank.list_redemptions(sessions=sessions, volunteer_id=access.volunteer_id_of(principal))


@router.get("/v1/redemptions", response_model=list[StaffRedemptionPublic], summary="Redemptions of volunteers in my scope (staff), filtered by org unit, period and status")
async def scope_redemptions(listing: DeskListing, sessions: Sessions, status: Literal["requested", "handed_over", "declined"] | None = None) -> list[dict]:
    return await desk.redemptions_in_scope(sessions=sessions, status=status, **listing)


@router.post("/v1/redemptions/{redemption_id}/handover", response_model=StaffRedemptionPublic, summary="Mark a redemption's benefit handed over (idempotent)")
async def hand_over_redemption(redemption_id: str, principal: Desk, sessions: Sessions) -> dict:
    return await desk.hand_over(
        sessions=sessions, redemption_id=redemption_id, covers=partial(access.covers_volunteer, principal), decided_by=principal.sub,
        now=rules.now_utc(),
    )


@router.post("/v1/redemptions/{redemption_id}/decline", response_model=StaffRedemptionPublic, summary="Decline a redemption with a reason: its points are refunded once")
async def decline_redemption(redemption_id: str, body: RedemptionDeclineCreate, principal: Desk, sessions: Sessions) -> dict:
    return await desk.decline(
        sessions=sessions, redemption_id=redemption_id, reason=body.reason, covers=partial(access.covers_volunteer, principal),
        decided_by=principal.sub, now=rules.now_utc(),
    )


@router.get("/v1/commendations", response_model=list[CommendationPublic], summary="Model volunteers, brands and organisations commended")
async def get_commendations(
    _: CurrentPrincipal, sessions: Sessions, period: str | None = Query(default=None, pattern=r"^\d{4}(-\d{2})?$"),
    kind: Literal["model_volunteer", "service_brand", "organisation", "individual"] | None = None,
    org_path: str = Query(default="", max_length=500),
) -> list[dict]:
    return await standings.list_commendations(sessions=sessions, period=period, kind=kind, org_path=org_path)


@router.post("/v1/commendations/model-volunteers", response_model=list[CommendationPublic], status_code=201, summary="Name a campaign month's model volunteers")
async def add_model_volunteers(body: ModelVolunteersCreate, principal: Commender, sessions: Sessions) -> list[dict]:
    access.ensure_covers_path(principal, body.org_path)
    return await standings.commend_model_volunteers(
        sessions=sessions, month=body.month, org_path=body.org_path, count=body.count, awarded_by=principal.sub,
    )


@router.post("/v1/commendations", response_model=CommendationPublic, status_code=201, summary="Commend a service brand, organisation or individual")
async def add_commendation(body: CommendationCreate, principal: Commender, sessions: Sessions) -> dict:
    access.ensure_covers_path(principal, body.org_path)
    return await standings.commend(
        sessions=sessions, kind=body.kind, period=body.period, org_path=body.org_path, subject_id=body.subject_id,
        subject_name=body.subject_name, citation=body.citation, awarded_by=principal.sub,
    )


@internal.post("/claims", response_model=ClaimPublic, status_code=201, summary="Pay out an anonymous reporter's held rewards (caller verified the receipt secret)")
async def add_claim(body: ClaimCreate, _: Service, sessions: Sessions, request: Request) -> dict:
    return await bank.claim_held_rewards(
        sessions=sessions, cipher=request.app.state.payout_cipher, claim_ref=body.claim_ref, volunteer_id=body.volunteer_id, payout_target=body.payout_target,
    )


@internal.post("/claims/{claim_id}/payout-target", response_model=PayoutTargetPublic, summary="Decrypt an anonymous payout target to pay it (operator; audited)")
async def reveal_payout_target(claim_id: str, body: PayoutRevealCreate, principal: Operator, sessions: Sessions, request: Request) -> dict:
    return await bank.reveal_payout_target(
        sessions=sessions, cipher=request.app.state.payout_cipher, claim_id=claim_id, reason=body.reason, revealed_by=principal.sub,
    )


@internal.get("/claims/{claim_ref}", response_model=HeldRewardsPublic, summary="What is held for an anonymous reporter (caller verified the receipt secret)")
async def get_claim(claim_ref: str, _: Service, sessions: Sessions) -> dict:
    held = await bank.balances_of(sessions=sessions, account=f"claim:{claim_ref}")
    items = await bank.line_items(sessions=sessions, accounts=[f"claim:{claim_ref}", pending_account(f"claim:{claim_ref}")], limit=100)
    return {**held, "items": items["items"]}


@internal.get("/ledger/check", response_model=LedgerCheckPublic, summary="Audit: every balance equals the sum of its entries")
async def ledger_check(_: Service, sessions: Sessions) -> dict:
    return await ledger.check_ledger(sessions=sessions)


@internal.post("/stars/sweep", response_model=StarSweepPublic, summary="Run the star sweep now (it also runs periodically)")
async def star_sweep(_: Service, sessions: Sessions) -> dict:
    return await stars.sweep_stars(sessions=sessions)
