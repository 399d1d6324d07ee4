"""HTTP routes of the intel service: thin edges that call one service function each."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.encoders import jsonable_encoder

from shouwang_shared.app import Sessions, Statements
from shouwang_shared.auth import Principal, Role, current_principal, require_roles
from shouwang_shared.contracts.intel import TipCategory

from intel.access import BULLETIN_ROLES, CASE_ROLES, COLUMN_ADMINS, COMMUNITY_ROLES, LIAISON_ROLES, ROSTER_EDITORS, reporting_volunteer
from intel.cases import casework, urgent
from intel.context import Context
from intel.outreach import bulletins, columns, community
from intel.schemas import (
    BulletinCreate,
    BulletinDeliveriesPublic,
    BulletinDraftPublic,
    BulletinPublic,
    CaseClaimCreate,
    CaseDetailPublic,
    CaseSummaryPublic,
    ChannelDeliveriesPublic,
    ColumnCreate,
    ColumnItemCreate,
    ColumnItemPublishedPublic,
    ColumnPage,
    ColumnPublic,
    DisputeCreate,
    DisputeOutcomeUpdate,
    DisputePublic,
    DisputeSummaryPublic,
    DutyShiftCreate,
    DutyShiftPublic,
    ForwardCreate,
    LiaisonCasePublic,
    MediationSessionCreate,
    MediatorUpdate,
    MergeCreate,
    MyTipPublic,
    NeedCreate,
    NeedPublic,
    NeedStatusUpdate,
    PairDecisionPublic,
    PoliceDraftPublic,
    ReceiptStatus,
    RejectionCreate,
    SimilarCasePublic,
    SplitCreate,
    SuggestionRejectionCreate,
    TipAccepted,
    TipCreate,
    TrendDraftCreate,
    TriageCreate,
    VerificationCreate,
    ViolationLookupPublic,
)
from intel.tips import intake

router = APIRouter(prefix="/v1", tags=["intel"])

CaseWorker = Annotated[Principal, require_roles(*CASE_ROLES)]
LiaisonReader = Annotated[Principal, require_roles(*LIAISON_ROLES)]
CommunityStaff = Annotated[Principal, require_roles(*COMMUNITY_ROLES)]
BulletinEditor = Annotated[Principal, require_roles(*BULLETIN_ROLES)]
RosterReader = Annotated[Principal, require_roles(*CASE_ROLES, *ROSTER_EDITORS)]
RosterEditor = Annotated[Principal, require_roles(*ROSTER_EDITORS)]
Volunteer = Annotated[Principal, require_roles(Role.VOLUNTEER)]
ColumnEditor = Annotated[Principal, require_roles(*BULLETIN_ROLES)]
ColumnAdmin = Annotated[Principal, require_roles(*COLUMN_ADMINS)]
PUBLIC_CACHE = "public, max-age=60"  # the columns are the same for everyone: browsers and proxies may keep them a minute


def optional_principal(request: Request) -> Principal | None:
    """The caller when a bearer token is sent (and must be valid), None for an anonymous citizen."""
    if not request.headers.get("authorization"):
        return None
    return current_principal(request)


IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", description="the client's id for this submission (a UUID); a resent key answers the first submission",
)]


@router.post("/tips", status_code=202, response_model=TipAccepted, summary="Submit a tip (volunteer or anonymous)")
async def submit_tip(
    body: TipCreate, request: Request, statements: Statements, ctx: Context,
    idempotency_key: IdempotencyKey = None,
) -> TipAccepted:
    principal = optional_principal(request)
    return await intake.submit_tip(
        statements=statements, ctx=ctx, body=body, volunteer_id=reporting_volunteer(principal), idempotency_key=idempotency_key
    )


@router.get("/tips/mine", response_model=list[MyTipPublic], summary="The calling volunteer's tips")
async def my_tips(principal: Volunteer, sessions: Sessions) -> list[MyTipPublic]:
    volunteer_id = reporting_volunteer(principal)
    return await intake.my_tips(sessions=sessions, volunteer_id=volunteer_id)


@router.get("/receipts/{code}", response_model=ReceiptStatus, summary="Follow an anonymous tip with its receipt code and secret")
async def receipt(
    code: str, sessions: Sessions, ctx: Context,
    receipt_secret: Annotated[str, Header(alias="X-Receipt-Secret", min_length=1, max_length=100)],
) -> ReceiptStatus:
    # Look-ups per client are limited at the gateway, the only hop that knows the client's address.
    return await intake.receipt_status(sessions=sessions, ctx=ctx, code=code[:64], secret=receipt_secret)


@router.get("/triage/queue", response_model=list[CaseSummaryPublic], summary="Open cases by priority, then age")
async def triage_queue(principal: CaseWorker, sessions: Sessions, limit: int = Query(100, ge=1, le=500)) -> list[CaseSummaryPublic]:
    return await casework.triage_queue(sessions=sessions, principal=principal, limit=limit)


@router.get("/cases", response_model=list[CaseSummaryPublic], summary="Cases in scope")
async def list_cases(
    principal: CaseWorker, sessions: Sessions, status: str | None = None, category: TipCategory | None = None,
    limit: int = Query(100, ge=1, le=500),
) -> list[CaseSummaryPublic]:
    return await casework.list_cases(sessions=sessions, principal=principal, status=status, category=category, limit=limit)


@router.get("/cases/{case_id}", response_model=CaseDetailPublic, summary="A case with its tips, reasons and history")
async def case_detail(case_id: str, principal: CaseWorker, sessions: Sessions, ctx: Context) -> CaseDetailPublic:
    return await casework.case_detail(sessions=sessions, ctx=ctx, principal=principal, case_id=case_id)


@router.post("/cases/{case_id}/claim", response_model=CaseSummaryPublic, summary="Take the edit lock")
async def claim(case_id: str, principal: CaseWorker, sessions: Sessions, body: CaseClaimCreate | None = None) -> CaseSummaryPublic:
    return await casework.claim_case(sessions=sessions, principal=principal, case_id=case_id, minutes=(body or CaseClaimCreate()).minutes)


@router.delete("/cases/{case_id}/claim", response_model=CaseSummaryPublic, summary="Release the edit lock")
async def release(case_id: str, principal: CaseWorker, sessions: Sessions) -> CaseSummaryPublic:
    return await casework.release_case(sessions=sessions, principal=principal, case_id=case_id)


@router.post("/cases/{case_id}/triage", response_model=CaseSummaryPublic, summary="Mark triaged")
async def triage(case_id: str, principal: CaseWorker, sessions: Sessions, body: TriageCreate | None = None) -> CaseSummaryPublic:
    body = body or TriageCreate()
    return await casework.triage_case(sessions=sessions, principal=principal, case_id=case_id, priority=body.priority, note=body.note)


@router.post("/cases/{case_id}/verify", response_model=CaseSummaryPublic, summary="Verify (escalates when people are needed)")
async def verify(case_id: str, principal: CaseWorker, sessions: Sessions, body: VerificationCreate | None = None) -> CaseSummaryPublic:
    body = body or VerificationCreate()
    return await casework.review_case(sessions=sessions, principal=principal, case_id=case_id, verdict="verified", quality=body.quality, note=body.note)


@router.post("/cases/{case_id}/reject", response_model=CaseSummaryPublic, summary="Reject as unfounded, prank or duplicate")
async def reject(case_id: str, body: RejectionCreate, principal: CaseWorker, sessions: Sessions) -> CaseSummaryPublic:
    return await casework.review_case(sessions=sessions, principal=principal, case_id=case_id, verdict="rejected", reason=body.reason, note=body.note)


@router.get("/cases/{case_id}/police-draft", response_model=PoliceDraftPublic, summary="The police summary drafted for review, with its removals")
async def police_draft(case_id: str, principal: CaseWorker, sessions: Sessions) -> PoliceDraftPublic:
    return await casework.police_draft(sessions=sessions, principal=principal, case_id=case_id)


@router.post("/cases/{case_id}/forward", response_model=CaseSummaryPublic, summary="Forward to the police liaison feed")
async def forward(case_id: str, principal: CaseWorker, sessions: Sessions, ctx: Context, body: ForwardCreate | None = None) -> CaseSummaryPublic:
    body = body or ForwardCreate()
    return await casework.forward_case(sessions=sessions, ctx=ctx, principal=principal, case_id=case_id, sla_hours=body.sla_hours, summary=body.summary)


@router.post("/cases/{case_id}/close", response_model=CaseSummaryPublic, summary="Close")
async def close(case_id: str, principal: CaseWorker, sessions: Sessions) -> CaseSummaryPublic:
    return await casework.close_case(sessions=sessions, principal=principal, case_id=case_id)


@router.post(
    "/cases/{case_id}/dispositions/{disposition_id}/confirm", response_model=CaseSummaryPublic,
    summary="Confirm a police answer: only then it sets the outcome and is announced (what rewards pays on)",
)
async def confirm_disposition(case_id: str, disposition_id: str, principal: CaseWorker, sessions: Sessions) -> CaseSummaryPublic:
    return await casework.confirm_disposition(sessions=sessions, principal=principal, case_id=case_id, disposition_id=disposition_id)


@router.post("/cases/merge", response_model=CaseSummaryPublic, summary="Merge cases into one")
async def merge(body: MergeCreate, principal: CaseWorker, sessions: Sessions) -> CaseSummaryPublic:
    return await casework.merge_cases(sessions=sessions, principal=principal, target_case_id=body.target_case_id, case_ids=body.case_ids)


@router.post("/cases/{case_id}/split", response_model=CaseSummaryPublic, status_code=201, summary="Move tips into a new case")
async def split(case_id: str, body: SplitCreate, principal: CaseWorker, sessions: Sessions) -> CaseSummaryPublic:
    return await casework.split_case(sessions=sessions, principal=principal, case_id=case_id, tip_ids=body.tip_ids)


@router.get("/cases/{case_id}/similar", response_model=list[SimilarCasePublic], summary="The 10 open cases most like this one, best first")
async def similar(case_id: str, principal: CaseWorker, sessions: Sessions, ctx: Context) -> list[SimilarCasePublic]:
    return await casework.similar_cases(sessions=sessions, ctx=ctx, principal=principal, case_id=case_id)


@router.post("/cases/{case_id}/similar/{other_case_id}/reject", response_model=PairDecisionPublic,
             summary="A suggested case is another incident (kept as a labelled pair)")
async def reject_similar(
    case_id: str, other_case_id: str, principal: CaseWorker, sessions: Sessions, body: SuggestionRejectionCreate | None = None
) -> PairDecisionPublic:
    return await casework.reject_suggestion(
        sessions=sessions, principal=principal, case_id=case_id, other_case_id=other_case_id, note=(body or SuggestionRejectionCreate()).note
    )


@router.get("/liaison/cases", response_model=list[LiaisonCasePublic], summary="Forwarded cases, sanitized (police liaison)")
async def liaison_cases(principal: LiaisonReader, sessions: Sessions, ctx: Context, limit: int = Query(100, ge=1, le=500)) -> list[LiaisonCasePublic]:
    return await casework.liaison_cases(sessions=sessions, ctx=ctx, principal=principal, limit=limit)


@router.get("/liaison/cases/{case_id}", response_model=LiaisonCasePublic, summary="One forwarded case, sanitized")
async def liaison_case(case_id: str, principal: LiaisonReader, sessions: Sessions, ctx: Context) -> LiaisonCasePublic:
    return (await casework.liaison_cases(sessions=sessions, ctx=ctx, principal=principal, case_id=case_id))[0]


@router.post("/needs", status_code=201, response_model=NeedPublic, summary="Submit a public need (citizen or volunteer)")
async def submit_need(body: NeedCreate, request: Request, sessions: Sessions, ctx: Context, idempotency_key: IdempotencyKey = None) -> dict:
    principal = optional_principal(request)
    return await community.submit_need(
        sessions=sessions, ctx=ctx, body=body, volunteer_id=reporting_volunteer(principal), idempotency_key=idempotency_key
    )


@router.get("/needs", response_model=list[NeedPublic], summary="Needs routed into scope")
async def list_needs(principal: CommunityStaff, sessions: Sessions, status: str | None = None) -> list[dict]:
    return await community.list_needs(sessions=sessions, principal=principal, status=status)


@router.post("/needs/{need_id}/status", response_model=NeedPublic, summary="Move a need along")
async def need_status(need_id: str, body: NeedStatusUpdate, principal: CommunityStaff, sessions: Sessions) -> dict:
    return await community.set_need_status(sessions=sessions, principal=principal, need_id=need_id, status=body.status)


@router.post("/disputes", status_code=201, response_model=DisputePublic, summary="Open a mediation case")
async def open_dispute(
    body: DisputeCreate, principal: CommunityStaff, sessions: Sessions, ctx: Context, idempotency_key: IdempotencyKey = None,
) -> dict:
    return await community.open_dispute(sessions=sessions, ctx=ctx, principal=principal, body=body, idempotency_key=idempotency_key)


@router.get("/disputes", response_model=list[DisputeSummaryPublic], summary="Mediation cases in scope, newest first")
async def list_disputes(
    principal: CommunityStaff, sessions: Sessions, status: Literal["open", "mediating", "closed"] | None = None,
    limit: int = Query(100, ge=1, le=500),
) -> list[dict]:
    return await community.list_disputes(sessions=sessions, principal=principal, status=status, limit=limit)


@router.get("/disputes/{dispute_id}", response_model=DisputePublic, summary="A mediation case")
async def dispute(dispute_id: str, principal: CommunityStaff, sessions: Sessions) -> dict:
    return await community.dispute_detail(sessions=sessions, principal=principal, dispute_id=dispute_id)


@router.post("/disputes/{dispute_id}/mediator", response_model=DisputePublic, summary="Assign the mediator volunteer")
async def mediator(dispute_id: str, body: MediatorUpdate, principal: CommunityStaff, sessions: Sessions) -> dict:
    return await community.assign_mediator(sessions=sessions, principal=principal, dispute_id=dispute_id, volunteer_id=body.volunteer_id)


@router.post("/disputes/{dispute_id}/sessions", status_code=201, response_model=DisputePublic, summary="Record a mediation session")
async def mediation_session(dispute_id: str, body: MediationSessionCreate, principal: CommunityStaff, sessions: Sessions) -> dict:
    return await community.record_session(
        sessions=sessions, principal=principal, dispute_id=dispute_id, held_at=body.held_at, place=body.place, notes=body.notes
    )


@router.post("/disputes/{dispute_id}/outcome", response_model=DisputePublic, summary="Close with settled / referred to court / withdrawn")
async def dispute_outcome(dispute_id: str, body: DisputeOutcomeUpdate, principal: CommunityStaff, sessions: Sessions) -> dict:
    return await community.close_dispute(sessions=sessions, principal=principal, dispute_id=dispute_id, outcome=body.outcome, note=body.note)


@router.get("/bulletins", response_model=list[BulletinPublic], summary="Published safety bulletins (public)")
async def public_bulletins(
    sessions: Sessions, case_type: TipCategory | None = None, org_path: str | None = Query(None, max_length=500),
    limit: int = Query(50, ge=1, le=200),
) -> list[dict]:
    return await bulletins.public_bulletins(sessions=sessions, case_type=case_type, org_path=org_path, limit=limit)


@router.post("/bulletins", status_code=201, response_model=BulletinDraftPublic, summary="Draft a bulletin by hand")
async def draft_bulletin(body: BulletinCreate, principal: BulletinEditor, sessions: Sessions) -> dict:
    return await bulletins.draft_bulletin(sessions=sessions, principal=principal, body=body)


@router.get("/bulletins/drafts", response_model=list[BulletinDraftPublic], summary="Drafts waiting to be published, for areas in scope")
async def bulletin_drafts(principal: BulletinEditor, sessions: Sessions, limit: int = Query(100, ge=1, le=500)) -> list[dict]:
    return await bulletins.list_drafts(sessions=sessions, principal=principal, limit=limit)


@router.post("/bulletins/drafts", status_code=201, response_model=list[BulletinDraftPublic], summary="Draft bulletins from rising tip trends")
async def draft_from_trends(principal: BulletinEditor, sessions: Sessions, body: TrendDraftCreate | None = None) -> list[dict]:
    return await bulletins.draft_from_trends(sessions=sessions, principal=principal, body=body or TrendDraftCreate())


@router.post("/bulletins/{bulletin_id}/publish", response_model=BulletinDraftPublic, summary="Publish a draft: it gets its county's serial (第 N 期) and goes to its channels")
async def publish_bulletin(bulletin_id: str, principal: BulletinEditor, sessions: Sessions, ctx: Context) -> dict:
    return await bulletins.publish_bulletin(
        sessions=sessions, principal=principal, bulletin_id=bulletin_id, default_county=ctx.settings.default_org_path
    )


@router.get("/bulletins/deliveries", response_model=list[ChannelDeliveriesPublic], summary="Bulletins delivered per channel (pending and failed too), in scope")
async def bulletin_deliveries(principal: BulletinEditor, sessions: Sessions, year: int | None = Query(None, ge=2000, le=2100)) -> list[dict]:
    return await bulletins.delivered_per_channel(sessions=sessions, principal=principal, year=year)


@router.get("/bulletins/{bulletin_id}/deliveries", response_model=BulletinDeliveriesPublic, summary="How one published bulletin went out, channel by channel")
async def bulletin_delivery(bulletin_id: str, principal: BulletinEditor, sessions: Sessions) -> dict:
    return await bulletins.delivery_counts(sessions=sessions, principal=principal, bulletin_id=bulletin_id)


@router.post("/duty-roster", status_code=201, response_model=DutyShiftPublic, summary="Put an analyst on duty for an org scope and a time window (urgent cases alert them)")
async def add_shift(body: DutyShiftCreate, principal: RosterEditor, sessions: Sessions) -> dict:
    return await urgent.add_shift(sessions=sessions, principal=principal, body=body)


@router.get("/duty-roster", response_model=list[DutyShiftPublic], summary="Shifts in scope: on duty at `at`, or all not yet over")
async def list_shifts(
    principal: RosterReader, sessions: Sessions, at: datetime | None = None, org_path: str | None = Query(None, max_length=500),
    limit: int = Query(200, ge=1, le=1000),
) -> list[dict]:
    return await urgent.list_shifts(sessions=sessions, principal=principal, at=at, org_path=org_path, limit=limit)


@router.delete("/duty-roster/{shift_id}", status_code=204, response_class=Response, summary="Take a shift off the roster")
async def remove_shift(shift_id: str, principal: RosterEditor, sessions: Sessions) -> Response:
    await urgent.remove_shift(sessions=sessions, principal=principal, shift_id=shift_id)
    return Response(status_code=204)


def _cacheable(request: Request, response: Response, body) -> object:
    """Mark a public read cacheable, with an ETag of its content; a matching If-None-Match gets 304 and no body."""
    tag = '"' + hashlib.sha256(orjson.dumps(jsonable_encoder(body))).hexdigest()[:32] + '"'
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers={"ETag": tag, "Cache-Control": PUBLIC_CACHE})
    response.headers["ETag"] = tag
    response.headers["Cache-Control"] = PUBLIC_CACHE
    return body


@router.get("/columns", response_model=list[ColumnPublic], summary="Information columns (信息栏目), public",
            responses={304: {"description": "not modified since the ETag given in If-None-Match"}})
async def list_columns(request: Request, response: Response, sessions: Sessions, ctx: Context):
    return _cacheable(request, response, await columns.list_columns(sessions=sessions, county=ctx.settings.default_org_path))


@router.post("/columns", status_code=201, response_model=ColumnPublic, summary="Add a curated column of the county's own")
async def create_column(body: ColumnCreate, principal: ColumnAdmin, sessions: Sessions, ctx: Context) -> dict:
    return await columns.create_column(sessions=sessions, body=body, county=ctx.settings.default_org_path)


@router.get("/columns/{column_id}", response_model=ColumnPage, summary="A column's items for an area (default: the county), public",
            responses={304: {"description": "not modified since the ETag given in If-None-Match"}})
async def column_page(
    column_id: str, request: Request, response: Response, sessions: Sessions, ctx: Context,
    org_path: str | None = Query(None, max_length=500, pattern=r"^/[A-Za-z0-9_./-]*$"), limit: int = Query(50, ge=1, le=200),
):
    page = await columns.column_page(sessions=sessions, column_id=column_id, area=org_path, county=ctx.settings.default_org_path,
                                     limit=limit)
    return _cacheable(request, response, page)


@router.post("/columns/{column_id}/items", status_code=201, response_model=ColumnItemPublishedPublic, summary="Publish an entry in a curated column, for an area in scope")
async def publish_column_item(column_id: str, body: ColumnItemCreate, principal: ColumnEditor, sessions: Sessions) -> dict:
    return await columns.publish_item(sessions=sessions, principal=principal, column_id=column_id, body=body)


@router.delete("/columns/{column_id}/items/{item_id}", status_code=204, response_class=Response, summary="Take an entry down (it stays on record)")
async def withdraw_column_item(column_id: str, item_id: str, principal: ColumnEditor, sessions: Sessions) -> Response:
    await columns.withdraw_item(sessions=sessions, principal=principal, column_id=column_id, item_id=item_id)
    return Response(status_code=204)


@router.get("/violations", response_model=ViolationLookupPublic, summary="Traffic-violation lookup (违章查询), public",
            responses={503: {"description": "the police traffic system is not connected or did not answer"}})
async def violations(
    response: Response, ctx: Context, plate: str = Query(max_length=12, description="号牌号码, e.g. 浙A12345"),
    vin6: str = Query(max_length=6, description="the last six characters of the vehicle identification number"),
) -> dict:
    response.headers["Cache-Control"] = "no-store"
    return await columns.look_up_violations(system=ctx.violations, plate=plate, vin_last6=vin6)
