"""HTTP routes of the registry service: thin edges that parse, authorize by role, and call one service function."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from argon2 import PasswordHasher
from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import Response

from shouwang_shared.app import Sessions, Statements
from shouwang_shared.auth import CurrentPrincipal, Principal, Role, require_roles
from shouwang_shared.errors import Unprocessable
from shouwang_shared.pii import PiiCipher

from registry import cards, invites, orgs, registrations, staff, teams, training, volunteers
from registry.access import ADMINS, ORG_READERS, VOLUNTEER_READERS, VOLUNTEER_WRITERS
from registry.config import RegistrySettings
from registry.roster import job_queue
from registry.schemas import (
    ActivationCreate,
    AttendanceCreate,
    AttendancePublic,
    CardKeysPublic,
    CardPublic,
    CardRevocationsPublic,
    GridCreate,
    GridPublic,
    ImportJobPublic,
    InviteCreate,
    InvitePublic,
    OrgUnitCountsPublic,
    OrgUnitCreate,
    OrgUnitMoveCreate,
    OrgUnitMovePublic,
    OrgUnitPublic,
    OrgUnitUpdate,
    PasswordCheckCreate,
    PhoneLookupCreate,
    RecruitList,
    RegistrationCreate,
    RegistrationPublic,
    RevealCreate,
    RevealPublic,
    StaffCreate,
    StaffPublic,
    StatusChangeCreate,
    StatusChangePublic,
    TeamPublic,
    TrainingBehindList,
    TrainingReviewPublic,
    TrainingSessionCreate,
    TrainingSessionListedPublic,
    TrainingSessionPublic,
    TrainingStandingPublic,
    VerifiedStaffPublic,
    VolunteerByPhonePublic,
    VolunteerCreate,
    VolunteerPage,
    VolunteerPublic,
    VolunteerUpdate,
)

router = APIRouter()
# The public registration path is matched first: FastAPI tries routes in order, and this one takes the load.
registration_router = APIRouter()
MAX_UPLOAD_BYTES = 64 * 1024 * 1024


async def _settings(request: Request) -> RegistrySettings:
    return request.app.state.runtime.settings


async def _cipher(request: Request) -> PiiCipher:
    return request.app.state.cipher


async def _hasher(request: Request) -> PasswordHasher:
    return request.app.state.hasher


async def _invite_key(request: Request) -> bytes:
    return request.app.state.invite_key


async def _card_issuer(request: Request) -> cards.CardIssuer | None:
    return request.app.state.card_issuer


Settings = Annotated[RegistrySettings, Depends(_settings)]
Cipher = Annotated[PiiCipher, Depends(_cipher)]
Hasher = Annotated[PasswordHasher, Depends(_hasher)]
InviteKey = Annotated[bytes, Depends(_invite_key)]
Issuer = Annotated[cards.CardIssuer | None, Depends(_card_issuer)]
Admin = Annotated[Principal, require_roles(*ADMINS)]
OrgReader = Annotated[Principal, require_roles(*ORG_READERS)]
VolunteerReader = Annotated[Principal, require_roles(*VOLUNTEER_READERS)]
VolunteerWriter = Annotated[Principal, require_roles(*VOLUNTEER_WRITERS)]
Service = Annotated[Principal, require_roles(Role.SERVICE)]
Page = Annotated[int, Query(ge=1, le=500)]

# --- org units -------------------------------------------------------------------------------


@router.post("/v1/org-units", status_code=201, response_model=OrgUnitPublic, tags=["org-units"])
async def create_org_unit(data: OrgUnitCreate, sessions: Sessions, principal: Admin) -> dict:
    """Create an org unit (county, town, industry branch or station) under a parent in scope."""
    return await orgs.create_org_unit(sessions=sessions, principal=principal, data=data)


@router.get("/v1/org-units/{unit_id}", response_model=OrgUnitPublic, tags=["org-units"])
async def get_org_unit(unit_id: str, sessions: Sessions, principal: OrgReader) -> dict:
    """One org unit."""
    return await orgs.get_org_unit(sessions=sessions, unit_id=unit_id)


@router.patch("/v1/org-units/{unit_id}", response_model=OrgUnitPublic, tags=["org-units"])
async def update_org_unit(unit_id: str, data: OrgUnitUpdate, sessions: Sessions, principal: Admin) -> dict:
    """Rename a unit or correct its location."""
    return await orgs.update_org_unit(sessions=sessions, principal=principal, unit_id=unit_id, data=data)


@router.get("/v1/org-units/{unit_id}/subtree", response_model=list[OrgUnitPublic], tags=["org-units"])
async def org_subtree(
    unit_id: str, sessions: Sessions, principal: OrgReader,
    kind: Literal["county", "town", "branch", "station"] | None = None, depth: Annotated[int | None, Query(ge=0, le=10)] = None,
) -> list[dict]:
    """The unit and everything below it."""
    return await orgs.subtree(sessions=sessions, principal=principal, unit_id=unit_id, kind=kind, max_depth=depth)


@router.get("/v1/org-units/{unit_id}/path", response_model=list[OrgUnitPublic], tags=["org-units"])
async def org_path_to_root(unit_id: str, sessions: Sessions, principal: OrgReader) -> list[dict]:
    """The units from the county down to this one."""
    return await orgs.path_to_root(sessions=sessions, principal=principal, unit_id=unit_id)


@router.get("/v1/org-units/{unit_id}/counts", response_model=OrgUnitCountsPublic, tags=["org-units"])
async def org_counts(unit_id: str, sessions: Sessions, principal: OrgReader) -> dict:
    """Units per level, grids and volunteers per status under the unit."""
    return await orgs.counts(sessions=sessions, principal=principal, unit_id=unit_id)


@router.post("/v1/org-units/{unit_id}/move", response_model=OrgUnitPublic, tags=["org-units"])
async def move_org_unit(unit_id: str, data: OrgUnitMoveCreate, sessions: Sessions, principal: Admin) -> dict:
    """Move a unit and its subtree under a new parent (history kept)."""
    return await orgs.move_org_unit(sessions=sessions, principal=principal, unit_id=unit_id, data=data)


@router.get("/v1/org-units/{unit_id}/moves", response_model=list[OrgUnitMovePublic], tags=["org-units"])
async def org_moves(unit_id: str, sessions: Sessions, principal: OrgReader) -> list[dict]:
    """Every move of the unit."""
    return await orgs.move_history(sessions=sessions, principal=principal, unit_id=unit_id)


# --- grids -----------------------------------------------------------------------------------


@router.post("/v1/grids", status_code=201, response_model=GridPublic, tags=["grids"])
async def create_grid(data: GridCreate, sessions: Sessions, principal: Admin) -> dict:
    """A grid under a station, optionally with its grid worker."""
    return await orgs.create_grid(sessions=sessions, principal=principal, data=data)


@router.get("/v1/grids", response_model=list[GridPublic], tags=["grids"])
async def list_grids(sessions: Sessions, principal: VolunteerReader, station_id: str | None = None) -> list[dict]:
    """Grids in scope (or of one station)."""
    return await orgs.list_grids(sessions=sessions, principal=principal, station_id=station_id)


# --- teams -----------------------------------------------------------------------------------


@router.get("/v1/teams", response_model=list[TeamPublic], tags=["teams"])
async def list_teams(sessions: Sessions, principal: CurrentPrincipal) -> list[dict]:
    """The 16 specialised teams."""
    return await teams.list_teams(sessions=sessions)


# --- volunteers ------------------------------------------------------------------------------


@router.post("/v1/volunteers", status_code=201, response_model=VolunteerPublic, tags=["volunteers"])
async def register_volunteer(data: VolunteerCreate, sessions: Sessions, cipher: Cipher, principal: VolunteerWriter) -> dict:
    """Staff register a volunteer (an applicant) in a unit of their scope."""
    return await volunteers.register_volunteer(sessions=sessions, cipher=cipher, principal=principal, data=data)


@router.get("/v1/volunteers", response_model=VolunteerPage, tags=["volunteers"])
async def list_volunteers(
    sessions: Sessions, principal: VolunteerReader, org_unit_id: str | None = None,
    status: Literal["applicant", "active", "suspended", "retired"] | None = None, grid_id: str | None = None,
    recruited_by: str | None = None, team: Annotated[str | None, Query(max_length=50)] = None,
    skill: Annotated[str | None, Query(max_length=50)] = None, training: Literal["compliant", "behind"] | None = None,
    star: Annotated[int | None, Query(ge=1, le=5)] = None, core: bool | None = None,
    limit: Page = 50, offset: Annotated[int, Query(ge=0)] = 0,
) -> dict:
    """Volunteers in scope (masked), filtered by unit, status, grid, recruiting grid worker, team, skill, training, star or core."""
    return await volunteers.list_volunteers(
        sessions=sessions, principal=principal, org_unit_id=org_unit_id, status=status, grid_id=grid_id,
        recruited_by=recruited_by, limit=limit, offset=offset,
        traits=volunteers.RosterTraits(team=team, skill=skill, training=training, star=star, core=core),
    )


@router.get("/v1/volunteers/me", response_model=VolunteerPublic, tags=["volunteers"])
async def my_profile(sessions: Sessions, principal: CurrentPrincipal) -> dict:
    """The calling volunteer's own profile (masked, star included)."""
    return await volunteers.own_profile(sessions=sessions, principal=principal)


@router.get("/v1/volunteers/me/card", response_model=CardPublic, tags=["cards"],
            responses={409: {"description": "志愿者不是在册状态（待审核、已暂停或已退出），不发志愿者证"}})
async def my_card(sessions: Sessions, issuer: Issuer, principal: CurrentPrincipal, response: Response) -> dict:
    """The calling volunteer's digital card with its QR (verifiable offline); active volunteers only."""
    response.headers["Cache-Control"] = "private, no-store"
    return await cards.own_card(sessions=sessions, issuer=issuer, principal=principal)


@router.get("/v1/volunteers/{volunteer_id}", response_model=VolunteerPublic, tags=["volunteers"])
async def get_volunteer(volunteer_id: str, sessions: Sessions, principal: CurrentPrincipal) -> dict:
    """One volunteer (masked), in scope or themself."""
    return await volunteers.get_volunteer(sessions=sessions, principal=principal, volunteer_id=volunteer_id)


@router.patch("/v1/volunteers/{volunteer_id}", response_model=VolunteerPublic, tags=["volunteers"])
async def update_volunteer(volunteer_id: str, data: VolunteerUpdate, sessions: Sessions, principal: VolunteerWriter) -> dict:
    """Change a volunteer's profile (home unit, grid, teams, skills, certificates, availability…)."""
    return await volunteers.update_volunteer(sessions=sessions, principal=principal, volunteer_id=volunteer_id, data=data)


@router.post("/v1/volunteers/{volunteer_id}/activate", response_model=VolunteerPublic, tags=["volunteers"])
async def activate_volunteer(volunteer_id: str, sessions: Sessions, principal: VolunteerWriter, data: ActivationCreate | None = None) -> dict:
    """Approve an applicant (or reinstate a suspended volunteer)."""
    reason = (data.reason if data else "") or "审核通过"
    return await volunteers.change_status(sessions=sessions, principal=principal, volunteer_id=volunteer_id, to_status="active", reason=reason)


@router.post("/v1/volunteers/{volunteer_id}/suspend", response_model=VolunteerPublic, tags=["volunteers"])
async def suspend_volunteer(volunteer_id: str, data: StatusChangeCreate, sessions: Sessions, principal: VolunteerWriter) -> dict:
    """Suspend an active volunteer, with a reason."""
    return await volunteers.change_status(sessions=sessions, principal=principal, volunteer_id=volunteer_id, to_status="suspended", reason=data.reason)


@router.post("/v1/volunteers/{volunteer_id}/retire", response_model=VolunteerPublic, tags=["volunteers"])
async def retire_volunteer(volunteer_id: str, data: StatusChangeCreate, sessions: Sessions, principal: VolunteerWriter) -> dict:
    """Retire a volunteer for good, with a reason."""
    return await volunteers.change_status(sessions=sessions, principal=principal, volunteer_id=volunteer_id, to_status="retired", reason=data.reason)


@router.get("/v1/volunteers/{volunteer_id}/status-history", response_model=list[StatusChangePublic], tags=["volunteers"])
async def volunteer_status_history(volunteer_id: str, sessions: Sessions, principal: VolunteerReader) -> list[dict]:
    """Every status change of a volunteer with reasons."""
    return await volunteers.status_history(sessions=sessions, principal=principal, volunteer_id=volunteer_id)


@router.post("/v1/volunteers/{volunteer_id}/reveal", response_model=RevealPublic, tags=["volunteers"])
async def reveal_identity(volunteer_id: str, data: RevealCreate, sessions: Sessions, cipher: Cipher, principal: CurrentPrincipal) -> dict:
    """The unmasked ID number, phone or birth date, for a county admin or operator only; audited."""
    return await volunteers.reveal_identity(sessions=sessions, cipher=cipher, principal=principal, volunteer_id=volunteer_id, data=data)


# --- staff -----------------------------------------------------------------------------------


@router.post("/v1/staff", status_code=201, response_model=StaffPublic, tags=["staff"])
async def create_staff(data: StaffCreate, sessions: Sessions, hasher: Hasher, principal: Admin) -> dict:
    """A staff account of a role the caller may grant, in the caller's scope."""
    return await staff.create_staff(sessions=sessions, hasher=hasher, principal=principal, data=data)


@router.get("/v1/staff", response_model=list[StaffPublic], tags=["staff"])
async def list_staff(sessions: Sessions, principal: Admin) -> list[dict]:
    """Staff accounts in the caller's scope."""
    return await staff.list_staff(sessions=sessions, principal=principal)


@router.get("/v1/staff/me", response_model=StaffPublic, tags=["staff"])
async def my_account(sessions: Sessions, principal: CurrentPrincipal) -> dict:
    """The calling staff member's own account."""
    return await staff.own_account(sessions=sessions, principal=principal)


@router.post("/v1/staff/{staff_id}/deactivate", response_model=StaffPublic, tags=["staff"])
async def deactivate_staff(staff_id: str, sessions: Sessions, principal: Admin) -> dict:
    """Deactivate a staff account: no more logins, and the gateway revokes its sessions."""
    return await staff.set_staff_active(sessions=sessions, principal=principal, staff_id=staff_id, active=False)


@router.post("/v1/staff/{staff_id}/activate", response_model=StaffPublic, tags=["staff"])
async def activate_staff(staff_id: str, sessions: Sessions, principal: Admin) -> dict:
    """Reactivate a staff account."""
    return await staff.set_staff_active(sessions=sessions, principal=principal, staff_id=staff_id, active=True)


@router.get("/v1/staff/{staff_id}/recruits", response_model=RecruitList, tags=["staff"])
async def staff_recruits(staff_id: str, sessions: Sessions, principal: VolunteerReader) -> dict:
    """The volunteers a grid worker recruited."""
    return await staff.recruits_of(sessions=sessions, principal=principal, staff_id=staff_id)


@router.post("/internal/v1/staff/verify-password", response_model=VerifiedStaffPublic, tags=["internal"])
async def verify_password(data: PasswordCheckCreate, sessions: Sessions, hasher: Hasher, principal: Service) -> dict:
    """The gateway checks a staff login; 401 on a wrong username or password."""
    return await staff.verify_password(sessions=sessions, hasher=hasher, data=data)


@router.post("/internal/v1/volunteers/by-phone", response_model=VolunteerByPhonePublic, tags=["internal"])
async def volunteer_by_phone(data: PhoneLookupCreate, sessions: Sessions, cipher: Cipher, principal: Service) -> dict:
    """The gateway finds the volunteer of a phone for a one-time-code login; 404 when none."""
    return await volunteers.find_by_phone(sessions=sessions, cipher=cipher, phone=data.phone)


# --- invites and registrations ---------------------------------------------------------------


@router.post("/v1/invites", status_code=201, response_model=InvitePublic, tags=["invites"])
async def issue_invite(data: InviteCreate, sessions: Sessions, key: InviteKey, settings: Settings, principal: CurrentPrincipal) -> dict:
    """A signed, expiring registration invite for a grid (single- or multi-use)."""
    return await invites.issue_invite(sessions=sessions, key=key, registration_url=settings.registration_url, principal=principal, data=data)


@router.get("/v1/invites/{invite_id}", response_model=InvitePublic, tags=["invites"])
async def get_invite(invite_id: str, sessions: Sessions, key: InviteKey, settings: Settings, principal: CurrentPrincipal) -> dict:
    """One invite with its token and registration URL."""
    return await invites.get_invite(sessions=sessions, key=key, registration_url=settings.registration_url, principal=principal, invite_id=invite_id)


@router.post("/v1/invites/{invite_id}/revoke", response_model=InvitePublic, tags=["invites"])
async def revoke_invite(invite_id: str, sessions: Sessions, key: InviteKey, settings: Settings, principal: Admin) -> dict:
    """Stop an invite from being used."""
    return await invites.revoke_invite(sessions=sessions, key=key, registration_url=settings.registration_url, principal=principal, invite_id=invite_id)


QR_IMAGE = {"type": "string", "format": "binary"}


@router.get("/v1/invites/{invite_id}/qr.{fmt}", tags=["invites"], response_class=Response, responses={
    200: {"content": {"image/png": {"schema": QR_IMAGE}, "image/svg+xml": {"schema": QR_IMAGE}}, "description": "the invite's QR code"}})
async def invite_qr(invite_id: str, fmt: Literal["png", "svg"], sessions: Sessions, key: InviteKey, settings: Settings, principal: CurrentPrincipal) -> Response:
    """The invite's QR code as PNG or SVG."""
    body, media_type = await invites.invite_qr(
        sessions=sessions, key=key, registration_url=settings.registration_url, principal=principal, invite_id=invite_id, fmt=fmt
    )
    return Response(body, media_type=media_type, headers={"Cache-Control": "private, max-age=300"})


@registration_router.post("/v1/registrations", status_code=201, response_model=RegistrationPublic, tags=["registrations"])
async def register_with_invite(data: RegistrationCreate, statements: Statements, cipher: Cipher, key: InviteKey) -> dict:
    """Public: a person registers with the token of a QR invite and becomes an applicant of that grid."""
    return await registrations.register_with_invite(statements=statements, cipher=cipher, key=key, data=data)


# --- card verification (public) --------------------------------------------------------------


def _published(request: Request, response: Response, document: dict, *, max_age_s: int) -> Response | dict:
    """A public document with an ETag and caching headers; 304 when the caller's copy is current."""
    etag = cards.document_etag(document)
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age_s}, must-revalidate"}
    if etag in (t.strip() for t in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return document


NOT_MODIFIED = {304: {"description": "If-None-Match 与当前 ETag 相同：缓存的副本仍是最新的"}}


@registration_router.get("/v1/cards/keys", response_model=CardKeysPublic, tags=["cards"], responses=NOT_MODIFIED)
async def card_keys(request: Request, response: Response, issuer: Issuer) -> Response | dict:
    """Public: the issuer public keys volunteer cards are verified with (by key id)."""
    return _published(request, response, cards.require_issuer(issuer).keys_document(), max_age_s=3600)


@registration_router.get("/v1/cards/revocations", response_model=CardRevocationsPublic, tags=["cards"], responses=NOT_MODIFIED)
async def card_revocations(request: Request, response: Response, sessions: Sessions) -> Response | dict:
    """Public: serials of revoked cards still within their validity; refresh often (ETag, max-age 60 s)."""
    return _published(request, response, await cards.revocation_list(sessions=sessions), max_age_s=60)


# --- training --------------------------------------------------------------------------------


@router.post("/v1/training/sessions", status_code=201, response_model=TrainingSessionPublic, tags=["training"])
async def create_training_session(data: TrainingSessionCreate, sessions: Sessions, principal: Admin) -> dict:
    """A training session held by a unit in scope."""
    return await training.create_session(sessions=sessions, principal=principal, data=data)


@router.get("/v1/training/sessions", response_model=list[TrainingSessionListedPublic], tags=["training"])
async def list_training_sessions(
    sessions: Sessions, principal: Admin, since: date | None = None, until: date | None = None,
    level: Literal["county", "town", "village"] | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict]:
    """Training sessions held in scope, newest first, with attendance counts."""
    return await training.list_sessions(sessions=sessions, principal=principal, since=since, until=until, level=level, limit=limit)


@router.post("/v1/training/sessions/{session_id}/attendance", response_model=AttendancePublic, tags=["training"])
async def record_attendance(session_id: str, data: AttendanceCreate, sessions: Sessions, settings: Settings, principal: Admin) -> dict:
    """Record who attended (idempotent); emits one `TrainingAttended` per new attendance."""
    return await training.record_attendance(
        sessions=sessions, principal=principal, session_id=session_id, data=data, notice_days=settings.training_notice_days
    )


@router.get("/v1/training/me", response_model=TrainingStandingPublic, tags=["training"])
async def my_training(sessions: Sessions, settings: Settings, principal: CurrentPrincipal) -> dict:
    """The calling volunteer's trainings of the past year and where they stand against the yearly rule."""
    return await training.own_standing(sessions=sessions, principal=principal, notice_days=settings.training_notice_days)


@router.post("/v1/training/review", response_model=TrainingReviewPublic, tags=["training"])
async def review_training(
    sessions: Sessions, settings: Settings, principal: CurrentPrincipal, org_unit_id: str | None = None, as_of: date | None = None,
) -> dict:
    """Re-assess volunteers in scope against the yearly rule (flags, eligibility) and emit changed states."""
    return await training.review_training(
        sessions=sessions, principal=principal, org_unit_id=org_unit_id, as_of=as_of, notice_days=settings.training_notice_days
    )


@router.get("/v1/training/behind", response_model=TrainingBehindList, tags=["training"])
async def training_behind(sessions: Sessions, settings: Settings, principal: Admin, org_unit_id: str, as_of: date | None = None) -> dict:
    """Who is behind the yearly training rule under a unit, with counts per unit."""
    return await training.behind_report(
        sessions=sessions, principal=principal, org_unit_id=org_unit_id, as_of=as_of, notice_days=settings.training_notice_days
    )


# --- imports ---------------------------------------------------------------------------------


@router.post("/v1/imports", status_code=202, response_model=ImportJobPublic, tags=["imports"])
async def import_roster(
    sessions: Sessions, cipher: Cipher, principal: Admin, file: Annotated[UploadFile, File(description="CSV roster, UTF-8")],
) -> dict:
    """Upload a CSV roster: checked (encoding, columns) and queued as an import job; follow it at `GET /v1/imports/{id}`."""
    raw = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(raw) > MAX_UPLOAD_BYTES:
        raise Unprocessable("文件过大（上限 64 MB）", field="file", code="too_large")
    return await job_queue.create_import(sessions=sessions, cipher=cipher, principal=principal, raw=raw)


@router.get("/v1/imports/{import_id}", response_model=ImportJobPublic, tags=["imports"])
async def get_import(import_id: str, sessions: Sessions, principal: Admin) -> dict:
    """An import job: status, progress, and the report (rows imported, already registered, refused with line and field)."""
    return await job_queue.get_import(sessions=sessions, principal=principal, import_id=import_id)
