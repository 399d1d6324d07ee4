"""The beneficiaries register of a service project (children in a 关爱 care project): kept minimal, sealed with
dispatch's own PII_KEY (AES-GCM, bound to the project), shown masked, and only to staff whose scope covers the
project. Removing a beneficiary deletes the row (nothing of them stays)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.auth import Principal
from shouwang_shared.db import raw_connection
from shouwang_shared.errors import AppError, NotFound
from shouwang_shared.pii import PiiCipher, mask_name, mask_phone

from dispatch.config import DispatchSettings
from dispatch.projects.schemas import BeneficiaryCreate, BeneficiaryPublic
from dispatch.projects.service import project_or_404
from dispatch.projects.signups import parse_id

Sessions = async_sessionmaker[AsyncSession]


def cipher_of(settings: DispatchSettings) -> PiiCipher:
    """Dispatch's PII cipher; 503 `pii_key_unavailable` when this deployment has no PII_KEY for dispatch."""
    if not settings.pii_key:
        raise AppError("调度服务未配置个人信息密钥 (dispatch has no PII_KEY)", code="pii_key_unavailable", status_code=503)
    return settings.pii_cipher()  # a rare, staff-only use: built per call


def _public(row, cipher: PiiCipher) -> BeneficiaryPublic:
    context = str(row["project_id"])
    return BeneficiaryPublic(
        id=str(row["id"]), project_id=context,
        name_masked=mask_name(cipher.decrypt(row["name_sealed"], context=f"name:{context}")),
        guardian_phone_masked=mask_phone(cipher.decrypt(row["guardian_phone_sealed"], context=f"guardian_phone:{context}")),
        note=cipher.decrypt(row["note_sealed"], context=f"note:{context}") if row["note_sealed"] else "",
        created_at=row["created_at"],
    )


async def _project_in_scope(conn, principal: Principal, project_id: str):
    project = await project_or_404(conn, project_id, staff=principal)
    return project


async def add_beneficiary(
    *, sessions: Sessions, settings: DispatchSettings, principal: Principal, project_id: str, body: BeneficiaryCreate,
) -> BeneficiaryPublic:
    """Register a beneficiary of a project (staff in scope); stored sealed, answered masked."""
    cipher = cipher_of(settings)
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        project = await _project_in_scope(conn, principal, project_id)
        context = str(project["id"])
        row = await conn.fetchrow(
            "INSERT INTO project_beneficiaries (id, project_id, name_sealed, guardian_phone_sealed, note_sealed, created_by)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
            uuid.uuid4(), project["id"], cipher.encrypt(body.name, context=f"name:{context}"),
            cipher.encrypt(body.guardian_phone, context=f"guardian_phone:{context}"),
            cipher.encrypt(body.note, context=f"note:{context}") if body.note else None, principal.sub,
        )
        return _public(row, cipher)


async def list_beneficiaries(
    *, sessions: Sessions, settings: DispatchSettings, principal: Principal, project_id: str,
) -> list[BeneficiaryPublic]:
    """A project's beneficiaries, masked, for staff whose scope covers the project."""
    cipher = cipher_of(settings)
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        project = await _project_in_scope(conn, principal, project_id)
        rows = await conn.fetch("SELECT * FROM project_beneficiaries WHERE project_id = $1 ORDER BY created_at, id", project["id"])
        return [_public(row, cipher) for row in rows]


async def remove_beneficiary(*, sessions: Sessions, principal: Principal, project_id: str, beneficiary_id: str) -> None:
    """Delete a beneficiary from the register (staff in scope); nothing of them is kept."""
    async with sessions() as session, session.begin():
        conn = await raw_connection(session)
        project = await _project_in_scope(conn, principal, project_id)
        deleted = await conn.fetchval(
            "DELETE FROM project_beneficiaries WHERE id = $1::uuid AND project_id = $2 RETURNING id",
            parse_id(beneficiary_id, "beneficiary_id", "服务对象"), project["id"],
        )
        if deleted is None:
            raise NotFound("服务对象不存在 (no such beneficiary)", field="beneficiary_id")
