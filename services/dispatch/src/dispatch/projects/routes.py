"""HTTP routes of service projects: staff set up projects and schedules under /projects, volunteers find and take
shifts under /shifts. Thin edges that call one service function each."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from shouwang_shared.app import RuntimeDep, Sessions
from shouwang_shared.auth import CurrentPrincipal

from dispatch.checkin_qr import qr_png, qr_svg
from dispatch.projects import attendance, beneficiaries, service, signups
from dispatch.projects.schemas import (
    BeneficiaryCreate,
    BeneficiaryPublic,
    ProjectCreate,
    ProjectPublic,
    ProjectUpdate,
    ScheduleExceptionsCreate,
    ScheduleUpdate,
    SeriesSignupPublic,
    ShiftPublic,
    ShiftsGeneratedPublic,
    SignupCancelCreate,
    SignupPublic,
)
from dispatch.routes import BINARY, ONLINE_CHECK_OUT, QrMode, qr_response
from dispatch.schemas import CheckIn, CheckinTokenPublic, CheckOut

router = APIRouter(prefix="/v1")
NO_REASON = SignupCancelCreate()


@router.post("/projects", status_code=201, response_model=ProjectPublic, tags=["projects"])
async def create_project(body: ProjectCreate, principal: CurrentPrincipal, sessions: Sessions) -> ProjectPublic:
    """Create a recurring service project with its schedule; its first shifts are generated at once."""
    return await service.create_project(sessions=sessions, principal=principal, body=body)


@router.get("/projects", response_model=list[ProjectPublic], tags=["projects"])
async def list_projects(
    principal: CurrentPrincipal, sessions: Sessions,
    kind: Literal["school_patrol", "care", "legal_outreach", "custom"] | None = None, limit: int = Query(100, ge=1, le=500),
) -> list[ProjectPublic]:
    """The projects in the caller's org scope, newest first."""
    return await service.list_projects(sessions=sessions, principal=principal, kind=kind, limit=limit)


@router.get("/projects/{project_id}", response_model=ProjectPublic, tags=["projects"])
async def get_project(project_id: str, principal: CurrentPrincipal, sessions: Sessions) -> ProjectPublic:
    """A project with its schedule segments and exception dates."""
    return await service.get_project(sessions=sessions, principal=principal, project_id=project_id)


@router.patch("/projects/{project_id}", response_model=ProjectPublic, tags=["projects"])
async def update_project(project_id: str, body: ProjectUpdate, principal: CurrentPrincipal, sessions: Sessions) -> ProjectPublic:
    """Change a project's name, capacity, approval, horizon or status (not its schedule)."""
    return await service.update_project(sessions=sessions, principal=principal, project_id=project_id, body=body)


@router.post("/projects/{project_id}/schedule", response_model=ProjectPublic, tags=["projects"])
async def edit_schedule(project_id: str, body: ScheduleUpdate, principal: CurrentPrincipal, sessions: Sessions) -> ProjectPublic:
    """Change the schedule "this and future": from `from_date` on the new rule holds; earlier shifts stay."""
    return await service.edit_schedule(sessions=sessions, principal=principal, project_id=project_id, body=body)


@router.post("/projects/{project_id}/exceptions", response_model=ProjectPublic, tags=["projects"])
async def add_exceptions(project_id: str, body: ScheduleExceptionsCreate, principal: CurrentPrincipal, sessions: Sessions) -> ProjectPublic:
    """Take dates out of the schedule (holidays); shifts on them are cancelled and their volunteers told."""
    return await service.add_exceptions(sessions=sessions, principal=principal, project_id=project_id, body=body)


@router.post("/projects/{project_id}/shifts/generate", response_model=ShiftsGeneratedPublic, tags=["projects"])
async def generate_shifts(project_id: str, principal: CurrentPrincipal, sessions: Sessions) -> ShiftsGeneratedPublic:
    """Generate the project's shifts up to its horizon now (idempotent; the sweep does it on its own)."""
    return await service.generate_project_shifts(sessions=sessions, principal=principal, project_id=project_id)


@router.get("/projects/{project_id}/shifts", response_model=list[ShiftPublic], tags=["projects"])
async def list_shifts(
    project_id: str, principal: CurrentPrincipal, sessions: Sessions, start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None, limit: int = Query(500, ge=1, le=5000),
) -> list[ShiftPublic]:
    """The project's shifts from `from` (default now) until `to`, with confirmed, waitlisted and applied counts."""
    return await service.list_shifts(sessions=sessions, principal=principal, project_id=project_id, start=start, end=end, limit=limit)


@router.get("/projects/{project_id}/signups", response_model=list[SignupPublic], tags=["projects"])
async def project_signups(project_id: str, principal: CurrentPrincipal, sessions: Sessions, shift_id: str | None = None) -> list[SignupPublic]:
    """The project's upcoming sign-ups (one shift's with `shift_id`)."""
    return await signups.project_signups(sessions=sessions, principal=principal, project_id=project_id, shift_id=shift_id)


@router.post("/projects/{project_id}/signups/{signup_id}/confirm", response_model=SignupPublic, tags=["projects"])
async def confirm_signup(project_id: str, signup_id: str, principal: CurrentPrincipal, sessions: Sessions) -> SignupPublic:
    """Confirm an applied sign-up (a project that needs approval); waitlisted when the shift is full."""
    return await signups.confirm_signup(sessions=sessions, principal=principal, project_id=project_id, signup_id=signup_id)


@router.get("/projects/{project_id}/shifts/{shift_id}/checkin-token", response_model=CheckinTokenPublic, tags=["projects"])
async def shift_checkin_token(project_id: str, shift_id: str, principal: CurrentPrincipal, sessions: Sessions, mode: QrMode = "rotating") -> CheckinTokenPublic:
    """The token the QR of the shift's place carries now (rotating) or for this shift (printed); `post_id` is the shift's id."""
    return await attendance.shift_checkin_token(sessions=sessions, principal=principal, project_id=project_id, shift_id=shift_id, mode=mode)


@router.get("/projects/{project_id}/shifts/{shift_id}/checkin-qr.svg", response_class=Response, tags=["projects"],
            responses={200: {"content": {"image/svg+xml": {"schema": BINARY}}, "description": "the check-in QR of the shift's place"}})
async def shift_checkin_qr_svg(project_id: str, shift_id: str, principal: CurrentPrincipal, sessions: Sessions, mode: QrMode = "rotating") -> Response:
    """The check-in QR of the shift's place as SVG, to print or to show on a screen there."""
    issued = await attendance.shift_checkin_token(sessions=sessions, principal=principal, project_id=project_id, shift_id=shift_id, mode=mode)
    return qr_response(issued, qr_svg(issued.token), "image/svg+xml")


@router.get("/projects/{project_id}/shifts/{shift_id}/checkin-qr.png", response_class=Response, tags=["projects"],
            responses={200: {"content": {"image/png": {"schema": BINARY}}, "description": "the check-in QR of the shift's place"}})
async def shift_checkin_qr_png(
    project_id: str, shift_id: str, principal: CurrentPrincipal, sessions: Sessions, mode: QrMode = "rotating",
    box_size: int = Query(10, ge=2, le=40, description="pixels per QR module"),
) -> Response:
    """The check-in QR of the shift's place as PNG, to print or to show on a screen there."""
    issued = await attendance.shift_checkin_token(sessions=sessions, principal=principal, project_id=project_id, shift_id=shift_id, mode=mode)
    return qr_response(issued, qr_png(issued.token, box_size=box_size), "image/png")


@router.post("/projects/{project_id}/beneficiaries", status_code=201, response_model=BeneficiaryPublic, tags=["projects"])
async def add_beneficiary(project_id: str, body: BeneficiaryCreate, principal: CurrentPrincipal, runtime: RuntimeDep) -> BeneficiaryPublic:
    """Register a person the project serves (a child in a care project); sealed at rest, answered masked."""
    return await beneficiaries.add_beneficiary(sessions=runtime.sessions, settings=runtime.settings, principal=principal,
                                               project_id=project_id, body=body)


@router.get("/projects/{project_id}/beneficiaries", response_model=list[BeneficiaryPublic], tags=["projects"])
async def list_beneficiaries(project_id: str, principal: CurrentPrincipal, runtime: RuntimeDep) -> list[BeneficiaryPublic]:
    """The project's beneficiaries, masked (the project's staff only)."""
    return await beneficiaries.list_beneficiaries(sessions=runtime.sessions, settings=runtime.settings, principal=principal,
                                                  project_id=project_id)


@router.delete("/projects/{project_id}/beneficiaries/{beneficiary_id}", status_code=204, response_class=Response, tags=["projects"])
async def remove_beneficiary(project_id: str, beneficiary_id: str, principal: CurrentPrincipal, sessions: Sessions) -> Response:
    """Take a beneficiary off the register; nothing of them is kept."""
    await beneficiaries.remove_beneficiary(sessions=sessions, principal=principal, project_id=project_id, beneficiary_id=beneficiary_id)
    return Response(status_code=204)


# Before /shifts/{shift_id}/...: the fixed paths first.
@router.get("/shifts/open", response_model=list[ShiftPublic], tags=["shifts"])
async def open_shifts(
    principal: CurrentPrincipal, sessions: Sessions, lat: float | None = Query(None, ge=-90, le=90),
    lon: float | None = Query(None, ge=-180, le=180), radius_km: float = Query(10.0, gt=0, le=200),
    days: int = Query(14, ge=1, le=90),
) -> list[ShiftPublic]:
    """Shifts the calling volunteer qualifies for near a position (default: their home), nearest first."""
    return await signups.open_shifts_near(sessions=sessions, principal=principal, lat=lat, lon=lon, radius_km=radius_km, days=days)


@router.get("/shifts/mine", response_model=list[SignupPublic], tags=["shifts"])
async def my_signups(principal: CurrentPrincipal, sessions: Sessions, include_past: bool = False) -> list[SignupPublic]:
    """The calling volunteer's own sign-ups, soonest first."""
    return await signups.my_signups(sessions=sessions, principal=principal, include_past=include_past)


@router.post("/shifts/{shift_id}/signup", status_code=201, response_model=SignupPublic, tags=["shifts"])
async def sign_up(shift_id: str, principal: CurrentPrincipal, sessions: Sessions) -> SignupPublic:
    """Sign up for one shift: confirmed while there is room, else waitlisted; 409 `double_booked` on a clash."""
    return await signups.sign_up(sessions=sessions, principal=principal, shift_id=shift_id)


@router.post("/shifts/{shift_id}/signup-series", status_code=201, response_model=SeriesSignupPublic, tags=["shifts"])
async def sign_up_series(shift_id: str, principal: CurrentPrincipal, sessions: Sessions) -> SeriesSignupPublic:
    """Sign up for this shift and every later one at the same place (and those generated later)."""
    return await signups.sign_up_series(sessions=sessions, principal=principal, shift_id=shift_id)


@router.post("/shifts/{shift_id}/cancel", response_model=SignupPublic, tags=["shifts"])
async def cancel_signup(shift_id: str, principal: CurrentPrincipal, sessions: Sessions, body: SignupCancelCreate = NO_REASON) -> SignupPublic:
    """Withdraw from a shift; the first on its waitlist takes the place and is notified."""
    return await signups.cancel_signup(sessions=sessions, principal=principal, shift_id=shift_id, reason=body.reason)


@router.post("/shifts/{shift_id}/cancel-series", response_model=list[SignupPublic], tags=["shifts"])
async def cancel_series(shift_id: str, principal: CurrentPrincipal, sessions: Sessions, body: SignupCancelCreate = NO_REASON) -> list[SignupPublic]:
    """Leave a series from this shift on: later sign-ups are cancelled and later shifts no longer signed up for."""
    return await signups.cancel_series(sessions=sessions, principal=principal, shift_id=shift_id, reason=body.reason)


@router.post("/shifts/{shift_id}/check-in", response_model=SignupPublic, tags=["shifts"])
async def check_in_shift(shift_id: str, body: CheckIn, principal: CurrentPrincipal, sessions: Sessions) -> SignupPublic:
    """Check in to a confirmed shift by the QR token of its place or by position inside its geofence."""
    return await attendance.check_in(sessions=sessions, principal=principal, shift_id=shift_id, proof=body)


@router.post("/shifts/{shift_id}/check-out", response_model=SignupPublic, tags=["shifts"])
async def check_out_shift(shift_id: str, principal: CurrentPrincipal, runtime: RuntimeDep, body: CheckOut = ONLINE_CHECK_OUT) -> SignupPublic:
    """Check out of the shift; the hours served are recorded, pending until a station admin approves them (see HOURS_APPROVAL)."""
    return await attendance.check_out(sessions=runtime.sessions, principal=principal, shift_id=shift_id, leaving=body,
                                      approval=runtime.settings.hours_approval)
