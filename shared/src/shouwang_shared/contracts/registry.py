"""Events published by the registry service. Never carries a plain national ID number or phone."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel

from shouwang_shared.contracts import EventPayload

SOURCE = "/services/registry"
OrgKind = Literal["county", "town", "branch", "station"]
VolunteerStatus = Literal["applicant", "active", "suspended", "retired"]
RecruitmentMode = Literal["long_term", "emergency", "reserve"]


class OrgUnitUpserted(EventPayload):
    """An org unit was created, renamed or moved; `path` is the materialized path `/county/town/station` of ids."""

    TYPE = "shouwang.registry.org_unit_upserted.v1"
    TOPIC = "registry.orgunits.v1"
    SOURCE = SOURCE

    org_unit_id: str
    name: str
    kind: OrgKind
    parent_id: str | None = None
    path: str
    lat: float | None = None
    lon: float | None = None


class Certificate(BaseModel):
    """A certificate a volunteer holds (e.g. first aid) and when it lapses."""

    code: str
    expires_on: date | None = None


class AvailabilityWindow(BaseModel):
    """A weekly window the volunteer can serve in: weekday 0=Monday, times as HH:MM local."""

    weekday: int
    start: str
    end: str


class VolunteerState(EventPayload):
    """The latest state of a volunteer (compacted topic, key = volunteer id); `version` only grows."""

    TYPE = "shouwang.registry.volunteer_state.v1"
    TOPIC = "registry.volunteers.v1"
    SOURCE = SOURCE

    volunteer_id: str
    version: int
    volunteer_number: str | None = None  # eight digits, the number a volunteer is known by outside (never the ID number)
    display_name: str  # masked, e.g. 张**
    status: VolunteerStatus
    org_unit_id: str
    org_path: str
    grid_id: str | None = None
    core: bool = False
    recruitment_mode: RecruitmentMode = "long_term"
    service_types: list[str] = []
    teams: list[str] = []
    skills: list[str] = []
    certificates: list[Certificate] = []
    lat: float | None = None
    lon: float | None = None
    availability: list[AvailabilityWindow] = []
    training_compliant: bool = True
    specialised_eligible: bool = True
    star: int = 1
    updated_at: datetime


class StaffAccountState(EventPayload):
    """The latest state of a staff account (compacted topic, key = staff id); `active` false once deactivated."""

    TYPE = "shouwang.registry.staff_account_state.v1"
    TOPIC = "registry.staff.v1"
    SOURCE = SOURCE

    staff_id: str
    role: str
    scope_path: str
    active: bool
    changed_at: datetime


class TrainingAttended(EventPayload):
    """A volunteer attended a training session (rewards credits it)."""

    TYPE = "shouwang.registry.training_attended.v1"
    TOPIC = "registry.training.v1"
    SOURCE = SOURCE

    attendance_id: str
    volunteer_id: str
    session_id: str
    level: Literal["county", "town", "village"]
    topic: Literal["ethics", "skills", "discipline"]
    attended_on: date
    org_unit_id: str
    org_path: str
