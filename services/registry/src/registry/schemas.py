"""API schemas of the registry service: what callers send and what they get back (PII masked)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shouwang_shared.contracts.registry import AvailabilityWindow as ContractWindow
from shouwang_shared.contracts.registry import Certificate as ContractCertificate
from shouwang_shared.schemas import Timestamp

OrgKind = Literal["county", "town", "branch", "station"]
VolunteerStatus = Literal["applicant", "active", "suspended", "retired"]
RecruitmentMode = Literal["long_term", "emergency", "reserve"]
ServiceType = Literal["professional", "public_welfare", "governance"]
StaffRole = Literal["grid_worker", "station_admin", "town_admin", "county_admin", "analyst", "police_liaison", "operator"]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]
Uuid = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9a-fA-F-]{36}$")]


class Strict(BaseModel):
    """Request bodies reject unknown fields, so a typo is named rather than ignored."""

    model_config = ConfigDict(extra="forbid")


class OrgUnitCreate(Strict):
    name: Name
    kind: OrgKind
    parent_id: Uuid | None = None
    lat: Latitude | None = None
    lon: Longitude | None = None


class OrgUnitUpdate(Strict):
    """Rename a unit or correct its location; omitted fields stay as they are."""

    name: Name | None = None
    lat: Latitude | None = None
    lon: Longitude | None = None


class OrgUnitMoveCreate(Strict):
    new_parent_id: Uuid
    reason: ShortText = ""


class OrgUnitPublic(BaseModel):
    id: str
    name: str
    kind: OrgKind
    parent_id: str | None
    path: str
    depth: int
    lat: float | None = None
    lon: float | None = None


class OrgUnitMovePublic(BaseModel):
    old_parent_id: str | None
    new_parent_id: str
    old_path: str
    new_path: str
    reason: str
    moved_by: str
    moved_at: datetime


class GridCreate(Strict):
    name: Name
    station_id: Uuid
    grid_worker_id: Uuid | None = None


class GridPublic(BaseModel):
    id: str
    name: str
    station_id: str
    org_path: str
    grid_worker_id: str | None


class Certificate(ContractCertificate):
    model_config = ConfigDict(extra="forbid")
    code: Code


class AvailabilityWindow(ContractWindow):
    model_config = ConfigDict(extra="forbid")
    weekday: Annotated[int, Field(ge=0, le=6)]
    start: Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    end: Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-4]):[0-5]\d$")]

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: str, info) -> str:
        start = info.data.get("start")
        if start and end <= start:
            raise ValueError("结束时间应晚于开始时间")
        return end


class VolunteerBase(Strict):
    """What a volunteer tells about themself besides identity."""

    lat: Latitude | None = None
    lon: Longitude | None = None
    core: bool = False
    recruitment_mode: RecruitmentMode = "long_term"
    service_types: Annotated[list[ServiceType], Field(max_length=3)] = []
    teams: Annotated[list[Code], Field(max_length=16)] = []
    skills: Annotated[list[Code], Field(max_length=30)] = []
    certificates: Annotated[list[Certificate], Field(max_length=30)] = []
    availability: Annotated[list[AvailabilityWindow], Field(max_length=50)] = []


class VolunteerCreate(VolunteerBase):
    """A volunteer registered by staff."""

    real_name: Name
    national_id: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)]
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)]
    org_unit_id: Uuid
    grid_id: Uuid | None = None


class RegistrationCreate(VolunteerBase):
    """A volunteer registering themself through a QR invite."""

    invite_token: Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=200)]
    real_name: Name
    national_id: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)]
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)]


class VolunteerUpdate(Strict):
    """Profile fields staff may change; omitted fields stay as they are."""

    org_unit_id: Uuid | None = None
    grid_id: Uuid | None = None
    lat: Latitude | None = None
    lon: Longitude | None = None
    core: bool | None = None
    recruitment_mode: RecruitmentMode | None = None
    service_types: Annotated[list[ServiceType], Field(max_length=3)] | None = None
    teams: Annotated[list[Code], Field(max_length=16)] | None = None
    skills: Annotated[list[Code], Field(max_length=30)] | None = None
    certificates: Annotated[list[Certificate], Field(max_length=30)] | None = None
    availability: Annotated[list[AvailabilityWindow], Field(max_length=50)] | None = None


class StatusChangeCreate(Strict):
    reason: Reason


class ActivationCreate(Strict):
    reason: ShortText = ""


class RevealCreate(Strict):
    reason: Reason
    fields: Annotated[list[Literal["national_id", "phone", "birth_date"]], Field(min_length=1, max_length=3)] = ["national_id", "phone"]


class VolunteerPublic(BaseModel):
    """A volunteer as staff (and the volunteer) see it: identity numbers masked, an age band instead of the birth date."""

    id: str
    volunteer_number: str = Field(description="the volunteer number, eight digits, printed on the card")
    real_name: str
    display_name: str
    national_id_masked: str  # first and last character only
    phone_masked: str
    age_band: str  # "30-39"; the birth date only through an audited reveal
    gender: str
    org_unit_id: str
    org_path: str
    grid_id: str | None
    recruited_by: str | None
    lat: float | None
    lon: float | None
    core: bool
    recruitment_mode: str
    service_types: list[str]
    teams: list[str]
    skills: list[str]
    certificates: list[dict]
    availability: list[dict]
    status: str
    status_reason: str
    star: int
    training_compliant: bool
    training_flagged_on: date | None
    specialised_eligible: bool
    joined_on: date
    version: int


class RevealPublic(BaseModel):
    volunteer_id: str
    national_id: str | None = None
    phone: str | None = None
    birth_date: date | None = None


class StaffCreate(Strict):
    username: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
    password: Annotated[str, StringConstraints(min_length=10, max_length=128)]
    role: StaffRole
    display_name: Name
    org_unit_id: Uuid


class StaffPublic(BaseModel):
    id: str
    username: str
    role: str
    display_name: str
    org_unit_id: str | None
    scope_path: str
    active: bool


class PasswordCheckCreate(Strict):
    username: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class VerifiedStaffPublic(BaseModel):
    staff_id: str
    role: str
    scope_path: str
    display_name: str


class PhoneLookupCreate(Strict):
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)]


class VolunteerByPhonePublic(BaseModel):
    volunteer_id: str
    status: str
    display_name: str
    org_path: str


class InviteCreate(Strict):
    grid_id: Uuid
    max_uses: Annotated[int, Field(ge=1, le=10000)] = 1
    ttl_hours: Annotated[int, Field(ge=1, le=24 * 90)] = 72


class InvitePublic(BaseModel):
    id: str
    grid_id: str
    org_path: str
    token: str
    registration_url: str
    max_uses: int
    uses: int
    expires_at: datetime
    revoked: bool


class TrainingSessionCreate(Strict):
    title: Name
    level: Literal["county", "town", "village"]
    topic: Literal["ethics", "skills", "discipline"]
    org_unit_id: Uuid
    held_on: date


class TrainingSessionPublic(BaseModel):
    id: str
    title: str
    level: str
    topic: str
    org_unit_id: str
    org_path: str
    held_on: date


class TrainingSessionListedPublic(TrainingSessionPublic):
    attended: int


class AttendanceCreate(Strict):
    volunteer_ids: Annotated[list[Uuid], Field(min_length=1, max_length=5000)]


class AttendancePublic(BaseModel):
    session_id: str
    recorded: int
    already_recorded: int


class TrainingBehindPublic(BaseModel):
    volunteer_id: str
    display_name: str
    org_unit_id: str
    org_path: str
    core: bool
    required: int
    attended: int
    flagged_on: date | None
    specialised_eligible: bool


class TrainingBehindList(BaseModel):
    org_unit_id: str
    as_of: date
    volunteers: int
    behind: int
    by_org_unit: dict[str, int]
    items: list[TrainingBehindPublic]


class CardPublic(BaseModel):
    """A volunteer's digital card: what it shows, and the QR (text and SVG) that verifies offline."""

    serial: str = Field(description="card serial (a UUID); a reissue gets a new one")
    volunteer_number: str = Field(description="the volunteer number, eight digits (never the identity number)")
    name: str = Field(description="masked name, e.g. 张*")
    station_id: str
    station: str = Field(description="name of the volunteer's home unit")
    teams: list[str]
    star: int
    issued_at: datetime
    expires_at: datetime = Field(description="a card is short-lived; the phone fetches a fresh one daily")
    photo_url: str | None = Field(default=None, description="shown on screen beside the QR, never in it (the registry keeps no photos yet)")
    qr_text: str = Field(description="what the QR carries: SW1: + Base45(COSE_Sign1), see docs/api.md")
    qr_svg: str = Field(description="the QR code of qr_text as an SVG document")


class CardKeyPublic(BaseModel):
    """An issuer public key as an OKP JSON Web Key (RFC 8037)."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    alg: Literal["EdDSA"]
    use: Literal["sig"]
    kid: str
    x: str = Field(description="the raw 32-byte public key, base64url")


class CardKeysPublic(BaseModel):
    """The keys cards are verified with: the current signing key first, then earlier keys whose cards may still be valid."""

    issuer: str
    active_kid: str
    keys: list[CardKeyPublic]


class CardRevocationsPublic(BaseModel):
    """Serials of revoked cards still within their validity."""

    issuer: str
    as_of: datetime
    serials: list[str]


class ImportRowErrorPublic(BaseModel):
    """Why one line of a roster was not imported."""

    line: int
    field: str
    reason: str


class ImportJobPublic(BaseModel):
    """A roster import job: where it is (`queued`, `running`, `done`, `failed`), how far, and its report."""

    id: str
    status: Literal["queued", "running", "done", "failed"]
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    total_lines: int = Field(description="lines after the header (physical lines: a quoted line break counts)")
    progress: float = Field(description="share of the lines read so far, 0–1 (1 once the job has ended)")
    rows: int
    imported: int
    already_registered: int
    error_count: int
    errors: list[ImportRowErrorPublic] = Field(description="refused rows, line order, at most 1,000 (once the job is done)")
    failure: str | None = Field(description="why the job failed as a whole (a failed job imported what it wrote before)")


class OrgUnitCountsPublic(BaseModel):
    """How many units of each kind, grids and volunteers (by status) lie under a unit."""

    org_unit_id: str
    units_by_kind: dict[str, int]
    grids: int
    volunteers_by_status: dict[str, int]
    volunteers: int


class TeamPublic(BaseModel):
    """One of the 16 specialised teams."""

    code: str
    name: str
    description: str


class VolunteerPage(BaseModel):
    """A page of volunteers in scope (masked) and how many match in all."""

    total: int
    items: list[VolunteerPublic]


class StatusChangePublic(BaseModel):
    """One status change of a volunteer, with its reason."""

    from_status: str | None
    to_status: str
    reason: str
    changed_by: str
    changed_at: Timestamp


class RecruitList(BaseModel):
    """The volunteers a grid worker recruited (masked)."""

    grid_worker: StaffPublic
    total: int
    items: list[VolunteerPublic]


class RegistrationPublic(BaseModel):
    """A registration through a QR invite: the new applicant, masked."""

    volunteer_id: str
    status: str
    display_name: str
    national_id_masked: str
    phone_masked: str
    grid_id: str


class AttendedSessionPublic(BaseModel):
    """A training session a volunteer attended."""

    id: str
    title: str
    level: str
    topic: str
    held_on: date


class TrainingStandingPublic(BaseModel):
    """The calling volunteer's trainings of the past year and where they stand against the yearly rule."""

    required: int
    attended: int
    behind: bool
    flagged_on: date | None
    specialised_eligible: bool
    sessions: list[AttendedSessionPublic]


class TrainingReviewPublic(BaseModel):
    """A re-assessment against the yearly rule: the day it was made for and how many volunteers changed."""

    as_of: date
    changed: int
