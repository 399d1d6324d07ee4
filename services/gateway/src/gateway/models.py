"""Tables the gateway owns (sessions, pending login codes, subject status, notifications); its API schemas are in `schemas.py`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class AuthSession(SQLModel, table=True):
    """A login: the refresh token's hash and who it speaks for; revoked at logout or on token reuse."""

    __tablename__ = "auth_sessions"

    id: uuid.UUID = Field(primary_key=True)
    subject: str
    role: str
    scope_path: str = ""
    volunteer_id: str | None = None
    display_name: str | None = None
    refresh_hash: str
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    refreshed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    revoked_reason: str | None = None


class LoginCode(SQLModel, table=True):
    """A one-time code sent to a phone (both stored only as keyed hashes)."""

    __tablename__ = "login_codes"

    phone_index: str = Field(primary_key=True)
    code_hash: str
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    attempts: int = 0
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class SubjectStatus(SQLModel, table=True):
    """Registry's latest word on a person who may log in (volunteer or staff): whether they may hold a session."""

    __tablename__ = "subject_status"

    subject: str = Field(primary_key=True)
    kind: str
    status: str
    allowed: bool
    version: int | None = Field(default=None, sa_column=Column(BigInteger))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class Notification(SQLModel, table=True):
    """Something addressed to one volunteer (an offer, an answer, a ledger entry); `id` is the cursor."""

    __tablename__ = "notifications"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    volunteer_id: str
    event_id: str
    kind: str
    title: str
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))

