"""HTTP routes of the dispatch service: thin edges that call one service function each."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from shouwang_shared.app import HotRoute, RuntimeDep, Sessions
from shouwang_shared.auth import CurrentPrincipal, current_principal
from shouwang_shared.errors import Unprocessable

from dispatch import checkin_codes, fanout, hours_approval, offers, operations
from dispatch import fill_rate as fill_rate_views
from dispatch.checkin_qr import qr_png, qr_svg
from dispatch.post_import import posts_from_csv, posts_from_json
from dispatch.schemas import (
    AssignmentPublic,
    CheckIn,
    CheckinTokenPublic,
    CheckOut,
    DeclineCreate,
    FillRatePublic,
    HoursDecidedPublic,
    HoursDecisionCreate,
    HoursPendingPublic,
    OfferPublic,
    OffersCancelCreate,
    OffersCancelledPublic,
    OffersReofferCreate,
    OffersReofferedPublic,
    OperationCreate,
    OperationPublic,
    PlanPreviewPublic,
    PostsLoadedPublic,
    QuotaAcceptCreate,
    QuotaSplitCreate,
    QuotaTreePublic,
)

router = APIRouter(prefix="/v1")
ONLINE_CHECK_OUT = CheckOut()  # a check-out sent without a body: now, by the server's clock


# First: the phones' hottest read (FastAPI tries routes in order), and before /assignments/{assignment_id}.
# The JSON is written straight from the rows, so the model is declared for the contract only (`responses`), never re-validated.
@router.get("/assignments/mine", responses={200: {"model": list[AssignmentPublic], "description": "Successful Response"}}, tags=["assignments"])
async def my_assignments(principal: CurrentPrincipal, runtime: RuntimeDep, include_past: bool = False) -> Response:
    """The calling volunteer's own assignments (JSON written straight from the rows: the phones' hottest read)."""
    return Response(await offers.my_assignments_json(statements=runtime.statements, principal=principal, include_past=include_past),
                    media_type="application/json")


async def my_assignments_hot(request: Request) -> Response:
    """`my_assignments` without FastAPI's routing and dependency solving (`HotRoutes`): the same check and statement."""
    return await my_assignments(current_principal(request), request.app.state.runtime,
                                include_past=request.scope["query_string"] == b"include_past=true")


HOT_ROUTES = [HotRoute("GET", "/v1/assignments/mine", my_assignments_hot,
                       frozenset({b"", b"include_past=true", b"include_past=false"}))]


@router.post("/operations", status_code=201, response_model=OperationPublic, tags=["operations"])
async def create_operation(body: OperationCreate, principal: CurrentPrincipal, sessions: Sessions) -> OperationPublic:
    """Create a draft operation (planned or emergency) with its posts."""
    return await operations.create_operation(sessions=sessions, principal=principal, body=body)


@router.get("/operations", response_model=list[OperationPublic], tags=["operations"])
async def list_operations(
    principal: CurrentPrincipal, sessions: Sessions,
    status: Literal["draft", "activated", "running", "closed"] | None = None, limit: int = Query(100, ge=1, le=500),
) -> list[OperationPublic]:
    """The operations in the caller's org scope, newest first."""
    return await operations.list_operations(sessions=sessions, principal=principal, status=status, limit=limit)


@router.get("/operations/{operation_id}", response_model=OperationPublic, tags=["operations"])
async def get_operation(operation_id: str, principal: CurrentPrincipal, sessions: Sessions) -> OperationPublic:
    """An operation with its plan summary (shortfall report included)."""
    return await operations.get_operation(sessions=sessions, principal=principal, operation_id=operation_id)


@router.get("/operations/{operation_id}/plan-preview", response_model=PlanPreviewPublic, tags=["operations"])
async def preview_plan(operation_id: str, principal: CurrentPrincipal, sessions: Sessions) -> dict:
    """What the planner would fill now and why each short post stays short, before activating (nothing stored)."""
    return await operations.preview_plan(sessions=sessions, principal=principal, operation_id=operation_id)


@router.post("/operations/{operation_id}/posts", status_code=201, response_model=PostsLoadedPublic, tags=["posts"])
async def load_posts(operation_id: str, request: Request, principal: CurrentPrincipal, sessions: Sessions) -> PostsLoadedPublic:
    """Bulk-load posts into a draft operation from JSON (a list) or CSV (`Content-Type: text/csv`)."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    raw = await request.body()
    if content_type in ("text/csv", "application/csv"):
        posts = posts_from_csv(raw)
    elif content_type == "application/json":
        posts = posts_from_json(raw)
    else:
        raise Unprocessable("仅支持 JSON 或 CSV (only JSON or CSV)", field="content-type")
    return await operations.load_posts(sessions=sessions, principal=principal, operation_id=operation_id, posts=posts)


BINARY = {"type": "string", "format": "binary"}
QrMode = Annotated[Literal["rotating", "shift"], Query(description="rotating: for a screen at the post (10-minute steps); shift: printed on paper, valid for the shift")]


@router.get("/operations/{operation_id}/posts/{post_id}/checkin-token", response_model=CheckinTokenPublic, tags=["posts"])
async def checkin_token(operation_id: str, post_id: str, principal: CurrentPrincipal, sessions: Sessions, mode: QrMode = "rotating") -> CheckinTokenPublic:
    """The token the post's check-in QR carries now (rotating) or for its shift (printed), and how long it is accepted."""
    return await checkin_codes.post_checkin_token(sessions=sessions, principal=principal, operation_id=operation_id, post_id=post_id, mode=mode)


def qr_response(issued: CheckinTokenPublic, content: bytes, media_type: str) -> Response:
    """A QR image that is never cached; a screen showing a rotating one reloads it when the next token is due."""
    headers = {"Cache-Control": "no-store", "X-Checkin-Valid-Until": issued.valid_until.isoformat()}
    if issued.refresh_at is not None:
        headers["Refresh"] = str(max(1, math.ceil((issued.refresh_at - datetime.now(UTC)).total_seconds())))
    return Response(content=content, media_type=media_type, headers=headers)


@router.get("/operations/{operation_id}/posts/{post_id}/checkin-qr.svg", response_class=Response, tags=["posts"],
            responses={200: {"content": {"image/svg+xml": {"schema": BINARY}}, "description": "the post's check-in QR"}})
async def checkin_qr_svg(operation_id: str, post_id: str, principal: CurrentPrincipal, sessions: Sessions, mode: QrMode = "rotating") -> Response:
    """The post's check-in QR as SVG, to print or to show on a screen at the post."""
    issued = await checkin_codes.post_checkin_token(sessions=sessions, principal=principal, operation_id=operation_id, post_id=post_id, mode=mode)
    return qr_response(issued, qr_svg(issued.token), "image/svg+xml")


@router.get("/operations/{operation_id}/posts/{post_id}/checkin-qr.png", response_class=Response, tags=["posts"],
            responses={200: {"content": {"image/png": {"schema": BINARY}}, "description": "the post's check-in QR"}})
async def checkin_qr_png(
    operation_id: str, post_id: str, principal: CurrentPrincipal, sessions: Sessions, mode: QrMode = "rotating",
    box_size: int = Query(10, ge=2, le=40, description="pixels per QR module"),
) -> Response:
    """The post's check-in QR as PNG, to print or to show on a screen at the post."""
    issued = await checkin_codes.post_checkin_token(sessions=sessions, principal=principal, operation_id=operation_id, post_id=post_id, mode=mode)
    return qr_response(issued, qr_png(issued.token, box_size=box_size), "image/png")


@router.post("/operations/{operation_id}/activate", status_code=202, response_model=OperationPublic, tags=["operations"])
async def activate_operation(operation_id: str, principal: CurrentPrincipal, sessions: Sessions) -> OperationPublic:
    """Activate a draft operation; the planner assigns all posts when the activation event is consumed."""
    return await operations.activate_operation(sessions=sessions, principal=principal, operation_id=operation_id)


@router.post("/operations/{operation_id}/close", response_model=OperationPublic, tags=["operations"])
async def close_operation(operation_id: str, principal: CurrentPrincipal, sessions: Sessions) -> OperationPublic:
    """Close an operation; open offers are cancelled."""
    return await operations.close_operation(sessions=sessions, principal=principal, operation_id=operation_id)


OfferStatus = Literal["offered", "accepted", "declined", "expired", "cancelled", "checked_in", "checked_out", "no_show"]


@router.get("/operations/{operation_id}/offers", response_model=list[OfferPublic], tags=["offers"])
async def operation_offers(
    operation_id: str, principal: CurrentPrincipal, sessions: Sessions, status: OfferStatus | None = None,
    limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=1_000_000),
) -> list[OfferPublic]:
    """An operation's offers at posts in the caller's scope (optionally of one status), in offer order, a page at a time."""
    return await offers.operation_offers(sessions=sessions, principal=principal, operation_id=operation_id, status=status,
                                         limit=limit, offset=offset)


@router.post("/operations/{operation_id}/offers/cancel", response_model=OffersCancelledPublic, tags=["offers"])
async def cancel_offers(operation_id: str, body: OffersCancelCreate, principal: CurrentPrincipal, sessions: Sessions) -> OffersCancelledPublic:
    """Cancel offered or accepted shifts of an operation, one or many, with a reason each volunteer is told."""
    return await offers.cancel_offers(sessions=sessions, principal=principal, operation_id=operation_id, body=body)


@router.post("/operations/{operation_id}/offers/reoffer", response_model=OffersReofferedPublic, tags=["offers"])
async def reoffer_offers(operation_id: str, body: OffersReofferCreate, principal: CurrentPrincipal, sessions: Sessions) -> OffersReofferedPublic:
    """Offer the slots of declined, expired, cancelled or no-show assignments again (a backfill wave at their posts)."""
    return await offers.reoffer_slots(sessions=sessions, principal=principal, operation_id=operation_id, body=body)


@router.get("/assignments/{assignment_id}", response_model=AssignmentPublic, tags=["assignments"])
async def get_assignment(assignment_id: str, principal: CurrentPrincipal, sessions: Sessions) -> AssignmentPublic:
    """One assignment: its own volunteer, or staff in scope."""
    return await offers.get_assignment(sessions=sessions, principal=principal, assignment_id=assignment_id)


@router.post("/assignments/{assignment_id}/accept", response_model=AssignmentPublic, tags=["assignments"])
async def accept(assignment_id: str, principal: CurrentPrincipal, sessions: Sessions) -> AssignmentPublic:
    """Accept an offered shift."""
    return await offers.accept_offer(sessions=sessions, principal=principal, assignment_id=assignment_id)


@router.post("/assignments/{assignment_id}/decline", response_model=AssignmentPublic, tags=["assignments"])
async def decline(assignment_id: str, body: DeclineCreate, principal: CurrentPrincipal, sessions: Sessions) -> AssignmentPublic:
    """Decline an offered (or accepted) shift with a reason."""
    return await offers.decline_offer(sessions=sessions, principal=principal, assignment_id=assignment_id, reason=body.reason)


@router.post("/assignments/{assignment_id}/check-in", response_model=AssignmentPublic, tags=["assignments"])
async def check_in(assignment_id: str, body: CheckIn, principal: CurrentPrincipal, sessions: Sessions) -> AssignmentPublic:
    """Check in at the post by its QR token or by position inside its geofence."""
    return await offers.check_in(sessions=sessions, principal=principal, assignment_id=assignment_id, proof=body)


@router.post("/assignments/{assignment_id}/check-out", response_model=AssignmentPublic, tags=["assignments"])
async def check_out(assignment_id: str, principal: CurrentPrincipal, runtime: RuntimeDep, body: CheckOut = ONLINE_CHECK_OUT) -> AssignmentPublic:
    """Check out of the post; the hours served are recorded, pending until a station admin approves them (see HOURS_APPROVAL)."""
    return await offers.check_out(sessions=runtime.sessions, principal=principal, assignment_id=assignment_id, leaving=body,
                                  approval=runtime.settings.hours_approval)


@router.get("/hours/pending", response_model=list[HoursPendingPublic], tags=["hours"])
async def pending_hours(
    principal: CurrentPrincipal, sessions: Sessions, operation_id: str | None = None, limit: int = Query(200, ge=1, le=1000),
) -> list[HoursPendingPublic]:
    """Service hours waiting for a station admin's approval at posts in the caller's scope, oldest first."""
    return await hours_approval.pending_hours(sessions=sessions, principal=principal, operation_id=operation_id, limit=limit)


@router.post("/hours/approve", response_model=HoursDecidedPublic, tags=["hours"])
async def approve_hours(body: HoursDecisionCreate, principal: CurrentPrincipal, sessions: Sessions) -> HoursDecidedPublic:
    """Approve pending hours, one or many: each reaches rewards and the alliance bank."""
    return await hours_approval.decide_hours(sessions=sessions, principal=principal, decision=body, verdict="approved")


@router.post("/hours/decline", response_model=HoursDecidedPublic, tags=["hours"])
async def decline_hours(body: HoursDecisionCreate, principal: CurrentPrincipal, sessions: Sessions) -> HoursDecidedPublic:
    """Decline pending hours, one or many, with a reason that stays with them; nothing reaches rewards."""
    return await hours_approval.decide_hours(sessions=sessions, principal=principal, decision=body, verdict="declined")


@router.get("/fill-rate/{operation_id}", response_model=FillRatePublic, tags=["fill-rate"])
async def fill_rate(operation_id: str, principal: CurrentPrincipal, sessions: Sessions) -> dict:
    """Required, offered, accepted, checked in, on post, declined by reason and projected shortfall, per post."""
    return await fill_rate_views.fill_rate(sessions=sessions, principal=principal, operation_id=operation_id)


@router.get("/operations/{operation_id}/quotas", response_model=QuotaTreePublic, tags=["operations"])
async def quotas(operation_id: str, principal: CurrentPrincipal, sessions: Sessions) -> dict:
    """The fan-out tree: each level's quota, acceptance, what it split further, and roll-up counts from below it."""
    return await fanout.quota_tree(sessions=sessions, principal=principal, operation_id=operation_id)


@router.post("/operations/{operation_id}/quotas/split", response_model=QuotaTreePublic, tags=["operations"])
async def split_quota(operation_id: str, body: QuotaSplitCreate, principal: CurrentPrincipal, sessions: Sessions) -> dict:
    """Split an accepted quota among lower org units (towns/branches, then stations, then grids)."""
    return await fanout.split_quota(sessions=sessions, principal=principal, operation_id=operation_id, body=body)


@router.post("/operations/{operation_id}/quotas/accept", response_model=QuotaTreePublic, tags=["operations"])
async def accept_quota(operation_id: str, body: QuotaAcceptCreate, principal: CurrentPrincipal, sessions: Sessions) -> dict:
    """Accept the share of an org unit in the caller's scope."""
    return await fanout.accept_quota(sessions=sessions, principal=principal, operation_id=operation_id, body=body)
